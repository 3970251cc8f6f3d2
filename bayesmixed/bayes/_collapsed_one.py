"""Compiled collapsed density of models with ONE random-effects term (numba, cached once per installation).

The same log density, gradient and conditional draws as
:func:`bayesmixed.bayes._collapsed_kernels.logp_grad_small`, specialised to a single
term ``(x1 + .. + xk | g)`` (any width k): its levels are the independent ``k x k``
blocks, the fixed effects and the response the dense part (``m = p + 1``), and the
scale of the dense part is the diagonal ``s0 / sigma``. One kernel over four flat
pieces (and two tiny shared callees), no slice assignments, no LAPACK: with an empty
cache it compiles in about half the general kernel's time, and the first fit of the
commonest teaching models (``(Days | Subject)``, ``(1 | county)``) never compiles the
general kernels. (Calling the pieces from Python instead would spare about 1 s more of
compiling, numba compiling each callee again inside its caller, but the sampler's
threads would then contend for the GIL: slower sampling.) Notation as in
:mod:`bayesmixed.bayes._collapsed_kernels`.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import types

from bayesmixed.bayes._addrcall import piece_addresses, propagating_caller
from bayesmixed.bayes._collapsed_hyper import _chol_inv, _log_sigmoid, positive_prior
from bayesmixed.bayes._collapsed_kernels import logp_grad_small

LOG2PI = math.log(2.0 * math.pi)
_NO_DRAW = np.zeros(0)                # the kernels' ``z`` when they evaluate the density (non-empty: draw)
# called from compiled code only: no CPython or C wrapper to generate (less to compile)
_INTERNAL = {"no_cpython_wrapper": True, "no_cfunc_wrapper": True}


@numba.njit(cache=True, nogil=True, **_INTERNAL)
def _hyper_one(x, k, corr, sd_code, sd_par, cpc_beta, cpc_c0, sig_code, sig_par, s0, C, sds, dsd, zs, rem, gx,
               T1, f):  # pragma: no cover - compiled
    """Forward transform of one term (sds, LKJ C-vine) and sigma: C, log prior (+ Jacobians) into gx.

    Returns ``(log prior, sigma, dsigma/dx)``; ``sds``/``dsd`` keep the sds and their
    derivatives, ``zs``/``rem`` the partial correlations and remaining norms (backward pass);
    ``T1 = C / sigma`` (k x k) and ``f`` the scale of the dense part (``s0 / sigma``, then 1).
    """
    lp = 0.0
    for i in range(x.shape[0]):
        gx[i] = 0.0
    L = np.empty((k, k))                                # lower triangle used
    if corr and k > 1:
        n = 0
        for i in range(1, k):
            r = 1.0
            for j in range(i):
                xi = x[k + n]
                bj = cpc_beta[n]
                lu, lv = _log_sigmoid(xi), _log_sigmoid(-xi)
                u = math.exp(lu)
                lp += bj * (lu + lv) - cpc_c0[n]
                gx[k + n] += bj * (1.0 - 2.0 * u)
                z = 2.0 * u - 1.0
                zs[n] = z
                rem[n] = r
                L[i, j] = z * math.sqrt(r)
                r -= L[i, j] ** 2
                n += 1
            L[i, i] = math.sqrt(r)
        L[0, 0] = 1.0
    else:
        for i in range(k):
            for j in range(i + 1):
                L[i, j] = 1.0 if i == j else 0.0
    for i in range(k):
        v, g, s, ds = positive_prior(sd_code[i], sd_par[i], x[i])
        lp += v
        gx[i] += g
        sds[i] = s
        dsd[i] = ds
        for j in range(k):
            C[i * k + j] = s * L[i, j] if j <= i else 0.0
    last = x.shape[0] - 1
    v, g, sigma, dsig = positive_prior(sig_code, sig_par, x[last])
    lp += v
    gx[last] += g
    for i in range(k):
        for j in range(k):
            T1[i, j] = C[i * k + j] / sigma if j <= i else 0.0
    for j in range(f.shape[0]):
        f[j] = s0[j] / sigma if j < s0.shape[0] else 1.0
    return lp, sigma, dsig


@numba.njit(cache=True, nogil=True, **_INTERNAL)
def _schur_one(T1, f, A11, ptr, rows, vals, A22, Minv, L11, L, Sinv):  # pragma: no cover - compiled
    """Factor the level blocks (``L11``, inverses ``Minv``), then the dense Schur complement
    ``S = F (A22 - sum_g A21_g D_g A21_g') F + diag(1, .., 1, 0)``, ``F = diag(f)`` (``L``, and
    ``Sinv`` the inverse of its leading block); returns ``log|M|``."""
    k = T1.shape[0]
    m = A22.shape[0]
    S = A22.copy()
    Mg = np.empty((k, k))
    D = np.empty((k, k))
    Li = np.empty((k, k))                               # lower triangle used
    logdet = 0.0
    for g in range(A11.shape[0]):
        for a in range(k):                              # Mg = T1' A11_g T1 + I
            for b in range(k):
                acc = 0.0
                for i in range(k):
                    ti = T1[i, a]
                    if ti != 0.0:
                        for j in range(k):
                            acc += ti * A11[g, i, j] * T1[j, b]
                Mg[a, b] = acc + (1.0 if a == b else 0.0)
        logdet += _chol_inv(Mg, L11[g], Minv[g], Li)
        for a in range(k):                              # D = T1 Minv T1'
            for b in range(k):
                acc = 0.0
                for i in range(k):
                    for j in range(k):
                        acc += T1[a, i] * Minv[g, i, j] * T1[b, j]
                D[a, b] = acc
        lo, hi = ptr[g], ptr[g + 1]
        for ia in range(lo, hi):
            ra = rows[ia]
            for ib in range(lo, ia + 1):                # lower triangle (rows ascending)
                rb = rows[ib]
                acc = 0.0
                for a in range(k):
                    va = vals[ia, a]
                    if va != 0.0:
                        for b in range(k):
                            acc += va * D[a, b] * vals[ib, b]
                S[ra, rb] -= acc
    for i in range(m):                                  # scale, + I but for the response (lower triangle)
        for j in range(i + 1):
            S[i, j] = S[i, j] * (f[i] * f[j]) + (1.0 if i == j and i < m - 1 else 0.0)
    return logdet + _chol_inv(S, L, Sinv, np.empty((m - 1, m - 1)))


@numba.njit(cache=True, nogil=True, **_INTERNAL)
def _solve_one(L, T1, s0, sigma, Minv, L11, ptr, rows, vals, z):  # pragma: no cover - compiled
    """The response's row of the blocked factor (``rho``), then ``x = L^{-T} rho``; with a
    non-empty ``z``, ``rho / sigma + z`` instead (a draw of the spherical effects)."""
    k = T1.shape[0]
    q1 = k * Minv.shape[0]
    m1 = L.shape[0] - 1
    rho = np.empty(q1 + m1)
    for i in range(q1):
        rho[i] = 0.0
    for i in range(m1):
        rho[q1 + i] = L[m1, i]
    for g in range(Minv.shape[0]):
        for ia in range(ptr[g], ptr[g + 1]):
            if rows[ia] == m1:
                for a in range(k):
                    acc = 0.0
                    for i in range(a, k):
                        acc += T1[i, a] * vals[ia, i]
                    rho[g * k + a] = acc
        for a in range(k):                              # forward solve with L11_g
            acc = rho[g * k + a]
            for i in range(a):
                acc -= L11[g, a, i] * rho[g * k + i]
            rho[g * k + a] = acc / L11[g, a, a]
    if z.shape[0]:
        for i in range(rho.shape[0]):
            rho[i] = rho[i] / sigma + z[i]
    x = np.empty(q1 + m1)
    for i in range(m1 - 1, -1, -1):                     # dense part: L22^{-T}
        acc = rho[q1 + i]
        for j in range(i + 1, m1):
            acc -= L[j, i] * x[q1 + j]
        x[q1 + i] = acc / L[i, i]
    w2 = np.empty(m1)
    for i in range(m1):
        w2[i] = x[q1 + i] * s0[i] / sigma
    aw = np.empty(k)
    tw = np.empty(k)
    for g in range(Minv.shape[0]):
        for a in range(k):
            aw[a] = 0.0
        for ia in range(ptr[g], ptr[g + 1]):
            r = rows[ia]
            if r < m1:
                for a in range(k):
                    aw[a] += vals[ia, a] * w2[r]
        for a in range(k):                              # tw = T1' aw
            acc = 0.0
            for i in range(a, k):
                acc += T1[i, a] * aw[i]
            tw[a] = acc
        for a in range(k - 1, -1, -1):                  # L11_g^{-T} rho_g - Minv_g tw
            acc = rho[g * k + a]
            for i in range(a + 1, k):
                acc -= L11[g, i, a] * x[g * k + i]
            x[g * k + a] = acc / L11[g, a, a]
        for a in range(k):
            acc = 0.0
            for b in range(k):
                acc += Minv[g, a, b] * tw[b]
            x[g * k + a] -= acc
    return x


@numba.njit(cache=True, nogil=True, **_INTERNAL)
def _grad_one(Sinv, v, T1, f, C, sigma, Minv, ptr, rows, vals, corr, sds, dsd, zs, rem, gx):
    # pragma: no cover - compiled
    """d/dC = C^{-T} H, H = sum_g u u' - I + Minv_g + Minv_g T1' Q_g T1 Minv_g with
    Q_g = A21_g' F Sinv F A21_g, then its pass back to the sds and partial correlations (into
    ``gx``); returns ``(tr(M^{-1}), |v|^2)``."""
    k = T1.shape[0]
    m1 = Sinv.shape[0]
    gC = np.empty(k * k)                                # lower triangle used
    trMinv = 0.0
    for i in range(m1):
        trMinv += Sinv[i, i]
    H = np.empty((k, k))
    Q = np.empty((k, k))
    for a in range(k):
        for b in range(k):
            H[a, b] = 0.0
    TQ = np.empty((k, k))
    for g in range(Minv.shape[0]):
        for a in range(k):
            for b in range(k):
                Q[a, b] = 0.0
        lo, hi = ptr[g], ptr[g + 1]
        for ib in range(lo, hi):
            rb = rows[ib]
            if rb == m1:
                continue
            for ia in range(ib, hi):                    # rows ascending: ra >= rb
                ra = rows[ia]
                if ra == m1:
                    continue
                rr = Sinv[rb, ra] * f[rb] * f[ra]
                if ia == ib:
                    rr *= 0.5
                for a in range(k):
                    for b in range(k):
                        Q[a, b] += rr * (vals[ia, a] * vals[ib, b] + vals[ib, a] * vals[ia, b])
        for a in range(k):                              # TQ = T1' Q T1
            for b in range(k):
                acc = 0.0
                for i in range(k):
                    for j in range(k):
                        acc += T1[i, a] * Q[i, j] * T1[j, b]
                TQ[a, b] = acc
        for a in range(k):                              # Minv TQ Minv + Minv
            for b in range(k):
                acc = 0.0
                for i in range(k):
                    for j in range(k):
                        acc += Minv[g, a, i] * TQ[i, j] * Minv[g, j, b]
                e = acc + Minv[g, a, b]
                if a == b:
                    trMinv += e
                H[a, b] += e + v[g * k + a] * v[g * k + b] / sigma**2
    for a in range(k):
        H[a, a] -= Minv.shape[0]
    Ci = np.empty((k, k))                               # C^{-1} (lower triangle)
    for j in range(k):
        Ci[j, j] = 1.0 / C[j * k + j]
        for i in range(j + 1, k):
            acc = 0.0
            for h in range(j, i):
                acc += C[i * k + h] * Ci[h, j]
            Ci[i, j] = -acc / C[i * k + i]
    for i in range(k):
        for j in range(i + 1):
            acc = 0.0
            for a in range(i, k):
                acc += Ci[a, i] * H[a, j]
            gC[i * k + j] = acc
    for i in range(k):
        acc = 0.0                                       # C[i, j] = s_i L[i, j]
        for j in range(i + 1):
            acc += gC[i * k + j] * C[i * k + j] / sds[i]
        gx[i] += acc * dsd[i]
    if corr and k > 1:
        n = 0
        for i in range(1, k):
            gr = 0.5 * gC[i * k + i] * sds[i] / (C[i * k + i] / sds[i])     # d/d r_i
            for jj in range(i - 1, -1, -1):
                idx = n + jj
                Lij = C[i * k + jj] / sds[i]
                gl = gC[i * k + jj] * sds[i] - 2.0 * Lij * gr          # r_{j+1} = r_j - L_ij^2
                sr = math.sqrt(rem[idx])
                u = 0.5 * (zs[idx] + 1.0)
                gx[k + n + jj] += gl * sr * 2.0 * u * (1.0 - u)
                gr = gr + gl * zs[idx] / (2.0 * sr)
            n += i
    vv = 0.0
    for i in range(v.shape[0]):
        vv += v[i] * v[i]
    return trMinv, vv


_F1, _F2, _F3 = (types.Array(types.float64, nd, "C") for nd in (1, 2, 3))
_I1, _I8, _D = types.Array(types.int64, 1, "C"), types.int64, types.float64
# the pieces' argument types as logp_grad_one passes them (checked when it compiles)
PIECES = {
    "hyper": (_hyper_one, types.UniTuple(_D, 3),
              (_F1, _I8, _I8, _I1, _F2, _F1, _F1, _I8, _F1, _F1, _F1, _F1, _F1, _F1, _F1, _F1, _F2, _F1)),
    "schur": (_schur_one, _D, (_F2, _F1, _F3, _I1, _I1, _F2, _F2, _F3, _F3, _F2, _F2)),
    "solve": (_solve_one, _F1, (_F2, _F2, _F1, _D, _F3, _F3, _I1, _I1, _F2, _F1)),
    "grad": (_grad_one, types.UniTuple(_D, 2),
             (_F2, _F1, _F2, _F1, _F1, _D, _F3, _I1, _I1, _F2, _I8, _F1, _F1, _F1, _F1, _F1)),
}
_hyper_at, _schur_at, _solve_at, _grad_at = (propagating_caller(name, res, args)
                                             for name, (_, res, args) in PIECES.items())
# with empty caches a second process compiles these two pieces while this one compiles the others
_IN_CHILD = ("schur", "grad")


@numba.njit(cache=True, nogil=True)
def logp_grad_one(x, addr, k, corr, sd_code, sd_par, cpc_beta, cpc_c0, sig_code, sig_par, s0, A11, ptr, rows,
                  vals, A22, n, sumlogw, z):  # pragma: no cover - compiled
    """Log density and gradient of a one-term model (``logp_grad_small``'s, its arguments for one term).

    ``addr``: the native addresses of :data:`PIECES` (the four pieces are called through their addresses,
    not compiled into this function). With a non-empty ``z`` it draws instead:
    ``(sigma, [theta, C])`` as ``logp_grad_small``.
    """
    ncpc = cpc_beta.shape[0] if cpc_beta.shape[0] > 0 else 1
    m, l1 = A22.shape[0], A11.shape[0]
    C, sds, dsd, zs, rem = np.empty(k * k), np.empty(k), np.empty(k), np.empty(ncpc), np.empty(ncpc)
    gx, T1, f = np.empty(x.shape[0]), np.empty((k, k)), np.empty(m)
    lp, sigma, dsig = _hyper_at(addr[0], (x, k, corr, sd_code, sd_par, cpc_beta, cpc_c0, sig_code, sig_par, s0, C,
                                          sds, dsd, zs, rem, gx, T1, f))
    Minv, L11, L, Sinv = np.empty((l1, k, k)), np.empty((l1, k, k)), np.empty((m, m)), np.empty((m - 1, m - 1))
    logdet = _schur_at(addr[1], (T1, f, A11, ptr, rows, vals, A22, Minv, L11, L, Sinv))
    v = _solve_at(addr[2], (L, T1, s0, sigma, Minv, L11, ptr, rows, vals, z))
    if z.shape[0]:
        out = np.empty(v.shape[0] + k * k)
        for i in range(v.shape[0]):
            out[i] = v[i]
        for i in range(k * k):
            out[v.shape[0] + i] = C[i]
        return sigma, out
    trMinv, vv = _grad_at(addr[3], (Sinv, v, T1, f, C, sigma, Minv, ptr, rows, vals, corr, sds, dsd, zs, rem, gx))
    pwrss = L[m - 1, m - 1] ** 2
    lm = -0.5 * n * LOG2PI - n * math.log(sigma) + 0.5 * sumlogw - 0.5 * logdet - 0.5 * pwrss / sigma**2
    gx[x.shape[0] - 1] += (-(n - v.shape[0] + trMinv) / sigma + (pwrss - vv) / sigma**3) * dsig
    return lp + lm, gx


def small_kernel(cd):
    """``(kernel, args)`` of the small route: ``kernel(x, *args, z)``, the one-term kernel for a
    single random-effects term, else :func:`~bayesmixed.bayes._collapsed_kernels.logp_grad_small`."""
    tk, _, tcorr, _, _, _, sd_code, sd_par, cpc_beta, cpc_c0, sig_code, sig_par = cd.args_hyper
    data = (cd.s0, cd.A11, cd.ptr, cd.rows, cd.vals, cd.A22, cd.n, cd.sumlogw)
    if len(tk) == 1:
        args = (int(tk[0]), int(tcorr[0]), sd_code, sd_par, cpc_beta, cpc_c0, sig_code, sig_par, *data, _NO_DRAW)
        return logp_grad_one, (piece_addresses(__name__, PIECES, _IN_CHILD, logp_grad_one, args), *args[:-1])
    return logp_grad_small, (*cd.args_hyper, *data)
