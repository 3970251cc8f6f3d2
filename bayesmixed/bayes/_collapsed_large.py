"""The collapsed density with a large dense part (InstEval: m = 1159), the GIL released throughout.

nutpie runs its chains in threads and calls the density from each of them; SciPy's
LAPACK wrappers hold the GIL, so two chains could not factor at the same time. Here the
Cholesky factor and the inverse of the dense Schur complement are computed by numba
kernels (``nogil``) calling LAPACK's ``dpotrf``/``dpotri`` from ``scipy.linalg.cython_lapack``
through function pointers passed as arguments (the kernels stay cacheable: the pointers
are not compiled in).

When the first term is scalar (``(1 | g)``), its level blocks are 1 x 1 and the first
term's contributions to the Schur complement and to the first term's trace are, per
entry of the complement, sums over the groups of levels that share the same
``a_g = sum_i w_i`` (the count of observations when unweighted)::

    S[r, c] -= sum_a  t^2 / (1 + t^2 a)   * P[(r, c), a]
    tr_1    += sum_a  t^2 / (1 + t^2 a)^2 * P[(r, c), a] * (f R f)[r, c]

with ``P[(r, c), a] = sum_{g: a_g = a} A21[g, r] A21[g, c]`` built once from the data
(:func:`scalar_pattern`): two streaming passes over a sparse table instead of a scattered
update per level (InstEval: 2.1e6 pair updates become 1.2e6 sequential products).
"""

from __future__ import annotations

import ctypes
import math

import numba
import numpy as np
from numba.extending import get_cython_function_address

from bayesmixed.bayes import _collapsed_hyper as H
from bayesmixed.bayes import _collapsed_kernels as K

LOG2PI = math.log(2.0 * math.pi)
_VOID = ctypes.c_void_p
# (uplo, n, a, lda, info): dpotrf and dpotri share the signature
_PROTO = ctypes.CFUNCTYPE(None, _VOID, _VOID, _VOID, _VOID, _VOID)
POTRF = _PROTO(get_cython_function_address("scipy.linalg.cython_lapack", "dpotrf"))
POTRI = _PROTO(get_cython_function_address("scipy.linalg.cython_lapack", "dpotri"))


@numba.njit(cache=True, nogil=True)
def _lapack_call(fn, S, n):  # pragma: no cover - compiled
    """fn('L', n, S, lda) on the C-ordered S: LAPACK's lower triangle is S's upper triangle."""
    uplo = np.array([76], dtype=np.uint8)                      # 'L'
    nn = np.array([n], dtype=np.int32)
    lda = np.array([S.shape[1]], dtype=np.int32)
    info = np.zeros(1, dtype=np.int32)
    fn(uplo.ctypes, nn.ctypes, S.ctypes, lda.ctypes, info.ctypes)
    return info[0]


@numba.njit(cache=True, nogil=True)
def factor_inverse(S, potrf, potri):  # pragma: no cover - compiled
    """(U, Sup): S's upper Cholesky factor (in place) and, in a new array, the inverse of its
    leading (m-1) block (upper triangle), as :func:`_collapsed_kernels.finish` takes them."""
    m = S.shape[0]
    if _lapack_call(potrf, S, m) != 0:
        raise np.linalg.LinAlgError("Schur complement not positive definite")
    m1 = m - 1
    Sup = np.empty((m1, m1))
    for i in range(m1):
        for j in range(i, m1):
            Sup[i, j] = S[i, j]
    if _lapack_call(potri, Sup, m1) != 0:
        raise np.linalg.LinAlgError("singular factor")
    return S, Sup


