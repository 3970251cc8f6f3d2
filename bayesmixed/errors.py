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
    """A formula (or nlme ``random=``) string that cannot be parsed.

    Build one that points at the offending place with :meth:`FormulaError.at`.
    """

    @classmethod
    def at(cls, formula: str, pos: int, message: str) -> "FormulaError":
        """A FormulaError showing the line of ``formula`` holding ``pos`` with a caret under it.

        Parameters
        ----------
        formula : str
            The formula (or ``random=``) text.
        pos : int
            Character offset of the problem in ``formula`` (clipped to its length).
        message : str
            What is wrong and how to fix it.

        Examples
        --------
        >>> print(FormulaError.at("y ~ x +", 6, "nothing after '+'"))
        nothing after '+'
            y ~ x +
                  ^
        """
        pos = max(0, min(pos, len(formula)))
        line_start = formula.rfind("\n", 0, pos) + 1
        line_end = formula.find("\n", pos)
        line = formula[line_start : len(formula) if line_end == -1 else line_end]
        shown = "".join(c if c.isprintable() else " " for c in line)
        return cls(f"{message}\n    {shown}\n    {' ' * (pos - line_start)}^")


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


class DoubleBarFactorWarning(BayesMixedWarning):
    """``(f || g)`` met a multi-column term (a factor): as in lme4, its columns stay correlated.

    lme4's ``expandDoubleVerts`` splits ``(1 + f || g)`` into ``(1 | g) + (0 + f | g)``
    and the second term has a full covariance matrix over the levels of ``f``;
    ``(1 | g) + diag(0 + f | g)`` gives one independent variance per level.
    """


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


class LooWarning(BayesMixedWarning):
    """PSIS-LOO or WAIC is unreliable for some observations (high Pareto k, or large WAIC variance)."""


class SeparationWarning(BayesMixedWarning):
    """A binomial model shows (quasi-)complete separation."""


class IdentifiabilityWarning(BayesMixedWarning):
    """A random-effects term is probably not identifiable (one level, or as many levels or
    random effects as observations) and is fitted anyway because ``control=`` asked for it."""
