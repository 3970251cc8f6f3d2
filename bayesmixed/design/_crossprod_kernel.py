"""Compiled row loop of :func:`bayesmixed.design.crossprod.chunk_crossproducts`.

One pass over the rows of a chunk adds every row's products into the blocks. Each
product is formed as the in-memory engine forms it (``w * (a * b)`` or ``wx * b``) and
each block entry sums its rows in row order, as ``np.bincount`` does, so one chunk
gives the in-memory engine's numbers bit for bit.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def accumulate_rows(c1, Xi1, C, V, wXY, w, q1, A11, xy1, A22r, rxy, keys, vals):  # pragma: no cover
    """Add a chunk's rows into A11, xy1 (= [X y]'W Z1), Zr'W Zr, Zr'W[X y]; Zr'W Z1 as COO entries.

    ``c1`` (n,) first-term codes, ``Xi1`` (n, k1); ``C``/``V`` (n, kr) Z-rest columns and
    values; ``wXY`` (n, p + 1) weighted [X y]; ``keys``/``vals`` (n * kr * k1,) output.
    """
    n, k1 = Xi1.shape
    kr = C.shape[1]
    pp = wXY.shape[1]
    for r in range(n):
        g = c1[r]
        wr = w[r]
        for i in range(k1):
            xi = Xi1[r, i]
            for j in range(k1):
                A11[g, i, j] += wr * (xi * Xi1[r, j])
            col = g * k1 + i
            for a in range(pp):
                xy1[a, col] += wXY[r, a] * xi
        for s in range(kr):
            cs = C[r, s]
            vs = V[r, s]
            for t in range(kr):
                A22r[cs, C[r, t]] += wr * (vs * V[r, t])
            for a in range(pp):
                rxy[cs, a] += vs * wXY[r, a]
            for i in range(k1):
                e = (r * kr + s) * k1 + i
                keys[e] = cs * q1 + g * k1 + i
                vals[e] = wr * (vs * Xi1[r, i])


@numba.njit(cache=True, nogil=True)
def _stable_bucket(keys, vals, q1, n_buckets, by_row):  # pragma: no cover - compiled
    """Stable counting sort of (keys, vals) by ``key // q1`` (``by_row``) or ``key % q1``."""
    n = keys.shape[0]
    start = np.zeros(n_buckets + 1, dtype=np.int64)
    for e in range(n):
        b = keys[e] // q1 if by_row else keys[e] % q1
        start[b + 1] += 1
    for b in range(n_buckets):
        start[b + 1] += start[b]
    k2 = np.empty_like(keys)
    v2 = np.empty_like(vals)
    for e in range(n):
        b = keys[e] // q1 if by_row else keys[e] % q1
        pos = start[b]
        k2[pos] = keys[e]
        v2[pos] = vals[e]
        start[b] = pos + 1
    return k2, v2


@numba.njit(cache=True, nogil=True)
def sum_duplicates_radix(keys, vals, q1, n_rows):  # pragma: no cover - compiled
    """Sorted unique ``keys = row * q1 + col`` and their summed ``vals`` (equal keys summed in input
    order, as ``np.unique`` + ``np.bincount``), by two stable counting sorts: O(n)."""
    k, v = _stable_bucket(keys, vals, q1, q1, False)
    k, v = _stable_bucket(k, v, q1, n_rows, True)
    n = k.shape[0]
    m = 0
    for e in range(n):
        if m > 0 and k[e] == k[m - 1]:
            v[m - 1] += v[e]
        else:
            k[m] = k[e]
            v[m] = v[e]
            m += 1
    return k[:m].copy(), v[:m].copy()
