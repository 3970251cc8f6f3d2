"""Posterior predictive check picture (draws: bayesmixed.predictive)."""

from __future__ import annotations

import numpy as np

from bayesmixed.plots._style import new_ax
from bayesmixed.predictive import is_discrete, posterior_predictive, ppc_frequencies


def plot_ppc(fit, *, num_samples: int = 50, ax=None, seed: int = 0):
    """Posterior predictive check: replicated data against the observed response.

    Continuous responses: kernel densities (ArviZ's ``kde``) of ``num_samples``
    replicated data sets (thin) and of the data (thick). Counts and binary
    responses: observed frequency of each value (bars) with the replicates' 90%
    interval. Posterior fits only; point fits raise a clear error. For the full
    ArviZ gallery pass :func:`bayesmixed.predictive.posterior_predictive` to
    ``arviz_plots.plot_ppc_*``.

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
    dt = posterior_predictive(fit, num_samples=num_samples, seed=seed)
    rep = np.asarray(dt["posterior_predictive"]["y"].values).reshape(-1, fit.design.n)
    yobs = np.asarray(dt["observed_data"]["y"].values)
    ax = new_ax(ax)
    if is_discrete(rep, yobs):
        predictive_bars(ax, rep, yobs)
    else:
        predictive_densities(ax, rep, yobs)
    ax.set_xlabel(fit.design.response_name)
    ax.set_title("Posterior predictive check", fontsize="medium")
    ax.legend(fontsize="small")
    return ax


def predictive_densities(ax, rep, yobs, *, kind: str = "posterior", trim: bool = False):
    """Kernel densities of replicated data sets (thin) and of the observed response (thick).

    ``kind`` ("posterior" or "prior") names the draws in the legend and in the lines'
    ``gid`` (``ppc-*`` or ``prior-predictive-*``). ``trim`` limits the axis to the
    replicates' central 98% (prior draws can be wild) and skips degenerate replicates.
    """
    from arviz_stats.base import array_stats

    gid = "ppc" if kind == "posterior" else "prior-predictive"
    if trim:
        finite = rep[np.isfinite(rep)]
        lo = min(float(np.quantile(finite, 0.01)), float(yobs.min()))
        hi = max(float(np.quantile(finite, 0.99)), float(yobs.max()))
    else:
        lo, hi = min(rep.min(), yobs.min()), max(rep.max(), yobs.max())
    for r in rep:
        if trim:
            r = r[(r >= lo) & (r <= hi)]
            if r.size < 2 or np.ptp(r) == 0:
                continue
        g, pdf, _ = array_stats.kde(r, custom_lims=(lo, hi))
        ax.plot(g, pdf, color="C0", alpha=0.25, lw=0.8, gid=f"{gid}-replicate")
    g, pdf, _ = array_stats.kde(yobs, custom_lims=(lo, hi))
    ax.plot(g, pdf, color="k", lw=2, label="observed", gid=f"{gid}-observed")
    ax.plot([], [], color="C0", alpha=0.5, label=f"{len(rep)} {kind} predictive draws")
    if trim:
        ax.set_xlim(lo, hi)
    ax.set_ylabel("density")


def predictive_bars(ax, rep, yobs, *, kind: str = "posterior"):
    """Observed frequency of each value (bars) with the replicates' median and 90% interval."""
    gid = "ppc" if kind == "posterior" else "prior-predictive"
    f = ppc_frequencies(rep, yobs, probs=(0.05, 0.5, 0.95))
    lo, med, hi = f["q0.05"].to_numpy(), f["q0.5"].to_numpy(), f["q0.95"].to_numpy()
    ax.bar(f["value"], f["observed"], color="0.8", label="observed", gid=f"{gid}-observed")
    ax.errorbar(f["value"], med, yerr=[med - lo, hi - med], fmt="o", color="C0", ms=4,
                label=f"{kind} predictive (median, 90%)", gid=f"{gid}-replicate")
    ax.set_ylabel("count of observations")
