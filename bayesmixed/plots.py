"""Pictures of partial pooling: shrinkage, caterpillar, design sparsity, predictions, PPC.

Every function reads only the shared face of a fit (``design``, ``fixef``,
``coef``, ``ranef``, ``varcorr``, ``method``, plus ``ranef_condsd`` or
``idata`` for intervals), so the same call works for REML/ML, Laplace/AGQ and
posterior fits. Each takes ``ax=`` and returns what it drew on (Axes, or the
Figure when it makes several panels). The no-pooling / complete-pooling
numbers behind :func:`plot_shrinkage` are available as a table from
:func:`pooling_table`.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import stats

from bayesmixed.errors import DesignError, FitError

POSTERIOR_METHODS = ("nuts",)
# per-level refits are the slow part of a shrinkage picture: compute them once per fit
_POOLING_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


# ---------------------------------------------------------------------------------------------
# no pooling / complete pooling estimates
# ---------------------------------------------------------------------------------------------
def _glm_fit(X: np.ndarray, y: np.ndarray, w: np.ndarray, offset: np.ndarray, family) -> np.ndarray:
    """Coefficients of one GLM by IRLS (OLS for gaussian identity); NaN when not estimable."""
    k = X.shape[1]
    nan = np.full(k, np.nan)
    if X.shape[0] < k or np.linalg.matrix_rank(X * np.sqrt(w)[:, None]) < k:
        return nan
    if family.is_gaussian_identity:
        sw = np.sqrt(w)
        return np.linalg.lstsq(X * sw[:, None], (y - offset) * sw, rcond=None)[0]
    if family.name == "binomial" and (np.all(y <= 0) or np.all(y >= 1)):
        return nan                                # all failures or all successes: MLE at infinity
    link = family.link
    # start from the link of a shrunken mean, as glm's mustart does, to stay off the boundary
    mu = (w * y + 0.5) / (w + 1.0) if family.name == "binomial" else np.maximum(y, 0.1)
    eta = link.linkfun(mu)
    beta = nan
    for _ in range(100):
        d = link.mu_eta(eta)
        W = w * d**2 / family.variance(link.linkinv(eta))
        z = eta - offset + (y - link.linkinv(eta)) / d
        sw = np.sqrt(W)
        if not (np.all(np.isfinite(sw)) and np.all(np.isfinite(z))):
            return nan
        try:
            new = np.linalg.lstsq(X * sw[:, None], z * sw, rcond=None)[0]
        except np.linalg.LinAlgError:
            return nan
        if np.max(np.abs(new)) > 50:          # running off to infinity: separation
            return nan
        eta = X @ new + offset
        if np.all(np.isfinite(beta)) and np.max(np.abs(new - beta)) < 1e-9 * (1 + np.max(np.abs(new))):
            beta = new
            break
        beta = new
    else:
        return nan
    # complete or quasi-complete separation: the MLE is at infinity, report "not estimable"
    if np.max(np.abs(beta)) > 25:
        return nan
    return beta


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


def _group_terms(design, group: str | None):
    groups = design.groups
    if not groups:
        raise DesignError("this fit has no random effects: there is nothing to pool")
    if group is None:
        group = groups[0]
    if group not in groups:
        raise DesignError(f"unknown grouping factor {group!r}; this fit has {list(groups)}")
    return group, [t for t in design.reterms if t.group == group]


def _group_sizes(terms, design=None) -> np.ndarray:
    """Rows per level; for binomial responses with trials, trials per level (the information)."""
    t = terms[0]
    if design is not None and design.family.name == "binomial" and design.trials is not None:
        return np.bincount(t.codes, weights=design.trials, minlength=t.n_levels).round().astype(int)
    return np.bincount(t.codes, minlength=t.n_levels)


def _ranef_columns(fit, group: str) -> list[str]:
    return list(fit.ranef[group].columns)


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
    >>> from bayesmixed.plots import pooling_estimates
    >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
    >>> est = pooling_estimates(fit)
    >>> float(round(est.no_pooling.loc["308", "Days"], 3)), float(round(est.complete_pooling["Days"], 3))
    (21.765, 10.467)
    """
    d = fit.design
    group, terms = _group_terms(d, group)
    try:
        cached = _POOLING_CACHE.get(fit, {}).get(group)
    except TypeError:                             # fit objects that cannot be weakly referenced
        cached = None
    if cached is not None:
        return cached
    cols = _ranef_columns(fit, group)
    Xi = np.hstack([t.Xi for t in terms])                  # (n, k) in ranef column order
    codes = terms[0].codes
    fixef = fit.fixef
    fixed_names = list(d.fixef_names)
    # other fixed effects stay at the fit's estimates, as an offset of the per-group fits
    other = [j for j, nm in enumerate(fixed_names) if nm not in cols]
    offset = d.offset + (d.X[:, other] @ fixef.to_numpy()[other] if other else 0.0)
    w = np.asarray(d.weights, dtype=float)
    nop = np.full((terms[0].n_levels, len(cols)), np.nan)
    for g in range(terms[0].n_levels):
        rows = codes == g
        nop[g] = _glm_fit(Xi[rows], d.y[rows], w[rows], offset[rows], d.family)
    levels = pd.Index(terms[0].levels, name=group)
    beta_cp = _glm_fit(d.X, d.y, w, d.offset, d.family)
    cp = pd.Series({c: (beta_cp[fixed_names.index(c)] if c in fixed_names else 0.0) for c in cols})
    partial = fit.coef[group].reindex(index=levels)[cols] if all(c in fit.coef[group] for c in cols) \
        else fit.ranef[group].reindex(index=levels)[cols]
    out = PoolingEstimates(group=group, columns=tuple(cols),
                           no_pooling=pd.DataFrame(nop, index=levels, columns=cols),
                           partial_pooling=partial.astype(float),
                           complete_pooling=cp,
                           size=pd.Series(_group_sizes(terms, d), index=levels, name="n"))
    try:
        _POOLING_CACHE.setdefault(fit, {})[group] = out
    except TypeError:
        pass
    return out


