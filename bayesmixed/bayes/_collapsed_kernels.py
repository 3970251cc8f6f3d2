"""Compiled kernels of the collapsed Gaussian density (numba, ``cache=True``: once per installation).

Nothing here depends on a model: every function takes the design's cross products
as arrays (see :mod:`bayesmixed.bayes.collapsed` for their layout), so a new model
never compiles anything. Notation (one evaluation):

- ``C_t`` (k x k lower) Cholesky factor of term t's covariance, ``sigma`` residual SD,
  ``s0`` prior SDs of the (centred) fixed effects; ``K = blockdiag(I (x) C_t, diag(s0))``.
- ``M = I + K' A' W A K / sigma^2`` with ``A = [Z X]``: the precision of the spherical
  effects given the hyperparameters; blocked as the REML engine does it: the first
  term's levels are independent ``k1 x k1`` blocks, the rest (other terms, X, and the
  response as a last column) a dense Schur complement ``S`` of size ``m``.
- ``log p(y) = -n/2 log 2pi - n log sigma + 1/2 sum log w - 1/2 log|M| - pwrss / (2 sigma^2)``,
  and with ``u`` the posterior mean of the spherical effects,
  ``d/dC_t = C_t^{-T} sum_g (u_g u_g' - I + (M^{-1})_gg)`` and
  ``d/dsigma = -(n - q - p + tr M^{-1}) / sigma + rss / sigma^3``.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from bayesmixed.bayes._collapsed_hyper import (_chol_into, _tril_inv, _tril_inv_into, dense_chol_inv, hyper_backward,
                                               hyper_forward, positive_prior)

LOG2PI = math.log(2.0 * math.pi)
# dense Schur complements up to this size are factored and inverted inside one numba call
SMALL_DENSE = 64


@numba.njit(cache=True, nogil=True)
def schur(C, sigma, s0, tk, tl, tc, tst, A11, ptr, rows, vals, A22, Minv, L11):  # pragma: no cover
    """Factor the first term's blocks (``L11``, ``Minv`` = their inverses) and return the dense
    Schur complement ``S = Lam2' (A22 - sum_g A21_g D_g A21_g') Lam2 + diag(1, .., 1, 0)``."""
    k1, l1 = tk[0], tl[0]
    m = A22.shape[0]
    T1 = np.zeros((k1, k1))
    for i in range(k1):
        for j in range(i + 1):
            T1[i, j] = C[tc[0] + i * k1 + j] / sigma
    S = A22.copy()
    Mg = np.empty((k1, k1))
    D = np.empty((k1, k1))
    Li = np.zeros((k1, k1))
    logdet = 0.0
    for g in range(l1):
        # Mg = T1' A11_g T1 + I
        for a in range(k1):
            for b in range(k1):
                acc = 0.0
                for i in range(k1):
                    ti = T1[i, a]
                    if ti != 0.0:
                        for j in range(k1):
                            acc += ti * A11[g, i, j] * T1[j, b]
                Mg[a, b] = acc + (1.0 if a == b else 0.0)
        _chol_into(Mg, k1, L11, g)
        for i in range(k1):
            logdet += 2.0 * math.log(L11[g, i, i])
        _tril_inv_into(L11, g, k1, Li)
        for a in range(k1):
            for b in range(k1):
                acc = 0.0
                for i in range(max(a, b), k1):
                    acc += Li[i, a] * Li[i, b]
                Minv[g, a, b] = acc
        # D = T1 Minv T1'
        for a in range(k1):
            for b in range(k1):
                acc = 0.0
                for i in range(k1):
                    for j in range(k1):
                        acc += T1[a, i] * Minv[g, i, j] * T1[b, j]
                D[a, b] = acc
        lo, hi = ptr[g], ptr[g + 1]
        for ia in range(lo, hi):
            ra = rows[ia]
            for ib in range(lo, ia + 1):           # lower triangle (rows ascending)
                rb = rows[ib]
                acc = 0.0
                for a in range(k1):
                    va = vals[ia, a]
                    if va != 0.0:
                        for b in range(k1):
                            acc += va * D[a, b] * vals[ib, b]
                S[ra, rb] -= acc
    for i in range(m):                             # mirror the lower triangle
        for j in range(i + 1, m):
            S[i, j] = S[j, i]
    _scale_dense(S, C, sigma, s0, tk, tl, tc, tst, True)
    for i in range(m - 1):
        S[i, i] += 1.0
    return S, logdet


@numba.njit(cache=True, nogil=True)
def _diag_scale(C, sigma, s0, tk, tl, tc, tst, m):  # pragma: no cover - compiled
    """Diagonal part of Lam2 over m dense coordinates (scalar terms, fixed effects; 1 elsewhere)."""
    f = np.ones(m)
    p = s0.shape[0]
    qr = m - 1 - p if m > 0 else 0
    for j in range(p):
        if qr + j < m:
            f[qr + j] = s0[j] / sigma
    for t in range(1, tk.shape[0]):
        if tk[t] == 1:
            v = C[tc[t]] / sigma
            for h in range(tl[t]):
                f[tst[t] + h] = v
    return f


@numba.njit(cache=True, nogil=True)
def _scale_dense(S, C, sigma, s0, tk, tl, tc, tst, both):  # pragma: no cover - compiled
    """S <- Lam2' S Lam2 (``both``) over the dense coordinates: rest terms, fixed, response."""
    m = S.shape[0]
    f = _diag_scale(C, sigma, s0, tk, tl, tc, tst, m)
    for i in range(m):
        fi = f[i]
        for j in range(m):
            S[i, j] *= fi * f[j]
    for t in range(1, tk.shape[0]):
        k, st = tk[t], tst[t]
        if k == 1:
            continue
        T = np.zeros((k, k))
        for i in range(k):
            for j in range(i + 1):
                T[i, j] = C[tc[t] + i * k + j] / sigma
        tmp = np.empty(k)
        for h in range(tl[t]):
            c0 = st + h * k
            for r in range(m):                       # right: S[:, blk] @ T
                for b in range(k):
                    acc = 0.0
                    for a in range(b, k):
                        acc += S[r, c0 + a] * T[a, b]
                    tmp[b] = acc
                for b in range(k):
                    S[r, c0 + b] = tmp[b]
            for c in range(m):                       # left: T' S[blk, :]
                for b in range(k):
                    acc = 0.0
                    for a in range(b, k):
                        acc += T[a, b] * S[c0 + a, c]
                    tmp[b] = acc
                for b in range(k):
                    S[c0 + b, c] = tmp[b]


