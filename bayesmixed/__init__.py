"""bayesmixed: lme4-style mixed-effects models, fitted exactly (REML/ML/Laplace) and by NUTS."""

from bayesmixed.datasets import describe_dataset, list_datasets, load_dataset
from bayesmixed.errors import (
    BayesMixedError, BayesMixedWarning, ConvergenceWarning, DesignError, DivergenceWarning, DoubleBarFactorWarning,
    FitError, IdentifiabilityWarning, LooWarning,
    FormulaError, LowESSWarning, MissingDataWarning, RankDeficiencyWarning, RhatWarning, SamplingError,
    SamplingWarning, ScaleWarning, SeparationWarning, SingularFitWarning, TreeDepthWarning,
)
from bayesmixed.model import Model
from bayesmixed.compare import anova, compare
from bayesmixed.results.interpret import datagrid
from bayesmixed.plots import (
    plot_comparisons, plot_design, plot_ppc, plot_predictions, plot_predictions_frame, plot_prior_predictive,
    plot_priors, plot_ranef, plot_shrinkage, plot_slopes,
)

__version__ = "0.1.0"

__all__ = [
    "Model", "anova", "compare", "datagrid", "plot_shrinkage", "plot_ranef", "plot_design", "plot_predictions",
    "plot_ppc", "plot_priors", "plot_prior_predictive", "plot_comparisons", "plot_slopes",
    "plot_predictions_frame", "load_dataset", "list_datasets", "describe_dataset",
    "BayesMixedError", "FormulaError", "DesignError", "FitError", "SamplingError",
    "BayesMixedWarning", "SingularFitWarning", "ConvergenceWarning", "RankDeficiencyWarning",
    "ScaleWarning", "MissingDataWarning", "DoubleBarFactorWarning", "IdentifiabilityWarning", "SamplingWarning", "DivergenceWarning", "RhatWarning",
    "LowESSWarning", "TreeDepthWarning", "SeparationWarning", "LooWarning",
]
