"""Per-draw linear predictors and pointwise log-likelihoods in NumPy/SciPy (no compilation).

Computed from the posterior draws rather than with ``pm.compute_log_likelihood``,
which would compile one more PyTensor function per model.
"""

from __future__ import annotations

import numpy as np
from scipy import special, stats

from bayesmixed.bayes.build import binomial_counts


def _arr(post, name) -> np.ndarray:
    return np.asarray(post[name])


def eta_draws(design, post, *, X=None, offset=None, codes=None, Xis=None, b_draws=None) -> np.ndarray:
    """(chain, draw, m) linear predictor for the design's rows or for new matrices."""
    X = design.X if X is None else X
    offset = design.offset if offset is None else offset
    beta = _arr(post, "beta")                                  # (c, d, p)
    eta = np.einsum("cdp,np->cdn", beta, X) + offset
    for i, t in enumerate(design.reterms):
        b = _arr(post, f"b_{t.name}") if b_draws is None else b_draws[i]   # (c, d, L, k)
        cd = codes[i] if codes is not None else t.codes
        Xi = Xis[i] if Xis is not None else t.Xi
        eta = eta + np.einsum("cdnk,nk->cdn", b[:, :, cd, :], Xi)
    return eta


def inverse_link(design, eta: np.ndarray) -> np.ndarray:
    return design.family.link.linkinv(eta)


def pointwise_loglik(design, post) -> np.ndarray:
    """(chain, draw, n) log density of each observation, matching the PyMC likelihood."""
    eta = eta_draws(design, post)
    fam = design.family.name
    y = design.y
    if fam == "gaussian":
        mu = inverse_link(design, eta)
        sigma = _arr(post, "sigma")[..., None]
        if design.has_user_weights:
            sigma = sigma / np.sqrt(design.weights)
        return stats.norm.logpdf(y, mu, sigma)
    if fam == "binomial":
        counts = binomial_counts(design)
        s, n = (y.astype(np.int64), np.ones_like(y, dtype=np.int64)) if counts is None else counts
        if design.family.link.name == "logit":
            # s*eta - n*log(1+e^eta) + log C(n, s): stable for any eta
            logc = special.gammaln(n + 1) - special.gammaln(s + 1) - special.gammaln(n - s + 1)
            return s * eta - n * np.logaddexp(0.0, eta) + logc
        return stats.binom.logpmf(s, n, inverse_link(design, eta))
    if fam == "poisson":
        return stats.poisson.logpmf(y, inverse_link(design, eta))
    if fam == "negativebinomial":
        alpha = _arr(post, "alpha")[..., None]
        mu = inverse_link(design, eta)
        return stats.nbinom.logpmf(y, alpha, alpha / (alpha + mu))
    if fam == "gamma":
        shape = _arr(post, "shape")[..., None]
        mu = inverse_link(design, eta)
        return stats.gamma.logpdf(y, a=shape, scale=mu / shape)
    raise NotImplementedError(fam)


def simulate_response(design, post, mu: np.ndarray, rng, trials=None, weights=None) -> np.ndarray:
    """Posterior predictive draws of y given the mean ``mu`` (chain, draw, m)."""
    fam = design.family.name
    if fam == "gaussian":
        sigma = _arr(post, "sigma")[..., None]
        if weights is not None:
            sigma = sigma / np.sqrt(weights)
        return rng.normal(mu, sigma)
    if fam == "binomial":
        n = np.ones(mu.shape[-1], dtype=np.int64) if trials is None else np.asarray(trials, dtype=np.int64)
        return rng.binomial(n, mu) / np.where(n > 0, n, 1)       # proportions, as design.y
    if fam == "poisson":
        return rng.poisson(mu).astype(float)
    if fam == "negativebinomial":
        alpha = _arr(post, "alpha")[..., None]
        return rng.negative_binomial(alpha, alpha / (alpha + mu)).astype(float)
    if fam == "gamma":
        shape = _arr(post, "shape")[..., None]
        return rng.gamma(shape, mu / shape)
    raise NotImplementedError(fam)
