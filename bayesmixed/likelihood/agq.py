"""Adaptive Gauss-Hermite quadrature for a GLMM with one scalar random-effects term.

With one scalar term the integral over u factors into one-dimensional integrals,
one per level. Each is centred at the conditional mode and scaled by the
conditional sd ``1 / L_gg`` (the adaptive rule of Liu & Pierce 1994; lme4's
``glmerAGQ``), so k nodes integrate the likelihood exactly for polynomials of
degree 2k - 1 in that scale, and k = 1 is the Laplace approximation.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from bayesmixed.errors import DesignError


@lru_cache(maxsize=32)
def gh_rule(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of the k-point Gauss-Hermite rule for the standard normal density.

    Weights sum to one (lme4's ``GHrule(k)``).

    Examples
    --------
    >>> z, w = gh_rule(3)
    >>> np.round(z, 4).tolist(), round(float(w.sum()), 12)
    ([-1.7321, 0.0, 1.7321], 1.0)
    """
    if not 1 <= k <= 100:
        raise DesignError(f"nAGQ must be between 1 and 100, got {k}")
    z, w = np.polynomial.hermite_e.hermegauss(k)
    return z, w / w.sum()


def check_agq_design(design) -> None:
    """AGQ needs a single scalar random-effects term, as in glmer."""
    if len(design.reterms) != 1 or design.reterms[0].n_cols != 1:
        terms = ", ".join(f"({t.expr} | {t.group})" for t in design.reterms)
        raise DesignError("adaptive Gauss-Hermite quadrature (nAGQ > 1) needs a single scalar random-effects "
                          f"term such as (1 | g); this model has {terms}. Use method='laplace'")


def agq_deviance(dev, state, nAGQ: int) -> float:
    """glmer's nAGQ > 1 criterion at a PIRLS state (conditional modes already found).

    ``sum(devc0) + ldL2 - 2 sum(log mult)`` where ``devc0`` are the per-level penalized
    deviances at the mode and ``mult`` the quadrature sums relative to it. As in lme4 the
    deviance residuals (not the family's full -2 log-likelihood) enter, so the value is
    not on the same scale as the Laplace criterion for binomial / poisson data.
    """
    t = dev.design.reterms[0]
    codes, L = t.codes, t.n_levels
    theta = state.theta
    sd = 1.0 / state.factor.diag_L()
    u0 = state.u
    devc0 = np.bincount(codes, weights=state.dev_resid, minlength=L) + u0**2
    fixed = state.eta - dev.Zmul(dev.Lambda_mul(theta, u0))
    z, w = gh_rule(int(nAGQ))
    keep = z != 0.0                                   # the node at the mode contributes w exactly
    zk, wk = z[keep], w[keep]
    K = zk.size
    mult = np.full(L, w[~keep].sum())
    if K:
        # all nodes at once: (n, K) linear predictors, one bincount over level x node
        x = t.Xi[:, 0] * theta[0]
        uk = u0[:, None] + sd[:, None] * zk[None, :]                       # (L, K)
        eta = fixed[:, None] + x[:, None] * uk[codes]                        # (n, K)
        dr = dev.resp.evaluate(eta.ravel(), nodes=K)[3]                     # (n * K,)
        idx = (codes[:, None] * K + np.arange(K)).ravel()
        devc = np.bincount(idx, weights=dr, minlength=L * K).reshape(L, K) + uk**2
        mult += (wk * np.exp(-0.5 * (devc - devc0[:, None]) + 0.5 * zk**2)).sum(axis=1)
    return float(devc0.sum() + state.factor.ldL2 - 2.0 * np.log(mult).sum())