@numba.njit(cache=True, nogil=True)
def _lam2_apply(v, C, sigma, s0, tk, tl, tc, tst):  # pragma: no cover - compiled
    """w = Lam2 v over the first m-1 dense coordinates (rest terms and fixed effects)."""
    w = v.copy()
    p = s0.shape[0]
    qr = v.shape[0] - p
    for j in range(p):
        w[qr + j] = v[qr + j] * s0[j] / sigma
    for t in range(1, tk.shape[0]):
        k, st = tk[t], tst[t]
        for h in range(tl[t]):
            c0 = st + h * k
            for i in range(k):
                acc = 0.0
                for j in range(i + 1):
                    acc += C[tc[t] + i * k + j] / sigma * v[c0 + j]
                w[c0 + i] = acc
    return w


@numba.njit(cache=True, nogil=True)
def back_solve(U, rho, C, sigma, s0, tk, tl, tc, tst, Minv, L11, ptr, rows, vals):  # pragma: no cover
    """x = L^{-T} rho through the blocked factor (``U = L22'``, the dense part's upper factor):
    rho = (first term, dense part without the response)."""
    k1, l1 = tk[0], tl[0]
    q1 = k1 * l1
    m1 = U.shape[0] - 1
    x2 = np.empty(m1)
    for i in range(m1 - 1, -1, -1):
        acc = rho[q1 + i]
        for j in range(i + 1, m1):
            acc -= U[i, j] * x2[j]
        x2[i] = acc / U[i, i]
    w2 = _lam2_apply(x2, C, sigma, s0, tk, tl, tc, tst)
    T1 = np.zeros((k1, k1))
    for i in range(k1):
        for j in range(i + 1):
            T1[i, j] = C[tc[0] + i * k1 + j] / sigma
    x = np.empty(q1 + m1)
    for i in range(m1):
        x[q1 + i] = x2[i]
    aw = np.empty(k1)
    tw = np.empty(k1)
    for g in range(l1):
        for a in range(k1):
            aw[a] = 0.0
        for ia in range(ptr[g], ptr[g + 1]):
            r = rows[ia]
            if r < m1:
                for a in range(k1):
                    aw[a] += vals[ia, a] * w2[r]
        for a in range(k1):                       # tw = T1' aw
            acc = 0.0
            for i in range(a, k1):
                acc += T1[i, a] * aw[i]
            tw[a] = acc
        for a in range(k1 - 1, -1, -1):           # L11_g^{-T} rho_g
            acc = rho[g * k1 + a]
            for i in range(a + 1, k1):
                acc -= L11[g, i, a] * x[g * k1 + i]
            x[g * k1 + a] = acc / L11[g, a, a]
        for a in range(k1):
            acc = 0.0
            for b in range(k1):
                acc += Minv[g, a, b] * tw[b]
            x[g * k1 + a] -= acc
    return x


