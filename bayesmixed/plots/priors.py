"""Pictures of the priors: each prior's density, and the prior-predictive check.

The numbers come from :mod:`bayesmixed.bayes.prior_predictive` (densities of the
priors, prior and prior-predictive draws) and :mod:`bayesmixed.predictive` (value
counts of a discrete response); this module only draws.
"""

from __future__ import annotations

import numpy as np

from bayesmixed.bayes.prior_predictive import prior_curves, sample_prior_predictive
from bayesmixed.bayes.priors import Priors
from bayesmixed.errors import DesignError
from bayesmixed.plots._style import new_ax
from bayesmixed.plots.ppc import predictive_bars, predictive_densities
from bayesmixed.predictive import is_discrete

# a discrete response with more distinct values than this is drawn as densities, not bars
MAX_BARS = 60


def plot_priors(model, *, ncols: int = 3, panel_size=(3.2, 2.2), fig=None):
    """The density of each prior of a model, one small panel per row of ``model.priors``.

    Each panel shows the prior over its central 98% (from 0 for standard deviations
    and the family's parameter), titled with the parameter and the prior as
    ``model.priors.to_frame()`` writes it. ``lkj_eta_<term>`` rows show the prior
    of one correlation of the term; improper ``Flat`` priors say so.

    Parameters
    ----------
    model : bayesmixed.Model or Priors
    ncols : int
        Panels per row.
    panel_size : (float, float)
        Width and height of one panel in inches.
    fig : Figure, optional
        Draw into this figure (its axes are replaced).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import bayesmixed as bm
    >>> m = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy"))
    >>> fig = plot_priors(m)
    >>> [a.get_title().split("\\n")[0] for a in fig.axes] == m.priors.names
    True
    """
    import matplotlib.pyplot as plt

    if isinstance(model, Priors):
        priors, sizes = model, None
    else:
        priors, sizes = model.priors, {t.name: t.n_cols for t in model.design.reterms}
    curves = prior_curves(priors, sizes)
    ncols = max(1, min(int(ncols), len(curves)))
    nrows = int(np.ceil(len(curves) / ncols))
    if fig is None:
        fig = plt.figure(figsize=(panel_size[0] * ncols, panel_size[1] * nrows))
    else:
        fig.clear()
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for a, c in zip(axes.ravel(), curves):
        a.set_title(f"{c.parameter}\n{c.label}", fontsize="small")
        a.set_yticks([])
        if c.improper:
            a.text(0.5, 0.5, "improper (flat):\nno density", ha="center", va="center", transform=a.transAxes,
                   fontsize="small", color="0.4", gid="prior-improper")
            a.set_xticks([])
            continue
        a.plot(c.x, c.density, color="C0", lw=1.5, gid="prior-density")
        a.fill_between(c.x, c.density, color="C0", alpha=0.2)
        a.set_ylim(bottom=0)
        a.tick_params(labelsize="x-small")
    for a in axes.ravel()[len(curves):]:
        a.set_visible(False)
    fig.tight_layout()
    return fig


def _draws(model_or_idata, draws: int, random_seed):
    """(prior-predictive y as (draws, n), observed y, trials or None, x label)."""
    if hasattr(model_or_idata, "design") and hasattr(model_or_idata, "pymc_model"):
        dt = sample_prior_predictive(model_or_idata, draws=draws, random_seed=random_seed)
        label = model_or_idata.design.response_name
    else:
        dt, label = model_or_idata, None
    children = getattr(dt, "children", {})
    if "prior_predictive" not in children or "observed_data" not in children:
        raise DesignError("plot_prior_predictive needs a Model or ArviZ data with prior_predictive and "
                          "observed_data groups (model.sample_prior_predictive())")
    pp = dt["prior_predictive"].to_dataset()
    name = list(pp.data_vars)[0]
    label = name if label is None else label
    yobs = np.asarray(dt["observed_data"].to_dataset()[name].values, dtype=float)
    rep = np.asarray(pp[name].transpose("chain", "draw", ...).values, dtype=float).reshape(-1, yobs.size)
    trials = None
    if "constant_data" in children and "trials" in dt["constant_data"].to_dataset():
        trials = np.asarray(dt["constant_data"].to_dataset()["trials"].values, dtype=float)
    return rep, yobs, trials, label


def plot_prior_predictive(model_or_idata, *, draws: int = 100, num_samples: int = 50, random_seed=None,
                          ax=None):
    """Prior-predictive check: data simulated from the priors against the observed response.

    Continuous responses: densities of ``num_samples`` simulated data sets (thin)
    and of the data (thick), over the range that holds the middle 98% of the
    simulated values and all the data. Counts with few distinct values: observed
    frequency of each value (bars) with the simulated median and 90% interval.
    Binomial responses with trials (as proportions) and counts spread over many
    values: the share of observations in each of 25 bins, observed (bars) and
    simulated (median and 90% interval; values beyond the 99th percentile of the
    simulations fall in the last bin). Priors that allow absurd data sets show here
    before any fitting.

    Parameters
    ----------
    model_or_idata : bayesmixed.Model or DataTree
        A model (its prior predictive is drawn with ``draws`` and ``random_seed``)
        or the result of ``sample_prior_predictive``.
    draws : int
    num_samples : int
        Simulated data sets drawn as densities.
    random_seed : int, optional
    ax : Axes, optional

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import bayesmixed as bm
    >>> m = bm.Model("Reaction ~ Days + (1 | Subject)", bm.load_dataset("sleepstudy"))
    >>> ax = plot_prior_predictive(m, draws=50, random_seed=1)
    >>> ax.get_title()
    'Prior predictive check'
    """
    rep, yobs, trials, label = _draws(model_or_idata, draws, random_seed)
    if trials is not None:
        rep, yobs, label = rep / trials, yobs / trials, f"proportion: {label}"
    ax = new_ax(ax)
    discrete = is_discrete(rep, yobs)
    span = max(rep.max(), yobs.max()) - min(rep.min(), yobs.min())
    if discrete and span <= MAX_BARS:
        predictive_bars(ax, rep, yobs, kind="prior")
    elif discrete or trials is not None:          # wide counts, proportions: shares of binned values
        _binned(ax, rep, yobs, (0.0, 1.0) if trials is not None else None)
    else:
        predictive_densities(ax, rep[:max(1, int(num_samples))], yobs, kind="prior", trim=True)
    ax.set_xlabel(label)
    ax.set_title("Prior predictive check", fontsize="medium")
    ax.legend(fontsize="small")
    return ax


def _binned(ax, rep, yobs, limits=None, n_bins: int = 25):
    """Share of the observations in each bin: observed (bars), simulated median and 90% interval."""
    if limits is None:
        limits = (min(float(rep.min()), float(yobs.min())), max(float(np.quantile(rep, 0.99)), float(yobs.max())))
    edges = np.linspace(*limits, n_bins + 1)
    obs = np.histogram(np.clip(yobs, *limits), edges)[0] / yobs.size
    sim = np.stack([np.histogram(np.clip(r, *limits), edges)[0] / r.size for r in rep])
    lo, med, hi = np.quantile(sim, [0.05, 0.5, 0.95], axis=0)
    mid, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    ax.bar(mid, obs, width=width, color="0.8", label="observed", gid="prior-predictive-observed")
    ax.errorbar(mid, med, yerr=[med - lo, hi - med], fmt="o", color="C0", ms=3,
                label="prior predictive (median, 90%)", gid="prior-predictive-replicate")
    ax.set_ylabel("share of observations")
