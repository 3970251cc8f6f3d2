"""Sparsity pattern of the random-effects design (Z) and of the matrix the likelihood engine factors (A)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from bayesmixed.errors import DesignError
from bayesmixed.pooling import residual_sd, term_covariances


def _theta_of(obj) -> np.ndarray:
    """theta of a likelihood fit; from the covariances for posterior fits; lme4's start for a Model."""
    d = obj.design
    if getattr(obj, "theta", None) is not None:
        return np.asarray(obj.theta, dtype=float)
    if not hasattr(obj, "fixef"):
        return d.theta0
    sigma = residual_sd(obj)
    parts = [t.theta_from_cov(C, sigma) for t, C in zip(d.reterms, term_covariances(obj))]
    return np.concatenate(parts) if parts else np.zeros(0)


def _axes(which, ax):
    import matplotlib.pyplot as plt

    if ax is None:
        fig, axes = plt.subplots(1, len(which), figsize=(5.5 * len(which), 5), squeeze=False)
        return fig, list(axes[0])
    axes = list(np.atleast_1d(ax))
    if len(axes) != len(which):
        raise DesignError(f"got {len(axes)} Axes for {len(which)} panels ({which})")
    return axes[0].figure, axes


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
    d = model_or_fit.design
    if not d.reterms:
        raise DesignError("this model has no random effects, so Z is empty")
    which = [which] if isinstance(which, str) else list(which)
    if any(w not in ("Z", "A") for w in which):
        raise DesignError(f"which must contain 'Z' and/or 'A', got {which}")
    fig, axes = _axes(which, ax)
    Z = sp.csc_array(d.Z)
    for a, w in zip(axes, which):
        if w == "Z":
            M, title = Z, f"Z: {d.n} rows x {d.q} random-effect columns"
        else:
            Lam = d.Lambda(_theta_of(model_or_fit))
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
