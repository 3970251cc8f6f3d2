"""``method="map"``: the REML estimate as a posterior mode, computed on the PyMC side.

The identity (Harville 1974; Bates et al. 2015, JSS Sec. 3.7): with flat priors on
beta and on the variance parameters, integrating b and beta out of the Gaussian
LMM leaves a marginal posterior of (theta, sigma) proportional to the REML
likelihood, so its mode is the REML estimate. Here that marginal density is
written in PyTensor and maximised by ``pm.find_MAP``; nothing of the likelihood
engine is reused, which makes ``map == reml`` a real check of both.

With A = Lambda' Z'Z Lambda + I (q x q), V = sigma^2 (I + Z Lambda Lambda' Z'):

    log|V|          = n log sigma^2 + log|A|                      (matrix determinant lemma)
    V^-1 sigma^2    = I - Z Lambda A^-1 Lambda' Z'                (Woodbury)
    -2 log L_REML   = (n - p) log(2 pi sigma^2) + log|A| + log|X'V*^-1 X|
                      + (y - X beta_hat)' V*^-1 (y - X beta_hat) / sigma^2,   V* = V / sigma^2
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from bayesmixed.bayes.build import quiet_blas_check
from bayesmixed.errors import DesignError, FitError


def _lambda_index(design) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, theta index) of every structurally non-zero element of Lambda."""
    rows, cols, idx = [], [], []
    for t, ts, bs in zip(design.reterms, design.theta_slices, design.b_slices):
        k = t.n_cols
        if t.correlated:
            r, c = t._tril
            pos = np.arange(len(r))
        else:
            r = c = np.arange(k)
            pos = np.arange(k)
        for g in range(t.n_levels):
            base = bs.start + g * k
            rows.append(base + r)
            cols.append(base + c)
            idx.append(ts.start + pos)
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(idx)


def reml_pymc_model(design):
    """A ``pymc.Model`` whose log density is the REML log-likelihood of (theta, sigma).

    Variables: ``theta_diag`` (HalfFlat) and ``theta_offdiag`` (Flat) in lme4's
    theta order, and ``sigma`` (HalfFlat); flat priors, so the density is the
    REML likelihood itself (beta and b integrated out).
    """
    import pymc as pm
    import pytensor.tensor as pt

    if not design.family.is_gaussian_identity:
        raise DesignError("method='map' is the REML-equivalent mode of a gaussian (identity) model; "
                          f"this model is {design.family.name}({design.family.link.name})")
    if not design.reterms:
        raise DesignError("method='map' needs at least one random-effects term")
    w = np.sqrt(design.weights) if design.has_user_weights else np.ones(design.n)
    X = design.X * w[:, None]
    y = (design.y - design.offset) * w
    Z = (design.Z.multiply(w[:, None])).tocsc().toarray()
    n, p = X.shape
    q = Z.shape[1]
    ZtZ, ZtX, Zty = Z.T @ Z, Z.T @ X, Z.T @ y
    XtX, Xty, yty = X.T @ X, X.T @ y, float(y @ y)
    rows, cols, tidx = _lambda_index(design)
    quiet_blas_check()
    lower = design.lower
    diag = np.flatnonzero(lower == 0)
    off = np.flatnonzero(lower != 0)
    with pm.Model() as model:
        th_d = pm.HalfFlat("theta_diag", shape=len(diag), initval=design.theta0[diag] if len(diag) else None)
        parts = pt.zeros(design.n_theta)
        parts = pt.set_subtensor(parts[diag], th_d)
        if len(off):
            th_o = pm.Flat("theta_offdiag", shape=len(off), initval=np.zeros(len(off)))
            parts = pt.set_subtensor(parts[off], th_o)
        theta = pm.Deterministic("theta", parts)
        sigma = pm.HalfFlat("sigma", initval=float(np.std(y)))
        Lam = pt.set_subtensor(pt.zeros((q, q))[rows, cols], theta[tidx])          # (q, q)
        A = Lam.T @ ZtZ @ Lam + pt.eye(q)
        LA = pt.linalg.cholesky(A)
        # C = L_A^-1 Lambda' [Z'X | Z'y]: the Woodbury terms, (q, p + 1)
        C = pt.linalg.solve_triangular(LA, Lam.T @ pt.concatenate([ZtX, Zty[:, None]], axis=1), lower=True)
        CX, Cy = C[:, :p], C[:, p]
        M = XtX - CX.T @ CX                                                         # X'V*^-1 X, (p, p)
        c = Xty - CX.T @ Cy                                                         # X'V*^-1 y
        yVy = yty - Cy @ Cy
        LM = pt.linalg.cholesky(M)
        h = pt.linalg.solve_triangular(LM, c, lower=True)
        rss = yVy - h @ h                                                           # r'V*^-1 r at beta_hat
        logdetA = 2 * pt.log(pt.diag(LA)).sum()
        logdetM = 2 * pt.log(pt.diag(LM)).sum()
        crit = (n - p) * pt.log(2 * np.pi * sigma**2) + logdetA + logdetM + rss / sigma**2
        pm.Potential("reml_loglik", -0.5 * crit)
        pm.Deterministic("reml_criterion", crit)
    return model


