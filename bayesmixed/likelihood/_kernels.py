"""Compiled loops of the blocked factor: the Schur complement A21 D A21' when A21 is
sparse, and the first term's batch of tiny Cholesky factors.

numba (a PyMC/PyTensor dependency) compiles them once and caches them on disk.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

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


def schur_scalar_upper(A22, indptr, indices, data, d, scale, q_rest, n_threads=1):
    """Upper triangle (row-major, so contiguous) of
    S = diag(scale) (A22 - A21 diag(d) A21') diag(scale) + diag(I_qr, 0).

    The first term is scalar (k1 = 1), so each column j of A21 adds
    d_j a_j a_j'; CSC row indices are sorted, so pairs b >= a land in the upper
    triangle U[ia, ib]. ``U.T`` (Fortran order) is then the lower triangle of S.
    The rows of U are visited in tiles that fit a core's cache (:func:`schur_scalar_tiles`);
    ``n_threads > 1`` shares the tiles between threads (the kernel releases the GIL; each
    row has one owner and is summed in the same order, so the result is identical).
    """
    U, _ = schur_scalar_upper_v(A22, indptr, indices, data, d, scale, q_rest, None, 0, n_threads)
    return U


def schur_scalar_upper_v(A22, indptr, indices, data, d, scale, q_rest, d2=None, tail=0, n_threads=1):
    """:func:`schur_scalar_upper`'s U and, in the same pass, V = A21v diag(d2) A21v' (upper, unscaled).

    ``A21v`` is A21 without the last ``tail`` entries of each column (the layout of
    ``BlockedSystem`` puts the X and y rows last), so V is ``(m - tail) x (m - tail)``;
    ``d2=None``: no V (returned as a 0 x 0 array). Used for the trace of the gradient.
    (Systems with fixed weights go through ``_schur_cache`` and ``_schur_classes`` instead:
    dense columns by BLAS, equal-weight classes pre-summed, products reused.)
    """
    m = A22.shape[0]
    U = np.empty((m, m))
    n_v = 0 if d2 is None else m - tail
    V = np.zeros((n_v, n_v))
    d2 = d if d2 is None else d2
    args = (U, V, A22, indptr, indices, data, d, d2, scale, q_rest, tail, schur_tile(m))
    if n_threads <= 1:
        schur_scalar_tiles(*args, 0, 1)
        return U, V
    futures = [_pool().submit(schur_scalar_tiles, *args, part, n_threads) for part in range(1, n_threads)]
    schur_scalar_tiles(*args, 0, n_threads)
    for f in futures:
        f.result()
    return U, V


def schur_tile(m: int) -> int:
    """Rows of U per tile: about 1 MB of U (half a core's L2 cache here), at least 16 rows."""
    return max(16, (1 << 17) // max(m, 1))


_POOL: dict = {}


def _pool() -> ThreadPoolExecutor:
    """A small persistent pool for the kernels' extra threads (they wait on a queue, never spin).

    One per process: a forked child (whose copy of the pool has no threads) makes its own.
    """
    pid = os.getpid()
    if _POOL.get("pid") != pid:
        _POOL["pid"], _POOL["pool"] = pid, ThreadPoolExecutor(
            max_workers=max(1, (os.cpu_count() or 2) - 1), thread_name_prefix="bayesmixed-kernel")
    return _POOL["pool"]


@numba.njit(cache=True, nogil=True)
def schur_scalar_tiles(U, V, A22, indptr, indices, data, d, d2, scale, q_rest, tail, tile,
                       part, n_parts):  # pragma: no cover - compiled
    """The tiles ``t % n_parts == part`` (rows ``t * tile`` on) of :func:`schur_scalar_upper_v`.

    Per tile, every column j adds its pairs whose first row lies in the tile, so all the
    writes of a tile go to ``tile`` rows of U (cache-resident); ``ptr[j]`` walks down each
    column's sorted rows tile by tile. Each U[i, k] sums the columns in the same order
    whatever the tiling or the threads.
    """
    m = A22.shape[0]
    n_v = V.shape[0]
    ncol = indptr.shape[0] - 1
    ptr = indptr[:-1].copy()
    n_tiles = (m + tile - 1) // tile
    for t in range(part, n_tiles, n_parts):
        r0 = t * tile
        r1 = min(r0 + tile, m)
        for i in range(r0, r1):
            for k in range(i, m):
                U[i, k] = A22[i, k]
        for j in range(ncol):
            a = ptr[j]
            end = indptr[j + 1]
            while a < end and indices[a] < r0:
                a += 1
            dj = d[j]
            endv = end - tail
            while a < end and indices[a] < r1:
                ia = indices[a]
                va = data[a] * dj
                if n_v > 0 and a < endv:
                    wa = data[a] * d2[j]
                    for b in range(a, endv):
                        x = data[b]
                        ib = indices[b]
                        U[ia, ib] -= va * x
                        V[ia, ib] += wa * x
                    for b in range(endv, end):
                        U[ia, indices[b]] -= va * data[b]
                else:
                    for b in range(a, end):
                        U[ia, indices[b]] -= va * data[b]
                a += 1
            ptr[j] = a
        for i in range(r0, r1):
            si = scale[i]
            for k in range(i, m):
                U[i, k] *= si * scale[k]
            if i < q_rest:
                U[i, i] += 1.0


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


@numba.njit(cache=True)
def coo_pattern_csc(rows, cols, n_rows, n_cols):  # pragma: no cover - compiled
    """Distinct (row, col) pairs of a COO pattern in CSC order (by column, rows ascending).

    Two stable counting sorts (by row, then by column) and one pass to drop repeats:
    O(N + n_rows + n_cols), where ``np.unique`` on the keys sorts. Returns the distinct
    rows and columns, and ``inv`` (each entry's index among them).
    """
    N = rows.shape[0]
    start = np.zeros(n_rows + 1, dtype=np.int64)
    for e in range(N):
        start[rows[e] + 1] += 1
    for r in range(n_rows):
        start[r + 1] += start[r]
    by_row = np.empty(N, dtype=np.int64)
    for e in range(N):
        by_row[start[rows[e]]] = e
        start[rows[e]] += 1
    cstart = np.zeros(n_cols + 1, dtype=np.int64)
    for e in range(N):
        cstart[cols[e] + 1] += 1
    for c in range(n_cols):
        cstart[c + 1] += cstart[c]
    order = np.empty(N, dtype=np.int64)
    for t in range(N):
        e = by_row[t]
        order[cstart[cols[e]]] = e
        cstart[cols[e]] += 1
    inv = np.empty(N, dtype=np.int64)
    urow = np.empty(N, dtype=np.int64)
    ucol = np.empty(N, dtype=np.int64)
    nu = 0
    prev_r, prev_c = -1, -1
    for t in range(N):
        e = order[t]
        if rows[e] != prev_r or cols[e] != prev_c:
            prev_r, prev_c = rows[e], cols[e]
            urow[nu], ucol[nu] = prev_r, prev_c
            nu += 1
        inv[e] = nu - 1
    return urow[:nu], ucol[:nu], inv


@numba.njit(cache=True, nogil=True)
def csc_rmatvec(indptr, indices, data, v):  # pragma: no cover - compiled
    """``A' v`` for a CSC matrix A: each column's entries times ``v`` summed in order from 0."""
    n = indptr.shape[0] - 1
    out = np.empty(n)
    for j in range(n):
        s = 0.0
        for a in range(indptr[j], indptr[j + 1]):
            s += data[a] * v[indices[a]]
        out[j] = s
    return out


def _numba_setup() -> None:
    """numba's one-time set-up in this process, at import rather than in the first fit.

    The first call of any compiled function builds numba's typing and target registries
    (importing the rest of numba and its extensions: about 0.2 CPU s here) before its
    cached machine code can load; a tiny call here pays that with the package's other
    imports, so that a first fit costs what later fits do.
    """
    csc_rmatvec(np.zeros(2, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(1))


_numba_setup()
