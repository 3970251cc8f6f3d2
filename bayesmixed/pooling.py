"""The numbers behind the partial-pooling pictures: no / partial / complete pooling, intervals.

Everything here is computation (numpy / pandas, no drawing); :mod:`bayesmixed.plots`
draws it. The per-level separate fits ("no pooling") are GLM fits by IRLS on each
level's rows, the complete-pooling fit one GLM ignoring the groups, the partial-pooling
estimates the fit's own ``coef``.

Two small accessors are the only places that know how to read a fit:
:func:`term_covariances` (per-term covariance matrices of the random effects) and
:func:`is_posterior` (draws from a posterior, or a point fit).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.linalg import block_diag

from bayesmixed.errors import DesignError
from bayesmixed.likelihood.glm import glm_irls

# per-level refits are the slow part of a shrinkage picture: compute them once per fit
_POOLING_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


# ---------------------------------------------------------------------------------------------
# reading a fit: the only two places that know how
# ---------------------------------------------------------------------------------------------
def is_posterior(fit) -> bool:
    """True for a fit made of posterior draws (NUTS), False for a point fit (REML/ML/Laplace/MAP).

    Reads the fit's ``is_posterior`` flag when it has one; otherwise a fit is a posterior
    fit when it has no point estimate ``theta`` of the covariance parameters and carries
    posterior draws in ``fit.idata``.

    Examples
    --------
    >>> import bayesmixed as bm
    >>> is_posterior(bm.Model("Reaction ~ Days + (1 | Subject)", bm.load_dataset("sleepstudy")).fit())
    False
    """
    flag = getattr(fit, "is_posterior", None)
    if flag is not None:
        return bool(flag() if callable(flag) else flag)
    if getattr(fit, "theta", None) is not None:
        return False
    try:
        idata = fit.idata
    except AttributeError:
        return False
    return idata is not None and "posterior" in idata.children


def term_covariances(fit) -> list[np.ndarray]:
    """Covariance matrix (k x k) of one level's random effects, per term in ``design.reterms`` order.

    ``fit.covariances()``: every fit holds its per-term matrices (posterior fits: the
    posterior means of the covariances).

    Examples
    --------
    >>> import bayesmixed as bm
    >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
    >>> [c.shape for c in term_covariances(fit)], round(float(term_covariances(fit)[0][1, 1]), 2)
    ([(2, 2)], 35.07)
    """
    return [np.asarray(c, dtype=float) for c in fit.covariances()]


def residual_sd(fit) -> float:
    """The fit's residual standard deviation ``sigma`` (1 when the family has none)."""
    s = getattr(fit, "sigma", None)
    return 1.0 if s is None else float(s)


def group_terms(design, group: str | None):
    """``(group, terms)``: the grouping factor (default the first) and its random-effect terms."""
    groups = design.groups
    if not groups:
        raise DesignError("this fit has no random effects: there is nothing to pool")
    if group is None:
        group = groups[0]
    if group not in groups:
        raise DesignError(f"unknown grouping factor {group!r}; this fit has {list(groups)}")
    return group, [t for t in design.reterms if t.group == group]


def group_sizes(design, terms) -> np.ndarray:
    """Rows per level; with binomial trials (``cbind``), trials per level (the information)."""
    t = terms[0]
    if design.trials is not None:
        return np.bincount(t.codes, weights=design.trials, minlength=t.n_levels).round().astype(int)
    return np.bincount(t.codes, minlength=t.n_levels)


def size_unit(design) -> str:
    """What :func:`group_sizes` counts: ``"trials"`` or ``"rows"``."""
    return "trials" if design.trials is not None else "rows"