@dataclass(eq=False)
class MapOptimum:
    """The REML-equivalent mode: (theta, sigma) from PyMC, beta and b at their conditional modes.

    What ``results`` builds a :class:`~bayesmixed.results.map.MapFit` from.
    """

    design: object
    theta: np.ndarray
    sigma: float
    criterion: float
    beta: np.ndarray
    u: np.ndarray
    b: np.ndarray
    vcov: np.ndarray

    def covariances(self) -> list[np.ndarray]:
        """Per-term covariance matrices of b on the variance scale."""
        d = self.design
        return [t.covariance(self.theta[s], self.sigma) for t, s in zip(d.reterms, d.theta_slices)]

    def varpar_covariance(self) -> np.ndarray:
        """Asymptotic covariance of (theta, sigma): 2 H^-1, H the Hessian of the REML criterion at the mode."""
        f = reml_criterion_function(self.design)
        H = central_hessian(f, np.concatenate([self.theta, [self.sigma]]))
        try:
            return 2 * np.linalg.inv(H)
        except np.linalg.LinAlgError:
            return 2 * np.linalg.pinv(H)

    def condvar_blocks(self) -> list[np.ndarray]:
        """Per term (n_levels, k, k) conditional covariances of b at the mode: sigma^2 Lambda A^-1 Lambda'."""
        d = self.design
        w = np.sqrt(d.weights) if d.has_user_weights else np.ones(d.n)
        Lam = d.Lambda(self.theta).toarray()
        ZL = d.Z.multiply(w[:, None]).tocsc().toarray() @ Lam
        V = self.sigma**2 * Lam @ np.linalg.solve(ZL.T @ ZL + np.eye(d.q), Lam.T)
        out = []
        for t, bs in zip(d.reterms, d.b_slices):
            k = t.n_cols
            idx = bs.start + np.arange(t.n_levels)[:, None] * k + np.arange(k)          # (levels, k)
            out.append(V[idx[:, :, None], idx[:, None, :]])
        return out


def reml_criterion_function(design):
    """The REML criterion as a NumPy function of (theta, sigma), the density ``reml_pymc_model`` maximises."""
    d = design
    w = np.sqrt(d.weights) if d.has_user_weights else np.ones(d.n)
    X, y = d.X * w[:, None], (d.y - d.offset) * w
    Z = d.Z.multiply(w[:, None]).tocsc().toarray()
    n, p = X.shape

    def crit(varpar):
        theta, sigma = np.asarray(varpar[:-1], dtype=float), float(varpar[-1])
        ZL = Z @ d.Lambda(theta).toarray()
        LA = np.linalg.cholesky(ZL.T @ ZL + np.eye(d.q))
        C = np.linalg.solve(LA, ZL.T @ np.column_stack([X, y]))
        CX, Cy = C[:, :p], C[:, p]
        M = X.T @ X - CX.T @ CX
        c = X.T @ y - CX.T @ Cy
        LM = np.linalg.cholesky(M)
        h = np.linalg.solve(LM, c)
        rss = y @ y - Cy @ Cy - h @ h
        return float((n - p) * np.log(2 * np.pi * sigma**2) + 2 * np.log(np.diag(LA)).sum()
                     + 2 * np.log(np.diag(LM)).sum() + rss / sigma**2)
    return crit


