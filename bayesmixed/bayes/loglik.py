"""Per-draw linear predictors and pointwise log-likelihoods in NumPy/SciPy (no compilation).

Computed from the posterior draws rather than with ``pm.compute_log_likelihood``,
which would compile one more PyTensor function per model.
"""

from __future__ import annotations

import numpy as np

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


def _dispersion(design, post):
    """(chain, draw, 1) draws of the family's auxiliary parameter, or None."""
    name = design.family.dispersion_name
    return None if name is None else _arr(post, name)[..., None]


def pointwise_loglik(design, post) -> np.ndarray:
    """(chain, draw, n) log density of each observation, matching the PyMC likelihood."""
    eta = eta_draws(design, post)
    fam = design.family
    counts = binomial_counts(design) if fam.uses_trials else None
    wt = design.weights if design.has_user_weights and not fam.uses_trials else None
    return fam.logpdf(design.y, None, wt=wt, trials=None if counts is None else counts[1],
                      dispersion=_dispersion(design, post), eta=eta)


def simulate_response(design, post, mu: np.ndarray, rng, trials=None, weights=None) -> np.ndarray:
    """Posterior predictive draws of y given the mean ``mu`` (chain, draw, m)."""
    return design.family.simulate(mu, rng, trials=trials, dispersion=_dispersion(design, post), wt=weights)
