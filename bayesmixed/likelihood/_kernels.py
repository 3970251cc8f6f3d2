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
