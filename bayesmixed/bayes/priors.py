"""Default priors (weakly informative, autoscaled to the data) and user overrides.

The defaults follow rstanarm's autoscaling idea (Gabry & Goodrich, "Prior
distributions for rstanarm models"): every scale is set from the spread of the
response and of the predictor it multiplies, so that a prior means the same
thing whatever the units of the data. The full table is in ``docs/priors.md``
and in :func:`resolve_priors`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from bayesmixed.errors import DesignError

# distributions a prior may use, with the keyword arguments PyMC expects for each
DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "Normal": ("mu", "sigma"),
    "StudentT": ("nu", "mu", "sigma"),
    "Cauchy": ("alpha", "beta"),
    "Flat": (),
    "HalfNormal": ("sigma",),
    "HalfStudentT": ("nu", "sigma"),
    "HalfCauchy": ("beta",),
    "HalfFlat": (),
    "Exponential": ("lam",),
    "Gamma": ("alpha", "beta"),
    "InverseGamma": ("alpha", "beta"),
    "LogNormal": ("mu", "sigma"),
    "Uniform": ("lower", "upper"),
}
POSITIVE = ("HalfNormal", "HalfStudentT", "HalfCauchy", "HalfFlat", "Exponential", "Gamma",
            "InverseGamma", "LogNormal", "Uniform")
# arguments PyMC cannot do without, and those that must be > 0 (scales, shapes, rates, degrees of freedom)
REQUIRED: dict[str, tuple[str, ...]] = {
    "StudentT": ("nu",), "Cauchy": ("alpha", "beta"), "HalfStudentT": ("nu",), "HalfCauchy": ("beta",),
    "Exponential": ("lam",), "Gamma": ("alpha", "beta"), "InverseGamma": ("alpha", "beta"),
}
POSITIVE_ARGS = ("sigma", "nu", "lam", "beta")          # beta: a scale (Cauchy) or a rate (Gamma)
SHAPE_ARGS = {"Gamma": ("alpha",), "InverseGamma": ("alpha",)}

@dataclass(frozen=True)
class Prior:
    """One prior: a PyMC distribution name and its keyword arguments."""

    distribution: str
    args: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    def __str__(self) -> str:
        inner = ", ".join(f"{k}={_fmt(v)}" for k, v in self.args.items())
        return f"{self.distribution}({inner})"

    def create(self, name: str, **kwargs):
        """Create the PyMC random variable (inside a model context)."""
        import pymc as pm

        return getattr(pm, self.distribution)(name, **self.args, **kwargs)


def _fmt(v) -> str:
    if isinstance(v, (float, np.floating)):
        return f"{v:.4g}"
    return str(v)


@dataclass(frozen=True)
class Priors:
    """The priors a ``method="nuts"`` fit uses, one entry per named parameter.

    Names: each fixed effect (``Intercept``, ``Days``, ``period[T.2]``), one
    ``sd_<term>[<column>]`` per random-effect standard deviation (e.g.
    ``sd_Subject[Days]``), ``lkj_eta_<term>`` for each correlated term, and the
    family's auxiliary parameter (``sigma``, ``alpha`` for negative binomial,
    ``shape`` for gamma).  ``to_frame()`` gives the table.
    """

    fixef: dict[str, Prior]
    sd: dict[str, dict[str, Prior]]            # term name -> column -> prior
    lkj_eta: dict[str, float]                  # correlated term name -> eta
    aux: dict[str, Prior]                      # "sigma" / "alpha" / "shape"
    centered_intercept: bool = True            # Intercept prior is at the predictors' means

    def to_frame(self) -> pd.DataFrame:
        """One row per parameter: ``parameter, distribution, args, note``."""
        rows = []
        for k, p in self.fixef.items():
            rows.append((k, p.distribution, _args_str(p), p.note))
        for term, cols in self.sd.items():
            for c, p in cols.items():
                rows.append((f"sd_{term}[{c}]", p.distribution, _args_str(p), p.note))
        for term, eta in self.lkj_eta.items():
            rows.append((f"lkj_eta_{term}", "LKJCorr", f"eta={_fmt(eta)}", "correlation matrix of the term"))
        for k, p in self.aux.items():
            rows.append((k, p.distribution, _args_str(p), p.note))
        return pd.DataFrame(rows, columns=["parameter", "distribution", "args", "note"])

    @property
    def names(self) -> list[str]:
        return list(self.to_frame()["parameter"])

    def __repr__(self) -> str:
        return "Priors:\n" + self.to_frame().to_string(index=False)

    def _repr_html_(self) -> str:
        return "<b>Priors</b>" + self.to_frame().to_html(index=False)


def _args_str(p: Prior) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in p.args.items())


def _sd(x: np.ndarray) -> float:
    s = float(np.std(x, ddof=1)) if len(x) > 1 else 0.0
    return s if np.isfinite(s) and s > 0 else 0.0


def data_scales(design) -> tuple[float, float, np.ndarray]:
    """(location, scale) of the response on the scale priors are set, and sd of each X column."""
    fam = design.family
    # GLMs: priors live on the link scale, where 2.5 is already "large" (rstanarm)
    scale = (_sd(design.y) or 1.0) if fam.is_gaussian_identity else 1.0
    loc = fam.prior_location(design.y, design.weights, design.offset)
    sx = np.array([_sd(design.X[:, j]) for j in range(design.p)])
    return loc, scale, sx


def default_priors(design) -> Priors:
    """The autoscaled defaults; see :func:`resolve_priors` for the table."""
    loc, sy, sx = data_scales(design)
    gaussian = design.family.is_gaussian_identity
    fixef = {}
    for name, s in zip(design.fixef_names, sx):
        if name == "Intercept":
            fixef[name] = Prior("Normal", {"mu": loc, "sigma": 2.5 * sy},
                                "at the predictors' means (centred X)")
        else:
            scale = 2.5 * sy / s if s > 0 else 2.5 * sy
            fixef[name] = Prior("Normal", {"mu": 0.0, "sigma": scale}, "2.5 sd(y)/sd(x)" if gaussian
                                else "2.5/sd(x), link scale")
    sd: dict[str, dict[str, Prior]] = {}
    lkj = {}
    for t in design.reterms:
        cols = {}
        for j, c in enumerate(t.cnames):
            s = _sd(t.Xi[:, j]) if c != "Intercept" else 1.0
            scale = sy / s if s > 0 else sy
            cols[c] = Prior("HalfNormal", {"sigma": scale}, "sd(y)/sd(x)" if gaussian else "1/sd(x), link scale")
        sd[t.name] = cols
        if t.correlated and t.n_cols > 1:
            lkj[t.name] = 2.0
    aux = {k: Prior(dist, args, note) for k, (dist, args, note) in design.family.aux_priors(sy).items()}
    return Priors(fixef=fixef, sd=sd, lkj_eta=lkj, aux=aux,
                  centered_intercept="Intercept" in design.fixef_names)


def _as_prior(key: str, value, *, positive: bool) -> Prior:
    if isinstance(value, Prior):
        p = value
    elif isinstance(value, (tuple, list)) and len(value) == 2 and isinstance(value[0], str) \
            and isinstance(value[1], dict):
        p = Prior(value[0], dict(value[1]), "user")
    elif isinstance(value, dict) and "distribution" in value:
        args = {k: v for k, v in value.items() if k != "distribution"}
        p = Prior(value["distribution"], args, "user")
    else:
        raise DesignError(f"prior for {key!r} must be (\"Normal\", {{'mu': 0, 'sigma': 10}}) or a "
                          f"Prior; got {value!r}")
    if p.distribution not in DISTRIBUTIONS:
        raise DesignError(f"prior for {key!r}: unknown distribution {p.distribution!r}; valid: "
                          f"{', '.join(DISTRIBUTIONS)}")
    allowed = DISTRIBUTIONS[p.distribution]
    if bad := sorted(set(p.args) - set(allowed)):
        raise DesignError(f"prior for {key!r}: {p.distribution} takes {list(allowed)}, not {bad}")
    _check_args(key, p)
    if positive and (p.distribution not in POSITIVE or float(p.args.get("lower", 0.0)) < 0):
        what = "a standard deviation" if key.startswith("sd_") else repr(key)
        raise DesignError(f"prior for {key!r} is a {p.distribution}, which puts probability on negative "
                          f"values; {what} needs a distribution on positive values: one of "
                          f"{', '.join(POSITIVE)} (e.g. (\"HalfNormal\", {{'sigma': 2}}))")
    if p.note != "user":
        p = replace(p, note="user")
    return p


def _check_args(key: str, p: Prior) -> None:
    """Required arguments present; each a finite real number; scales, shapes, rates > 0."""
    if missing := [a for a in REQUIRED.get(p.distribution, ()) if a not in p.args]:
        raise DesignError(f"prior for {key!r}: {p.distribution} needs {missing} (it takes "
                          f"{list(DISTRIBUTIONS[p.distribution])})")
    for a, v in p.args.items():
        ok = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
        if not ok or not np.isfinite(float(v)):
            raise DesignError(f"prior for {key!r}: {p.distribution} argument {a}={v!r} must be a finite number")
        if (a in POSITIVE_ARGS or a in SHAPE_ARGS.get(p.distribution, ())) and not float(v) > 0:
            raise DesignError(f"prior for {key!r}: {p.distribution} argument {a}={v!r} must be > 0")
    if p.distribution == "Uniform" and not float(p.args.get("lower", 0)) < float(p.args.get("upper", 1)):
        raise DesignError(f"prior for {key!r}: Uniform needs lower < upper, got {_args_str(p)}")


def _unknown_names(unknown: list[str], valid: list[str]) -> str:
    """``unknown prior name(s) [...] (did you mean ...?); valid names ...``."""
    hints = []
    for k in unknown:
        by_case = [v for v in valid if v.lower() == str(k).lower()]
        close = by_case or difflib.get_close_matches(str(k), valid, n=2, cutoff=0.6)
        hints += [c for c in close if c not in hints]
    did = f" (did you mean {', '.join(map(repr, hints))}?)" if hints else ""
    return f"unknown prior name(s) {unknown}{did}; valid names for this model are: {', '.join(valid)}"


def valid_prior_names(design) -> list[str]:
    """Every name ``priors=`` accepts for this design (see :func:`resolve_priors`).

    Examples
    --------
    >>> import bayesmixed as bm
    >>> valid_prior_names(bm.Model("Reaction ~ Days + (1 | Subject)", bm.load_dataset("sleepstudy")).design)
    ['Intercept', 'Days', 'fixef', 'sd_Subject', 'sd_Subject[Intercept]', 'sigma']
    """
    return _names(default_priors(design))


def _names(pri: Priors) -> list[str]:
    return list(pri.fixef) + ["fixef"] + [f"sd_{t}" for t in pri.sd] + \
        [f"sd_{t}[{c}]" for t, cols in pri.sd.items() for c in cols] + \
        (["lkj_eta"] if pri.lkj_eta else []) + [f"lkj_eta_{t}" for t in pri.lkj_eta] + list(pri.aux)


def validate_priors(design, overrides: dict | None) -> Priors:
    """Check the user's ``priors=`` against ``design`` at once; return the resolved priors.

    Called when a model is built, so that a misspelt name, a distribution that cannot
    serve a parameter (a ``Normal`` on a standard deviation or on ``sigma``) or a bad
    argument (a negative scale, a missing ``nu``) is reported by ``bm.Model(...)``
    rather than at the first ``fit(method="nuts")``.

    Parameters
    ----------
    design : MixedDesign
    overrides : dict or None
        The ``priors=`` given to the model (see :func:`resolve_priors` for the names).

    Returns
    -------
    Priors

    Raises
    ------
    DesignError
        Naming the prior and what to write instead.

    Examples
    --------
    >>> import bayesmixed as bm
    >>> m = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy"))
    >>> validate_priors(m.design, {"sd_Subjects": ("HalfNormal", {"sigma": 2})})
    Traceback (most recent call last):
    ...
    bayesmixed.errors.DesignError: unknown prior name(s) ['sd_Subjects'] (did you mean 'sd_Subject'...
    >>> validate_priors(m.design, {"sd_Subject": ("Normal", {"mu": 0, "sigma": 2})})
    Traceback (most recent call last):
    ...
    bayesmixed.errors.DesignError: prior for 'sd_Subject' is a Normal, which puts probability on negative...
    """
    if overrides is not None and not isinstance(overrides, dict):
        raise DesignError(f"priors= must be a dict like {{'Days': ('Normal', {{'mu': 0, 'sigma': 10}})}}, "
                          f"got {type(overrides).__name__}")
    return resolve_priors(design, overrides)


def resolve_priors(design, overrides: dict | None = None) -> Priors:
    """Default priors for ``design`` with the user's ``overrides`` applied.

    Defaults (weakly informative, autoscaled as in rstanarm; ``s_y`` = sd(y) for
    gaussian-identity models and 1 on the link scale otherwise, ``s_x`` = sd of
    the predictor's column):

    ======================== ======================================= ==========================
    parameter                prior                                   why
    ======================== ======================================= ==========================
    Intercept                Normal(mean(y) or g(mean y), 2.5 s_y)   at the predictors' means
    other fixed effects      Normal(0, 2.5 s_y / s_x)                rstanarm's autoscaling
    sd_<term>[<column>]      HalfNormal(s_y / s_x)                   s_x = 1 for Intercept
    lkj_eta_<term>           LKJ(eta=2)                              see below
    sigma (gaussian)         Exponential(1 / sd(y))                  rstanarm's prior_aux
    alpha (neg. binomial)    Exponential(1)                          rstanarm's prior_aux
    shape (gamma)            Exponential(1)                          rstanarm's prior_aux
    ======================== ======================================= ==========================

    LKJ ``eta=2`` (not 1): it keeps correlations off +-1 with little pull otherwise
    (density proportional to 1 - r^2 for a 2x2), which removes the funnel-like
    ridge that near-singular fits such as lme4's boundary estimates put in the
    posterior, at a prior cost of about one observation's worth.

    Parameters
    ----------
    design : MixedDesign
    overrides : dict, optional
        ``{name: ("Normal", {"mu": 0, "sigma": 10})}`` for a fixed effect;
        ``"sd_<term>"`` (every column of the term) or ``"sd_<term>[<column>]"``
        with a positive distribution; ``"lkj_eta"`` (every term) or
        ``"lkj_eta_<term>"`` with a number; ``"sigma"``/``"alpha"``/``"shape"``.
        ``"fixef"`` sets every non-intercept fixed effect at once.

    Returns
    -------
    Priors
        With ``to_frame()``: one row per parameter.

    Raises
    ------
    DesignError
        For an unknown name (the message lists the valid ones) or a bad prior.

    Examples
    --------
    >>> import bayesmixed as bm
    >>> m = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy"))
    >>> pr = resolve_priors(m.design, {"Days": ("Normal", {"mu": 0, "sigma": 10}), "lkj_eta": 4})
    >>> str(pr.fixef["Days"]), pr.lkj_eta["Subject"]
    ('Normal(mu=0, sigma=10)', 4.0)
    """
    pri = default_priors(design)
    if not overrides:
        return pri
    fixef, sd, lkj, aux = dict(pri.fixef), {k: dict(v) for k, v in pri.sd.items()}, dict(pri.lkj_eta), \
        dict(pri.aux)
    valid = _names(pri)
    unknown = [k for k in overrides if k not in valid]
    if unknown:
        raise DesignError(_unknown_names(unknown, valid))
    for key, value in overrides.items():
        if key in fixef:
            fixef[key] = _as_prior(key, value, positive=False)
        elif key == "fixef":
            p = _as_prior(key, value, positive=False)
            for k in fixef:
                if k != "Intercept":
                    fixef[k] = p
        elif key in aux:
            aux[key] = _as_prior(key, value, positive=True)
        elif key == "lkj_eta" or key.startswith("lkj_eta_"):
            try:
                eta = float(value)
            except (TypeError, ValueError):
                raise DesignError(f"{key} must be a positive number, got {value!r}") from None
            if not eta > 0:
                raise DesignError(f"{key} must be a positive number, got {value!r}")
            for t in (lkj if key == "lkj_eta" else [key[len("lkj_eta_"):]]):
                lkj[t] = eta
        else:  # sd_term or sd_term[col]
            p = _as_prior(key, value, positive=True)
            for t, cols in sd.items():
                for c in cols:
                    if key in (f"sd_{t}", f"sd_{t}[{c}]"):
                        cols[c] = p
    return Priors(fixef=fixef, sd=sd, lkj_eta=lkj, aux=aux, centered_intercept=pri.centered_intercept)
