"""Exception and warning classes of bayesmixed.

Every error the library raises on purpose derives from :class:`BayesMixedError`,
and every warning from :class:`BayesMixedWarning`, so users can catch or filter
them as a group::

    import warnings
    warnings.simplefilter("ignore", bm.SingularFitWarning)

Examples
--------
>>> import warnings
>>> import bayesmixed as bm
>>> data = bm.load_dataset("sleepstudy").assign(Days2=lambda d: 2 * d["Days"])
>>> with warnings.catch_warnings():
...     warnings.simplefilter("error", BayesMixedWarning)     # every library warning raises
...     try:
...         bm.Model("Reaction ~ Days + Days2 + (1 | Subject)", data)
...     except RankDeficiencyWarning as w:
...         print(type(w).__name__, issubclass(type(w), BayesMixedWarning))
RankDeficiencyWarning True
"""

from __future__ import annotations


class BayesMixedError(Exception):
    """Base class of every error raised by bayesmixed."""


class FormulaError(BayesMixedError, ValueError):
    """A formula (or nlme ``random=``) string that cannot be parsed."""


class DesignError(BayesMixedError, ValueError):
    """Formula and data do not make a valid model (missing columns, bad values...)."""


class FitError(BayesMixedError, RuntimeError):
    """A fit could not be computed."""


class SamplingError(FitError):
    """NUTS sampling failed or was interrupted; ``.partial`` holds what was drawn."""

    def __init__(self, message: str, partial=None):
        super().__init__(message)
        self.partial = partial


class BayesMixedWarning(UserWarning):
    """Base class of every warning issued by bayesmixed."""


class SingularFitWarning(BayesMixedWarning):
    """The fit is on the boundary: a variance is zero or a correlation is +-1."""


class ConvergenceWarning(BayesMixedWarning):
    """The optimizer stopped away from a clear optimum (large gradient, bad Hessian)."""


class RankDeficiencyWarning(BayesMixedWarning):
    """Fixed-effect columns were aliased and dropped."""


class ScaleWarning(BayesMixedWarning):
    """Predictors are on very different scales; rescaling is advised."""


class MissingDataWarning(BayesMixedWarning):
    """Rows with missing values were dropped."""


class SamplingWarning(BayesMixedWarning):
    """Base for sampler diagnostics."""


class DivergenceWarning(SamplingWarning):
    """NUTS reported divergent transitions."""


class RhatWarning(SamplingWarning):
    """Some parameters have R-hat above 1.01."""


class LowESSWarning(SamplingWarning):
    """Some parameters have a low effective sample size."""


class TreeDepthWarning(SamplingWarning):
    """NUTS hit its maximum tree depth often."""


class SeparationWarning(BayesMixedWarning):
    """A binomial model shows (quasi-)complete separation."""


class IdentifiabilityWarning(BayesMixedWarning):
    """A random-effects term is probably not identifiable (one level, or as many levels or
    random effects as observations) and is fitted anyway because ``control=`` asked for it."""