def population_covariance(fit, group: str, columns) -> np.ndarray:
    """Covariance of one level's random effects for ``columns``, read from ``fit.varcorr``."""
    d = fit.design
    _, terms = _group_terms(d, group)
    blocks = [_term_cov_from_varcorr(fit.varcorr, t) for t in terms]
    from scipy.linalg import block_diag

    full = block_diag(*blocks)
    # columns of later terms on the same factor are renamed in ranef ("Intercept.1"): match by order
    ranef_cols = _ranef_columns(fit, group)
    idx = [ranef_cols.index(c) for c in columns]
    return full[np.ix_(idx, idx)]


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def _new_ax(ax, figsize=(6, 5)):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def _method_label(fit) -> str:
    m = getattr(fit, "method", "fit")
    return {"reml": "REML", "ml": "ML", "laplace": "Laplace", "agq": "AGQ", "nuts": "NUTS",
            "map": "MAP"}.get(m, str(m))


def _sizes(n: np.ndarray, smin: float = 15.0, smax: float = 160.0) -> np.ndarray:
    n = np.asarray(n, dtype=float)
    if n.max() == n.min():
        return np.full_like(n, 0.5 * (smin + smax))
    return smin + (smax - smin) * (n - n.min()) / (n.max() - n.min())


def _arrow(ax, start, end, color, gid, style="-"):
    from matplotlib.patches import FancyArrowPatch

    a = FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=8, color=color, lw=0.8,
                        linestyle=style, alpha=0.8, shrinkA=0, shrinkB=2, gid=gid, zorder=2)
    ax.add_patch(a)
    return a


def _ellipse(ax, center, cov, level, **kw):
    from matplotlib.patches import Ellipse

    w, V = np.linalg.eigh(cov)
    w = np.clip(w, 0, None)
    r = np.sqrt(stats.chi2.ppf(level, 2))
    angle = np.degrees(np.arctan2(V[1, -1], V[0, -1]))
    e = Ellipse(center, 2 * r * np.sqrt(w[-1]), 2 * r * np.sqrt(w[0]), angle=angle, fill=False, **kw)
    ax.add_patch(e)
    return e


# ---------------------------------------------------------------------------------------------
# shrinkage
# ---------------------------------------------------------------------------------------------
def plot_shrinkage(fit, group: str | None = None, params=None, *, compare=None, ax=None,
                   complete_pooling: bool = True, ellipse_levels=(0.5, 0.95), labels: bool = False):
    """No pooling -> partial pooling, one arrow per group, with complete pooling for reference.

    One-parameter version (``params="Intercept"``, or a grouping factor with one
    column): one row per level, sorted by the no-pooling estimate; open circles are
    separate per-level fits, filled circles the partial-pooling estimates
    (``fit.coef``), the vertical line the complete-pooling estimate. Two-parameter
    version (``params=("Intercept", "Days")``, the default for ``(x | g)``): the
    classic picture in the (intercept, slope) plane with the population
    distribution N(fixef, Sigma) drawn as ellipses at ``ellipse_levels``. Point
    area grows with the number of rows in the level.

    Parameters
    ----------
    fit : fit object
        REML/ML, Laplace/AGQ or posterior fit.
    group : str, optional
        Grouping factor (default: the first).
    params : str or (str, str), optional
        Random-effect column(s) to show; default both of the first two columns when
        the factor has two or more, else the only one.
    compare : fit object, optional
        A second fit of the same model (e.g. NUTS next to REML): its partial-pooling
        estimates are overlaid with dashed arrows (and its ellipse).
    ax : matplotlib Axes, optional
    complete_pooling : bool
        Draw the complete-pooling estimate.
    ellipse_levels : tuple of float
        Probability contours of the population distribution (2-D version).
    labels : bool
        Write the level names next to the partial-pooling points.

    Returns
    -------
    matplotlib.axes.Axes
        Arrows are ``FancyArrowPatch`` artists with ``gid="shrinkage-arrow"``
        (``"shrinkage-arrow-compare"`` for the overlay).

    Examples
    --------
    >>> import bayesmixed as bm
    >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
    >>> ax = bm.plot_shrinkage(fit)
    >>> sum(p.get_gid() == "shrinkage-arrow" for p in ax.patches)
    18
    """
    est = pooling_estimates(fit, group)
    cols = list(est.columns)
    if params is None:
        params = tuple(cols[:2]) if len(cols) >= 2 else cols[0]
    if isinstance(params, str):
        params = (params,)
    params = tuple(params)
    unknown = [p for p in params if p not in cols]
    if unknown or len(params) not in (1, 2):
        raise DesignError(f"params must be one or two of the random-effect columns of {est.group!r}: {cols}; "
                          f"got {list(params)}")
    other_est = pooling_estimates(compare, est.group) if compare is not None else None
    if len(params) == 1:
        return _shrinkage_1d(fit, est, params[0], other_est, compare, ax, complete_pooling, labels)
    return _shrinkage_2d(fit, est, params, other_est, compare, ax, complete_pooling, ellipse_levels, labels)