# ---------------------------------------------------------------------------------------------
# one GLM by IRLS
# ---------------------------------------------------------------------------------------------
def glm_fit(X: np.ndarray, y: np.ndarray, family, weights: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Coefficients of one no-pooling GLM (the engine's IRLS); NaN when not estimable.

    Not estimable: fewer rows than columns, rank-deficient ``X``, or an MLE at infinity
    (separation, all successes, all zeros), seen as IRLS not converging or coefficients
    running away. Gaussian identity fits are least squares.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesmixed.families import get_family
    >>> X = np.column_stack([np.ones(4), [0.0, 1, 2, 3]])
    >>> glm_fit(X, np.array([1.0, 3, 5, 7]), get_family("gaussian"), np.ones(4), np.zeros(4)).round(6).tolist()
    [1.0, 2.0]
    >>> glm_fit(X[:, :1], np.ones(4), get_family("binomial"), np.ones(4), np.zeros(4))
    array([nan])
    """
    k = X.shape[1]
    nan = np.full(k, np.nan)
    w = np.asarray(weights, dtype=float)
    if X.shape[0] < k or np.linalg.matrix_rank(X * np.sqrt(w)[:, None]) < k:
        return nan
    if family.is_gaussian_identity:
        sw = np.sqrt(w)
        return np.linalg.lstsq(X * sw[:, None], (y - offset) * sw, rcond=None)[0]
    with np.errstate(all="ignore"):
        beta, converged = glm_irls(X, y, family, w, offset, maxit=100, tol=1e-9)
    if not converged or not np.all(np.isfinite(beta)) or np.max(np.abs(beta)) > 25:
        return nan                        # complete or quasi-complete separation: not estimable
    return beta


# ---------------------------------------------------------------------------------------------
# no / partial / complete pooling
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PoolingEstimates:
    """Per-group estimates of one grouping factor's random-effect columns under three models."""

    group: str
    columns: tuple[str, ...]
    no_pooling: pd.DataFrame        # rows = levels; NaN where a separate fit is not estimable
    partial_pooling: pd.DataFrame   # the fit's coef() columns
    complete_pooling: pd.Series     # one fit ignoring the groups
    size: pd.Series                 # rows per level (binomial with trials: trials per level)

    def table(self) -> pd.DataFrame:
        """Long-to-wide table with a (model, column) MultiIndex on the columns, plus ``n``."""
        parts = {"no_pooling": self.no_pooling, "partial_pooling": self.partial_pooling}
        out = pd.concat(parts, axis=1)
        out[("n", "")] = self.size
        return out

    def shrinkage(self, column: str) -> pd.Series:
        """Distance moved from the no-pooling to the partial-pooling estimate (NaN: no separate fit)."""
        return (self.no_pooling[column] - self.partial_pooling[column]).abs()


def _cached(fit, group):
    try:
        return _POOLING_CACHE.get(fit, {}).get(group)
    except TypeError:                             # fit objects that cannot be weakly referenced
        return None


def _remember(fit, group, est):
    try:
        _POOLING_CACHE.setdefault(fit, {})[group] = est
    except TypeError:
        pass


def pooling_estimates(fit, group: str | None = None) -> PoolingEstimates:
    """No-pooling, partial-pooling and complete-pooling estimates per level of a grouping factor.

    No pooling: for each level a separate OLS/GLM fit on that level's rows of the
    response on the random-effect columns of ``group`` (e.g. ``1, Days`` for
    ``(Days | Subject)``), with any other fixed effects held at the fit's estimates
    as an offset (so it is lme4's ``lmList`` when the fixed and random columns are
    the same). Partial pooling: ``fit.coef[group]`` (conditional modes or posterior
    means added to the fixed effects). Complete pooling: one OLS/GLM fit of the
    fixed-effects model that ignores the groups.

    Parameters
    ----------
    fit : fit object
        Any bayesmixed fit (REML/ML, Laplace/AGQ, NUTS).
    group : str, optional
        Grouping factor; the first one by default.

    Returns
    -------
    PoolingEstimates

    Examples
    --------
    >>> import bayesmixed as bm
    >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
    >>> est = pooling_estimates(fit)
    >>> float(round(est.no_pooling.loc["308", "Days"], 3)), float(round(est.complete_pooling["Days"], 3))
    (21.765, 10.467)
    """
    d = fit.design
    group, terms = group_terms(d, group)
    cached = _cached(fit, group)
    if cached is not None:
        return cached
    cols = list(fit.ranef[group].columns)
    Xi = np.hstack([t.Xi for t in terms])                  # (n, k) in ranef column order
    codes = terms[0].codes
    fixed_names = list(d.fixef_names)
    # other fixed effects stay at the fit's estimates, as an offset of the per-group fits
    other = [j for j, nm in enumerate(fixed_names) if nm not in cols]
    offset = d.offset + (d.X[:, other] @ fit.fixef.to_numpy()[other] if other else 0.0)
    w = np.asarray(d.weights, dtype=float)
    nop = np.full((terms[0].n_levels, len(cols)), np.nan)
    for g in range(terms[0].n_levels):
        rows = codes == g
        nop[g] = glm_fit(Xi[rows], d.y[rows], d.family, w[rows], offset[rows])
    levels = pd.Index(terms[0].levels, name=group)
    beta_cp = glm_fit(d.X, d.y, d.family, w, d.offset)
    cp = pd.Series({c: (beta_cp[fixed_names.index(c)] if c in fixed_names else 0.0) for c in cols})
    partial = fit.coef[group].reindex(index=levels)[cols] if all(c in fit.coef[group] for c in cols) \
        else fit.ranef[group].reindex(index=levels)[cols]
    out = PoolingEstimates(group=group, columns=tuple(cols),
                           no_pooling=pd.DataFrame(nop, index=levels, columns=cols),
                           partial_pooling=partial.astype(float),
                           complete_pooling=cp,
                           size=pd.Series(group_sizes(d, terms), index=levels, name="n"))
    _remember(fit, group, out)
    return out


def population_covariance(fit, group: str, columns) -> np.ndarray:
    """Covariance of one level's random effects for ``columns`` (a sub-block of :func:`term_covariances`).

    Examples
    --------
    >>> import bayesmixed as bm
    >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
    >>> population_covariance(fit, "Subject", ["Days"]).round(2)
    array([[35.07]])
    """
    d = fit.design
    _, terms = group_terms(d, group)
    covs = term_covariances(fit)
    full = block_diag(*[C for t, C in zip(d.reterms, covs) if t.group == group])
    # columns of later terms on the same factor are renamed in ranef ("Intercept.1"): match by order
    ranef_cols = list(fit.ranef[group].columns)
    idx = [ranef_cols.index(c) for c in columns]
    return full[np.ix_(idx, idx)]


# ---------------------------------------------------------------------------------------------
# which levels to show
# ---------------------------------------------------------------------------------------------
def select_levels(est: PoolingEstimates, column: str, max_levels: int | None = 30):
    """Levels to show when there are too many: the most-shrunk, the largest and the smallest.

    Returns ``(levels, note)``: all levels and ``""`` when there are at most
    ``max_levels`` (or ``max_levels`` is None); otherwise about a third each of the
    levels whose estimate moved most from its separate fit, the largest and the
    smallest levels, and a sentence saying how many are shown.

    Examples
    --------
    >>> import bayesmixed as bm
    >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
    >>> levels, note = select_levels(pooling_estimates(fit), "Days", max_levels=6)
    >>> len(levels), note
    (6, 'showing 6 of 18 levels: the 2 most shrunk, 2 largest, 2 smallest')
    """
    idx = est.partial_pooling.index
    if max_levels is None or len(idx) <= max_levels:
        return list(idx), ""
    k = max(1, max_levels // 3)
    moved = est.shrinkage(column).dropna().sort_values(ascending=False, kind="stable")
    by_size = est.size.sort_values(kind="stable")
    chosen: list = []
    counts = []
    for candidates, want in ((list(moved.index), k), (list(by_size.index[::-1]), k),
                             (list(by_size.index), max_levels - 2 * k)):
        before = len(chosen)
        for lev in candidates:
            if len(chosen) - before >= want:
                break
            if lev not in chosen:
                chosen.append(lev)
        counts.append(len(chosen) - before)
    note = (f"showing {len(chosen)} of {len(idx)} levels: the {counts[0]} most shrunk, "
            f"{counts[1]} largest, {counts[2]} smallest")
    return chosen, note


# ---------------------------------------------------------------------------------------------
# intervals of the random effects
# ---------------------------------------------------------------------------------------------
def ranef_intervals(fit, group: str | None = None, prob: float = 0.95) -> dict[str, pd.DataFrame]:
    """Per random-effect column: a frame (rows = levels) with ``estimate, lower, upper``.

    Likelihood fits: conditional mode ± 2 conditional SD (``fit.ranef_condsd``, lme4's
    ``condVar``); falls back to the normal-approximation draws in ``fit.idata``.
    Posterior fits: posterior mean and the ``prob`` highest-density interval of the
    ``b_<term>`` draws in ``fit.idata`` (ArviZ's ``hdi``).

    Examples
    --------
    >>> import bayesmixed as bm
    >>> fit = bm.Model("Reaction ~ Days + (1 | Subject)", bm.load_dataset("sleepstudy")).fit()
    >>> list(ranef_intervals(fit)["Intercept"].columns)
    ['estimate', 'lower', 'upper']
    """
    d = fit.design
    group, terms = group_terms(d, group)
    re = fit.ranef[group]
    cols = list(re.columns)
    condsd = None if is_posterior(fit) else getattr(fit, "ranef_condsd", None)
    if condsd is not None:
        sd = condsd[group]
        return {c: pd.DataFrame({"estimate": re[c], "lower": re[c] - 2 * sd[c], "upper": re[c] + 2 * sd[c]})
                for c in cols}
    from arviz_stats.base import array_stats

    post = fit.idata.posterior
    out = {}
    j = 0
    for t in terms:
        var = post[f"b_{t.name}"]
        arr = np.asarray(var.transpose("chain", "draw", t.group_dim, t.term_dim).values)
        arr = arr.reshape(-1, t.n_levels, t.n_cols)                 # (S, levels, cols)
        levels = [str(x) for x in var[t.group_dim].values]
        for k in range(t.n_cols):
            draws = arr[:, :, k].T                                   # (levels, S)
            h = array_stats.hdi(draws, prob, axis=-1)
            frame = pd.DataFrame({"estimate": draws.mean(axis=1), "lower": h[:, 0], "upper": h[:, 1]},
                                 index=pd.Index(levels, name=group))
            out[cols[j]] = frame.reindex(re.index)
            j += 1
    return out


__all__ = ["PoolingEstimates", "pooling_estimates", "population_covariance", "ranef_intervals", "glm_fit",
           "term_covariances", "is_posterior", "group_terms", "group_sizes", "select_levels"]
