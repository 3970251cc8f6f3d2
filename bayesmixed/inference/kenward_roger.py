"""Kenward-Roger adjusted covariance and denominator df (pbkrtest's vcovAdj, lmerTest's KR df).

Kenward & Roger (1997): the covariance of the fixed effects is inflated for the
uncertainty in the variance parameters, ``Phi_A = Phi + 2 Phi U Phi``, and the
denominator df of ``L beta`` comes from the moments of the Wald statistic. The
variance parameters are those of pbkrtest: the elements of each term's covariance
matrix (lower triangle) and the residual variance, with ``V = sum_i gamma_i G_i``.
The computation is dense in the number of observations (n x n matrices), as
pbkrtest's is; it refuses data larger than ``MAX_N`` rows.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.linalg as sla
import scipy.sparse as sp
from scipy import stats

from bayesmixed.errors import DesignError
from bayesmixed.likelihood.lmm import optimize_lmm

MAX_N = 4000            # dense (checking) path: n x n matrices
MAX_Q = 8000            # default path: q x q dense products


def _reml_fit(fit):
    if fit.reml:
        return fit
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return type(fit)(optimize_lmm(fit.design, reml=True, start=fit.theta, check_conv=False))


def sigma_g(fit) -> tuple[list[np.ndarray], np.ndarray]:
    """pbkrtest's ``get_SigmaG``: the derivative matrices G_i and the parameters gamma_i.

    Examples
    --------
    >>> import bayesmixed as bm
    >>> fit = bm.Model("Yield ~ 1 + (1 | Batch)", bm.load_dataset("Dyestuff")).fit()
    >>> G, gamma = sigma_g(fit)
    >>> len(G), G[0].shape, gamma.round(1).tolist()
    (2, (30, 30), [1764.1, 2451.2])
    """
    d = fit.design
    G, gamma = [], []
    for t, s in zip(d.reterms, d.theta_slices):
        C = t.covariance(fit.theta[s], fit.sigma)
        Zc = []
        for c in range(t.n_cols):
            Zc.append(sp.csr_array((t.Xi[:, c], (np.arange(d.n), t.codes)), shape=(d.n, t.n_levels)))
        if t.correlated:
            rows, cols = t._tril
        else:
            rows = cols = np.arange(t.n_cols)
        for r, c in zip(rows, cols):
            M = (Zc[r] @ Zc[c].T).toarray()
            G.append(M if r == c else M + M.T)
            gamma.append(C[r, c])
    G.append(np.diag(1.0 / d.weights))        # residual: sigma^2 W^-1 (pbkrtest assumes W = I)
    gamma.append(fit.sigma**2)
    return G, np.array(gamma)


def _dense_pieces(fit):
    """Traces K, P_i and Q_ij with explicit n x n matrices (pbkrtest's algorithm, for checking)."""
    d = fit.design
    if d.n > MAX_N:
        raise DesignError(f"the dense Kenward-Roger computation holds n x n matrices; {d.n} rows is more "
                          f"than {MAX_N}")
    X = d.X
    G, gamma = sigma_g(fit)
    Sigma = sum(g * Gi for g, Gi in zip(gamma, G))
    Linv = np.linalg.solve(np.linalg.cholesky(Sigma), np.eye(d.n))
    SigmaInv = Linv.T @ Linv
    T = SigmaInv @ X
    H = [Gi @ SigmaInv for Gi in G]
    k = len(G)
    del G, Sigma
    O = [Hi @ X for Hi in H]
    P = [-(Oi.T @ T) for Oi in O]
    SO = [SigmaInv @ Oi for Oi in O]
    Q = {(r, s): O[r].T @ SO[s] for r in range(k) for s in range(r, k)}
    K = np.array([[float(np.sum(H[i].T * H[j])) for j in range(k)] for i in range(k)])
    return K, P, Q


def _param_blocks(d) -> list:
    """Sparse q x q matrices D_i with ``dV / dgamma_i = Z D_i Z'`` for each covariance element."""
    out = []
    for t, sl in zip(d.reterms, d.b_slices):
        rows, cols = t._tril if t.correlated else (np.arange(t.n_cols), np.arange(t.n_cols))
        for r, c in zip(rows, cols):
            E = np.zeros((t.n_cols, t.n_cols))
            E[r, c] = E[c, r] = 1.0
            blk = sp.kron(sp.eye_array(t.n_levels), E, format="csr")
            D = sp.lil_array((d.q, d.q))
            D[sl, sl] = blk
            out.append(sp.csr_array(D))
    return out


def _woodbury_pieces(fit):
    """Traces K, P_i and Q_ij without n x n matrices.

    ``V = sigma^2 (Z Lambda Lambda' Z' + W^-1)``, so ``V^-1 = (W - W U M^-1 U' W) / sigma^2``
    with ``U = Z Lambda`` and ``M = U' W U + I``: every piece is a q x q or q x p product.
    """
    d = fit.design
    if d.q > MAX_Q:
        raise DesignError(f"Kenward-Roger needs dense q x q matrices; {d.q} random effects is more than "
                          f"{MAX_Q}: use ddf='Satterthwaite'")
    s2 = fit.sigma**2
    w = d.weights
    X, Z = d.X, d.Z
    Lam = d.Lambda(fit.theta)
    ZW = sp.csr_array(Z.T @ sp.diags_array(w))
    ZWZ = (ZW @ Z).toarray()
    ZWX = np.asarray(ZW @ X)
    XWX = X.T @ (w[:, None] * X)
    UWZ = np.asarray(Lam.T @ ZWZ)
    UWX = np.asarray(Lam.T @ ZWX)
    UWU = np.asarray(UWZ @ Lam)
    cf = sla.cho_factor(UWU + np.eye(d.q))
    az, ax = sla.cho_solve(cf, UWZ), sla.cho_solve(cf, UWX)
    C = (ZWZ - UWZ.T @ az) / s2                       # Z' V^-1 Z
    B = (ZWX - UWZ.T @ ax) / s2                       # Z' V^-1 X

    def srs(AWA, UA1, a1, UA2, a2):                   # A1' V^-1 W^-1 V^-1 A2, a = M^-1 U'W A
        return (AWA - UA1.T @ a2 - a1.T @ UA2 + a1.T @ UWU @ a2) / s2**2

    SRS_zz = srs(ZWZ, UWZ, az, UWZ, az)
    SRS_zx = srs(ZWX, UWZ, az, UWX, ax)
    SRS_xx = srs(XWX, UWX, ax, UWX, ax)
    RY = (X - Z @ (Lam @ ax)) / s2                    # W^-1 V^-1 X
    URY = np.asarray(Lam.T @ (ZW @ RY))
    Q_rr = (RY.T @ (w[:, None] * RY) - URY.T @ sla.cho_solve(cf, URY)) / s2
    MU = sla.cho_solve(cf, UWU)
    tr_rr = (d.n - 2 * np.trace(MU) + np.sum(MU * MU.T)) / s2**2
    D = _param_blocks(d)
    DC = [Di @ C for Di in D]
    DB = [Di @ B for Di in D]
    nr = len(D)
    k = nr + 1
    K = np.empty((k, k))
    P, Q = [], {}
    for i in range(nr):
        P.append(-(B.T @ DB[i]))
        for j in range(i, nr):
            K[i, j] = K[j, i] = np.sum(DC[i] * DC[j].T)
            Q[i, j] = DB[i].T @ C @ DB[j]
        K[i, nr] = K[nr, i] = float(D[i].multiply(SRS_zz).sum())     # tr(D_i Z'V^-1 W^-1 V^-1 Z)
        Q[i, nr] = DB[i].T @ SRS_zx
    P.append(-SRS_xx)
    K[nr, nr] = tr_rr
    Q[nr, nr] = Q_rr
    return K, P, Q


def vcov_adjusted(fit, dense: bool = False) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """Kenward-Roger adjusted covariance of beta, with the P matrices and W (pbkrtest's vcovAdj).

    Returns ``(Phi_A, P, W)``. ``dense=True`` follows pbkrtest literally with n x n
    matrices (small data only); the default works with q x q products.
    """
    d = fit.design
    if np.any(d.weights <= 0):
        raise DesignError("Kenward-Roger needs positive prior weights (drop the rows with weight 0)")
    Phi = fit.vcov.to_numpy()
    K, P, Q = _dense_pieces(fit) if dense else _woodbury_pieces(fit)
    P = [(Pi + Pi.T) / 2 for Pi in P]
    k = len(P)
    IE2 = np.empty((k, k))
    for i in range(k):
        PhiPi = Phi @ P[i]
        for j in range(i, k):
            IE2[i, j] = IE2[j, i] = K[i, j] - 2 * np.sum(Phi * Q[i, j]) + np.sum(PhiPi * (P[j] @ Phi))
    condi = np.min(np.abs(np.linalg.eigvalsh(IE2)))
    W = 2 * (np.linalg.inv(IE2) if condi > 1e-10 else np.linalg.pinv(IE2))
    W = (W + W.T) / 2
    U = np.zeros_like(Phi)
    for i in range(k - 1):
        for j in range(i + 1, k):
            U += W[i, j] * (Q[i, j] - P[i] @ Phi @ P[j])
    U = U + U.T
    for i in range(k):
        U += W[i, i] * (Q[i, i] - P[i] @ Phi @ P[i])
    PhiA = Phi + 2 * Phi @ U @ Phi
    return PhiA, P, W


def kr_ddf(L: np.ndarray, V0: np.ndarray, P: list[np.ndarray], W: np.ndarray) -> float:
    """Kenward-Roger denominator df of the hypothesis ``L beta = 0`` (pbkrtest's ``Lb_ddf``)."""
    L = np.atleast_2d(np.asarray(L, dtype=float))
    q = L.shape[0]
    Theta = L.T @ np.linalg.solve(L @ V0 @ L.T, L)
    TV = Theta @ V0
    u = [TV @ Pi @ V0 for Pi in P]
    A1 = A2 = 0.0
    k = len(P)
    for i in range(k):
        for j in range(i, k):
            e = 1.0 if i == j else 2.0
            A1 += e * W[i, j] * np.trace(u[i]) * np.trace(u[j])
            A2 += e * W[i, j] * np.sum(u[i] * u[j].T)
    B = (A1 + 6 * A2) / (2 * q)
    g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
    den = 3 * q + 2 * (1 - g)
    c1, c2, c3 = g / den, (q - g) / den, (q + 2 - g) / den
    V0s = 1 + c1 * B
    V1 = 1 - c2 * B
    V2 = 1 - c3 * B
    V0s = 0.0 if abs(V0s) < 1e-10 else V0s
    x = 1 - A2 / q
    ratio = 1.0 if (abs(x) < 1e-14 and abs(V1) < 1e-14) else x / V1
    rho = ratio**2 * V0s / V2 / q
    return float(4 + (q + 2) / (q * rho - 1))


@dataclass
class KenwardRoger:
    """Kenward-Roger results for a fit: adjusted covariance, df per fixed effect, t table.

    Attributes
    ----------
    vcov : pandas.DataFrame
        Adjusted covariance of the fixed effects (pbkrtest's ``vcovAdj``).
    df : pandas.Series
        Denominator df of each fixed effect (lmerTest's ``ddf = "Kenward-Roger"``).
    table : pandas.DataFrame
        ``estimate, std_error, df, t_value, p_value`` with adjusted standard errors.
    """

    vcov: pd.DataFrame
    df: pd.Series
    table: pd.DataFrame
    vcov_unadjusted: pd.DataFrame
    P: list
    W: np.ndarray

    def ddf(self, L) -> float:
        """Denominator df for a contrast matrix ``L`` (rows: contrasts over the fixed effects)."""
        return kr_ddf(L, self.vcov_unadjusted.to_numpy(), self.P, self.W)


def kenward_roger(fit) -> KenwardRoger:
    """Kenward-Roger df and adjusted covariance of the fixed effects of an LMM fit.

    An ML fit is refitted by REML first (as pbkrtest does).

    Notes
    -----
    pbkrtest: ``vcovAdj(fit)``; lmerTest: ``summary(fit, ddf = "Kenward-Roger")``
    (standard errors from the adjusted covariance, df from ``Lb_ddf``).

    Examples
    --------
    >>> import bayesmixed as bm
    >>> d = bm.load_dataset("sleepstudy")
    >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", d).fit()
    >>> kr = kenward_roger(fit)
    >>> kr.table[["std_error", "df"]].round(3)
               std_error    df
    Intercept      6.825  17.0
    Days           1.546  17.0
    """
    if not getattr(fit.design.family, "is_gaussian_identity", False) or not hasattr(fit, "reml"):
        raise DesignError("Kenward-Roger df are defined for linear mixed models (method='reml'/'ml')")
    fit = _reml_fit(fit)
    PhiA, P, W = vcov_adjusted(fit)
    names = list(fit.design.fixef_names)
    V0 = fit.vcov.to_numpy()
    p = len(names)
    df = np.array([kr_ddf(np.eye(p)[j], V0, P, W) for j in range(p)])
    est = fit.fixef.to_numpy()
    se = np.sqrt(np.diag(PhiA))
    t = est / se
    pv = 2 * stats.t.sf(np.abs(t), df)
    table = pd.DataFrame({"estimate": est, "std_error": se, "df": df, "t_value": t, "p_value": pv},
                         index=names)
    return KenwardRoger(vcov=pd.DataFrame(PhiA, index=names, columns=names), df=pd.Series(df, index=names),
                        table=table, vcov_unadjusted=fit.vcov, P=P, W=W)
