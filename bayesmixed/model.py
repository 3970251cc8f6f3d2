"""``Model``: formula + data + family -> a design; ``fit()`` runs an engine and builds its result.

``FITTERS`` is lme4's ``lFormula -> mkLmerDevfun -> optimizeLmer -> mkMerMod`` as a
table: each method names the engine that computes the optimum (or the draws), what
the engine is given (the design or the model), fixed engine options, and the result
class that builds the fit from what the engine returned.
"""

from __future__ import annotations

import inspect
from functools import cached_property
from typing import Any, Callable, NamedTuple

from bayesmixed.bayes import build_pymc_model, fit_map, sample_nuts, to_bambi
from bayesmixed.bayes.prior_predictive import sample_prior_predictive
from bayesmixed.bayes.priors import validate_priors
from bayesmixed.design import MixedDesign, build_design
from bayesmixed.design.streamed import StreamedDesign, not_supported
from bayesmixed.errors import DesignError
from bayesmixed.families import get_family
from bayesmixed.formula import parse_formula
from bayesmixed.likelihood.glmm import optimize_glmm
from bayesmixed.likelihood.lmm import optimize_lmm
from bayesmixed.results.glmm import GlmmFit
from bayesmixed.results.likelihood import LikelihoodFit
from bayesmixed.results.map import MapFit
from bayesmixed.results.posterior import PosteriorFit
from bayesmixed.results.streamed import StreamedLikelihoodFit


class Fitter(NamedTuple):
    """One row of :data:`FITTERS`: engine, its input (``"design"`` or ``"model"``), fixed options, result."""

    engine: Callable
    takes: str
    fixed: dict
    result: type


FITTERS: dict[str, Fitter] = {
    "reml": Fitter(optimize_lmm, "design", {"reml": True}, LikelihoodFit),
    "ml": Fitter(optimize_lmm, "design", {"reml": False}, LikelihoodFit),
    "laplace": Fitter(optimize_glmm, "design", {"method": "laplace"}, GlmmFit),
    "agq": Fitter(optimize_glmm, "design", {"method": "agq"}, GlmmFit),
    "nuts": Fitter(sample_nuts, "model", {}, PosteriorFit),
    "map": Fitter(fit_map, "model", {}, MapFit),
}
METHODS = tuple(FITTERS)


def _options(engine, kwargs: dict, method: str) -> dict:
    """Refuse options the engine does not take, listing the ones it does (not a bare TypeError)."""
    params = inspect.signature(engine).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return kwargs
    valid = [n for n, p in params.items() if p.kind is p.KEYWORD_ONLY or
             (p.default is not p.empty and n not in ("method", "reml"))]
    bad = sorted(set(kwargs) - set(valid))
    if bad:
        hint = " (use method='ml' or 'reml' instead of REML=)" if "REML" in bad else ""
        raise DesignError(f"fit(method={method!r}) got unknown option(s) {bad}{hint}; valid options "
                          f"are: {', '.join(v for v in valid if v not in ('method', 'reml')) or 'none'}")
    return kwargs


