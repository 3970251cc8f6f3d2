"""Shrinkage pictures: no pooling -> partial pooling, one arrow per level (numbers: bayesmixed.pooling)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bayesmixed.errors import DesignError
from bayesmixed.plots._style import (
    arrow, ellipse, legend_outside, level_ticks, method_label, new_ax, sizes,
)
from bayesmixed.pooling import PoolingEstimates, pooling_estimates, population_covariance, select_levels, size_unit

AUTO_LABELS_2D = 12        # the 2-D picture writes level names next to the points up to this many levels


@dataclass
class _Shown:
    """What one shrinkage picture shows: the estimates, the columns and the levels (in ``est`` order)."""

    fit: object
    est: PoolingEstimates
    params: tuple
    levels: list
    note: str
    compare: object = None
    other: PoolingEstimates | None = None

    def frame(self, which: str):
        est = self.other if which == "compare" else self.est
        kind = "no_pooling" if which == "no" else "partial_pooling"
        return getattr(est, kind).reindex(self.levels)[list(self.params)].to_numpy(dtype=float)

    @property
    def n(self) -> np.ndarray:
        return self.est.size.reindex(self.levels).to_numpy()

    @property
    def size_title(self) -> str:
        return f"{size_unit(self.fit.design)} per {self.est.group}"


def _check_params(est: PoolingEstimates, params) -> tuple:
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
    return params


def _levels_to_show(est: PoolingEstimates, column: str, levels, max_levels):
    """(levels in the estimates' order, note): the ones asked for, or a readable subset of all."""
    index = est.partial_pooling.index
    if levels is None:
        return select_levels(est, column, max_levels)
    if isinstance(levels, str):
        levels = [levels]
    wanted = {str(v) for v in levels}
    known = {str(v): v for v in index}
    unknown = sorted(wanted - set(known))
    if unknown:
        raise DesignError(f"unknown level(s) {unknown} of {est.group!r}; it has {len(index)} levels, "
                          f"e.g. {[str(v) for v in index[:5]]}")
    show = [v for v in index if str(v) in wanted]
    note = f"showing {len(show)} of {len(index)} levels" if len(show) < len(index) else ""
    return show, note


def plot_shrinkage(fit, group: str | None = None, params=None, *, compare=None, ax=None,
                   complete_pooling: bool = True, ellipse_levels=(0.5, 0.95), labels: bool | None = None,
                   levels=None, max_levels: int | None = 30):
    """No pooling -> partial pooling, one arrow per group, with complete pooling for reference.

    One-parameter version (``params="Intercept"``, or a grouping factor with one
    column): one row per level, named on the y axis, sorted by the no-pooling
    estimate; open circles are separate per-level fits, filled circles the
    partial-pooling estimates (``fit.coef``), the vertical line the
    complete-pooling estimate. With more than ``max_levels`` levels the rows shown
    are the most-shrunk, the largest and the smallest levels, and the title says
    how many are shown. Two-parameter version (``params=("Intercept", "Days")``,
    the default for ``(x | g)``): the classic picture in the (intercept, slope)
    plane with the population distribution N(fixef, Sigma) drawn as ellipses at
    ``ellipse_levels``; every level is drawn. Point area grows with the number of
    rows (binomial ``cbind``: trials) in the level, as the legend says.
    Legends sit to the right of the axes.

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
        estimates are overlaid as open diamonds with dashed arrows (and its ellipse).
    ax : matplotlib Axes, optional
    complete_pooling : bool
        Draw the complete-pooling estimate.
    ellipse_levels : tuple of float
        Probability contours of the population distribution (2-D version).
    labels : bool, optional
        Name the levels: on the y axis (1-D, by default) or next to the
        partial-pooling points (2-D, by default up to 12 levels shown).
    levels : list, optional
        Show only these levels.
    max_levels : int or None
        1-D version: the most rows drawn when ``levels`` is not given (None: all).

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
    >>> ax = bm.plot_shrinkage(fit, params="Days", levels=["308", "309", "310"])
    >>> [t.get_text() for t in ax.get_yticklabels()], ax.get_title().splitlines()[-1]
    (['309', '310', '308'], '(showing 3 of 18 levels)')
    """
    est = pooling_estimates(fit, group)
    params = _check_params(est, params)
    other = pooling_estimates(compare, est.group) if compare is not None else None
    show, note = _levels_to_show(est, params[0], levels, max_levels if len(params) == 1 else None)
    view = _Shown(fit, est, params, show, note, compare, other)
    if len(params) == 1:
        return _shrinkage_1d(view, ax, complete_pooling, labels)
    auto = len(show) <= AUTO_LABELS_2D
    return _shrinkage_2d(view, ax, complete_pooling, ellipse_levels, auto if labels is None else labels)


def _title(first: str, view: _Shown, missing: int) -> str:
    extra = []
    if missing:
        extra.append(f"{missing} level(s) without a separate estimate")
    if view.note:
        extra.append(view.note)
    return first + "".join(f"\n({e})" for e in extra)


def _shrinkage_1d(view: _Shown, ax, complete_pooling, labels):
    fit, est, (p,) = view.fit, view.est, view.params
    nop, part = view.frame("no")[:, 0], view.frame("partial")[:, 0]
    order = np.argsort(np.where(np.isfinite(nop), nop, part), kind="stable")
    ypos = np.empty(len(order))
    ypos[order] = np.arange(len(order))
    ax = new_ax(ax, figsize=(7.6, min(14.0, max(3.0, 0.24 * len(order) + 1.4))))
    n = view.n
    s = sizes(n)
    ok = np.isfinite(nop)
    ax.scatter(nop[ok], ypos[ok], s=s[ok], facecolors="none", edgecolors="C0", label="no pooling (separate fits)",
               gid="no-pooling", zorder=3)
    ax.scatter(part, ypos, s=s, color="C1", label=f"partial pooling ({method_label(fit)})", gid="partial-pooling",
               zorder=4)
    for g in np.flatnonzero(ok):
        arrow(ax, (nop[g], ypos[g]), (part[g], ypos[g]), "0.35", "shrinkage-arrow")
    if view.other is not None:
        op = view.frame("compare")[:, 0]
        ax.scatter(op, ypos + 0.25, s=s, marker="D", facecolors="none", edgecolors="C2", linewidths=1.2,
                   label=f"partial pooling ({method_label(view.compare)})", gid="partial-pooling-compare", zorder=5)
        for g in np.flatnonzero(ok):
            arrow(ax, (nop[g], ypos[g] + 0.25), (op[g], ypos[g] + 0.25), "C2", "shrinkage-arrow-compare", "--")
    if complete_pooling:
        ax.axvline(est.complete_pooling[p], color="k", lw=1, ls=":", label="complete pooling", gid="complete-pooling")
    if p in fit.fixef.index:
        ax.axvline(fit.fixef[p], color="C1", lw=1, alpha=0.6, label="population mean (fixef)", gid="fixef")
    if labels is not False:
        level_ticks(ax, ypos, view.levels, fontsize=8 if len(order) <= 40 else 7)
    ax.set_ylim(-0.8, len(order) - 0.2)
    ax.set_ylabel(est.group)
    ax.set_xlabel(p)
    ax.set_title(_title(f"Shrinkage of {p} by {est.group}", view, int((~ok).sum())), fontsize="medium")
    legend_outside(ax, sizes_of=n, size_what=view.size_title)
    return ax


def _shrinkage_2d(view: _Shown, ax, complete_pooling, ellipse_levels, labels):
    fit, est, params = view.fit, view.est, view.params
    ax = new_ax(ax, figsize=(8.4, 5.5))
    nop, part = view.frame("no"), view.frame("partial")
    ok = np.all(np.isfinite(nop), axis=1)
    n = view.n
    s = sizes(n)
    ax.scatter(nop[ok, 0], nop[ok, 1], s=s[ok], facecolors="none", edgecolors="C0",
               label="no pooling (separate fits)", gid="no-pooling", zorder=3)
    ax.scatter(part[:, 0], part[:, 1], s=s, color="C1", label=f"partial pooling ({method_label(fit)})",
               gid="partial-pooling", zorder=4)
    for g in np.flatnonzero(ok):
        arrow(ax, tuple(nop[g]), tuple(part[g]), "0.35", "shrinkage-arrow")
    if labels:
        for g, lev in enumerate(view.levels):
            ax.annotate(str(lev), part[g], fontsize=7, xytext=(3, 3), textcoords="offset points", gid="level-label")
    center = np.array([fit.fixef[c] if c in fit.fixef.index else 0.0 for c in params])
    cov = population_covariance(fit, est.group, params)
    for lev in ellipse_levels:
        ellipse(ax, center, cov, lev, color="C1", lw=1, alpha=0.7, gid="population-ellipse")
    ax.plot(*center, marker="+", ms=12, color="C1", ls="none", label="population mean (fixef)", gid="fixef")
    if view.other is not None:
        _overlay_2d(ax, view, nop, ok, s, ellipse_levels)
    if complete_pooling:
        ax.plot(*est.complete_pooling[list(params)].to_numpy(), marker="*", ms=14, color="k", ls="none",
                label="complete pooling", gid="complete-pooling", zorder=6)
    ax.set_xlabel(params[0])
    ax.set_ylabel(params[1])
    lv = ", ".join(f"{x:.0%}" for x in ellipse_levels)
    ax.set_title(_title(f"Shrinkage by {est.group}; ellipses: population {lv}", view, int((~ok).sum())),
                 fontsize="medium")
    legend_outside(ax, sizes_of=n, size_what=view.size_title)
    ax.autoscale_view()
    return ax


def _overlay_2d(ax, view: _Shown, nop, ok, s, ellipse_levels):
    """The compared fit: open diamonds above the filled circles (both stay visible), dashed arrows."""
    other, params = view.compare, view.params
    op = view.frame("compare")
    ax.scatter(op[:, 0], op[:, 1], s=s, marker="D", facecolors="none", edgecolors="C2", linewidths=1.2,
               label=f"partial pooling ({method_label(other)})", gid="partial-pooling-compare", zorder=5)
    for g in np.flatnonzero(ok):
        arrow(ax, tuple(nop[g]), tuple(op[g]), "C2", "shrinkage-arrow-compare", "--", alpha=0.6)
    oc = np.array([other.fixef[c] if c in other.fixef.index else 0.0 for c in params])
    cov = population_covariance(other, view.est.group, params)
    for lev in ellipse_levels:
        ellipse(ax, oc, cov, lev, color="C2", lw=1, ls="--", alpha=0.7, gid="population-ellipse-compare")