def _shrinkage_1d(fit, est, p, other_est, other, ax, complete_pooling, labels):
    nop = est.no_pooling[p].to_numpy()
    part = est.partial_pooling[p].to_numpy()
    order = np.argsort(np.where(np.isfinite(nop), nop, part), kind="stable")
    n = est.size.to_numpy()
    ypos = np.empty(len(order))
    ypos[order] = np.arange(len(order))
    ax = _new_ax(ax, figsize=(6, min(14.0, max(3.0, 0.22 * len(order) + 1))))
    s = _sizes(n)
    ok = np.isfinite(nop)
    ax.scatter(nop[ok], ypos[ok], s=s[ok], facecolors="none", edgecolors="C0", label="no pooling (separate fits)",
               gid="no-pooling", zorder=3)
    ax.scatter(part, ypos, s=s, color="C1", label=f"partial pooling ({_method_label(fit)})", gid="partial-pooling",
               zorder=4)
    for g in np.flatnonzero(ok):
        _arrow(ax, (nop[g], ypos[g]), (part[g], ypos[g]), "0.35", "shrinkage-arrow")
    if other_est is not None:
        op = other_est.partial_pooling[p].reindex(est.partial_pooling.index).to_numpy()
        ax.scatter(op, ypos + 0.25, s=s, marker="D", color="C2",
                   label=f"partial pooling ({_method_label(other)})", gid="partial-pooling-compare", zorder=4)
        for g in np.flatnonzero(ok):
            _arrow(ax, (nop[g], ypos[g] + 0.25), (op[g], ypos[g] + 0.25), "C2", "shrinkage-arrow-compare", "--")
    if complete_pooling:
        ax.axvline(est.complete_pooling[p], color="k", lw=1, ls=":", label="complete pooling", gid="complete-pooling")
    if p in fit.fixef.index:
        ax.axvline(fit.fixef[p], color="C1", lw=1, alpha=0.6, label="population mean (fixef)", gid="fixef")
    if len(order) <= 40 or labels:
        ax.set_yticks(ypos, list(est.partial_pooling.index))
    ax.set_ylabel(est.group)
    ax.set_xlabel(p)
    missing = int((~ok).sum())
    title = f"Shrinkage of {p} by {est.group}"
    if missing:
        title += f" ({missing} level(s) without a separate estimate)"
    ax.set_title(title)
    ax.legend(loc="best", fontsize="small")
    return ax


def _shrinkage_2d(fit, est, params, other_est, other, ax, complete_pooling, levels, labels):
    p1, p2 = params
    ax = _new_ax(ax, figsize=(6.5, 5.5))
    nop = est.no_pooling[list(params)].to_numpy()
    part = est.partial_pooling[list(params)].to_numpy()
    ok = np.all(np.isfinite(nop), axis=1)
    s = _sizes(est.size.to_numpy())
    ax.scatter(nop[ok, 0], nop[ok, 1], s=s[ok], facecolors="none", edgecolors="C0",
               label="no pooling (separate fits)", gid="no-pooling", zorder=3)
    ax.scatter(part[:, 0], part[:, 1], s=s, color="C1", label=f"partial pooling ({_method_label(fit)})",
               gid="partial-pooling", zorder=4)
    for g in np.flatnonzero(ok):
        _arrow(ax, tuple(nop[g]), tuple(part[g]), "0.35", "shrinkage-arrow")
    if labels:
        for g, lev in enumerate(est.partial_pooling.index):
            ax.annotate(str(lev), part[g], fontsize=7, xytext=(3, 3), textcoords="offset points")
    center = np.array([fit.fixef[c] if c in fit.fixef.index else 0.0 for c in params])
    cov = population_covariance(fit, est.group, params)
    for lev in levels:
        _ellipse(ax, center, cov, lev, color="C1", lw=1, alpha=0.7, gid="population-ellipse")
    ax.plot(*center, marker="+", ms=12, color="C1", ls="none", label="population mean (fixef)", gid="fixef")
    if other_est is not None:
        op = other_est.partial_pooling[list(params)].reindex(est.partial_pooling.index).to_numpy()
        ax.scatter(op[:, 0], op[:, 1], s=s, marker="D", color="C2", label=f"partial pooling ({_method_label(other)})",
                   gid="partial-pooling-compare", zorder=4)
        for g in np.flatnonzero(ok):
            _arrow(ax, tuple(nop[g]), tuple(op[g]), "C2", "shrinkage-arrow-compare", "--")
        oc = np.array([other.fixef[c] if c in other.fixef.index else 0.0 for c in params])
        for lev in levels:
            _ellipse(ax, oc, population_covariance(other, est.group, params), lev, color="C2", lw=1,
                     ls="--", alpha=0.7, gid="population-ellipse-compare")
    if complete_pooling:
        ax.plot(*est.complete_pooling[list(params)].to_numpy(), marker="*", ms=14, color="k", ls="none",
                label="complete pooling", gid="complete-pooling", zorder=5)
    ax.set_xlabel(p1)
    ax.set_ylabel(p2)
    lv = ", ".join(f"{x:.0%}" for x in levels)
    title = f"Shrinkage by {est.group}; ellipses: population {lv}"
    missing = int((~ok).sum())
    if missing:
        title += f"\n({missing} level(s) without a separate estimate)"
    ax.set_title(title)
    ax.legend(loc="best", fontsize="small")
    ax.autoscale_view()
    return ax


