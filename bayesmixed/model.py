"""``Model``: formula + data + family -> a design; ``fit()`` dispatches to an engine."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from bayesmixed.design import MixedDesign, build_design
from bayesmixed.errors import DesignError
from bayesmixed.families import get_family
from bayesmixed.formula import parse_formula

METHODS = ("reml", "ml", "laplace", "agq", "nuts", "map")


class Model:
    """A mixed-effects model from an lme4-style formula.

    Parameters
    ----------
    formula : str
        lme4 syntax, e.g. ``"Reaction ~ Days + (Days | Subject)"``; ``(x || g)``
        for uncorrelated terms, ``(1 | g1/g2)`` for nesting, ``offset(x)``,
        ``cbind(successes, failures)`` for binomial counts.
    data : pandas.DataFrame
        Never modified. Polars frames and dicts of columns are converted.
    family, link : str
        ``"gaussian"``, ``"binomial"`` (logit, probit, cloglog), ``"poisson"``,
        ``"negativebinomial"``, ``"gamma"``.
    random : str, optional
        nlme-style random part, e.g. ``"~1 | w/v"`` (then ``formula`` has no bars).
    weights, offset : str or array, optional
        Prior weights and an offset, as column names or arrays.
    priors : dict, optional
        Overrides of the default priors used by ``method="nuts"``.
    na_action : {"omit", "raise"}
        Drop rows with missing values (with a warning), or refuse.
    control : dict, optional
        lme4-style checks, e.g. ``{"check_nobs_vs_nlev": "ignore"}``.

    Examples
    --------
    >>> import bayesmixed as bm
    >>> m = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy"))
    >>> fit = m.fit()
    >>> round(fit.reml_criterion, 2)
    1743.63
    >>> fit.fixef.round(3).to_dict()
    {'Intercept': 251.405, 'Days': 10.467}
    """

    def __init__(self, formula: str, data: Any, family: str = "gaussian", link: str | None = None,
                 random: str | None = None, weights=None, offset=None, priors: dict | None = None,
                 *, na_action: str = "omit", control: dict | None = None) -> None:
        self.formula = formula
        self.family = get_family(family, link)
        self.parsed = parse_formula(formula, random=random)
        self.data = data
        self._priors_override = dict(priors or {})
        self.design: MixedDesign = build_design(
            self.parsed, data, family=self.family, weights=weights, offset=offset,
            na_action=na_action, control=control,
        )
        self._init_args = dict(formula=formula, family=family, link=link, random=random, weights=weights,
                               offset=offset, priors=priors, na_action=na_action, control=control)

    def __repr__(self) -> str:
        d = self.design
        return (f"Model({self.formula!r}, family={self.family.name!r}, link={self.family.link.name!r}; "
                f"n={d.n}, fixed={list(d.fixef_names)}, random={[str(b) for b in self.parsed.bars]})")

    def _repr_html_(self) -> str:
        return f"<b>Model</b> <code>{self.formula}</code><br>" + self.design._repr_html_()

    @property
    def default_method(self) -> str:
        return "reml" if self.family.is_gaussian_identity else "laplace"

    def fit(self, method: str | None = None, **kwargs):
        """Fit the model.

        ``method``: ``"reml"`` (gaussian default), ``"ml"``, ``"laplace"`` (default for
        other families), ``"agq"`` (with ``nAGQ=k``), ``"nuts"`` (PyMC posterior) or
        ``"map"``. Extra keyword arguments go to the engine (e.g. ``draws``, ``chains``).
        """
        method = self.default_method if method is None else str(method).lower()
        if method not in METHODS:
            raise DesignError(f"unknown method {method!r}; valid methods are: {', '.join(METHODS)}")
        if method in ("reml", "ml"):
            from bayesmixed.likelihood.lmm import fit_lmm

            if not self.family.is_gaussian_identity:
                raise DesignError(f"method={method!r} is for gaussian models with the identity link; "
                                  f"this model is {self.family.name}({self.family.link.name}): "
                                  "use method='laplace', 'agq' or 'nuts'")
            return fit_lmm(self.design, reml=(method == "reml"), **kwargs)
        if method in ("laplace", "agq"):
            from bayesmixed.likelihood.glmm import fit_glmm

            return fit_glmm(self.design, method=method, **kwargs)
        from bayesmixed.bayes import fit_bayes

        return fit_bayes(self, method=method, **kwargs)

    def refit(self, data: Any) -> "Model":
        """The same model on other data (used for simulation and bootstrap)."""
        args = dict(self._init_args)
        return Model(args.pop("formula"), data, **args)

    @cached_property
    def pymc_model(self):
        """The compiled ``pymc.Model`` (built lazily on first access)."""
        from bayesmixed.bayes import build_pymc_model

        return build_pymc_model(self.design, self.priors)

    @property
    def priors(self):
        """The priors ``method="nuts"`` will use, defaults filled in."""
        from bayesmixed.bayes import resolve_priors

        return resolve_priors(self.design, self._priors_override)
