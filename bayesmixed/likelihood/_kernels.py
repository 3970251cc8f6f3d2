"""Compiled inner loop for large designs: P += A21 D A21' over the first term's levels.

Used only when the scatter-add index of the NumPy path would be large; numba
(a PyMC/PyTensor dependency) compiles it once and caches it on disk.
"""

from __future__ import annotations

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