# ---------------------------------------------------------------------------------------------
# caterpillar
# ---------------------------------------------------------------------------------------------
def _is_posterior(fit) -> bool:
    return getattr(fit, "method", None) in POSTERIOR_METHODS


def ranef_intervals(fit, group: str | None = None, prob: float = 0.95) -> dict[str, pd.DataFrame]:
    """Per random-effect column: a frame (rows = levels) with ``estimate, lower, upper``.

    Likelihood fits: conditional mode ± 2 conditional SD (``fit.ranef_condsd``, lme4's
    ``condVar``); falls back to the normal-approximation draws in ``fit.idata``.
    Posterior fits: posterior mean and the ``prob`` highest-density interval of the
    ``b_<term>`` draws in ``fit.idata`` (ArviZ's ``hdi``).
    """
    d = fit.design
    group, terms = _group_terms(d, group)
    re = fit.ranef[group]
    cols = list(re.columns)
    out = {}
    condsd = getattr(fit, "ranef_condsd", None) if not _is_posterior(fit) else None
    if condsd is not None:
        sd = condsd[group]
        for c in cols:
            out[c] = pd.DataFrame({"estimate": re[c], "lower": re[c] - 2 * sd[c], "upper": re[c] + 2 * sd[c]})
        return out
    from arviz_stats.base import array_stats

    post = fit.idata.posterior
    j = 0
    for t in terms:
        var = post[f"b_{t.name}"]
        arr = np.asarray(var.transpose("chain", "draw", t.group_dim, t.term_dim).values)
        arr = arr.reshape(-1, t.n_levels, t.n_cols)                 # (S, levels, cols)
        levels = [str(x) for x in var[t.group_dim].values]
        for k in range(t.n_cols):
            c = cols[j]
            j += 1
            draws = arr[:, :, k].T                                   # (levels, S)
            h = array_stats.hdi(draws, prob, axis=-1)
            frame = pd.DataFrame({"estimate": draws.mean(axis=1), "lower": h[:, 0], "upper": h[:, 1]},
                                 index=pd.Index(levels, name=group))
            out[c] = frame.reindex(re.index)
    return out


def plot_ranef(fit, group: str | None = None, params=None, *, kind: str = "caterpillar", prob: float = 0.95,
               ax=None, show_no_pooling: bool = True):
    """Caterpillar plot of random effects, or estimate against group size.

    ``kind="caterpillar"``: one panel per random-effect column, levels sorted by
    their estimate, with ±2 conditional SD (likelihood fits) or the ``prob`` HDI
    (posterior fits) as error bars. ``kind="size"``: the level's coefficient
    (fixef + ranef) with the same interval against the number of rows in the level
    (log axis), with the fixed effect as a horizontal line and, faded, the
    no-pooling estimates: small groups are pulled harder towards the mean.

    Parameters
    ----------
    fit : fit object
    group : str, optional
        Grouping factor (default: the first).
    params : str or list of str, optional
        Columns to show (default: all of the factor's columns).
    kind : {"caterpillar", "size"}
    prob : float
        Interval probability for posterior fits.
    ax : Axes or sequence of Axes, optional
        One per shown column.
    show_no_pooling : bool
        ``kind="size"`` only: also plot separate per-level estimates.

    Returns
    -------
    matplotlib.figure.Figure
        Each panel holds one ``ErrorbarContainer`` with one bar per level.

    Examples
    --------
    >>> import bayesmixed as bm
    >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
    >>> fig = bm.plot_ranef(fit)
    >>> len(fig.axes), len(fig.axes[0].containers[0].lines[2][0].get_segments())
    (2, 18)
    """
    import matplotlib.pyplot as plt

    if kind not in ("caterpillar", "size"):
        raise DesignError(f"kind must be 'caterpillar' or 'size', got {kind!r}")
    d = fit.design
    group, terms = _group_terms(d, group)
    ints = ranef_intervals(fit, group, prob)
    cols = list(ints)
    if params is not None:
        params = [params] if isinstance(params, str) else list(params)
        bad = [p for p in params if p not in cols]
        if bad:
            raise DesignError(f"unknown random-effect column(s) {bad} for {group!r}; available: {cols}")
        cols = params
    if ax is None:
        nlev = terms[0].n_levels
        height = min(14.0, max(3.0, 0.18 * nlev + 1)) if kind == "caterpillar" else 4.0
        fig, axes = plt.subplots(1, len(cols), figsize=(4.2 * len(cols), height), squeeze=False)
        axes = list(axes[0])
    else:
        axes = list(np.atleast_1d(ax))
        if len(axes) != len(cols):
            raise DesignError(f"got {len(axes)} Axes for {len(cols)} columns ({cols})")
        fig = axes[0].figure
    what = "posterior mean, {:.0%} HDI".format(prob) if _is_posterior(fit) else "conditional mode ± 2 SD"
    sizes = pd.Series(_group_sizes(terms, d), index=pd.Index(terms[0].levels))
    est_np = pooling_estimates(fit, group) if (kind == "size" and show_no_pooling) else None
    for a, c in zip(axes, cols):
        fr = ints[c]
        if kind == "caterpillar":
            fr = fr.sort_values("estimate", kind="stable")
            y = np.arange(len(fr))
            a.errorbar(fr["estimate"], y, xerr=[fr["estimate"] - fr["lower"], fr["upper"] - fr["estimate"]],
                       fmt="o", ms=3, color="C0", ecolor="C0", elinewidth=1, capsize=0, gid="ranef")
            a.axvline(0, color="k", lw=0.8, ls=":")
            if len(fr) <= 60:
                a.set_yticks(y, [str(v) for v in fr.index], fontsize=7)
            a.set_xlabel(c)
            a.set_title(f"{group}: {c}", fontsize="medium")
        else:
            shift = fit.fixef[c] if c in fit.fixef.index else 0.0
            n = sizes.reindex(fr.index).to_numpy()
            if est_np is not None:
                a.scatter(n, est_np.no_pooling[c].reindex(fr.index), s=12, facecolors="none", edgecolors="0.6",
                          label="no pooling", gid="no-pooling", zorder=2)
            a.errorbar(n, fr["estimate"] + shift, yerr=[fr["estimate"] - fr["lower"], fr["upper"] - fr["estimate"]],
                       fmt="o", ms=4, color="C0", elinewidth=1, capsize=2, label=f"partial pooling ({what})",
                       gid="ranef")
            a.axhline(shift, color="C1", lw=1, label="fixed effect", gid="fixef")
            a.set_xscale("log")
            unit = "trials" if (d.family.name == "binomial" and d.trials is not None) else "rows"
            a.set_xlabel(f"{unit} per {group} (log scale)")
            a.set_ylabel(f"{c} of each {group}")
            a.legend(fontsize="small")
    fig.suptitle(f"Random effects by {group} ({_method_label(fit)}: {what})", fontsize="medium")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# design sparsity
