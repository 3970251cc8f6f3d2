"""ArviZ data for point fits: draws from the normal approximation at the mode.

So that every ArviZ summary and plot works on a REML/ML/Laplace fit too. The
fixed effects are drawn from N(beta_hat, vcov) and each level's random effects
from N(b_hat, conditional covariance); variance parameters are held at their
estimates (their uncertainty is not part of this approximation).
"""

from __future__ import annotations

import numpy as np


def normal_approximation_idata(fit, draws: int = 1000, seed: int = 0):
    """ArviZ data of ``draws`` draws from the normal approximation at a point fit's estimate.

    Examples
    --------
    >>> import bayesmixed as bm
    >>> fit = bm.Model("Reaction ~ Days + (1 | Subject)", bm.load_dataset("sleepstudy")).fit()
    >>> idata = normal_approximation_idata(fit, draws=200)
    >>> idata.posterior["beta"].shape
    (1, 200, 2)
    >>> bool(abs(float(idata.posterior["beta"].mean()) - fit.fixef.mean()) < 2)
    True
    """
    import arviz as az

    rng = np.random.default_rng(seed)
    d = fit.design
    beta = rng.multivariate_normal(fit.fixef.to_numpy(), fit.vcov.to_numpy(), size=draws, method="cholesky")
    post = {"beta": beta[None]}
    coords = {"fixef": list(d.fixef_names)}
    dims = {"beta": ["fixef"]}
    b = fit._b_vector()
    condvar = getattr(fit, "_condvar_blocks", None)
    for t, s, C in zip(d.reterms, d.b_slices, condvar if condvar is not None else [None] * len(d.reterms)):
        mean = b[s].reshape(t.n_levels, t.n_cols)
        if C is None:
            sample = np.broadcast_to(mean, (draws, *mean.shape))
        else:
            chol = np.linalg.cholesky(C + 1e-12 * np.eye(t.n_cols))
            z = rng.standard_normal((draws, t.n_levels, t.n_cols))
            sample = mean + np.einsum("lij,dlj->dli", chol, z)
        post[f"b_{t.name}"] = np.asarray(sample)[None]
        coords[t.group_dim] = list(t.levels)
        coords[t.term_dim] = list(t.cnames)
        dims[f"b_{t.name}"] = [t.group_dim, t.term_dim]
    if getattr(fit, "sigma", None) is not None and d.family.name == "gaussian":
        post["sigma"] = np.full((1, draws), fit.sigma)
    dt = az.from_dict({"posterior": post}, coords=coords, dims=dims)
    dt["posterior"].attrs["approximation"] = f"normal approximation at the {fit.method} estimate"
    return dt
