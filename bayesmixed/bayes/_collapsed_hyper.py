"""Compiled hyperparameter transforms of the collapsed density (numba, cached once per installation).

Unconstrained values -> standard deviations, LKJ Cholesky factors (C-vine, as
:func:`bayesmixed.bayes.build.lkj_cholesky_corr`) and sigma, with the log priors and
log Jacobians of the joint PyMC model, and the reverse-mode pass of their gradient.
"""

from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _log_sigmoid(x):  # pragma: no cover - compiled
    return -math.log1p(math.exp(-x)) if x > 0 else x - math.log1p(math.exp(x))


@numba.njit(cache=True, nogil=True)
def positive_prior(code, par, x):  # pragma: no cover - compiled
    """(log prior + log Jacobian, its derivative in x, value s, ds/dx) of a positive parameter.

    ``par = (constant, a, b)``; codes: 0 HalfNormal(b), 1 HalfStudentT(nu=a, sigma=b),
    2 HalfCauchy(b), 3 HalfFlat, 4 Exponential(lam=b), 5 Gamma(a, b), 6 InverseGamma(a, b),
    7 LogNormal(mu=a, sigma=b), 8 Uniform(a, b) (logodds transform; all others log).
    """
    a, b = par[1], par[2]
    if code == 8:
        lo = _log_sigmoid(x)
        lo_m = _log_sigmoid(-x)
        sg = math.exp(lo)
        s = a + (b - a) * sg
        return par[0] + math.log(b - a) + lo + lo_m, 1.0 - 2.0 * sg, s, (b - a) * sg * (1.0 - sg)
    s = math.exp(x)
    if code == 0:
        lp, d = -0.5 * s * s / (b * b), -s / (b * b)
    elif code == 1:
        lp = -0.5 * (a + 1.0) * math.log1p(s * s / (a * b * b))
        d = -(a + 1.0) * s / (a * b * b + s * s)
    elif code == 2:
        lp, d = -math.log1p((s / b) ** 2), -2.0 * s / (b * b + s * s)
    elif code == 3:
        lp, d = 0.0, 0.0
    elif code == 4:
        lp, d = -b * s, -b
    elif code == 5:
        lp, d = (a - 1.0) * x - b * s, (a - 1.0) / s - b
    elif code == 6:
        lp, d = -(a + 1.0) * x - b / s, -(a + 1.0) / s + b / (s * s)
    else:
        lp = -x - (x - a) ** 2 / (2.0 * b * b)
        d = (-1.0 - (x - a) / (b * b)) / s
    return par[0] + lp + x, d * s + 1.0, s, s


@numba.njit(cache=True, nogil=True)
def hyper_forward(x, tk, tcorr, tx, tc, sd_code, sd_par, cpc_beta, cpc_c0, sig_code, sig_par, C, zs, rem):
    # pragma: no cover - compiled
    """Unconstrained x -> factors C (flat, k*k per term), sigma; prior log density and its gradient.

    Per term: ``k`` sd values (their priors' transforms), then for correlated terms the
    ``k(k-1)/2`` canonical partial correlations (logodds of ``Beta(beta_j, beta_j)``), C-vine
    order of :func:`bayesmixed.bayes.build.lkj_cholesky_corr`; sigma last. ``zs`` and ``rem``
    keep the partial correlations and the remaining squared norms for the backward pass.
    """
    gx = np.zeros(x.shape[0])
    lp = 0.0
    isd = 0
    icpc = 0
    for t in range(tk.shape[0]):
        k, o, co = tk[t], tx[t], tc[t]
        L = np.zeros((k, k))
        if tcorr[t] and k > 1:
            n = 0
            for i in range(1, k):
                r = 1.0
                for j in range(i):
                    xi = x[o + k + n]
                    bj = cpc_beta[icpc + n]
                    lu, lv = _log_sigmoid(xi), _log_sigmoid(-xi)
                    u = math.exp(lu)
                    lp += bj * (lu + lv) - cpc_c0[icpc + n]
                    gx[o + k + n] += bj * (1.0 - 2.0 * u)
                    z = 2.0 * u - 1.0
                    zs[icpc + n] = z
                    rem[icpc + n] = r
                    L[i, j] = z * math.sqrt(r)
                    r -= L[i, j] ** 2
                    n += 1
                L[i, i] = math.sqrt(r)
            L[0, 0] = 1.0
            icpc += n
        else:
            for i in range(k):
                L[i, i] = 1.0
        for i in range(k):
            v, g, s, _ = positive_prior(sd_code[isd + i], sd_par[isd + i], x[o + i])
            lp += v
            gx[o + i] += g
            for j in range(i + 1):
                C[co + i * k + j] = s * L[i, j]
        isd += k
    v, g, sigma, _ = positive_prior(sig_code, sig_par, x[x.shape[0] - 1])
    lp += v
    gx[x.shape[0] - 1] += g
    return lp, gx, sigma


