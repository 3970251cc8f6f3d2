"""One GLM fit by iteratively reweighted least squares (R's ``glm.fit``).

Used for the starting fixed effects of PIRLS (glmer starts from the GLM without random
effects) and for per-group no-pooling fits.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from bayesmixed.families import Family

_EPS = np.finfo(float).eps
_TINY = np.finfo(float).tiny


def mu_start(family: Family, y: np.ndarray, wt: np.ndarray) -> np.ndarray:
    """R's ``family$initialize`` starting mean (kept off the boundary of the mean's range)."""
    if family.name == "binomial":
        return (wt * y + 0.5) / (wt + 1)
    if family.name in ("poisson", "negativebinomial"):
        return y + 0.1
    if family.name == "gamma":
        return np.where(y > 0, y, 0.1)
    return y.copy()


def glm_fit(X: np.ndarray, y: np.ndarray, family: Family, weights: np.ndarray | None = None,
            offset: np.ndarray | None = None, *, maxit: int = 25, tol: float = 1e-8) -> np.ndarray:
    """Coefficients of a GLM by IRLS (Fisher scoring) from the family's starting mean.

    Parameters
    ----------
    X : (n, p) model matrix.
    y : (n,) response (binomial: proportions, with the trials in ``weights``).
    family : Family
    weights : (n,) prior weights, default 1.
    offset : (n,) offset on the linear-predictor scale, default 0.
    maxit, tol : int, float
        At most ``maxit`` steps; stop when no coefficient moves more than ``tol``.

    Returns
    -------
    (p,) coefficients (the last iterate when ``maxit`` is reached, e.g. under separation).

    Examples
    --------
    >>> from bayesmixed.families import get_family
    >>> X = np.column_stack([np.ones(6), np.arange(6.0)])
    >>> y = np.array([0, 0, 1, 0, 1, 1.0])
    >>> glm_fit(X, y, get_family("binomial")).round(4).tolist()      # the maximum-likelihood fit
    [-3.0351, 1.214]
    """
    n = X.shape[0]
    wt = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    off = np.zeros(n) if offset is None else np.asarray(offset, dtype=float)
    link = family.link
    eta = link.linkfun(mu_start(family, y, wt))
    beta = np.zeros(X.shape[1])
    for _ in range(maxit):
        mu_eta = link.mu_eta(eta)
        mu = link.linkinv(eta)
        w = wt * mu_eta**2 / family.variance(mu)
        z = eta - off + (y - mu) / mu_eta
        WX = w[:, None] * X
        new = np.linalg.lstsq(X.T @ WX, WX.T @ z, rcond=None)[0]
        eta = X @ new + off
        done = np.max(np.abs(new - beta), initial=0.0) < tol
        beta = new
        if done:
            break
    return beta


class GlmResponse:
    """The response side of a GLMM: mean, working weights, deviance residuals and aic at eta.

    Holds the per-row constants (prior weights, the saturated part of the deviance) so
    that PIRLS evaluates the penalized deviance in one pass per step (MixedModels.jl's
    ``GlmResp``).

    Examples
    --------
    >>> import bayesmixed as bm
    >>> d = bm.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...              bm.load_dataset("cbpp"), family="binomial").design
    >>> resp = GlmResponse(d.family, d.y, d.weights, d.trials)
    >>> mu, mu_eta, var = resp.glm(np.zeros(d.n))
    >>> round(float(resp.devres(mu, np.zeros(d.n)).sum()), 4)           # deviance at p = 1/2
    712.3518
    """

    def __init__(self, family: Family, y: np.ndarray, wt: np.ndarray, trials: np.ndarray | None = None) -> None:
        self.y, self.wt = y, wt
        self.n_trials = trials if trials is not None else np.ones(y.size)
        self.family = family

    @property
    def family(self) -> Family:
        return self._family

    @family.setter
    def family(self, fam: Family) -> None:
        self._family = fam
        self._setup()

    def _setup(self) -> None:
        fam, y, wt = self.family, self.y, self.wt
        self._fast = None
        self._sat = None
        self._rep_cache: dict = {}
        self._2wt = 2 * wt
        self._2wt_neg = -2 * wt
        self._binary = None
        if fam.name == "binomial" and np.all((y == 0) | (y == 1)):
            self._binary = y == 1
        canonical = {"binomial": "logit", "poisson": "log", "gaussian": "identity", "gamma": "inverse"}
        self.newton = canonical.get(fam.name) != fam.link.name
        if fam.name == "binomial":
            self._fast = "logit" if fam.link.name == "logit" else "binomial"
            self._sat = 2 * wt * (special.xlogy(y, y) + special.xlogy(1 - y, 1 - y))
        elif fam.name == "poisson" and fam.link.name == "log":
            self._fast = "poisson"
            self._sat = 2 * wt * (special.xlogy(y, y) - y)
        self._aic_const = None

    def glm(self, eta: np.ndarray):
        """(mu, d mu / d eta, variance) at eta; fused for the canonical binomial / poisson links."""
        fam = self.family
        if self._fast == "logit":
            mu = special.expit(eta)
            np.clip(mu, _EPS, 1 - _EPS, out=mu)
            v = mu * (1 - mu)
            return mu, v, v
        if self._fast == "poisson":
            mu = np.exp(eta)
            np.maximum(mu, _TINY, out=mu)
            return mu, mu, mu
        mu = fam.link.linkinv(eta)
        return mu, fam.link.mu_eta(eta), fam.variance(mu)

    def devres(self, mu: np.ndarray, eta: np.ndarray | None = None, nodes: int = 1) -> np.ndarray:
        """Unit deviances times prior weights, with the saturated part precomputed.

        For the canonical links the log-likelihood is written in eta, one pass:
        logit ``y eta - log(1 + e^eta)``, poisson log ``y eta - mu``. With ``nodes=K``,
        ``mu`` and ``eta`` are (n, K) raveled row-major (every row at K quadrature nodes).
        """
        y, wt, two_wt, neg_two_wt, binary, sat = self._arrays(nodes)
        if binary is not None:
            # 0/1 response: the deviance is -2 wt log(probability of the observed value)
            return neg_two_wt * np.log(np.where(binary, mu, 1.0 - mu))
        if eta is not None and self._fast == "logit":
            return sat + two_wt * (np.logaddexp(0.0, eta) - y * eta)
        if eta is not None and self._fast == "poisson":
            return sat + two_wt * (mu - y * eta)
        if self._fast == "logit" or self._fast == "binomial":
            return sat - two_wt * (special.xlogy(y, mu) + special.xlog1py(1 - y, -mu))
        if self._fast == "poisson":
            return sat - two_wt * (special.xlogy(y, mu) - mu)
        return self.family.dev_resids(y, mu, wt)

    def _arrays(self, nodes: int):
        if nodes == 1:
            return self.y, self.wt, self._2wt, self._2wt_neg, self._binary, self._sat
        if nodes not in self._rep_cache:
            def rep(a):
                return None if a is None else np.repeat(a, nodes)
            self._rep_cache[nodes] = tuple(rep(a) for a in (self.y, self.wt, self._2wt, self._2wt_neg,
                                                             self._binary, self._sat))
        return self._rep_cache[nodes]

    def aic(self, mu: np.ndarray, dev_resid: np.ndarray) -> float:
        """R's ``family$aic``; for binomial, poisson and negative binomial it is the deviance plus a
        constant (-2 log-likelihood of the saturated model), computed once."""
        fam = self.family
        if fam.name in ("binomial", "poisson", "negativebinomial"):
            if self._aic_const is None:
                self._aic_const = fam.aic(self.y, self.n_trials, mu, self.wt, 0.0) - float(dev_resid.sum())
            return float(dev_resid.sum()) + self._aic_const
        return fam.aic(self.y, self.n_trials, mu, self.wt, float(dev_resid.sum()))

    def fisher_weights(self, mu_eta: np.ndarray, var: np.ndarray) -> np.ndarray:
        """glmer's working weights ``wt mu_eta^2 / V(mu)``."""
        return self.wt * mu_eta**2 / var

    def working(self, eta, mu, mu_eta, var):
        """(weights, working residual) of one PIRLS step.

        For non-canonical links the observed information (full Newton: quadratic convergence
        where Fisher scoring converges only linearly); the working residual keeps the score
        ``w (y - mu) / mu_eta`` exact, so the fixed point is the same mode.
        """
        w = self.fisher_weights(mu_eta, var)
        if not self.newton:
            return w, (self.y - mu) / mu_eta
        wN = self._observed_weights(eta, mu, mu_eta, var, w)
        return wN, w * (self.y - mu) / (mu_eta * wN)

    def _observed_weights(self, eta, mu, mu_eta, var, w):
        """Second derivative of the half deviance in eta, floored at a fraction of Fisher's."""
        fam = self.family
        link = fam.link.name
        if link == "log":
            mu_ee = mu_eta
        elif link == "logit":
            mu_ee = mu_eta * (1 - 2 * mu)
        elif link == "probit":
            mu_ee = -eta * mu_eta
        elif link == "cloglog":
            mu_ee = mu_eta * (1 - np.exp(eta))
        elif link == "inverse":
            mu_ee = 2 / eta**3
        elif link == "sqrt":
            mu_ee = np.full_like(eta, 2.0)
        else:
            mu_ee = np.zeros_like(eta)
        dvar = {"binomial": lambda: 1 - 2 * mu, "poisson": lambda: np.ones_like(mu),
                "gamma": lambda: 2 * mu, "gaussian": lambda: np.zeros_like(mu),
                "negativebinomial": lambda: 1 + 2 * mu / fam.shape}[fam.name]()
        obs = w - self.wt * (self.y - mu) * (mu_ee / var - mu_eta**2 * dvar / var**2)
        # where the observed information is not positive, Fisher's keeps the step a descent one
        return np.where(obs > 1e-3 * w, obs, w)