# ---------------------------------------------------------------------------------------------
def _theta_of(obj) -> np.ndarray:
    """theta of a likelihood fit; from varcorr for posterior fits; lme4's start for a Model."""
    d = obj.design
    if getattr(obj, "theta", None) is not None:
        return np.asarray(obj.theta, dtype=float)
    if not hasattr(obj, "varcorr"):
        return d.theta0
    vc = obj.varcorr
    res = vc[vc["grp"] == "Residual"]
    sigma = float(res["sdcor"].iloc[0]) if len(res) else 1.0
    parts = [t.theta_from_cov(_term_cov_from_varcorr(vc, t), sigma) for t in d.reterms]
    return np.concatenate(parts) if parts else np.zeros(0)


def _term_cov_from_varcorr(vc: pd.DataFrame, t) -> np.ndarray:
    rows = vc[vc["grp"] == t.name]
    C = np.zeros((t.n_cols, t.n_cols))
    for i, c in enumerate(t.cnames):
        r = rows[(rows["var1"] == c) & rows["var2"].isna()]
        C[i, i] = float(r["vcov"].iloc[0]) if len(r) else 0.0
    for i in range(t.n_cols):
        for j in range(i + 1, t.n_cols):
            r = rows[(rows["var1"] == t.cnames[i]) & (rows["var2"] == t.cnames[j])]
            if len(r):
                C[i, j] = C[j, i] = float(r["vcov"].iloc[0])
    return C


def plot_design(model_or_fit, *, which=("Z", "A"), ax=None, markersize: float | None = None):
    """Sparsity pattern of Z and of A = Lambda' Z' Z Lambda + I (spy plots).

    Z is n x q (one column per level and random-effect column, terms side by
    side): each filled cell says "this row belongs to this level". A is the q x q
    matrix whose sparse Cholesky factor the likelihood engine computes
    (Bates et al. 2015, JSS eq. 18), drawn at the fit's theta (at lme4's starting
    value, the identity, for a model).

    Parameters
    ----------
    model_or_fit : Model or fit object
    which : sequence of {"Z", "A"}
    ax : Axes or sequence of Axes, optional
        One per entry of ``which``.
    markersize : float, optional
        Marker size of the spy plots (default: from the matrix size).

    Returns
    -------
    matplotlib.figure.Figure
        Each panel's spy plot is one ``Line2D`` with one marker per non-zero.

    Examples
    --------
    >>> import bayesmixed as bm
    >>> m = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy"))
    >>> fig = bm.plot_design(m)
    >>> [len(a.lines[0].get_xdata()) for a in fig.axes]
    [360, 72]
    """
    import matplotlib.pyplot as plt

    d = model_or_fit.design
    if not d.reterms:
        raise DesignError("this model has no random effects, so Z is empty")
    which = [which] if isinstance(which, str) else list(which)
    if any(w not in ("Z", "A") for w in which):
        raise DesignError(f"which must contain 'Z' and/or 'A', got {which}")
    if ax is None:
        fig, axes = plt.subplots(1, len(which), figsize=(5.5 * len(which), 5), squeeze=False)
        axes = list(axes[0])
    else:
        axes = list(np.atleast_1d(ax))
        if len(axes) != len(which):
            raise DesignError(f"got {len(axes)} Axes for {len(which)} panels ({which})")
        fig = axes[0].figure
    Z = sp.csc_array(d.Z)
    for a, w in zip(axes, which):
        if w == "Z":
            M, title = Z, f"Z: {d.n} rows x {d.q} random-effect columns"
        else:
            theta = _theta_of(model_or_fit)
            Lam = d.Lambda(theta)
            M = (Lam.T @ (Z.T @ Z) @ Lam + sp.eye_array(d.q)).tocsc()
            M.eliminate_zeros()
            title = "A = Λ'Z'ZΛ + I" + (" at θ̂" if hasattr(model_or_fit, "fixef") else " at θ₀")
        coo = sp.coo_matrix(M)
        ms = markersize if markersize is not None else float(np.clip(300 / max(M.shape), 0.3, 4))
        a.spy(coo, precision="present", markersize=ms, aspect="auto", color="C0")
        a.set_title(f"{title} ({coo.nnz} non-zeros)", fontsize="medium")
        # mark term boundaries, which is where the block structure changes
        start = 0
        for t in d.reterms[:-1]:
            start += t.q
            a.axvline(start - 0.5, color="C3", lw=0.6)
            if w == "A":
                a.axhline(start - 0.5, color="C3", lw=0.6)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# predictions for GLMMs