class _Hyper:
    """The hyperparameters' part of one evaluation: C and sigma from ``x`` with the priors'
    log density (``hyper_forward``), and the chain rule back to ``x`` (:meth:`finish`)."""

    def __init__(self, cd, x) -> None:
        self.args, self.x = cd.args_hyper, x
        tk, tl, tcorr, tx, tc, tst, sd_code, sd_par, cpc_beta, cpc_c0, sig_code, sig_par = self.args
        self.C = np.zeros(int(tc[-1] + tk[-1] ** 2))
        ncpc = max(len(cpc_beta), 1)
        self.zs, self.rem = np.empty(ncpc), np.empty(ncpc)
        self.lp, self.gx, self.sigma = H.hyper_forward(x, tk, tcorr, tx, tc, sd_code, sd_par, cpc_beta, cpc_c0,
                                                       sig_code, sig_par, self.C, self.zs, self.rem)

    def finish(self, lm: float, gC: np.ndarray, gsig: float):
        """``(log density, gradient in x)`` from the likelihood's value and its derivatives in C and sigma."""
        tk, tl, tcorr, tx, tc, tst, sd_code, sd_par, cpc_beta, cpc_c0, sig_code, sig_par = self.args
        x, gx = self.x, self.gx
        H.hyper_backward(x, gC, tk, tcorr, tx, tc, sd_code, sd_par, self.C, self.zs, self.rem, gx)
        _, _, _, dsdx = H.positive_prior(sig_code, sig_par, x[-1])
        gx[-1] += gsig * dsdx
        return self.lp + lm, gx


def logp_grad_general(cd, x):
    """Any first term: the kernels' blocked Schur complement, then LAPACK without the GIL."""
    tk, tl, _, _, tc, tst = cd.args_hyper[:6]
    hy = _Hyper(cd, x)
    C, sigma = hy.C, hy.sigma
    l1, k1 = int(tl[0]), int(tk[0])
    Minv, L11 = np.empty((l1, k1, k1)), np.empty((l1, k1, k1))
    S, ld1 = K.schur(C, sigma, cd.s0, tk, tl, tc, tst, cd.A11, cd.ptr, cd.rows, cd.vals, cd.A22, Minv, L11)
    U, Sup = factor_inverse(S, POTRF, POTRI)
    gC = np.zeros(C.shape[0])
    lm, gsig = K.finish(U, Sup, ld1, C, sigma, cd.s0, tk, tl, tc, tst, Minv, L11, cd.ptr, cd.rows, cd.vals,
                        cd.n, cd.sumlogw, gC)
    return hy.finish(lm, gC, gsig)