class Model:
    """A mixed-effects model from an lme4-style formula.

    Parameters
    ----------
    formula : str
        lme4 syntax, e.g. ``"Reaction ~ Days + (Days | Subject)"``; ``(x || g)``
        for uncorrelated terms, ``(1 | g1/g2)`` for nesting, ``offset(x)``,
        ``cbind(successes, failures)`` for binomial counts.
    data : pandas.DataFrame
        Never modified. Polars frames and dicts of columns are converted. Data larger
        than memory: a path to Parquet (a file, a directory or a glob; read through
        DuckDB), a DuckDB relation, a polars LazyFrame or a Dask DataFrame, read chunk
        by chunk (Gaussian LMMs by REML/ML; see :mod:`bayesmixed.design.streamed`).
    family : str
        ``"gaussian"``, ``"binomial"``, ``"poisson"``, ``"negativebinomial"``,
        ``"gamma"``.
    link : str, optional
        The family's canonical or usual link when None (identity, logit, log, log,
        log); ``"probit"`` and ``"cloglog"`` for binomial.
    random : str, optional
        nlme-style random part, e.g. ``"~1 | w/v"`` (then ``formula`` has no bars).
    weights : str or array, optional
        Prior weights as in lme4, as a column name or an array.
    offset : str or array, optional
        An offset added to the linear predictor, as a column name or an array (or
        ``offset(x)`` in the formula).
    priors : dict, optional
        Overrides of the default priors used by ``method="nuts"``.
    na_action : {"omit", "raise"}
        Drop rows with missing values (with a warning), or refuse.
    control : dict, optional
        lme4-style checks, e.g. ``{"check_nobs_vs_nlev": "ignore"}``.

    Notes
    -----
    lme4: ``lFormula`` (formula + data -> model matrices and checks); the fit
    functions are ``lmer``, ``glmer`` and their options, chosen by ``fit(method=)``.

    Examples
    --------
    >>> import bayesmixed as bm
    >>> m = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy"))
    >>> m.design.n, list(m.design.fixef_names)
    (180, ['Intercept', 'Days'])
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
        self.design: MixedDesign = build_design(
            self.parsed, data, family=self.family, weights=weights, offset=offset,
            na_action=na_action, control=control,
        )
        if isinstance(self.design, StreamedDesign):           # no Bayesian fit of out-of-memory data
            if priors:
                raise DesignError(not_supported(self.design.source, "priors= (method='nuts'/'map')"))
            self._priors = None
        else:
            self._priors = validate_priors(self.design, priors)     # bad names/values fail here, not at fit
        self._priors_override = dict(priors or {})
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
        """``"reml"`` for gaussian models with the identity link, else ``"laplace"``.

        Examples
        --------
        >>> import bayesmixed as bm
        >>> bm.Model("incidence ~ period + (1 | herd)", bm.load_dataset("cbpp"), family="poisson").default_method
        'laplace'
        """
        return "reml" if self.family.is_gaussian_identity else "laplace"

    def fit(self, method: str | None = None, **kwargs):
        """Fit the model.

        Parameters
        ----------
        method : str, optional
            ``"reml"`` (default for gaussian models), ``"ml"``, ``"laplace"`` (default
            for other families), ``"agq"`` (with ``nAGQ=k``), ``"nuts"`` (PyMC
            posterior) or ``"map"``.
        **kwargs
            Passed to the engine, e.g. ``nAGQ`` for ``"agq"``; ``draws``, ``tune``,
            ``chains``, ``random_seed``, ``sampler``, ``progressbar`` for ``"nuts"``.

        Returns
        -------
        MixedFit
            A :class:`~bayesmixed.results.likelihood.LikelihoodFit` for REML/ML, the
            GLMM or posterior fit classes otherwise; all share the same accessors.

        Notes
        -----
        lme4: ``lmer(REML=TRUE/FALSE)``, ``glmer(nAGQ=)``.

        Examples
        --------
        >>> import bayesmixed as bm
        >>> m = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy"))
        >>> ml = m.fit(method="ml")
        >>> ml.method, round(ml.deviance, 2)
        ('ml', 1751.94)
        """
        method = self.default_method if method is None else str(method).lower()
        if method not in FITTERS:
            raise DesignError(f"unknown method {method!r}; valid methods are: {', '.join(METHODS)}")
        if method in ("reml", "ml") and not self.family.is_gaussian_identity:
            raise DesignError(f"method={method!r} is for gaussian models with the identity link; "
                              f"this model is {self.family.name}({self.family.link.name}): "
                              "use method='laplace', 'agq' or 'nuts'")
        f = FITTERS[method]
        result = f.result
        if isinstance(self.design, StreamedDesign):    # out-of-memory data: REML/ML from cross-products
            if method not in ("reml", "ml"):
                raise DesignError(not_supported(self.design.source, f"method={method!r}"))
            result = StreamedLikelihoodFit
        opts = _options(f.engine, kwargs, method)
        fit = result(f.engine(self.design if f.takes == "design" else self, **f.fixed, **opts))
        fit.data = self.data
        return fit

    def to_bambi(self, **kwargs):
        """The equivalent ``bambi.Model`` (see ``bayesmixed.bayes.to_bambi``)."""
        return to_bambi(self, **kwargs)

    def refit(self, data: Any) -> "Model":
        """The same model on other data (used for simulation and bootstrap); R's ``update(fit, data=)``.

        Examples
        --------
        >>> import bayesmixed as bm
        >>> d = bm.load_dataset("sleepstudy")
        >>> m = bm.Model("Reaction ~ Days + (1 | Subject)", d)
        >>> m.refit(d[d["Days"] < 5]).design.n
        90
        """
        args = dict(self._init_args)
        return Model(args.pop("formula"), data, **args)

    @cached_property
    def pymc_model(self):
        """The compiled ``pymc.Model`` (built lazily on first access).

        Its coords are the design's names: fixed effects, and the levels and terms of
        each grouping factor.

        Examples
        --------
        >>> import bayesmixed as bm
        >>> m = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy"))
        >>> m.pymc_model.coords["fixef"], m.pymc_model.coords["Subject"][:3]
        (('Intercept', 'Days'), ('308', '309', '310'))
        """
        return build_pymc_model(self.design, self.priors)

    @property
    def priors(self):
        """The priors ``method="nuts"`` will use, defaults filled in.

        Examples
        --------
        >>> import bayesmixed as bm
        >>> m = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy"))
        >>> "sigma" in m.priors.to_frame()["parameter"].tolist()
        True
        """
        return self._priors

    def sample_prior_predictive(self, draws: int = 500, random_seed=None):
        """Draws from the priors and the prior predictive distribution (ArviZ ``prior``, ``prior_predictive``).

        The ``prior`` group has the posterior's names (``beta``, ``sd_<group>``,
        ``cor_<group>`` pairs, ``sigma``, ``b_<group>``); see
        :func:`bayesmixed.bayes.prior_predictive.sample_prior_predictive`.

        Examples
        --------
        >>> import bayesmixed as bm
        >>> m = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy"))
        >>> prior = m.sample_prior_predictive(draws=50, random_seed=1)
        >>> sorted(prior["prior"].data_vars)
        ['b_Subject', 'beta', 'cor_Subject', 'sd_Subject', 'sigma']
        """
        return sample_prior_predictive(self, draws=draws, random_seed=random_seed)
