"""One GLM fit by iteratively reweighted least squares (R's ``glm.fit``).

Used for the starting fixed effects of PIRLS (glmer starts from the GLM without random
effects) and for per-group no-pooling fits.
"""

from __future__ import annotations

import numpy as np

from bayesmixed.families import Family
from bayesmixed.likelihood._pirls_kernel import response_pass


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
    eta = link.linkfun(family.mu_start(y, wt))
    beta = np.zeros(X.shape[1])
    for _ in range(maxit):
        mu = link.linkinv(eta)
        w = family.irls_weights(eta, mu, wt)
        z = family.working_response(y, eta, mu) - off
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
        fam = self.family
        self._rep_cache: dict = {}
        self.newton = not fam.is_canonical
        self._codes = (fam.code, fam.link.code, float(fam.shape) if fam.shape is not None else 1.0)
        self._aic_const = None

    def evaluate(self, eta: np.ndarray, nodes: int = 1):
        """(mu, d mu / d eta, V(mu), deviance residuals times prior weights) at eta, in one pass.

        With ``nodes=K``, ``eta`` is (n, K) raveled row-major (every row at K quadrature nodes).
        """
        y, wt = self._arrays(nodes)
        return response_pass(*self._codes, y, wt, np.ascontiguousarray(eta, dtype=float))

    def glm(self, eta: np.ndarray):
        """(mu, d mu / d eta, variance) at eta."""
        return self.evaluate(eta)[:3]

    def devres(self, mu: np.ndarray, eta: np.ndarray | None = None, nodes: int = 1) -> np.ndarray:
        """Unit deviances times prior weights at eta (or at mu when eta is not given)."""
        if eta is not None:
            return self.evaluate(eta, nodes)[3]
        y, wt = self._arrays(nodes)
        return self.family.dev_resids(y, mu, wt)

    def _arrays(self, nodes: int):
        if nodes == 1:
            return self.y, self.wt
        if nodes not in self._rep_cache:
            self._rep_cache[nodes] = (np.repeat(self.y, nodes), np.repeat(self.wt, nodes))
        return self._rep_cache[nodes]

    def aic(self, mu: np.ndarray, dev_resid: np.ndarray) -> float:
        """R's ``family$aic``. Without a dispersion parameter (binomial, poisson, negative binomial
        at a fixed shape) it is the deviance plus a constant, computed once."""
        fam = self.family
        if not fam.has_dispersion:
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
        wN = self.family.newton_weights(self.y, eta, mu, self.wt)
        return wN, w * (self.y - mu) / (mu_eta * wN)