@numba.njit(cache=True, nogil=True)
def response_row(U, C, sigma, tk, tl, tc, L11, ptr, rows, vals):  # pragma: no cover - compiled
    """The response's row of the blocked factor over the effects: (L11_g^{-1} T1' c1_g, L22[m-1, :m-1])."""
    k1, l1 = tk[0], tl[0]
    q1 = k1 * l1
    m1 = U.shape[0] - 1
    rho = np.zeros(q1 + m1)
    for i in range(m1):
        rho[q1 + i] = U[i, m1]
    T1 = np.zeros((k1, k1))
    for i in range(k1):
        for j in range(i + 1):
            T1[i, j] = C[tc[0] + i * k1 + j] / sigma
    for g in range(l1):
        for ia in range(ptr[g], ptr[g + 1]):
            if rows[ia] == m1:
                for a in range(k1):
                    acc = 0.0
                    for i in range(a, k1):
                        acc += T1[i, a] * vals[ia, i]
                    rho[g * k1 + a] = acc
        for a in range(k1):                       # forward solve with L11_g
            acc = rho[g * k1 + a]
            for i in range(a):
                acc -= L11[g, a, i] * rho[g * k1 + i]
            rho[g * k1 + a] = acc / L11[g, a, a]
    return rho


@numba.njit(cache=True, nogil=True)
def finish(U, Sup, logdet1, C, sigma, s0, tk, tl, tc, tst, Minv, L11, ptr, rows, vals, n, sumlogw, gC):
    # pragma: no cover - compiled
    """Marginal log density and d/dC (into gC), d/dsigma from the dense part's upper factor ``U``
    and the inverse of its leading block (``Sup``: upper triangle used).

    A composition of leaf kernels that :func:`logp_grad_small` calls the same way itself:
    every level of calls between a kernel and its callees costs LLVM another pass over
    their code when the cache is empty.
    """
    rho = response_row(U, C, sigma, tk, tl, tc, L11, ptr, rows, vals)
    v = back_solve(U, rho, C, sigma, s0, tk, tl, tc, tst, Minv, L11, ptr, rows, vals)
    tr1 = _first_term_grad(Sup, v, C, sigma, s0, tk, tl, tc, tst, Minv, ptr, rows, vals, gC)
    _rest_grad(Sup, v, C, sigma, tk, tl, tc, tst, gC)
    return _value_dsigma(U, Sup, v, logdet1, tr1, sigma, tk[0] * tl[0], n, sumlogw)


@numba.njit(cache=True, nogil=True)
def _value_dsigma(U, Sup, v, logdet1, tr1, sigma, q1, n, sumlogw):  # pragma: no cover - compiled
    """(log p(y | hyperparameters), d/dsigma): ``tr1`` is the first term's part of tr(M^{-1})."""
    m1 = U.shape[0] - 1
    logdet = logdet1
    trMinv = 0.0
    for i in range(m1):
        logdet += 2.0 * math.log(U[i, i])
        trMinv += Sup[i, i]
    trMinv += tr1
    pwrss = U[m1, m1] ** 2
    vv = 0.0
    for i in range(v.shape[0]):
        vv += v[i] * v[i]
    logp = -0.5 * n * LOG2PI - n * math.log(sigma) + 0.5 * sumlogw - 0.5 * logdet - 0.5 * pwrss / sigma**2
    gsig = -(n - (q1 + m1) + trMinv) / sigma + (pwrss - vv) / sigma**3
    return logp, gsig


