"""Results of ``method="map"``: the REML-equivalent posterior mode behind the common fit face."""

from __future__ import annotations

from functools import cached_property

import numpy as np

from bayesmixed.results.base import MixedFit
from bayesmixed.results.idata import normal_approximation_idata


class MapFit(MixedFit):
    """The REML-equivalent MAP: (theta, sigma) at the mode, beta and b at their conditional modes.

    Built from the mode the PyMC side found (``bayesmixed.bayes.map.fit_map``).
    ``tidy()`` has every fit's columns: Wald z tests for the fixed effects, the
    variance parameters from ``varcorr``.

    Examples
    --------
    >>> import bayesmixed as bm
    >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit(method="map")
    >>> round(float(fit.fixef["Days"]), 3), round(fit.reml_criterion, 2)
    (10.467, 1743.63)
    >>> fit.tidy()[["effect", "term"]].values.tolist()[:3]
    [['fixed', 'Intercept'], ['fixed', 'Days'], ['ran_pars', 'sd__Intercept']]
    """

    method = "map"
    is_posterior = False      # a point estimate (plots and comparisons ask this, not method)

    def __init__(self, mode):
        self.design = mode.design
        self.theta = np.asarray(mode.theta, dtype=float)
        self.sigma = float(mode.sigma)
        self.reml_criterion = float(mode.criterion)
        self.u = np.asarray(mode.u)
        self._beta = np.asarray(mode.beta)
        self._b = np.asarray(mode.b)
        self._vcov = np.asarray(mode.vcov)
        self._covs = mode.covariances()
        self._mode = mode

    def _varpar_distribution(self):
        """(theta, sigma, covariance): the REML criterion's Hessian at the mode (the normal approximation)."""
        return self.theta, self.sigma, self._mode.varpar_covariance()

    @cached_property
    def _condvar_blocks(self) -> list[np.ndarray]:
        return self._mode.condvar_blocks()

    def _b_vector(self) -> np.ndarray:
        return self._b

    def _summary_title(self) -> str:
        return "REML-equivalent MAP (PyMC marginal posterior mode, flat priors)"

    def _summary_header(self) -> list[str]:
        return super()._summary_header() + [f"REML criterion at the mode: {self.reml_criterion:.4f}"]

    def _scaled_residuals(self):
        return None

    def _fixef_correlation(self):
        return None

    @cached_property
    def idata(self):
        """ArviZ data with draws from the normal approximation at the mode (the variables of posterior fits)."""
        return normal_approximation_idata(self)