@numba.njit(cache=True, nogil=True)
def hyper_backward(x, gC, tk, tcorr, tx, tc, sd_code, sd_par, C, zs, rem, gx):  # pragma: no cover
    """Add d log p / d x (sds and partial correlations) to ``gx`` given d/dC (flat lower factors)."""
    isd = 0
    icpc = 0
    for t in range(tk.shape[0]):
        k, o, co = tk[t], tx[t], tc[t]
        sds = np.empty(k)
        for i in range(k):
            _, _, s, dsdx = positive_prior(sd_code[isd + i], sd_par[isd + i], x[o + i])
            sds[i] = s
            # C[i, j] = s_i L[i, j]: d/ds_i = sum_j gC[i, j] L[i, j]
            acc = 0.0
            for j in range(i + 1):
                acc += gC[co + i * k + j] * C[co + i * k + j] / s
            gx[o + i] += acc * dsdx
        if tcorr[t] and k > 1:
            n0 = icpc
            n = 0
            for i in range(1, k):
                nrow = i
                # gL[i, j] = gC[i, j] * s_i
                gr = 0.5 * gC[co + i * k + i] * sds[i] / (C[co + i * k + i] / sds[i])   # d/d r_i
                for jj in range(nrow - 1, -1, -1):
                    idx = n0 + n + jj
                    Lij = C[co + i * k + jj] / sds[i]
                    gl = gC[co + i * k + jj] * sds[i] - 2.0 * Lij * gr      # r_{j+1} = r_j - L_ij^2
                    sr = math.sqrt(rem[idx])
                    z = zs[idx]
                    u = 0.5 * (z + 1.0)
                    gx[o + k + n + jj] += gl * sr * 2.0 * u * (1.0 - u)
                    gr = gr + gl * z / (2.0 * sr)
                n += nrow
            icpc += n
        isd += k


# ---- small dense factors (shared with the kernels) ---------------------------------
@numba.njit(cache=True, nogil=True)
def _tril_inv(L, k):  # pragma: no cover - compiled
    Li = np.zeros((k, k))
    for j in range(k):
        Li[j, j] = 1.0 / L[j, j]
        for i in range(j + 1, k):
            acc = 0.0
            for m in range(j, i):
                acc += L[i, m] * Li[m, j]
            Li[i, j] = -acc / L[i, i]
    return Li


@numba.njit(cache=True, nogil=True, no_cpython_wrapper=True, no_cfunc_wrapper=True)
def _chol_inv(A, L, Ainv, Li):  # pragma: no cover - compiled
    """Lower Cholesky factor ``L`` of ``A`` and ``Ainv``, the inverse of A's leading ``n1`` block
    (``n1 = Ainv.shape[0]``; ``Li`` an n1 x n1 workspace); returns that block's log determinant.
    The one-term kernel's level blocks and dense part, and :func:`dense_chol_inv`, share it."""
    n, n1 = A.shape[0], Ainv.shape[0]
    for j in range(n):
        acc = A[j, j]
        for h in range(j):
            acc -= L[j, h] * L[j, h]
        if not acc > 0.0:
            raise np.linalg.LinAlgError("Matrix is not positive definite.")
        d = math.sqrt(acc)
        L[j, j] = d
        for i in range(j + 1, n):
            acc = A[i, j]
            for h in range(j):
                acc -= L[i, h] * L[j, h]
            L[i, j] = acc / d
    logdet = 0.0
    for j in range(n1):                                 # Li = (leading block of L)^{-1}
        logdet += 2.0 * math.log(L[j, j])
        Li[j, j] = 1.0 / L[j, j]
        for i in range(j + 1, n1):
            acc = 0.0
            for h in range(j, i):
                acc += L[i, h] * Li[h, j]
            Li[i, j] = -acc / L[i, i]
    for a in range(n1):
        for b in range(a + 1):
            acc = 0.0
            for i in range(a, n1):
                acc += Li[i, a] * Li[i, b]
            Ainv[a, b] = acc
            Ainv[b, a] = acc
    return logdet


@numba.njit(cache=True, nogil=True)
def dense_chol_inv(S):  # pragma: no cover - compiled
    """(U, Sinv): upper Cholesky factor of S and the inverse of its leading (m-1) block (small m).

    The factorization is a plain loop (no LAPACK binding to compile); a non-positive pivot
    raises ``LinAlgError`` as ``np.linalg.cholesky`` does.
    """
    m = S.shape[0]
    L = np.zeros((m, m))
    Sinv = np.empty((m - 1, m - 1))
    _chol_inv(S, L, Sinv, np.empty((m - 1, m - 1)))
    return np.ascontiguousarray(L.T), Sinv


@numba.njit(cache=True, nogil=True)
def _chol_into(A, k, out, g):  # pragma: no cover - compiled
    """Cholesky of the small SPD matrix A into out[g] (lower; upper part zeroed)."""
    for j in range(k):
        acc = A[j, j]
        for m in range(j):
            acc -= out[g, j, m] ** 2
        if acc <= 0.0:
            raise np.linalg.LinAlgError("not positive definite")
        d = math.sqrt(acc)
        out[g, j, j] = d
        for i in range(j + 1, k):
            acc = A[i, j]
            for m in range(j):
                acc -= out[g, i, m] * out[g, j, m]
            out[g, i, j] = acc / d
        for i in range(j):
            out[g, i, j] = 0.0


@numba.njit(cache=True, nogil=True)
def _tril_inv_into(L, g, k, Li):  # pragma: no cover - compiled
    for j in range(k):
        Li[j, j] = 1.0 / L[g, j, j]
        for i in range(j + 1, k):
            acc = 0.0
            for m in range(j, i):
                acc += L[g, i, m] * Li[m, j]
            Li[i, j] = -acc / L[g, i, i]