@numba.njit(cache=True, nogil=True)
def _rest_grad(Sup, v, C, sigma, tk, tl, tc, tst, gC):  # pragma: no cover - compiled
    """d/dC_t (into gC) of the terms after the first: H_t = sum_h u u' - I + Sinv_hh."""
    q1 = tk[0] * tl[0]
    for t in range(1, tk.shape[0]):
        k, st = tk[t], tst[t]
        Ht = np.zeros((k, k))
        for h in range(tl[t]):
            c0 = st + h * k
            for a in range(k):
                for b in range(k):
                    Ht[a, b] += Sup[c0 + min(a, b), c0 + max(a, b)] + v[q1 + c0 + a] * v[q1 + c0 + b] / sigma**2
        for a in range(k):
            Ht[a, a] -= tl[t]
        _grad_C(Ht, C, tc[t], k, gC)


@numba.njit(cache=True, nogil=True)
def _first_term_grad(Sup, v, C, sigma, s0, tk, tl, tc, tst, Minv, ptr, rows, vals, gC):  # pragma: no cover
    """d/dC_1 (into gC) from H = sum_g u u' - I + Minv_g + Minv_g T1' Q_g T1 Minv_g, with
    Q_g = A21_g' R A21_g; returns the first term's part of tr(M^{-1})."""
    k1, l1 = tk[0], tl[0]
    m1 = Sup.shape[0]
    m = m1 + 1
    # R = Lam2 Sinv Lam2' (raw scale), for the first term's selected inverse: formed only when a
    # rest term has k > 1; otherwise Lam2 is diagonal (f) and R is read off Sinv's upper triangle
    blocks = False
    for t in range(1, tk.shape[0]):
        if tk[t] > 1:
            blocks = True
    f = _diag_scale(C, sigma, s0, tk, tl, tc, tst, m)
    if blocks:
        R = np.empty((m1, m1))
        for i in range(m1):
            for j in range(i, m1):
                R[i, j] = Sup[i, j] * f[i] * f[j]
                R[j, i] = R[i, j]
        _scale_dense_sym(R, C, sigma, s0, tk, tl, tc, tst)
        f = np.ones(m)
    else:
        R = Sup
    trMinv = 0.0
    T1 = np.zeros((k1, k1))
    for i in range(k1):
        for j in range(i + 1):
            T1[i, j] = C[tc[0] + i * k1 + j] / sigma
    # first term: H = sum_g u u' - I + Minv_g + Minv_g T1' Q_g T1 Minv_g
    H = np.zeros((k1, k1))
    Q = np.empty((k1, k1))
    TQ = np.empty((k1, k1))
    E = np.empty((k1, k1))
    for g in range(l1):
        for a in range(k1):
            for b in range(k1):
                Q[a, b] = 0.0
        lo, hi = ptr[g], ptr[g + 1]
        for ib in range(lo, hi):
            rb = rows[ib]
            if rb == m1:
                continue
            fb = f[rb]
            for ia in range(ib, hi):               # rows ascending: ra >= rb, R[rb, ra] upper triangle
                ra = rows[ia]
                if ra == m1:
                    continue
                rr = R[rb, ra] * fb * f[ra]
                if ia == ib:
                    rr *= 0.5
                for a in range(k1):
                    for b in range(k1):
                        Q[a, b] += rr * (vals[ia, a] * vals[ib, b] + vals[ib, a] * vals[ia, b])
        # E = T1' Q T1, then Minv E Minv
        for a in range(k1):
            for b in range(k1):
                acc = 0.0
                for i in range(k1):
                    for j in range(k1):
                        acc += T1[i, a] * Q[i, j] * T1[j, b]
                TQ[a, b] = acc
        for a in range(k1):
            for b in range(k1):
                acc = 0.0
                for i in range(k1):
                    for j in range(k1):
                        acc += Minv[g, a, i] * TQ[i, j] * Minv[g, j, b]
                E[a, b] = acc + Minv[g, a, b]
        for a in range(k1):
            trMinv += E[a, a]
            for b in range(k1):
                H[a, b] += E[a, b] + v[g * k1 + a] * v[g * k1 + b] / sigma**2
    for a in range(k1):
        H[a, a] -= l1
    _grad_C(H, C, tc[0], k1, gC)
    return trMinv