# ---- scalar first term --------------------------------------------------------------
def scalar_pattern(cd):
    """The data-only table P of the module docstring for a scalar first term (``None`` otherwise).

    Returns ``(ga, gcnt, er, ec, eptr, egrp, ecoef)``: the distinct ``a_g`` and how many
    levels have each; the entries ``(er >= ec)`` of the complement's lower triangle the first
    term reaches, and per entry (CSR ``eptr``) its groups and summed products.
    """
    if int(cd.args_hyper[0][0]) != 1:
        return None
    m = cd.m
    a = cd.A11[:, 0, 0]
    ga, ginv, gcnt = np.unique(a, return_inverse=True, return_counts=True)
    key, coef = _pairs(cd.ptr, cd.rows, cd.vals[:, 0], ginv.astype(np.int64), m, len(ga))
    order = np.argsort(key, kind="stable")
    key, coef = key[order], coef[order]
    first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    coef = np.add.reduceat(coef, first)
    key = key[first]
    entry, egrp = key // len(ga), (key % len(ga)).astype(np.int32)
    starts = np.flatnonzero(np.r_[True, entry[1:] != entry[:-1]])
    ue = entry[starts]
    eptr = np.r_[starts, len(entry)].astype(np.int64)
    return (ga.astype(float), gcnt.astype(float), (ue // m).astype(np.int64), (ue % m).astype(np.int64), eptr,
            egrp, np.ascontiguousarray(coef))


@numba.njit(cache=True)
def _pairs(ptr, rows, v, ginv, m, ng):  # pragma: no cover - compiled
    """Every (row >= col) pair of every level as the key (row * m + col) * ng + group, and v_r v_c."""
    npair = 0
    for g in range(ptr.shape[0] - 1):
        c = ptr[g + 1] - ptr[g]
        npair += c * (c + 1) // 2
    key = np.empty(npair, dtype=np.int64)
    coef = np.empty(npair)
    n = 0
    for g in range(ptr.shape[0] - 1):
        for ia in range(ptr[g], ptr[g + 1]):
            for ib in range(ptr[g], ia + 1):        # rows ascending within a level: rows[ia] >= rows[ib]
                key[n] = (rows[ia] * m + rows[ib]) * ng + ginv[g]
                coef[n] = v[ia] * v[ib]
                n += 1
    return key, coef


@numba.njit(cache=True, nogil=True)
def schur_scalar(C, sigma, s0, tk, tl, tc, tst, A11, A22, ga, gcnt, er, ec, eptr, egrp, ecoef, Minv, L11, S):
    # pragma: no cover - compiled
    """:func:`_collapsed_kernels.schur` for a scalar first term, from the table P, into ``S``
    (m x m, C order: a workspace reused across calls); returns the first term's log det."""
    t2 = (C[tc[0]] / sigma) ** 2
    ng = ga.shape[0]
    dk = np.empty(ng)
    logdet = 0.0
    for a in range(ng):
        mg = 1.0 + t2 * ga[a]
        dk[a] = t2 / mg
        logdet += gcnt[a] * math.log(mg)
    for g in range(tl[0]):
        mg = 1.0 + t2 * A11[g, 0, 0]
        L11[g, 0, 0] = math.sqrt(mg)
        Minv[g, 0, 0] = 1.0 / mg
    m = A22.shape[0]
    S[:, :] = A22
    for e in range(er.shape[0]):
        acc = 0.0
        for j in range(eptr[e], eptr[e + 1]):
            acc += dk[egrp[j]] * ecoef[j]
        S[er[e], ec[e]] -= acc
    _mirror_lower(S)
    K._scale_dense(S, C, sigma, s0, tk, tl, tc, tst, True)
    for i in range(m - 1):
        S[i, i] += 1.0
    return logdet


@numba.njit(cache=True, nogil=True)
def _mirror_lower(S):  # pragma: no cover - compiled
    """S[i, j] = S[j, i] for j > i, in 64 x 64 tiles."""
    m = S.shape[0]
    bs = 64
    for i0 in range(0, m, bs):
        for j0 in range(i0, m, bs):
            for i in range(i0, min(i0 + bs, m)):
                for j in range(max(j0, i + 1), min(j0 + bs, m)):
                    S[i, j] = S[j, i]


@numba.njit(cache=True, nogil=True)
def _sym_scaled(Sup, C, sigma, s0, tk, tl, tc, tst):  # pragma: no cover - compiled
    """R = Lam2 Sinv Lam2' (m-1 coordinates) from the upper triangle of Sinv."""
    m1 = Sup.shape[0]
    f = K._diag_scale(C, sigma, s0, tk, tl, tc, tst, m1 + 1)
    R = np.empty((m1, m1))
    for i in range(m1):
        for j in range(i, m1):
            v = Sup[i, j] * f[i] * f[j]
            R[i, j] = v
            R[j, i] = v
    K._scale_dense_sym(R, C, sigma, s0, tk, tl, tc, tst)
    return R


@numba.njit(cache=True, nogil=True)
def first_trace_scalar(Sup, C, sigma, s0, tk, tl, tc, tst, ga, er, ec, eptr, egrp, ecoef):
    # pragma: no cover - compiled
    """sum_g Minv_g^2 t^2 Q_g (the first term's trace beyond sum_g Minv_g) from the table P."""
    m1 = Sup.shape[0]
    blocks = False
    for t in range(1, tk.shape[0]):
        if tk[t] > 1:
            blocks = True
    if blocks:
        R = _sym_scaled(Sup, C, sigma, s0, tk, tl, tc, tst)
        f = np.ones(m1 + 1)
    else:
        R = Sup
        f = K._diag_scale(C, sigma, s0, tk, tl, tc, tst, m1 + 1)
    t2 = (C[tc[0]] / sigma) ** 2
    ng = ga.shape[0]
    ck = np.empty(ng)
    for a in range(ng):
        mg = 1.0 + t2 * ga[a]
        ck[a] = t2 / (mg * mg)
    tr = 0.0
    for e in range(er.shape[0]):
        r, c = er[e], ec[e]
        if r == m1:                                # the response's row
            continue
        acc = 0.0
        for j in range(eptr[e], eptr[e + 1]):
            acc += ck[egrp[j]] * ecoef[j]
        w = acc * R[c, r] * f[c] * f[r]
        tr += w if r == c else 2.0 * w
    return tr


@numba.njit(cache=True, nogil=True)
def factor_finish_scalar(S, logdet1, C, sigma, s0, tk, tl, tc, tst, Minv, L11, ptr, rows, vals, n, sumlogw,
                         ga, er, ec, eptr, egrp, ecoef, gC, potrf, potri):  # pragma: no cover - compiled
    """:func:`_collapsed_kernels.finish` for a scalar first term, factoring ``S`` in place: the
    solves on the factor first, then its leading block inverted over it (no copy)."""
    l1 = tl[0]
    q1 = l1
    m1 = S.shape[0] - 1
    if _lapack_call(potrf, S, m1 + 1) != 0:
        raise np.linalg.LinAlgError("Schur complement not positive definite")
    U = S
    logdet = logdet1
    for i in range(m1):
        logdet += 2.0 * math.log(U[i, i])
    pwrss = U[m1, m1] ** 2
    rho = K.response_row(U, C, sigma, tk, tl, tc, L11, ptr, rows, vals)
    v = K.back_solve(U, rho, C, sigma, s0, tk, tl, tc, tst, Minv, L11, ptr, rows, vals)
    vv = 0.0
    for i in range(v.shape[0]):
        vv += v[i] * v[i]
    rss = pwrss - vv
    logp = -0.5 * n * LOG2PI - n * math.log(sigma) + 0.5 * sumlogw - 0.5 * logdet - 0.5 * pwrss / sigma**2
    if _lapack_call(potri, S, m1) != 0:
        raise np.linalg.LinAlgError("singular factor")
    Sup = S[:m1, :m1]
    trMinv = 0.0
    for i in range(m1):
        trMinv += Sup[i, i]
    tr1 = first_trace_scalar(Sup, C, sigma, s0, tk, tl, tc, tst, ga, er, ec, eptr, egrp, ecoef)
    sm, su = 0.0, 0.0
    for g in range(l1):
        sm += Minv[g, 0, 0]
        su += v[g] * v[g]
    trMinv += sm + tr1
    h1 = sm + tr1 + su / sigma**2 - l1              # H = sum_g u_g^2 - 1 + (M^{-1})_gg
    H1 = np.empty((1, 1))
    H1[0, 0] = h1
    K._grad_C(H1, C, tc[0], 1, gC)
    K._rest_grad(Sup, v, C, sigma, tk, tl, tc, tst, gC)
    gsig = -(n - (q1 + m1) + trMinv) / sigma + rss / sigma**3
    return logp, gsig


def logp_grad_scalar(cd, x, pat, S=None):
    """The collapsed density and gradient for a scalar first term (``pat``: :func:`scalar_pattern`;
    ``S``: an m x m workspace, e.g. one per thread)."""
    tk, tl, _, _, tc, tst = cd.args_hyper[:6]
    ga, gcnt, er, ec, eptr, egrp, ecoef = pat
    hy = _Hyper(cd, x)
    C, sigma = hy.C, hy.sigma
    l1 = int(tl[0])
    Minv, L11 = np.empty((l1, 1, 1)), np.empty((l1, 1, 1))
    S = np.empty((cd.m, cd.m)) if S is None else S
    ld1 = schur_scalar(C, sigma, cd.s0, tk, tl, tc, tst, cd.A11, cd.A22, ga, gcnt, er, ec, eptr, egrp, ecoef,
                       Minv, L11, S)
    gC = np.zeros(C.shape[0])
    lm, gsig = factor_finish_scalar(S, ld1, C, sigma, cd.s0, tk, tl, tc, tst, Minv, L11, cd.ptr, cd.rows,
                                    cd.vals, cd.n, cd.sumlogw, ga, er, ec, eptr, egrp, ecoef, gC, POTRF, POTRI)
    return hy.finish(lm, gC, gsig)