# ---------------------------------------------------------------------------------------------
def _typical_frame(data: pd.DataFrame, n: int) -> pd.DataFrame:
    row = {}
    for c in data.columns:
        s = data[c]
        if pd.api.types.is_bool_dtype(s):
            row[c] = bool(s.mode().iloc[0])
        elif pd.api.types.is_numeric_dtype(s):
            row[c] = float(s.median())
        else:
            row[c] = s.mode().iloc[0]
    out = pd.DataFrame({c: [v] * n for c, v in row.items()})
    for c in data.columns:
        if isinstance(data[c].dtype, pd.CategoricalDtype):
            out[c] = pd.Categorical(out[c], categories=data[c].cat.categories, ordered=data[c].cat.ordered)
    return out


def _data_of(fit, data):
    if data is not None:
        return data
    for holder in (fit, getattr(fit, "model", None)):
        if holder is not None and isinstance(getattr(holder, "data", None), pd.DataFrame):
            return holder.data
    raise DesignError("plot_predictions needs the data the model was fitted to: pass data=")


def _marginal_draws(fit, nd, n_draws: int, seed: int) -> np.ndarray:
    """(n_draws, m) linear-predictor contributions of all random terms, b ~ N(0, Sigma)."""
    rng = np.random.default_rng(seed)
    d = fit.design
    m = nd.X.shape[0]
    out = np.zeros((n_draws, m))
    for t, Xi in zip(d.reterms, nd.Xis):
        C = _term_cov_from_varcorr(fit.varcorr, t)
        w, V = np.linalg.eigh(C)
        b = rng.standard_normal((n_draws, t.n_cols)) * np.sqrt(np.clip(w, 0, None)) @ V.T
        out += b @ Xi.T
    return out


def predict_curves(fit, x: str, *, group: str | None = None, levels=None, data=None, n_points: int = 50,
                   n_draws: int = 4000, seed: int = 0) -> pd.DataFrame:
    """Predicted response along ``x`` with other predictors at typical values.

    Columns: ``x``, ``marginal`` (population average, the random effects
    integrated out by Monte Carlo over N(0, Sigma)), ``at_zero`` (random effects
    set to 0, lme4's ``re.form=NA``), and one column per requested level of
    ``group`` (that level's random effects added). Other numeric predictors are
    held at their medians, others at their most frequent value.
    """
    from bayesmixed.design.newdata import new_matrices

    d = fit.design
    group, terms = _group_terms(d, group)
    data = _data_of(fit, data)
    if x not in data.columns:
        raise DesignError(f"x={x!r} is not a column of the data; columns are {list(data.columns)}")
    grid = np.linspace(float(data[x].min()), float(data[x].max()), n_points)
    frame = _typical_frame(data, n_points)
    frame[x] = grid
    nd = new_matrices(d, frame, include_random=True, allow_new_levels=True)
    beta = fit.fixef.to_numpy()
    eta0 = nd.X @ beta + nd.offset
    inv = d.family.link.linkinv
    out = pd.DataFrame({x: grid, "at_zero": inv(eta0)})
    out["marginal"] = inv(eta0[None, :] + _marginal_draws(fit, nd, n_draws, seed)).mean(axis=0)
    if levels is not None:
        re = fit.ranef[group]
        for lev in levels:
            contrib = np.zeros(n_points)
            j = 0
            for t, Xi in zip(d.reterms, nd.Xis):
                if t.group != group:
                    continue
                cols = list(re.columns)[j:j + t.n_cols]
                j += t.n_cols
                contrib += Xi @ re.loc[str(lev), cols].to_numpy(dtype=float)
            out[str(lev)] = inv(eta0 + contrib)
    return out


