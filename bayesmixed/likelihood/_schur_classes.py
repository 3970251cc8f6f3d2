"""The scalar first term's Schur product split three ways: dense columns, equal-weight classes, the rest.

For a scalar first term the product is ``A22 - sum_j d_j a_j a_j'`` over its levels j
(``a_j``: column j of the sparse ``A21``, ``d_j = t^2 / (t^2 n_j + 1)`` with ``n_j`` the
level's ``A11`` entry, the weighted row count). With hundreds of thousands of levels
(issue 13) the scattered updates cost ``sum_j nnz_j^2 / 2`` multiply-adds per
evaluation, about a nanosecond each. :class:`ClassPlan` takes two kinds of columns out
of that loop, once per system:

- **dense columns** (``nnz_j >= HEAVY_FRACTION * m``: the most active levels) are kept
  as a dense ``m x H`` block and added by BLAS (``dsyrk``), some fifty times faster per
  multiply-add than scattered updates;
- **classes of equal weight**: levels with the same ``A11`` entry have the same ``d_j``
  at every theta, so ``M_c = sum_{j in c} a_j a_j'`` is summed once and an evaluation
  adds ``d_c M_c``. Only classes whose scattered work exceeds ``CLASS_MIN_RATIO`` times
  the ``m (m + 1) / 2`` entries of ``M_c`` are kept, largest first, within
  ``CLASS_BYTES`` of memory (packed upper triangles);

and the remaining columns go through a compiled kernel (:func:`rest_upper`: the row
tiles of :func:`bayesmixed.likelihood._kernels.schur_scalar_upper`, four rows of a
column at a time so that each load of a later entry serves four updates; the same
sums, bit for bit). The sums are the same
numbers in another order (relative differences of order 1e-14, far inside the 1e-10
the engines are held to); the plan is used only above ``MIN_WORK`` multiply-adds per
evaluation, so small problems keep the kernel's exact order.
"""

from __future__ import annotations

import numba
import numpy as np
import scipy.linalg.blas as fblas

from bayesmixed._threads import blas_threads_for
from bayesmixed.likelihood import _kernels

MIN_WORK = 1e7                  # multiply-adds per evaluation below which the kernel alone is used
HEAVY_FRACTION = 0.3            # a column with at least this share of the m rows is dense
CLASS_MIN_RATIO = 2.0           # a class is pre-summed when its work exceeds this many times its entries
CLASS_BYTES = 1 << 30           # memory of the pre-summed classes
HEAVY_BYTES = 256 << 20         # memory of the dense block
TILE_BYTES = 2 << 20            # rows of the target per tile of rest_upper: about a core's L2 cache