@numba.njit(cache=True, nogil=True)
def _scale_dense_sym(R, C, sigma, s0, tk, tl, tc, tst):  # pragma: no cover - compiled
    """R <- T R T' over the level blocks of the rest terms with k > 1 (m-1 coordinates)."""
    m1 = R.shape[0]
    tmp = np.empty(R.shape[0])
    for t in range(1, tk.shape[0]):
        k, st = tk[t], tst[t]
        if k == 1:
            continue
        T = np.zeros((k, k))
        for i in range(k):
            for j in range(i + 1):
                T[i, j] = C[tc[t] + i * k + j] / sigma
        for h in range(tl[t]):
            c0 = st + h * k
            for r in range(m1):                       # right: R[:, blk] @ T'
                for a in range(k):
                    acc = 0.0
                    for b in range(a + 1):
                        acc += R[r, c0 + b] * T[a, b]
                    tmp[a] = acc
                for a in range(k):
                    R[r, c0 + a] = tmp[a]
            for c in range(m1):                       # left: T R[blk, :]
                for a in range(k):
                    acc = 0.0
                    for b in range(a + 1):
                        acc += T[a, b] * R[c0 + b, c]
                    tmp[a] = acc
                for a in range(k):
                    R[c0 + a, c] = tmp[a]


@numba.njit(cache=True, nogil=True)
def _grad_C(H, C, co, k, gC):  # pragma: no cover - compiled
    """gC (lower) = C^{-T} H for one term."""
    Cm = np.empty((k, k))
    for i in range(k):
        for j in range(k):
            Cm[i, j] = C[co + i * k + j] if j <= i else 0.0
    Ci = _tril_inv(Cm, k)
    for i in range(k):
        for j in range(i + 1):
            acc = 0.0
            for a in range(k):
                acc += Ci[a, i] * H[a, j]
            gC[co + i * k + j] = acc


@numba.njit(cache=True, nogil=True)
def logp_grad_small(x, tk, tl, tcorr, tx, tc, tst, sd_code, sd_par, cpc_beta, cpc_c0, sig_code, sig_par,
                    s0, A11, ptr, rows, vals, A22, n, sumlogw, z):  # pragma: no cover - compiled
    """Log density and gradient in one call (dense part factored here: small m).

    With a non-empty ``z`` (standard normals, one per effect) it draws instead: returns
    ``(sigma, [theta, C])``, theta the spherical effects drawn from their conditional
    normal (``L^{-T}(l / sigma + z)``) and C the flat factors: the posterior draws of b
    and beta reuse this one compiled kernel.
    """
    nc = tc[-1] + tk[-1] * tk[-1]
    C = np.zeros(nc)
    ncpc = cpc_beta.shape[0]
    zs = np.empty(max(ncpc, 1))
    rem = np.empty(max(ncpc, 1))
    lp, gx, sigma = hyper_forward(x, tk, tcorr, tx, tc, sd_code, sd_par, cpc_beta, cpc_c0, sig_code, sig_par,
                                  C, zs, rem)
    k1, l1 = tk[0], tl[0]
    Minv = np.empty((l1, k1, k1))
    L11 = np.empty((l1, k1, k1))
    S, ld1 = schur(C, sigma, s0, tk, tl, tc, tst, A11, ptr, rows, vals, A22, Minv, L11)
    U, Sinv = dense_chol_inv(S)
    if z.shape[0]:
        rho = response_row(U, C, sigma, tk, tl, tc, L11, ptr, rows, vals)
        for i in range(rho.shape[0]):
            rho[i] = rho[i] / sigma + z[i]
        th = back_solve(U, rho, C, sigma, s0, tk, tl, tc, tst, Minv, L11, ptr, rows, vals)
        out = np.empty(th.shape[0] + nc)
        for i in range(th.shape[0]):
            out[i] = th[i]
        for i in range(nc):
            out[th.shape[0] + i] = C[i]
        return sigma, out
    rho = response_row(U, C, sigma, tk, tl, tc, L11, ptr, rows, vals)
    v = back_solve(U, rho, C, sigma, s0, tk, tl, tc, tst, Minv, L11, ptr, rows, vals)
    gC = np.zeros(nc)
    tr1 = _first_term_grad(Sinv, v, C, sigma, s0, tk, tl, tc, tst, Minv, ptr, rows, vals, gC)
    _rest_grad(Sinv, v, C, sigma, tk, tl, tc, tst, gC)
    lm, gsig = _value_dsigma(U, Sinv, v, ld1, tr1, sigma, k1 * l1, n, sumlogw)
    hyper_backward(x, gC, tk, tcorr, tx, tc, sd_code, sd_par, C, zs, rem, gx)
    _, _, _, dsdx = positive_prior(sig_code, sig_par, x[x.shape[0] - 1])
    gx[x.shape[0] - 1] += gsig * dsdx
    return lp + lm, gx
