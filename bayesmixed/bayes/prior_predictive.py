"""Priors you can see: prior and prior-predictive draws, and the density of each prior.

:func:`sample_prior_predictive` draws from the compiled PyMC model
(``model.pymc_model``; it is only sampled from, never changed) and returns ArviZ data
with the user's names only (:func:`user_facing`): ``beta[fixef]``, ``sd_<term>[<term>__term]``,
``cor_<term>[<term>__pair]`` (one entry per off-diagonal pair, labelled
``"Intercept:Days"``), the family's parameter (``sigma`` / ``alpha`` / ``shape``) and
``b_<term>[<group>, <term>__term]``; the sampler's internals (``Intercept_c``,
``beta_slopes``, ``z_<term>``, ``cpc_<term>``) are left out. :func:`prior_curves`
gives the density of each row of ``model.priors.to_frame()`` for :func:`bayesmixed.plots.priors.plot_priors`.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from scipy import stats

from bayesmixed.bayes.build import binomial_counts
from bayesmixed.bayes.priors import Prior, Priors
from bayesmixed.errors import DesignError

__all__ = ["sample_prior_predictive", "user_facing", "pair_labels", "prior_curves", "PriorCurve",
           "prior_distribution"]


# ---------------------------------------------------------------------------------------------
# draws with the user's names
# ---------------------------------------------------------------------------------------------
def pair_labels(cnames) -> list[str]:
    """``"a:b"`` for each off-diagonal pair (i < j) of a term's columns, row by row.

    Examples
    --------
    >>> pair_labels(["Intercept", "Days", "x"])
    ['Intercept:Days', 'Intercept:x', 'Days:x']
    """
    k = len(cnames)
    return [f"{cnames[i]}:{cnames[j]}" for i in range(k) for j in range(i + 1, k)]


def user_facing(ds, design):
    """The named quantities of a draws Dataset (``prior`` or ``posterior``), internals dropped.

    ``corr_<term>`` (a k x k matrix with its diagonal of ones) becomes ``cor_<term>``
    with one entry per pair, on the dim ``<term>__pair``.

    Parameters
    ----------
    ds : xarray.Dataset
        Draws of the variables of :func:`bayesmixed.bayes.build.build_pymc_model`.
    design : MixedDesign

    Returns
    -------
    xarray.Dataset
    """
    import xarray as xr

    out = {}
    if "beta" in ds:
        out["beta"] = ds["beta"]
    for t in design.reterms:
        out[f"b_{t.name}"] = ds[f"b_{t.name}"]         # b_* before sd_*: ArviZ's summary labels rows by dim order
    for t in design.reterms:
        out[f"sd_{t.name}"] = ds[f"sd_{t.name}"]
        corr = f"corr_{t.name}"
        if f"cor_{t.name}" in ds:                        # the PyMC model stores the pairs itself
            out[f"cor_{t.name}"] = ds[f"cor_{t.name}"]
        elif corr in ds:
            i, j = np.triu_indices(t.n_cols, 1)
            values = np.asarray(ds[corr].transpose("chain", "draw", ...).values)[..., i, j]
            pdim = f"{t.name}__pair"
            out[f"cor_{t.name}"] = xr.DataArray(
                values, dims=("chain", "draw", pdim),
                coords={"chain": ds["chain"], "draw": ds["draw"], pdim: pair_labels(t.cnames)})
    for k in design.family.extra_params:
        out[k] = ds[k]
    return xr.Dataset(out, attrs=dict(ds.attrs))


@contextmanager
def _quiet_pymc():
    """PyMC logs "Sampling: [...]" at INFO for every prior-predictive call."""
    log = logging.getLogger("pymc")
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        log.setLevel(level)


def sample_prior_predictive(model, draws: int = 500, random_seed=None):
    """Draws from the priors and of the data they predict, as ArviZ data.

    Parameters
    ----------
    model : bayesmixed.Model
        Its ``priors`` (defaults and ``priors=`` overrides) and compiled ``pymc_model``.
    draws : int
        Number of draws.
    random_seed : int, optional

    Returns
    -------
    xarray.DataTree
        ``prior`` (the user's names: ``beta``, ``sd_<term>``, ``cor_<term>``, ``sigma``
        or the family's parameter, ``b_<term>``), ``prior_predictive`` (``y``, dims
        ``obs``: the response as the likelihood sees it, successes for a binomial with
        trials), ``observed_data`` (``y``) and, for binomial counts, ``constant_data``
        with ``trials``.

    Examples
    --------
    >>> import bayesmixed as bm
    >>> m = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy"))
    >>> pp = sample_prior_predictive(m, draws=50, random_seed=1)
    >>> sorted(pp["prior"].data_vars)
    ['b_Subject', 'beta', 'cor_Subject', 'sd_Subject', 'sigma']
    >>> pp["prior"]["cor_Subject"].coords["Subject__pair"].values.tolist()
    ['Intercept:Days']
    """
    import pymc as pm
    import xarray as xr

    draws = int(draws)
    if draws < 1:
        raise DesignError(f"draws must be a positive whole number, got {draws!r}")
    d = model.design
    tab = model.priors.to_frame()
    flat = tab.loc[tab["distribution"].isin(["Flat", "HalfFlat"]), "parameter"].tolist()
    if flat:
        raise DesignError(f"cannot draw from improper (Flat / HalfFlat) priors: {', '.join(flat)}; give them "
                          "proper priors (e.g. ('Normal', {'mu': 0, 'sigma': 10})) for a prior predictive check")
    with _quiet_pymc():
        # forward draws need no optimised C: FAST_COMPILE takes ~1 s where the default compile takes 5-15 s
        trace = pm.sample_prior_predictive(draws=draws, model=model.pymc_model, random_seed=random_seed,
                                           compile_kwargs={"mode": "FAST_COMPILE"})
    prior = user_facing(trace["prior"].to_dataset(), d)
    pp = trace["prior_predictive"].to_dataset()[["y"]]
    counts = binomial_counts(d) if d.family.uses_trials else None
    trials = None if counts is None else counts[1]
    obs = xr.DataArray(np.arange(d.n), dims="obs")
    groups = {"prior": prior, "prior_predictive": pp,
              "observed_data": xr.Dataset({"y": xr.DataArray(np.asarray(d.family.observed_values(d.y, trials)),
                                                             dims="obs", coords={"obs": obs})})}
    if trials is not None:
        groups["constant_data"] = xr.Dataset({"trials": xr.DataArray(trials, dims="obs", coords={"obs": obs})})
    return xr.DataTree.from_dict(groups)


# ---------------------------------------------------------------------------------------------
# densities of the priors
# ---------------------------------------------------------------------------------------------
class _HalfT:
    """|T| for T ~ StudentT(nu, 0, sigma) (scipy has no half-t)."""

    def __init__(self, nu: float, sigma: float) -> None:
        self.t = stats.t(nu, 0.0, sigma)

    def pdf(self, x):
        x = np.asarray(x, dtype=float)
        return np.where(x >= 0, 2 * self.t.pdf(x), 0.0)

    def ppf(self, q):
        return self.t.ppf((1 + np.asarray(q)) / 2)


def prior_distribution(prior: Prior):
    """A scipy-like frozen distribution (``pdf``, ``ppf``) of ``prior``; None for Flat / HalfFlat.

    Missing arguments take PyMC's defaults (``Normal()`` is N(0, 1)).

    Examples
    --------
    >>> prior_distribution(Prior("Exponential", {"lam": 2.0})).ppf(0.5).round(4)
    np.float64(0.3466)
    """
    a = {k: float(v) for k, v in prior.args.items()}
    mu, sigma = a.get("mu", 0.0), a.get("sigma", 1.0)
    make = {
        "Normal": lambda: stats.norm(mu, sigma),
        "StudentT": lambda: stats.t(a["nu"], mu, sigma),
        "Cauchy": lambda: stats.cauchy(a["alpha"], a["beta"]),
        "HalfNormal": lambda: stats.halfnorm(scale=sigma),
        "HalfStudentT": lambda: _HalfT(a["nu"], sigma),
        "HalfCauchy": lambda: stats.halfcauchy(scale=a["beta"]),
        "Exponential": lambda: stats.expon(scale=1.0 / a["lam"]),
        "Gamma": lambda: stats.gamma(a["alpha"], scale=1.0 / a["beta"]),
        "InverseGamma": lambda: stats.invgamma(a["alpha"], scale=a["beta"]),
        "LogNormal": lambda: stats.lognorm(sigma, scale=np.exp(mu)),
        "Uniform": lambda: stats.uniform(a.get("lower", 0.0), a.get("upper", 1.0) - a.get("lower", 0.0)),
    }
    if prior.distribution in ("Flat", "HalfFlat"):
        return None
    if prior.distribution not in make:
        raise DesignError(f"no density for a {prior.distribution} prior")
    return make[prior.distribution]()


def lkj_marginal(eta: float, k: int):
    """Marginal distribution of one correlation under LKJ(eta) in dimension k: 2 Beta(b, b) - 1.

    ``b = eta - 1 + k / 2`` (Lewandowski, Kurowicka & Joe 2009).

    Examples
    --------
    >>> round(float(lkj_marginal(1.0, 2).pdf(0.3)), 3)      # LKJ(1), 2 x 2: uniform on (-1, 1)
    0.5
    """
    b = eta - 1 + k / 2
    return stats.beta(b, b, loc=-1.0, scale=2.0)


@dataclass(frozen=True)
class PriorCurve:
    """One panel of ``plot_priors``: a parameter, its prior as text, and the density on a grid."""

    parameter: str
    label: str                 # "Normal(mu=0, sigma=10)"
    x: np.ndarray
    density: np.ndarray        # empty for an improper (Flat) prior
    improper: bool = False


def _curve(parameter: str, label: str, dist, n_points: int, positive: bool) -> PriorCurve:
    if dist is None:
        return PriorCurve(parameter, label, np.array([]), np.array([]), improper=True)
    lo = 0.0 if positive else float(dist.ppf(0.01))
    hi = float(dist.ppf(0.99))
    x = np.linspace(lo, hi, n_points)
    return PriorCurve(parameter, label, x, np.asarray(dist.pdf(x), dtype=float))


def prior_curves(priors: Priors, term_sizes: dict[str, int] | None = None, n_points: int = 200) -> list[PriorCurve]:
    """The density of each prior, in the order of ``priors.to_frame()``.

    Each curve covers the central 98% of the prior (from 0 for positive parameters);
    ``lkj_eta_<term>`` rows show the marginal prior of one correlation of the term
    (``term_sizes[term]`` columns; 2 when not given).

    Examples
    --------
    >>> import bayesmixed as bm
    >>> m = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy"))
    >>> curves = prior_curves(m.priors)
    >>> [c.parameter for c in curves] == m.priors.names
    True
    >>> c = curves[0]
    >>> bool(abs(c.x[c.density.argmax()] - m.priors.fixef["Intercept"].args["mu"]) < 2)
    True
    """
    sizes = term_sizes or {}
    out = []
    for k, p in priors.fixef.items():
        out.append(_curve(k, str(p), prior_distribution(p), n_points, positive=False))
    for term, cols in priors.sd.items():
        for c, p in cols.items():
            out.append(_curve(f"sd_{term}[{c}]", str(p), prior_distribution(p), n_points, positive=True))
    for term, eta in priors.lkj_eta.items():
        dist = lkj_marginal(eta, sizes.get(term, 2))
        x = np.linspace(-0.999, 0.999, n_points)
        out.append(PriorCurve(f"lkj_eta_{term}", f"LKJ(eta={eta:g}): one correlation", x, dist.pdf(x)))
    for k, p in priors.aux.items():
        out.append(_curve(k, str(p), prior_distribution(p), n_points, positive=True))
    return out
