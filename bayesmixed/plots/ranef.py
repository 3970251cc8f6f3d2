"""Caterpillar plots of the random effects, and estimate against group size (numbers: bayesmixed.pooling)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayesmixed.errors import DesignError
from bayesmixed.plots._style import level_ticks, method_label
from bayesmixed.pooling import group_sizes, group_terms, is_posterior, pooling_estimates, ranef_intervals, size_unit

MAX_LABELS = 50            # level names written per caterpillar panel (every k-th one beyond)


def _panels(fit, group, params) -> list[tuple[str, str]]:
    """(grouping factor, random-effect column) of each panel, factor by factor."""
    d = fit.design
    if group is None:
        groups = list(d.groups)
    else:
        groups = [group] if isinstance(group, str) else list(group)
    if not groups:
        group_terms(d, None)                    # raises "no random effects"
    cols = {g: list(fit.ranef[group_terms(d, g)[0]].columns) for g in groups}
    if params is None:
        return [(g, c) for g in groups for c in cols[g]]
    params = [params] if isinstance(params, str) else list(params)
    available = sorted({c for g in groups for c in cols[g]})
    bad = [p for p in params if p not in available]
    if bad:
        where = repr(groups[0]) if len(groups) == 1 else str(groups)
        raise DesignError(f"unknown random-effect column(s) {bad} for {where}; available: {available}")
    return [(g, c) for g in groups for c in cols[g] if c in params]


def _panel_height(n_levels: int, kind: str) -> float:
    return float(np.clip(0.16 * n_levels + 0.9, 1.8, 8.0)) if kind == "caterpillar" else 3.6


def _axes_grid(fit, panels, kind, ax):
    """One row of panels per grouping factor (rows as tall as their number of levels, bounded)."""
    import matplotlib.pyplot as plt

    if ax is not None:
        axes = list(np.atleast_1d(ax))
        if len(axes) != len(panels):
            raise DesignError(f"got {len(axes)} Axes for {len(panels)} panels ({panels})")
        return axes[0].figure, axes
    groups = list(dict.fromkeys(g for g, _ in panels))
    ncol = max(sum(g == h for h, _ in panels) for g in groups)
    heights = [_panel_height(fit.design.ngroups[g], kind) for g in groups]
    scale = min(1.0, 14.0 / (sum(heights) + 0.6))
    fig, grid = plt.subplots(len(groups), ncol, squeeze=False, height_ratios=heights,
                             figsize=(max(5.0, 4.4 * ncol), scale * sum(heights) + 0.6))
    axes = []
    for r, g in enumerate(groups):
        k = sum(h == g for h, _ in panels)
        axes += list(grid[r, :k])
        for extra in grid[r, k:]:
            extra.remove()
    return fig, axes


def plot_ranef(fit, group=None, params=None, *, kind: str = "caterpillar", prob: float = 0.95,
               ax=None, show_no_pooling: bool = True):
    """Caterpillar plot of random effects, or estimate against group size.

    One panel per grouping factor and random-effect column, a row of panels per
    grouping factor (every factor by default, as lme4's ``dotplot(ranef(fit))``).
    ``kind="caterpillar"``: levels sorted by their estimate, named on the y axis,
    with ±2 conditional SD (likelihood fits) or the ``prob`` HDI (posterior fits)
    as error bars. ``kind="size"``: the level's coefficient (fixef + ranef) with
    the same interval against the number of rows in the level (log axis), with
    the fixed effect as a horizontal line and, faded, the no-pooling estimates:
    small groups are pulled harder towards the mean.

    Parameters
    ----------
    fit : fit object
    group : str or list of str, optional
        Grouping factor(s) to show (default: all of them).
    params : str or list of str, optional
        Columns to show (default: all of each factor's columns).
    kind : {"caterpillar", "size"}
    prob : float
        Interval probability for posterior fits.
    ax : Axes or sequence of Axes, optional
        One per shown panel.
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
    >>> pen = bm.Model("diameter ~ 1 + (1 | plate) + (1 | sample)", bm.load_dataset("Penicillin")).fit()
    >>> [a.get_title() for a in bm.plot_ranef(pen).axes]
    ['plate: Intercept', 'sample: Intercept']
    """
    if kind not in ("caterpillar", "size"):
        raise DesignError(f"kind must be 'caterpillar' or 'size', got {kind!r}")
    panels = _panels(fit, group, params)
    fig, axes = _axes_grid(fit, panels, kind, ax)
    what = "posterior mean, {:.0%} HDI".format(prob) if is_posterior(fit) else "conditional mode ± 2 SD"
    intervals = {g: ranef_intervals(fit, g, prob) for g in dict.fromkeys(g for g, _ in panels)}
    for a, (g, c) in zip(axes, panels):
        if kind == "caterpillar":
            _caterpillar(a, intervals[g][c], g, c)
        else:
            _size_panel(a, fit, g, c, intervals[g][c], what, show_no_pooling)
    groups = ", ".join(dict.fromkeys(g for g, _ in panels))
    fig.suptitle(f"Random effects by {groups} ({method_label(fit)}: {what})", fontsize="medium")
    fig.tight_layout()
    return fig


def _caterpillar(a, fr: pd.DataFrame, group: str, column: str):
    fr = fr.sort_values("estimate", kind="stable")
    y = np.arange(len(fr))
    a.errorbar(fr["estimate"], y, xerr=[fr["estimate"] - fr["lower"], fr["upper"] - fr["estimate"]],
               fmt="o", ms=3, color="C0", ecolor="C0", elinewidth=1, capsize=0, gid="ranef")
    a.axvline(0, color="k", lw=0.8, ls=":")
    level_ticks(a, y, fr.index, max_labels=MAX_LABELS, fontsize=7)
    a.set_ylim(-0.8, len(fr) - 0.2)
    a.set_ylabel(group)
    a.set_xlabel(column)
    a.set_title(f"{group}: {column}", fontsize="medium")


def _size_panel(a, fit, group: str, column: str, fr: pd.DataFrame, what: str, show_no_pooling: bool):
    d = fit.design
    _, terms = group_terms(d, group)
    sizes = pd.Series(group_sizes(d, terms), index=pd.Index(terms[0].levels))
    shift = fit.fixef[column] if column in fit.fixef.index else 0.0
    n = sizes.reindex(fr.index).to_numpy()
    if show_no_pooling:
        est = pooling_estimates(fit, group)
        a.scatter(n, est.no_pooling[column].reindex(fr.index), s=12, facecolors="none", edgecolors="0.6",
                  label="no pooling", gid="no-pooling", zorder=2)
    a.errorbar(n, fr["estimate"] + shift, yerr=[fr["estimate"] - fr["lower"], fr["upper"] - fr["estimate"]],
               fmt="o", ms=4, color="C0", elinewidth=1, capsize=2, label=f"partial pooling ({what})", gid="ranef")
    a.axhline(shift, color="C1", lw=1, label="fixed effect", gid="fixef")
    a.set_xscale("log")
    a.set_xlabel(f"{size_unit(d)} per {group} (log scale)")
    a.set_ylabel(f"{column} of each {group}")
    a.legend(fontsize="small")