def plot_predictions(fit, x: str, *, group: str | None = None, levels=None, n_levels: int = 6,
                     kind: str = "curves", at=None, data=None, ax=None, n_draws: int = 4000, seed: int = 0):
    """Conditional vs marginal predictions of a (generalized) linear mixed model.

    ``kind="curves"``: predicted probability / count along ``x`` for chosen levels
    of ``group`` (thin lines), the curve with the random effects at zero (dashed)
    and the marginal, population-averaged curve (thick): with a non-linear link
    the marginal curve is flatter than the conditional ones. ``kind="distribution"``:
    for each value in ``at`` (default: the 20/40/60/80th percentiles of ``x``), a
    histogram of the predictions for every level of ``group`` with the marginal
    prediction as a vertical line.

    Parameters
    ----------
    fit : fit object
    x : str
        A numeric predictor column.
    group : str, optional
        Grouping factor (default: the first).
    levels : list, optional
        Levels to draw (``kind="curves"``); default ``n_levels`` levels spread over
        the range of the first random-effect column.
    kind : {"curves", "distribution"}
    at : list of float, optional
        Values of ``x`` for ``kind="distribution"``.
    data : DataFrame, optional
        The data the model was fitted to (found on the fit when it keeps it).
    ax : Axes, optional
    n_draws, seed : int
        Monte Carlo draws of the random effects for the marginal curve.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import numpy as np, pandas as pd, bayesmixed as bm
    >>> d = bm.load_dataset("sleepstudy")
    >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", d).fit()
    >>> ax = bm.plot_predictions(fit, "Days", data=d, levels=["308", "309"])
    >>> len(ax.lines)
    4
    """
    if kind not in ("curves", "distribution"):
        raise DesignError(f"kind must be 'curves' or 'distribution', got {kind!r}")
    d = fit.design
    group, terms = _group_terms(d, group)
    data = _data_of(fit, data)
    ax = _new_ax(ax)
    ylab = {"binomial": "predicted probability", "poisson": "expected count"}.get(d.family.name, "prediction")
    if kind == "curves":
        if levels is None:
            re = fit.ranef[group].iloc[:, 0].sort_values(kind="stable")
            idx = np.unique(np.linspace(0, len(re) - 1, min(n_levels, len(re))).round().astype(int))
            levels = list(re.index[idx])
        cur = predict_curves(fit, x, group=group, levels=levels, data=data, n_draws=n_draws, seed=seed)
        for lev in levels:
            ax.plot(cur[x], cur[str(lev)], color="0.55", lw=1, gid="conditional")
        ax.plot(cur[x], cur["at_zero"], color="C0", lw=1.5, ls="--", label="random effects = 0", gid="at-zero")
        ax.plot(cur[x], cur["marginal"], color="C3", lw=2.5, label="marginal (averaged over groups)",
                gid="marginal")
        from matplotlib.lines import Line2D

        handles, labs = ax.get_legend_handles_labels()
        handles.append(Line2D([], [], color="0.55", lw=1))
        labs.append(f"conditional on {len(levels)} levels of {group}")
        ax.legend(handles, labs, fontsize="small")
        ax.set_xlabel(x)
        ax.set_ylabel(ylab)
        ax.set_title(f"Conditional vs marginal predictions ({_method_label(fit)})", fontsize="medium")
        return ax
    from bayesmixed.design.newdata import new_matrices

    if at is None:
        at = np.quantile(data[x].astype(float), [0.2, 0.4, 0.6, 0.8])
    levs = list(terms[0].levels)
    re = fit.ranef[group]
    beta = fit.fixef.to_numpy()
    inv = d.family.link.linkinv
    for k, val in enumerate(np.atleast_1d(at)):
        frame = _typical_frame(data, 1)
        frame[x] = float(val)
        nd = new_matrices(d, frame, include_random=True, allow_new_levels=True)
        eta0 = float((nd.X @ beta + nd.offset)[0])
        contrib = np.zeros(len(levs))
        j = 0
        for t, Xi in zip(d.reterms, nd.Xis):
            if t.group != group:
                continue
            B = re.iloc[:, j:j + t.n_cols].reindex([str(v) for v in levs]).to_numpy(dtype=float)
            j += t.n_cols
            contrib += B @ Xi[0]
        preds = inv(eta0 + contrib)
        marg = inv(eta0 + _marginal_draws(fit, nd, n_draws, seed)[:, 0]).mean()
        ax.hist(preds, bins=30, alpha=0.45, color=f"C{k}", label=f"{x} = {val:.3g}", gid=f"distribution-{k}")
        ax.axvline(marg, color=f"C{k}", lw=2, gid=f"marginal-{k}")
    ax.set_xlabel(ylab)
    ax.set_ylabel(f"number of {group} levels")
    ax.set_title(f"Predictions across {group} (lines: marginal)", fontsize="medium")
    ax.legend(fontsize="small")
    return ax


