"""Conditional vs marginal predictions of a (generalized) linear mixed model (numbers: bayesmixed.predictive)."""

from __future__ import annotations

import numpy as np

from bayesmixed.errors import DesignError
from bayesmixed.plots._style import legend_outside, method_label, new_ax
from bayesmixed.pooling import group_terms
from bayesmixed.predictive import (
    data_of, is_categorical, predict_curves, predictions_at, spread_levels,
)


def plot_predictions(fit, x: str, *, group: str | None = None, levels=None, n_levels: int = 6,
                     kind: str = "curves", at=None, data=None, ax=None, n_draws: int = 4000, seed: int = 0,
                     prob: float = 0.95):
    """Conditional vs marginal predictions of a (generalized) linear mixed model.

    ``kind="curves"``: predicted probability / count along ``x`` for chosen levels
    of ``group`` (thin lines), the curve with the random effects at zero (dashed)
    and the marginal, population-averaged curve (thick): with a non-linear link
    the marginal curve is flatter than the conditional ones. A categorical ``x``
    gives, per category, the chosen levels' predictions (grey dots), the
    prediction with the random effects at zero (bar) and the marginal prediction
    with the interval where ``prob`` of the levels' predictions fall.
    ``kind="distribution"``: for each value in ``at`` (default: the
    20/40/60/80th percentiles of a numeric ``x``, every category of a
    categorical one), a histogram of the predictions for every level of
    ``group`` with the marginal prediction as a vertical line.

    Parameters
    ----------
    fit : fit object
    x : str
        A predictor column (numeric or categorical).
    group : str, optional
        Grouping factor (default: the first).
    levels : list, optional
        Levels to draw (``kind="curves"``); default ``n_levels`` levels spread over
        the range of the first random-effect column.
    kind : {"curves", "distribution"}
    at : list, optional
        Values of ``x`` for ``kind="distribution"``.
    data : DataFrame, optional
        The data the model was fitted to (found on the fit when it keeps it).
    ax : Axes, optional
    n_draws, seed : int
        Monte Carlo draws of the random effects for the marginal curve.
    prob : float
        Categorical ``x``: probability of the interval over the levels.

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
    >>> cbpp = bm.load_dataset("cbpp")
    >>> glmm = bm.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp,
    ...                 family="binomial").fit()
    >>> ax = bm.plot_predictions(glmm, "period", data=cbpp)
    >>> [t.get_text() for t in ax.get_xticklabels()]
    ['1', '2', '3', '4']
    """
    if kind not in ("curves", "distribution"):
        raise DesignError(f"kind must be 'curves' or 'distribution', got {kind!r}")
    group, _ = group_terms(fit.design, group)
    data = data_of(fit, data)
    if x not in data.columns:
        raise DesignError(f"x={x!r} is not a column of the data; columns are {list(data.columns)}")
    ax = new_ax(ax, figsize=(8, 5))
    if kind == "distribution":
        return _distribution(ax, fit, x, group, at, data, n_draws, seed)
    if levels is None:
        levels = spread_levels(fit, group, n_levels)
    cur = predict_curves(fit, x, group=group, levels=levels, data=data, n_draws=n_draws, seed=seed, prob=prob)
    if is_categorical(data[x]):
        _categories(ax, cur, x, group, levels, prob)
    else:
        _curves(ax, cur, x, levels)
    _legend(ax, group, levels, is_categorical(data[x]))
    ax.set_xlabel(x)
    ax.set_ylabel(fit.design.family.mean_label)
    ax.set_title(f"Conditional vs marginal predictions ({method_label(fit)})", fontsize="medium")
    return ax


def _legend(ax, group, levels, categorical: bool):
    from matplotlib.lines import Line2D

    handles, labs = ax.get_legend_handles_labels()
    handles.append(Line2D([], [], color="0.55", lw=1, ls="none" if categorical else "-",
                          marker="o" if categorical else None, ms=3.5))
    labs.append(f"conditional on {len(levels)} levels of {group}")
    legend_outside(ax, handles, labs)


def _curves(ax, cur, x, levels):
    for lev in levels:
        ax.plot(cur[x], cur[str(lev)], color="0.55", lw=1, gid="conditional")
    ax.plot(cur[x], cur["at_zero"], color="C0", lw=1.5, ls="--", label="random effects = 0", gid="at-zero")
    ax.plot(cur[x], cur["marginal"], color="C3", lw=2.5, label="marginal (averaged over groups)", gid="marginal")


def _categories(ax, cur, x, group, levels, prob):
    """Points and intervals per category: levels (grey), random effects at zero, marginal with spread."""
    pos = np.arange(len(cur))
    offsets = np.linspace(-0.22, -0.06, len(levels)) if len(levels) > 1 else np.array([-0.14])
    for lev, dx in zip(levels, offsets):
        ax.plot(pos + dx, cur[str(lev)], ls="none", marker="o", ms=3.5, color="0.55", gid="conditional")
    ax.plot(pos, cur["at_zero"], ls="none", marker="_", ms=16, mew=2.5, color="C0", label="random effects = 0",
            gid="at-zero")
    m = cur["marginal"].to_numpy()
    ax.errorbar(pos + 0.14, m, yerr=[m - cur["lower"].to_numpy(), cur["upper"].to_numpy() - m], fmt="o", ms=6,
                color="C3", capsize=4, lw=1.5, gid="marginal",
                label=f"marginal (averaged over groups);\nbar: {prob:.0%} of {group} levels")
    ax.set_xticks(pos, [str(v) for v in cur[x]])
    ax.set_xlim(-0.6, len(cur) - 0.4)


def _distribution(ax, fit, x, group, at, data, n_draws, seed):
    pred = predictions_at(fit, x, at, group=group, data=data, n_draws=n_draws, seed=seed)
    for k, val in enumerate(pred.by_level.columns):
        numeric = isinstance(val, (int, float, np.number)) and not isinstance(val, (bool, np.bool_))
        label = f"{x} = {val:.3g}" if numeric else f"{x} = {val}"
        ax.hist(pred.by_level[val], bins=30, alpha=0.45, color=f"C{k}", label=label, gid=f"distribution-{k}")
        ax.axvline(pred.marginal.iloc[k], color=f"C{k}", lw=2, gid=f"marginal-{k}")
    ax.set_xlabel(fit.design.family.mean_label)
    ax.set_ylabel(f"number of {group} levels")
    ax.set_title(f"Predictions across {group} (lines: marginal)", fontsize="medium")
    legend_outside(ax)
    return ax