def central_hessian(f, x: np.ndarray, rel: float = 1e-4) -> np.ndarray:
    """Hessian of ``f`` at ``x`` by central differences (steps relative to |x|, at least 1e-6).

    Examples
    --------
    >>> central_hessian(lambda v: v[0] ** 2 + 3 * v[0] * v[1], np.array([1.0, 2.0])).round(6).tolist()
    [[2.0, 3.0], [3.0, 0.0]]
    """
    x = np.asarray(x, dtype=float)
    h = rel * np.maximum(np.abs(x), 1e-2)
    k = len(x)
    H = np.zeros((k, k))
    E = np.diag(h)
    for i in range(k):
        for j in range(i, k):
            H[i, j] = H[j, i] = (f(x + E[i] + E[j]) - f(x + E[i] - E[j]) - f(x - E[i] + E[j])
                                 + f(x - E[i] - E[j])) / (4 * h[i] * h[j])
    return H


def conditional_modes(design, theta: np.ndarray, sigma: float, criterion: float) -> MapOptimum:
    """beta, u and b solving Henderson's equations at (theta, sigma), and sigma^2 (X'V*^-1 X)^-1."""
    d = design
    w = np.sqrt(d.weights) if d.has_user_weights else np.ones(d.n)
    X, y = d.X * w[:, None], (d.y - d.offset) * w
    Z = d.Z.multiply(w[:, None]).tocsc().toarray()
    Lam = d.Lambda(theta).toarray()
    ZL = Z @ Lam
    A = ZL.T @ ZL + np.eye(d.q)
    # Henderson's equations in the (u, beta) parameterization (JSS eq. 15)
    top = np.hstack([A, ZL.T @ X])
    bottom = np.hstack([X.T @ ZL, X.T @ X])
    rhs = np.concatenate([ZL.T @ y, X.T @ y])
    sol = np.linalg.solve(np.vstack([top, bottom]), rhs)
    u, beta = sol[:d.q], sol[d.q:]
    Ainv_ZLX = np.linalg.solve(A, ZL.T @ X)
    M = X.T @ X - (ZL.T @ X).T @ Ainv_ZLX
    return MapOptimum(design=d, theta=theta, sigma=sigma, criterion=criterion, beta=beta, u=u, b=Lam @ u,
                      vcov=sigma**2 * np.linalg.inv(M))


def fit_map(model, *, maxiter: int = 5000, progressbar: bool = False, **kwargs) -> MapOptimum:
    """REML estimate as the mode of the marginal posterior of (theta, sigma) under flat priors.

    Returns the mode; ``results`` makes a :class:`~bayesmixed.results.map.MapFit` of it
    (``Model.fit(method="map")``).

    Examples
    --------
    >>> import bayesmixed as bm
    >>> m = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy"))
    >>> mode = fit_map(m)
    >>> round(float(mode.beta[1]), 3), round(mode.criterion, 2)
    (10.467, 1743.63)
    """
    import pymc as pm

    design = model.design
    pmm = reml_pymc_model(design)
    opts = {"maxiter": maxiter, "ftol": 1e-14, "gtol": 1e-8}
    opts.update(kwargs.pop("options", {}))
    with warnings.catch_warnings():
        # L-BFGS-B stops with "ABNORMAL" once the line search cannot improve at this tight ftol:
        # that is the optimum to double precision, not a failure (the estimate is checked below)
        warnings.filterwarnings("ignore", message="The optimizer did not converge")
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*find_MAP.*")
        point = pm.find_MAP(model=pmm, progressbar=progressbar, compile_kwargs={"mode": "CVM"},
                            options=opts, jitter=False, **kwargs)
    theta = np.asarray(point["theta"], dtype=float)
    sigma = float(point["sigma"])
    if not np.all(np.isfinite(theta)) or not np.isfinite(sigma):
        raise FitError("the REML-equivalent MAP optimisation did not converge (non-finite estimates)")
    return conditional_modes(design, theta, sigma, float(point["reml_criterion"]))
