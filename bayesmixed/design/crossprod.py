"""Weighted cross-products of ``[Z X y]`` accumulated chunk by chunk (out-of-memory LMMs).

A Gaussian LMM's profiled deviance depends on the data only through
``[Z X y]' W [Z X y]``. With terms in lme4's order the likelihood engine keeps it as
(MixedModels.jl's blocked layout; :mod:`bayesmixed.likelihood._blocked`):

- ``A11``: the first term's ``(n_levels, k1, k1)`` diagonal blocks of ``Z1'WZ1``;
- ``A21 = [Zrest X y]' W Z1``: its ``Zrest`` rows sparse (COO keys ``row * q1 + col``),
  its ``X, y`` rows dense ``(p + 1, q1)``;
- ``A22 = [Zrest X y]' W [Zrest X y]`` dense;
- ``ldW = sum(log w)`` and ``n``.

Every piece is a sum over rows, so per-chunk pieces add up (:func:`combine`),
whether the chunks are read one after another or computed on a Dask cluster.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bayesmixed.design._crossprod_kernel import accumulate_rows, sum_duplicates_radix


@dataclass(frozen=True)
class Layout:
    """Sizes of the blocked system: the first term, the other terms, the columns of X.

    Examples
    --------
    >>> lay = Layout(k1=1, l1=3, rest=((1, 2),), p=2)
    >>> lay.q1, lay.q_rest, lay.m
    (3, 2, 5)
    """

    k1: int
    l1: int
    rest: tuple[tuple[int, int], ...]   # (n_cols, n_levels) of each later term
    p: int                              # columns of X (before aliased ones are dropped)

    @property
    def q1(self) -> int:
        return self.k1 * self.l1

    @property
    def starts(self) -> list[int]:
        return np.cumsum([0] + [k * l for k, l in self.rest])[:-1].tolist()

    @property
    def q_rest(self) -> int:
        return sum(k * l for k, l in self.rest)

    @property
    def m(self) -> int:
        return self.q_rest + self.p + 1


@dataclass
class CrossProducts:
    """Sums over rows of the blocked cross-products, plus row counts and X moments.

    ``keys``/``vals`` hold the sparse ``Zrest' W Z1`` entries (``key = row * q1 + col``);
    ``parts`` holds per-chunk ones not merged yet (see :meth:`merged`).
    """

    layout: Layout
    n: int
    A11: np.ndarray
    xy1: np.ndarray                     # (p + 1, q1): [X y]' W Z1
    A22: np.ndarray                     # (m, m)
    ldW: float
    gram: np.ndarray                    # (p, p) unweighted X'X (rank and scale checks)
    colsum: np.ndarray                  # (p,) unweighted column sums of X
    is01: np.ndarray                    # (p,) column holds only 0 and 1
    keys: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    vals: np.ndarray = field(default_factory=lambda: np.zeros(0))
    parts: list = field(default_factory=list)
    info: dict = field(default_factory=dict)   # NA counts and other row bookkeeping

    def maybe_merge(self) -> None:
        """Merge the pending sparse parts once they outgrow the merged ones (amortised sorting)."""
        if sum(k.size for k, _ in self.parts) > max(self.keys.size, 4_000_000):
            self.merged()

    def merged(self) -> "CrossProducts":
        """Merge the pending sparse parts into ``keys``/``vals`` (sorted, unique keys)."""
        if self.parts:
            keys = np.concatenate([self.keys] + [k for k, _ in self.parts])
            vals = np.concatenate([self.vals] + [v for _, v in self.parts])
            self.keys = self.vals = None
            self.parts = []                       # free the parts before sorting (peak memory)
            lay = self.layout
            self.keys, self.vals = sum_duplicates_radix(keys, vals, lay.q1, max(lay.q_rest, 1))
            self.parts = []
        return self


def empty_crossproducts(layout: Layout, info: dict | None = None) -> CrossProducts:
    """Zero cross-products of ``layout`` (what a chunk without rows adds).

    Examples
    --------
    >>> empty_crossproducts(Layout(k1=1, l1=2, rest=((1, 3),), p=1)).A22.shape
    (5, 5)
    """
    lay = layout
    return CrossProducts(
        layout=lay, n=0, A11=np.zeros((lay.l1, lay.k1, lay.k1)), xy1=np.zeros((lay.p + 1, lay.q1)),
        A22=np.zeros((lay.m, lay.m)), ldW=0.0, gram=np.zeros((lay.p, lay.p)), colsum=np.zeros(lay.p),
        is01=np.ones(lay.p, dtype=bool), info=dict(info or {}),
    )


def chunk_crossproducts(layout: Layout, X: np.ndarray, y: np.ndarray, w: np.ndarray,
                        codes: list[np.ndarray], Xis: list[np.ndarray], info: dict | None = None,
                        out: CrossProducts | None = None) -> CrossProducts:
    """Add one chunk of rows into ``out`` (new cross-products when None); one compiled pass.

    Parameters
    ----------
    layout : Layout
    X : (n, p) fixed-effects rows; y : (n,) response (offset and shift removed);
    w : (n,) prior weights
    codes, Xis : per term (lme4's order), level codes (n,) and model rows (n, k)
    info : dict, optional
        Counts added into ``out.info``.
    out : CrossProducts, optional
        Running sums to add into (in place).

    Examples
    --------
    >>> import numpy as np
    >>> lay = Layout(k1=1, l1=2, rest=(), p=1)
    >>> cp = chunk_crossproducts(lay, np.ones((3, 1)), np.array([1.0, 2.0, 3.0]), np.ones(3),
    ...                          [np.array([0, 0, 1])], [np.ones((3, 1))])
    >>> cp.A11.ravel().tolist(), cp.xy1.tolist(), cp.A22.tolist()
    ([2.0, 1.0], [[2.0, 1.0], [3.0, 3.0]], [[3.0, 6.0], [6.0, 14.0]])
    """
    out = empty_crossproducts(layout) if out is None else out
    qr, pp = layout.q_rest, layout.p + 1
    n = y.shape[0]
    XY = np.empty((n, pp))
    XY[:, :-1] = X
    XY[:, -1] = y
    wXY = XY * w[:, None]
    if layout.rest:
        C = np.hstack([s + c[:, None] * k + np.arange(k)
                       for s, (k, _), c in zip(layout.starts, layout.rest, codes[1:])]).astype(np.int64)
        V = np.ascontiguousarray(np.hstack([np.asarray(x, dtype=float) for x in Xis[1:]]))
    else:
        C, V = np.zeros((n, 0), dtype=np.int64), np.zeros((n, 0))
    kr = C.shape[1]
    keys, vals = np.empty(n * kr * layout.k1, dtype=np.int64), np.empty(n * kr * layout.k1)
    A22r = np.zeros((qr, qr))            # views of out.A22 are not contiguous: add afterwards
    rxy = np.zeros((qr, pp))
    accumulate_rows(np.asarray(codes[0], dtype=np.int64), np.ascontiguousarray(Xis[0], dtype=float), C, V,
                    wXY, np.ascontiguousarray(w, dtype=float), layout.q1, out.A11, out.xy1, A22r, rxy,
                    keys, vals)
    A22 = out.A22
    A22[qr:, qr:] += XY.T @ wXY
    if qr:
        A22[:qr, :qr] += A22r
        A22[:qr, qr:] += rxy
        A22[qr:, :qr] += rxy.T
        out.parts.append((keys, vals))
    out.n += n
    out.ldW += float(np.log(w[w > 0]).sum())
    out.gram += X.T @ X
    out.colsum += X.sum(axis=0)
    out.is01 &= ((X == 0) | (X == 1)).all(axis=0)
    out.info = _sum_info([out.info, info or {}])
    out.maybe_merge()
    return out


def combine(parts: list[CrossProducts]) -> CrossProducts:
    """The sum of partial cross-products, added into the first (sparse parts merged as they grow).

    Examples
    --------
    >>> import numpy as np
    >>> lay = Layout(k1=1, l1=2, rest=(), p=1)
    >>> a = chunk_crossproducts(lay, np.ones((1, 1)), np.array([1.0]), np.ones(1), [np.array([0])], [np.ones((1, 1))])
    >>> b = chunk_crossproducts(lay, np.ones((1, 1)), np.array([2.0]), np.ones(1), [np.array([1])], [np.ones((1, 1))])
    >>> c = combine([a, b])
    >>> c.n, c.A11.ravel().tolist(), c.A22.tolist()
    (2, [1.0, 1.0], [[2.0, 3.0], [3.0, 5.0]])
    """
    parts = [p for p in parts if p is not None]
    out = parts[0]
    for p in parts[1:]:
        out.n += p.n
        out.A11 += p.A11
        out.xy1 += p.xy1
        out.A22 += p.A22
        out.ldW += p.ldW
        out.gram += p.gram
        out.colsum += p.colsum
        out.is01 &= p.is01
        out.parts.extend([(p.keys, p.vals)] + p.parts)
        out.info = _sum_info([out.info, p.info])
    out.maybe_merge()
    return out


def _sum_info(infos: list[dict]) -> dict:
    out: dict = {}
    for info in infos:
        for key, val in info.items():
            if isinstance(val, dict):
                sub = out.setdefault(key, {})
                for k, v in val.items():
                    sub[k] = sub.get(k, 0) + v
            else:
                out[key] = out.get(key, 0) + val
    return out


def select_columns(cp: CrossProducts, keep: np.ndarray) -> CrossProducts:
    """Cross-products with only the columns ``keep`` of X (aliased ones dropped).

    Examples
    --------
    >>> import numpy as np
    >>> lay = Layout(k1=1, l1=1, rest=(), p=2)
    >>> cp = chunk_crossproducts(lay, np.ones((2, 2)), np.array([1.0, 2.0]), np.ones(2),
    ...                          [np.zeros(2, dtype=int)], [np.ones((2, 1))])
    >>> select_columns(cp, np.array([0])).A22.tolist()
    [[2.0, 3.0], [3.0, 5.0]]
    """
    lay = cp.layout
    keep = np.asarray(keep, dtype=np.int64)
    if keep.size == lay.p:
        return cp
    qr = lay.q_rest
    new = Layout(k1=lay.k1, l1=lay.l1, rest=lay.rest, p=int(keep.size))
    rows = np.concatenate([np.arange(qr), qr + keep, [qr + lay.p]])
    xy_rows = np.concatenate([keep, [lay.p]])
    return CrossProducts(
        layout=new, n=cp.n, A11=cp.A11, xy1=cp.xy1[xy_rows], A22=cp.A22[np.ix_(rows, rows)], ldW=cp.ldW,
        gram=cp.gram[np.ix_(keep, keep)], colsum=cp.colsum[keep], is01=cp.is01[keep],
        keys=cp.keys, vals=cp.vals, parts=cp.parts, info=cp.info,
    )


def shift_response(cp: CrossProducts, shift: np.ndarray) -> CrossProducts:
    """Cross-products of ``y - X shift`` in place of ``y`` (exact algebra on the sums).

    The engine factors the system of ``y`` less its weighted least-squares fit on X,
    so that ``pwrss`` keeps its digits; with the chunks' ``y`` already shifted by a
    first estimate, the correction here is small.

    Examples
    --------
    >>> import numpy as np
    >>> lay = Layout(k1=1, l1=1, rest=(), p=1)
    >>> X, y = np.ones((2, 1)), np.array([1.0, 3.0])
    >>> one = [np.zeros(2, dtype=int)]
    >>> a = shift_response(chunk_crossproducts(lay, X, y, np.ones(2), one, [X]), np.array([2.0]))
    >>> b = chunk_crossproducts(lay, X, y - 2.0, np.ones(2), one, [X])
    >>> bool(np.allclose(a.A22, b.A22) and np.allclose(a.xy1, b.xy1))
    True
    """
    lay = cp.layout
    qr, p = lay.q_rest, lay.p
    s = np.asarray(shift, dtype=float)
    A22 = cp.A22.copy()
    yi = qr + p
    xs = slice(qr, qr + p)
    col = A22[:, yi] - A22[:, xs] @ s                       # [Zr X y]'W (y - Xs)
    col[yi] = cp.A22[yi, yi] - 2.0 * (cp.A22[xs, yi] @ s) + s @ cp.A22[xs, xs] @ s
    A22[:, yi] = col
    A22[yi, :] = col
    xy1 = cp.xy1.copy()
    xy1[-1] = cp.xy1[-1] - s @ cp.xy1[:-1]
    return CrossProducts(layout=lay, n=cp.n, A11=cp.A11, xy1=xy1, A22=A22, ldW=cp.ldW, gram=cp.gram,
                         colsum=cp.colsum, is01=cp.is01, keys=cp.keys, vals=cp.vals, parts=cp.parts,
                         info=cp.info)