class ClassPlan:
    """Dense columns, pre-summed classes and the sparse rest of one system's ``A21`` (see the module).

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> rng = np.random.default_rng(0)
    >>> A = sp.csc_array(sp.hstack([rng.normal(size=(30, 5)),                   # five dense columns
    ...                             sp.random(30, 395, density=0.1, random_state=1)], format="csc"))
    >>> n = rng.integers(1, 4, 400).astype(float)              # three classes of levels
    >>> A22 = (A @ A.T).toarray() + np.eye(30)
    >>> plan = ClassPlan.build(A22, A.indptr.astype(np.int64), A.indices.astype(np.int64), A.data, n,
    ...                        min_work=0, class_min_ratio=0.0)
    >>> plan.n_heavy, plan.n_classes
    (5, 3)
    >>> d = 0.25 / (0.25 * n + 1)
    >>> P = plan.unscaled(d)
    >>> ref = A22 - ((A.toarray() * d) @ A.toarray().T)
    >>> bool(np.allclose(np.triu(P), np.triu(ref), rtol=1e-13, atol=1e-12))
    True
    """

    def __init__(self, A22, rest, d_index, heavy_cols, heavy_B, class_cols, class_of, M) -> None:
        self.A22, self.rest, self.d_index = A22, rest, d_index
        self.heavy_cols, self.heavy_B = heavy_cols, heavy_B
        self.class_cols, self.class_of, self.M = class_cols, class_of, M

    @property
    def n_heavy(self) -> int:
        return int(self.heavy_cols.size)

    @property
    def n_classes(self) -> int:
        return int(self.M.shape[0])

    @classmethod
    def build(cls, A22, indptr, indices, data, n_key, *, min_work: float | None = None,
              class_min_ratio: float | None = None, class_bytes: int | None = None) -> "ClassPlan | None":
        """The plan for a CSC ``A21`` whose column j has weight key ``n_key[j]``; None when not worth it.

        The thresholds default to the module's ``MIN_WORK``, ``CLASS_MIN_RATIO`` and ``CLASS_BYTES``.
        """
        min_work = MIN_WORK if min_work is None else min_work
        class_min_ratio = CLASS_MIN_RATIO if class_min_ratio is None else class_min_ratio
        class_bytes = CLASS_BYTES if class_bytes is None else class_bytes
        m = A22.shape[0]
        counts = np.diff(indptr).astype(np.float64)
        work = counts * (counts + 1.0) / 2.0
        if work.sum() < min_work:
            return None
        heavy = np.flatnonzero(counts >= HEAVY_FRACTION * m)
        heavy = heavy[: max(0, HEAVY_BYTES // (8 * m))]
        light = np.ones(counts.size, dtype=bool)
        light[heavy] = False
        keys, inv = np.unique(n_key[light], return_inverse=True)
        cwork = np.bincount(inv, weights=work[light], minlength=keys.size)
        n_packed = m * (m + 1) // 2
        order = np.argsort(-cwork, kind="stable")
        order = order[cwork[order] > class_min_ratio * n_packed][: max(0, class_bytes // (8 * n_packed))]
        if not heavy.size and not order.size:
            return None
        light_cols = np.flatnonzero(light)
        class_of = np.full(counts.size, -1, dtype=np.int64)
        rank = np.full(keys.size, -1, dtype=np.int64)
        rank[order] = np.arange(order.size)
        class_of[light_cols] = rank[inv]
        class_cols = np.flatnonzero(class_of >= 0)
        M = _presum(A22.shape[0], indptr, indices, data, class_of, order.size)
        B = np.zeros((m, heavy.size), order="F")
        for k, j in enumerate(heavy):
            B[indices[indptr[j]:indptr[j + 1]], k] = data[indptr[j]:indptr[j + 1]]
        rest_cols = np.flatnonzero((class_of < 0) & light)
        rest = _sub_csc(indptr, indices, data, rest_cols)
        return cls(A22, rest, rest_cols, heavy, B, class_cols, class_of[class_cols], M)

    def unscaled(self, d: np.ndarray, n_threads: int = 1, d2: np.ndarray | None = None, tail: int = 0):
        """Upper triangle (row-major) of ``A22 - A21 diag(d) A21'``; None when a class's weights differ.

        With ``d2``: ``(P, V)``, V the upper triangle of ``A21v diag(d2) A21v'`` (``A21v``:
        the first ``m - tail`` rows), as ``_kernels.schur_scalar_upper_v`` gives it when every
        column ends with entries in the last ``tail`` rows (the X and y rows of the blocked layout).
        """
        m = self.A22.shape[0]
        dc, dc2 = self._class_weights(d), None if d2 is None else self._class_weights(d2)
        if dc is None or (d2 is not None and dc2 is None):
            return None                                   # equal keys, unequal weights: not this plan's d
        rest_d = d[self.d_index]
        if d2 is None:
            P, V = rest_upper(self.A22, *self.rest, rest_d, n_threads), None
        else:
            P, V = rest_upper(self.A22, *self.rest, rest_d, n_threads, d2[self.d_index], tail)
        if self.n_classes:
            subtract_classes(P, self.M, dc)
            if V is not None:
                add_classes_head(V, self.M, dc2, m)
        if self.n_heavy:
            with blas_threads_for(float(m) ** 2 * self.n_heavy):
                C = fblas.dsyrk(1.0, self.heavy_B * np.sqrt(d[self.heavy_cols]), lower=1)   # C[k, i]: k contiguous
                subtract_upper(P, C, 0.0)
                if V is not None:
                    Bv = self.heavy_B[: m - tail] * np.sqrt(d2[self.heavy_cols])
                    subtract_upper(V, fblas.dsyrk(1.0, Bv, lower=1), 1.0)
        return P if d2 is None else (P, V)

    def _class_weights(self, d: np.ndarray) -> np.ndarray | None:
        """One weight per class, or None when two levels of a class have different weights."""
        dc = np.zeros(self.n_classes)
        if self.n_classes:
            dcls = d[self.class_cols]
            dc[self.class_of] = dcls
            if not np.array_equal(dc[self.class_of], dcls):
                return None
        return dc


def _sub_csc(indptr, indices, data, cols):
    """CSC arrays of the columns ``cols`` (sorted rows kept)."""
    counts = (indptr[cols + 1] - indptr[cols]).astype(np.int64)
    sub_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    take = np.repeat(indptr[cols] - sub_ptr[:-1], counts) + np.arange(sub_ptr[-1])
    return sub_ptr, np.ascontiguousarray(indices[take]), np.ascontiguousarray(data[take])


def _presum(m, indptr, indices, data, class_of, n_classes):
    """``(n_classes, m (m + 1) / 2)``: each class's ``sum a_j a_j'``, packed upper triangles (row-major).

    Each class goes through :func:`rest_upper` with ``A22 = 0`` and ``d = -1`` (so
    ``0 - (-1) a a'``: exact) and is packed row by row.
    """
    M = np.empty((n_classes, m * (m + 1) // 2))
    zeros = np.zeros((m, m))
    for c in range(n_classes):
        cols = np.flatnonzero(class_of == c)
        sub = _sub_csc(indptr, indices, data, cols)
        U = rest_upper(zeros, *sub, np.full(cols.size, -1.0))
        pack_upper(U, M[c])
    return M


@numba.njit(cache=True, nogil=True)
def pack_upper(U, out):  # pragma: no cover - compiled
    """The upper triangle of U, row by row, into ``out``."""
    m = U.shape[0]
    p = 0
    for i in range(m):
        for k in range(i, m):
            out[p] = U[i, k]
            p += 1


@numba.njit(cache=True, nogil=True)
def subtract_classes(P, M, dc):  # pragma: no cover - compiled
    """``P[i, k] -= sum_c dc[c] M[c, packed(i, k)]`` on the upper triangle, a block of entries at a time."""
    m = P.shape[0]
    nc, n_packed = M.shape
    blk = 4096
    s = np.empty(blk)
    i = 0
    k = 0
    for p0 in range(0, n_packed, blk):
        p1 = min(p0 + blk, n_packed)
        for p in range(p1 - p0):
            s[p] = 0.0
        for c in range(nc):
            w = dc[c]
            row = M[c]
            for p in range(p0, p1):
                s[p - p0] += w * row[p]
        for p in range(p1 - p0):
            P[i, k] -= s[p]
            k += 1
            if k == m:
                i += 1
                k = i


@numba.njit(cache=True, nogil=True)
def subtract_upper(P, C, sign):  # pragma: no cover - compiled
    """``P[i, k] -= C[k, i]`` (``sign = 0``) or ``+=`` (``sign = 1``) on the upper triangle of P (C lower)."""
    n = P.shape[0]
    for i in range(n):
        for k in range(i, n):
            if sign == 0.0:
                P[i, k] -= C[k, i]
            else:
                P[i, k] += C[k, i]


@numba.njit(cache=True, nogil=True)
def add_classes_head(V, M, dc, m):  # pragma: no cover - compiled
    """``V[i, k] += sum_c dc[c] M[c, packed(i, k)]`` for the leading ``n x n`` block (V is n x n)."""
    n = V.shape[0]
    for i in range(n):
        off = i * m - (i * (i - 1)) // 2 - i
        for c in range(dc.shape[0]):
            w = dc[c]
            for k in range(i, n):
                V[i, k] += w * M[c, off + k]


def rest_upper(A22, indptr, indices, data, d, n_threads: int = 1, d2=None, tail: int = 0):
    """Upper triangle (row-major) of ``A22 - A21 diag(d) A21'`` (CSC, sorted rows), by row tiles.

    The same products summed in the same (column) order as
    ``_kernels.schur_scalar_upper(A22, ..., d, ones, 0)``, so the same numbers; tiles of
    ``TILE_BYTES`` of the target, shared between ``n_threads`` threads. With ``d2``:
    ``(U, V)``, V the upper triangle of ``A21v diag(d2) A21v'`` (each column without its
    last ``tail`` entries) from the same pass, as ``_kernels.schur_scalar_upper_v``. The
    two are then interleaved in memory (``U[i, k]`` next to ``V[i, k]``: one cache line
    serves both updates of a pair, a third faster) and returned as strided views.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> A = sp.csc_array(sp.random(9, 50, density=0.5, random_state=3))
    >>> A22, d = np.eye(9) * 10, np.full(50, 0.2)
    >>> U = rest_upper(A22, A.indptr.astype(np.int64), A.indices.astype(np.int64), A.data, d)
    >>> bool(np.allclose(np.triu(U), np.triu(A22 - 0.2 * (A @ A.T).toarray())))
    True
    """
    m = A22.shape[0]
    tile = int(max(16, min(m, TILE_BYTES // (8 * max(m, 1)))))
    if n_threads > 1:             # four tiles a thread at least: the early rows hold most pairs
        tile = int(max(16, min(tile, -(-m // (4 * int(n_threads))))))
    n_threads = max(1, min(int(n_threads), -(-m // tile)))
    if d2 is None:
        U = np.empty((m, m))
        kernel, args = rest_tiles, (U, A22, indptr, indices, data, d, tile)
    else:
        UV = np.empty((m, m, 2))
        kernel, args = rest_tiles_uv, (UV, A22, indptr, indices, data, d, d2, tail, tile)
    futures = [_kernels._pool().submit(kernel, *args, part, n_threads) for part in range(1, n_threads)]
    kernel(*args, 0, n_threads)
    for f in futures:
        f.result()
    return U if d2 is None else (UV[:, :, 0], UV[: m - tail, : m - tail, 1])


@numba.njit(cache=True, nogil=True)
def rest_tiles(U, A22, indptr, indices, data, d, tile, part, n_parts):  # pragma: no cover - compiled
    """Tiles ``t % n_parts == part`` of :func:`rest_upper` (no V): per column, four (then one) rows at a time."""
    m = A22.shape[0]
    ptr = indptr[:-1].copy()
    for t in range(part, (m + tile - 1) // tile, n_parts):
        r0, r1 = t * tile, min(t * tile + tile, m)
        for i in range(r0, r1):
            for k in range(i, m):
                U[i, k] = A22[i, k]
        for j in range(indptr.shape[0] - 1):
            a, end, dj = ptr[j], indptr[j + 1], d[j]
            while a < end and indices[a] < r0:          # rows of tiles another thread owns
                a += 1
            while a + 3 < end and indices[a + 3] < r1:
                _four_rows(U, indices, data, a, end, dj)
                a += 4
            while a < end and indices[a] < r1:
                ia, va = indices[a], data[a] * dj
                for b in range(a, end):
                    U[ia, indices[b]] -= va * data[b]
                a += 1
            ptr[j] = a


@numba.njit(cache=True, nogil=True, inline="always")
def _four_rows(U, indices, data, a, end, dj):  # pragma: no cover - compiled
    """The pairs of entries ``a .. a + 3`` of a column with every later entry."""
    i0, i1, i2, i3 = indices[a], indices[a + 1], indices[a + 2], indices[a + 3]
    v0, v1, v2, v3 = data[a] * dj, data[a + 1] * dj, data[a + 2] * dj, data[a + 3] * dj
    U[i0, i0] -= v0 * data[a]
    U[i0, i1] -= v0 * data[a + 1]
    U[i0, i2] -= v0 * data[a + 2]
    U[i1, i1] -= v1 * data[a + 1]
    U[i1, i2] -= v1 * data[a + 2]
    U[i2, i2] -= v2 * data[a + 2]
    for b in range(a + 3, end):
        x, ib = data[b], indices[b]
        U[i0, ib] -= v0 * x
        U[i1, ib] -= v1 * x
        U[i2, ib] -= v2 * x
        U[i3, ib] -= v3 * x


@numba.njit(cache=True, nogil=True)
def rest_tiles_uv(UV, A22, indptr, indices, data, d, d2, tail, tile, part, n_parts):  # pragma: no cover
    """:func:`rest_tiles` with V: ``UV[i, k, 0]`` is U, ``UV[i, k, 1]`` V (zeroed here, lower triangle too).

    V takes the pairs of entries before each column's last ``tail``; each U entry gets
    the same products in the same order as :func:`rest_tiles`.
    """
    m = A22.shape[0]
    ptr = indptr[:-1].copy()
    for t in range(part, (m + tile - 1) // tile, n_parts):
        r0, r1 = t * tile, min(t * tile + tile, m)
        for i in range(r0, r1):
            for k in range(i):
                UV[i, k, 1] = 0.0                   # V's lower triangle is zero (U's is not set)
            for k in range(i, m):
                UV[i, k, 0] = A22[i, k]
                UV[i, k, 1] = 0.0
        for j in range(indptr.shape[0] - 1):
            a, end, dj, d2j = ptr[j], indptr[j + 1], d[j], d2[j]
            endv = end - tail
            while a < end and indices[a] < r0:
                a += 1
            while a + 3 < endv and indices[a + 3] < r1:
                _four_rows_uv(UV, indices, data, a, end, endv, dj, d2j)
                a += 4
            while a < end and indices[a] < r1:
                ia, va = indices[a], data[a] * dj
                if a < endv:
                    wa = data[a] * d2j
                    for b in range(a, endv):
                        x, ib = data[b], indices[b]
                        UV[ia, ib, 0] -= va * x
                        UV[ia, ib, 1] += wa * x
                for b in range(max(a, endv), end):
                    UV[ia, indices[b], 0] -= va * data[b]
                a += 1
            ptr[j] = a


@numba.njit(cache=True, nogil=True, inline="always")
def _four_rows_uv(UV, indices, data, a, end, endv, dj, d2j):  # pragma: no cover - compiled
    """:func:`_four_rows` for U and V together (all four entries before ``endv``)."""
    i0, i1, i2, i3 = indices[a], indices[a + 1], indices[a + 2], indices[a + 3]
    x0, x1, x2, x3 = data[a], data[a + 1], data[a + 2], data[a + 3]
    v0, v1, v2, v3 = x0 * dj, x1 * dj, x2 * dj, x3 * dj
    w0, w1, w2, w3 = x0 * d2j, x1 * d2j, x2 * d2j, x3 * d2j
    UV[i0, i0, 0] -= v0 * x0
    UV[i0, i0, 1] += w0 * x0
    UV[i0, i1, 0] -= v0 * x1
    UV[i0, i1, 1] += w0 * x1
    UV[i0, i2, 0] -= v0 * x2
    UV[i0, i2, 1] += w0 * x2
    UV[i1, i1, 0] -= v1 * x1
    UV[i1, i1, 1] += w1 * x1
    UV[i1, i2, 0] -= v1 * x2
    UV[i1, i2, 1] += w1 * x2
    UV[i2, i2, 0] -= v2 * x2
    UV[i2, i2, 1] += w2 * x2
    for b in range(a + 3, endv):
        x, ib = data[b], indices[b]
        UV[i0, ib, 0] -= v0 * x
        UV[i0, ib, 1] += w0 * x
        UV[i1, ib, 0] -= v1 * x
        UV[i1, ib, 1] += w1 * x
        UV[i2, ib, 0] -= v2 * x
        UV[i2, ib, 1] += w2 * x
        UV[i3, ib, 0] -= v3 * x
        UV[i3, ib, 1] += w3 * x
    for b in range(endv, end):
        x, ib = data[b], indices[b]
        UV[i0, ib, 0] -= v0 * x
        UV[i1, ib, 0] -= v1 * x
        UV[i2, ib, 0] -= v2 * x
        UV[i3, ib, 0] -= v3 * x
