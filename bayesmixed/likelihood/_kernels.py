"""Compiled loops of the blocked factor: the Schur complement A21 D A21' when A21 is
sparse, and the first term's batch of tiny Cholesky factors.

numba (a PyMC/PyTensor dependency) compiles them once and caches them on disk.
"""

from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def rank_update_lower(P, indptr, indices, data, D, k):  # pragma: no cover - compiled
    """Lower triangle of P += sum_g A21[:, g-block] D_g A21[:, g-block]' (CSC, sorted indices)."""
    n_levels = D.shape[0]
    for g in range(n_levels):
        for c1 in range(k):
            j1 = g * k + c1
            for c2 in range(k):
                j2 = g * k + c2
                dv = D[g, c1, c2]
                if dv == 0.0:
                    continue
                for a in range(indptr[j1], indptr[j1 + 1]):
                    ia = indices[a]
                    va = data[a] * dv
                    for b in range(indptr[j2], indptr[j2 + 1]):
                        ib = indices[b]
                        if ib >= ia:
                            P[ib, ia] += va * data[b]
    return P


def symmetric_from_lower(P: np.ndarray) -> np.ndarray:
    return np.tril(P) + np.tril(P, -1).T


@numba.njit(cache=True, nogil=True)
def schur_scalar_upper(A22, indptr, indices, data, d, scale, q_rest):  # pragma: no cover
    """Upper triangle (row-major, so contiguous) of
    S = diag(scale) (A22 - A21 diag(d) A21') diag(scale) + diag(I_qr, 0).

    The first term is scalar (k1 = 1), so each column j of A21 adds
    d_j a_j a_j'; CSC row indices are sorted, so pairs b >= a land in the upper
    triangle U[ia, ib]. ``U.T`` (Fortran order) is then the lower triangle of S.
    """
    m = A22.shape[0]
    U = np.empty((m, m))
    for i in range(m):
        for j in range(i, m):
            U[i, j] = A22[i, j]
    for j in range(indptr.shape[0] - 1):
        dj = d[j]
        for a in range(indptr[j], indptr[j + 1]):
            ia = indices[a]
            va = data[a] * dj
            for b in range(a, indptr[j + 1]):
                U[ia, indices[b]] -= va * data[b]
    for i in range(m):
        si = scale[i]
        for j in range(i, m):
            U[i, j] *= si * scale[j]
        if i < q_rest:
            U[i, i] += 1.0
    return U


@numba.njit(cache=True, nogil=True)
def first_term_blocks(A11, T):  # pragma: no cover - compiled
    """Per level g: L_g = chol(T' A11_g T + I), L_g^{-1} and W_g = T L_g^{-T} (so D_g = W_g W_g').

    T is the first term's lower-triangular (k, k) factor; A11 is (l, k, k).
    """
    n_levels, k = A11.shape[0], A11.shape[1]
    L = np.zeros((n_levels, k, k))
    Linv = np.zeros((n_levels, k, k))
    W = np.zeros((n_levels, k, k))
    AT = np.empty((k, k))
    M = np.empty((k, k))
    for g in range(n_levels):
        for i in range(k):                       # AT = A11_g T
            for j in range(k):
                s = 0.0
                for r in range(j, k):            # T lower: T[r, j] = 0 for r < j
                    s += A11[g, i, r] * T[r, j]
                AT[i, j] = s
        for i in range(k):                       # M = T' AT + I
            for j in range(k):
                s = 1.0 if i == j else 0.0
                for r in range(i, k):
                    s += T[r, i] * AT[r, j]
                M[i, j] = s
        for j in range(k):                       # Cholesky, lower
            s = M[j, j]
            for r in range(j):
                s -= L[g, j, r] * L[g, j, r]
            d = math.sqrt(s)
            L[g, j, j] = d
            for i in range(j + 1, k):
                s = M[i, j]
                for r in range(j):
                    s -= L[g, i, r] * L[g, j, r]
                L[g, i, j] = s / d
        for j in range(k):                       # L^{-1}, lower, by forward substitution
            Linv[g, j, j] = 1.0 / L[g, j, j]
            for i in range(j + 1, k):
                s = 0.0
                for r in range(j, i):
                    s -= L[g, i, r] * Linv[g, r, j]
                Linv[g, i, j] = s / L[g, i, i]
        for i in range(k):                       # W = T L^{-T}: W[i, j] = sum_r T[i, r] Linv[j, r]
            for j in range(k):
                s = 0.0
                for r in range(min(i, j) + 1):
                    s += T[i, r] * Linv[g, j, r]
                W[g, i, j] = s
    return L, Linv, W
