"""Pictures of partial pooling: shrinkage, caterpillar, design sparsity, predictions, PPC.

Every function reads only the shared face of a fit (``design``, ``fixef``,
``coef``, ``ranef``, the per-term covariances, plus ``ranef_condsd`` or
``idata`` for intervals), so the same call works for REML/ML, Laplace/AGQ and
posterior fits. Each takes ``ax=`` and returns what it drew on (Axes, or the
Figure when it makes several panels). The plots only draw: the numbers behind
them come from :mod:`bayesmixed.pooling` (no / partial / complete pooling,
random-effect intervals) and :mod:`bayesmixed.predictive` (prediction curves,
posterior-predictive draws), re-exported here.
"""

from __future__ import annotations

from bayesmixed.plots.design import plot_design
from bayesmixed.plots.interpret import plot_comparisons, plot_predictions_frame, plot_slopes
from bayesmixed.plots.ppc import plot_ppc
from bayesmixed.plots.predictions import plot_predictions
from bayesmixed.plots.priors import plot_prior_predictive, plot_priors
from bayesmixed.plots.ranef import plot_ranef
from bayesmixed.plots.shrinkage import plot_shrinkage
from bayesmixed.pooling import PoolingEstimates, pooling_estimates, population_covariance, ranef_intervals
from bayesmixed.predictive import posterior_predictive, predict_curves

__all__ = ["plot_shrinkage", "plot_ranef", "plot_design", "plot_predictions", "plot_ppc", "pooling_estimates",
           "ranef_intervals", "population_covariance", "predict_curves", "posterior_predictive",
           "PoolingEstimates", "plot_priors", "plot_prior_predictive", "plot_comparisons", "plot_slopes",
           "plot_predictions_frame"]