# ---------------------------------------------------------------------------------------------
# posterior predictive checks
# ---------------------------------------------------------------------------------------------
def posterior_predictive(fit, num_samples: int = 100, seed: int = 0):
    """ArviZ DataTree with ``posterior_predictive`` and ``observed_data`` groups (variable ``y``).

    Uses the fit's own ``posterior_predictive`` group when it has one; otherwise
    draws replicated responses from ``num_samples`` posterior draws of ``beta``,
    ``b_<term>`` and ``sigma`` (gaussian, binomial, poisson). Any ArviZ PPC plot
    (``arviz_plots.plot_ppc_dist``, ``plot_ppc_rootogram``...) takes the result.
    """
    import arviz as az

    if not _is_posterior(fit):
        raise FitError(f"posterior predictive checks need a posterior fit (method='nuts'); this fit is "
                       f"{getattr(fit, 'method', '?')!r}. Refit with model.fit(method='nuts').")
    d = fit.design
    idata = fit.idata
    yobs = d.y * d.trials if (d.family.name == "binomial" and d.trials is not None) else d.y
    if "posterior_predictive" in idata.children:
        pp = idata["posterior_predictive"].to_dataset()
        name = "y" if "y" in pp else list(pp.data_vars)[0]
        rep = np.asarray(pp[name].values).reshape(-1, d.n)
    else:
        post = idata.posterior
        beta = np.asarray(post["beta"].transpose("chain", "draw", ...).values).reshape(-1, d.p)
        S = beta.shape[0]
        rng = np.random.default_rng(seed)
        pick = rng.choice(S, size=min(num_samples, S), replace=False)
        eta = beta[pick] @ d.X.T + d.offset
        for t in d.reterms:
            b = np.asarray(post[f"b_{t.name}"].transpose("chain", "draw", t.group_dim, t.term_dim).values)
            b = b.reshape(S, t.n_levels, t.n_cols)[pick]                    # (s, levels, cols)
            eta += np.einsum("snk,nk->sn", b[:, t.codes, :], t.Xi)
        mu = d.family.link.linkinv(eta)
        fam = d.family.name
        if fam == "gaussian":
            sig = np.asarray(post["sigma"].values).reshape(-1)[pick][:, None]
            rep = rng.normal(mu, sig / np.sqrt(d.weights))
        elif fam == "binomial":
            n_tr = np.asarray(d.trials if d.trials is not None else np.ones(d.n), dtype=int)
            rep = rng.binomial(n_tr, mu).astype(float)
        elif fam == "poisson":
            rep = rng.poisson(mu).astype(float)
        else:
            raise FitError(f"posterior_predictive: family {fam!r} has no replicate generator here; "
                           "sample one with pymc.sample_posterior_predictive on model.pymc_model")
    rep = rep[:num_samples]
    return az.from_dict({"posterior_predictive": {"y": rep[None]}, "observed_data": {"y": yobs}},
                        dims={"y": ["obs"]})


def plot_ppc(fit, *, num_samples: int = 50, ax=None, seed: int = 0):
    """Posterior predictive check: replicated data against the observed response.

    Continuous responses: kernel densities (ArviZ's ``kde``) of ``num_samples``
    replicated data sets (thin) and of the data (thick). Counts and binary
    responses: observed frequency of each value (bars) with the replicates' 90%
    interval. Posterior fits only; point fits raise a clear error. For the full
    ArviZ gallery pass :func:`posterior_predictive` to ``arviz_plots.plot_ppc_*``.

    Parameters
    ----------
    fit : posterior fit (``method="nuts"``)
    num_samples : int
    ax : Axes, optional
    seed : int

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import bayesmixed as bm
    >>> fit = bm.Model("Reaction ~ Days + (1 | Subject)", bm.load_dataset("sleepstudy")).fit()
    >>> bm.plot_ppc(fit)
    Traceback (most recent call last):
    ...
    bayesmixed.errors.FitError: posterior predictive checks need a posterior fit (method='nuts'); ...
    """
    from arviz_stats.base import array_stats

    dt = posterior_predictive(fit, num_samples=num_samples, seed=seed)
    rep = np.asarray(dt["posterior_predictive"]["y"].values).reshape(-1, fit.design.n)
    yobs = np.asarray(dt["observed_data"]["y"].values)
    ax = _new_ax(ax)
    discrete = fit.design.family.name in ("binomial", "poisson")
    if not discrete:
        lo, hi = min(rep.min(), yobs.min()), max(rep.max(), yobs.max())
        for r in rep:
            g, pdf, _ = array_stats.kde(r, custom_lims=(lo, hi))
            ax.plot(g, pdf, color="C0", alpha=0.25, lw=0.8, gid="ppc-replicate")
        g, pdf, _ = array_stats.kde(yobs, custom_lims=(lo, hi))
        ax.plot(g, pdf, color="k", lw=2, label="observed", gid="ppc-observed")
        ax.plot([], [], color="C0", alpha=0.5, label=f"{len(rep)} posterior predictive draws")
        ax.set_ylabel("density")
    else:
        vals = np.arange(int(min(rep.min(), yobs.min())), int(max(rep.max(), yobs.max())) + 1)
        obs_f = np.array([(yobs == v).sum() for v in vals])
        rep_f = np.array([[(r == v).sum() for v in vals] for r in rep])
        q = np.quantile(rep_f, [0.05, 0.5, 0.95], axis=0)
        ax.bar(vals, obs_f, color="0.8", label="observed", gid="ppc-observed")
        ax.errorbar(vals, q[1], yerr=[q[1] - q[0], q[2] - q[1]], fmt="o", color="C0", ms=4,
                    label="posterior predictive (median, 90%)", gid="ppc-replicate")
        ax.set_ylabel("count of observations")
    ax.set_xlabel(fit.design.response_name)
    ax.set_title("Posterior predictive check", fontsize="medium")
    ax.legend(fontsize="small")
    return ax


__all__ = ["plot_shrinkage", "plot_ranef", "plot_design", "plot_predictions", "plot_ppc", "pooling_estimates",
           "ranef_intervals", "population_covariance", "predict_curves", "posterior_predictive"]
