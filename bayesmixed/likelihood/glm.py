"""One GLM fit by iteratively reweighted least squares (R's ``glm.fit``).

Used for the starting fixed effects of PIRLS (glmer starts from the GLM without random
effects) and for per-group no-pooling fits.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from bayesmixed.families import Family
from bayesmixed.likelihood._pirls_kernel import FAMILY_CODES, LINK_CODES, response_pass

_KERNEL_FAMILIES = frozenset(FAMILY_CODES.values())
_KERNEL_LINKS = frozenset(LINK_CODES.values())
_EPS = np.finfo(float).eps
_TINY = np.finfo(float).tiny


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
    return glm_irls(X, y, family, weights, offset, maxit=maxit, tol=tol)[0]


def glm_irls(X: np.ndarray, y: np.ndarray, family: Family, weights: np.ndarray | None = None,
             offset: np.ndarray | None = None, *, maxit: int = 25, tol: float = 1e-8) -> tuple[np.ndarray, bool]:
    """:func:`glm_fit`'s IRLS, also saying whether it converged within ``maxit`` steps.

    Examples
    --------
    >>> from bayesmixed.families import get_family
    >>> X = np.ones((4, 1))
    >>> beta, ok = glm_irls(X, np.ones(4), get_family("binomial"))   # all successes: the MLE is at infinity
    >>> ok, bool(beta[0] > 10)
    (False, True)
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
            return beta, True
    return beta, False


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
        # a family the compiled kernels are written for (else: the NumPy members, slower)
        self.compiled = fam.code in _KERNEL_FAMILIES and fam.link.code in _KERNEL_LINKS
        self._fused = _FUSED.get(self._codes[:2])
        self._aic_const = None

    def evaluate(self, eta: np.ndarray, nodes: int = 1):
        """(mu, d mu / d eta, V(mu), deviance residuals times prior weights) at eta, in one pass.

        With ``nodes=K``, ``eta`` is (n, K) raveled row-major (every row at K quadrature nodes).
        """
        y, wt, extra = self._arrays(nodes)
        if self._fused is not None:
            return self._fused(y, wt, extra, eta)
        if self.compiled:
            return response_pass(*self._codes, y, wt, np.ascontiguousarray(eta, dtype=float))
        fam = self.family
        mu = fam.link.linkinv(eta)
        return mu, fam.link.mu_eta(eta), fam.variance(mu), fam.dev_resids(y, mu, wt)

    def glm(self, eta: np.ndarray):
        """(mu, d mu / d eta, variance) at eta."""
        return self.evaluate(eta)[:3]

    def devres(self, mu: np.ndarray, eta: np.ndarray | None = None, nodes: int = 1) -> np.ndarray:
        """Unit deviances times prior weights at eta (or at mu when eta is not given)."""
        if eta is not None:
            return self.evaluate(eta, nodes)[3]
        y, wt, _ = self._arrays(nodes)
        return self.family.dev_resids(y, mu, wt)

    def _arrays(self, nodes: int):
        """(y, wt, fused-path constants), repeated K times for K quadrature nodes."""
        if nodes not in self._rep_cache:
            y, wt = (self.y, self.wt) if nodes == 1 else (np.repeat(self.y, nodes), np.repeat(self.wt, nodes))
            extra = None if self._fused is None else self._fused.constants(y, wt)
            self._rep_cache[nodes] = (y, wt, extra)
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


# ---- fused NumPy passes for the two commonest canonical pairs ---------------------------------
# Vectorised exp / log beat the compiled per-row loop here; keyed by (family.code, link.code).

class _BinomialLogit:
    """Binomial with the logit link: deviance in eta, a 0/1 response as -2 wt log p(y)."""

    @staticmethod
    def constants(y, wt):
        binary = y == 1 if np.all((y == 0) | (y == 1)) else None
        return binary, 2 * wt * (special.xlogy(y, y) + special.xlogy(1 - y, 1 - y))

    def __call__(self, y, wt, extra, eta):
        binary, sat = extra
        mu = special.expit(eta)
        np.clip(mu, _EPS, 1 - _EPS, out=mu)
        v = mu * (1 - mu)
        if binary is not None:
            dev = -2 * wt * np.log(np.where(binary, mu, 1.0 - mu))
        else:
            dev = sat + 2 * wt * (np.logaddexp(0.0, eta) - y * eta)
        return mu, v, v, dev


class _PoissonLog:
    """Poisson with the log link: deviance in eta."""

    @staticmethod
    def constants(y, wt):
        return None, 2 * wt * (special.xlogy(y, y) - y)

    def __call__(self, y, wt, extra, eta):
        mu = np.exp(eta)
        np.maximum(mu, _TINY, out=mu)
        return mu, mu, mu, extra[1] + 2 * wt * (mu - y * eta)


_FUSED = {(FAMILY_CODES["binomial"], LINK_CODES["logit"]): _BinomialLogit(),
          (FAMILY_CODES["poisson"], LINK_CODES["log"]): _PoissonLog()}
