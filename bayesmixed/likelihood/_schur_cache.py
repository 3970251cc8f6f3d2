"""Reuse of the scalar first term's Schur product between evaluations with the same first-term theta.

For a scalar first term (``k1 = 1``) the Schur complement is
``S = diag(scale) (A22 - A21 diag(d) A21') diag(scale) + diag(I_qr, 0)``: the weights
``d`` (and the gradient's ``d2``) depend on the first term's theta only, ``scale`` on
the other terms' theta only. The product over the first term's levels is the whole cost
of an evaluation when that term has many levels (issue 13: 500 000 levels, 1.8e9
multiply-adds), while the rest is ``O(m^2)`` plus the ``m x m`` Cholesky factor.
The optimizers evaluate several points with the same first-term theta: BOBYQA's first
steps along the other coordinates, lme4's convergence check (its finite differences
along the other coordinates), the final evaluation at the optimum.

:class:`SchurCache` keeps the unscaled ``A22 - A21 diag(d) A21'`` (and ``V``) of the
last few ``d``; a point with the same ``d`` rescales it with the kernel's own products
(``P[i, k] * (scale_i * scale_k)``, then ``+ 1`` on the first ``q_rest`` diagonal
entries), so every evaluation gives the numbers of the direct kernel, bit for bit.
"""

from __future__ import annotations

import numba
import numpy as np

from bayesmixed.likelihood import _kernels
from bayesmixed.likelihood._schur_classes import ClassPlan, rest_upper

CACHE_BYTES = 256 << 20         # most memory the cached products may hold
CACHE_ENTRIES = 3               # first-term thetas remembered


class SchurCache:
    """Unscaled upper triangles ``A22 - A21 diag(d) A21'`` (and ``V``) of the last few weights.

    An entry is reused only for the same ``A22`` and ``A21`` arrays (the objects: a
    reweighted GLMM system has new ones), equal ``d`` and equal ``d2``. At most
    ``CACHE_ENTRIES`` entries and ``CACHE_BYTES`` bytes; larger targets are not cached.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> A21 = sp.csc_array(sp.random(4, 30, density=0.5, format="csc", random_state=2))
    >>> csc = (A21.indptr.astype(np.int64), A21.indices.astype(np.int64), A21.data)
    >>> A22, d = (A21 @ A21.T).toarray() + np.eye(4), np.full(30, 0.3)
    >>> cache = SchurCache()
    >>> U1, _ = cache.upper(A22, *csc, d, np.array([0.5, 0.5, 1.0, 1.0]), 2)
    >>> U2, _ = cache.upper(A22, *csc, d.copy(), np.array([2.0, 2.0, 1.0, 1.0]), 2)  # same d: rescaled
    >>> direct = _kernels.schur_scalar_upper(A22, *csc, d, np.array([2.0, 2.0, 1.0, 1.0]), 2)
    >>> cache.hits, bool(np.array_equal(np.triu(U2), np.triu(direct)))
    (1, True)
    """

    def __init__(self) -> None:
        self.entries: list[tuple] = []          # (A22, data, d, d2, tail, P, V), most recent last
        self.hits = 0
        self._plans: tuple | None = None        # (A22, data, ClassPlan or None)

    def _plan(self, A22, indptr, indices, data, n_key) -> ClassPlan | None:
        """The class plan of these arrays (built on first use, None when not worth it)."""
        if self._plans is None or self._plans[0] is not A22 or self._plans[1] is not data:
            self._plans = (A22, data, ClassPlan.build(A22, indptr, indices, data, np.asarray(n_key)))
        return self._plans[2]

    def upper(self, A22, indptr, indices, data, d, scale, q_rest, d2=None, tail=0, n_threads=1, n_key=None):
        """``(U, V)``: the kernel's scaled upper triangle U, and V (None without ``d2``).

        ``n_key``: the first term's ``A11`` entries (levels with equal entries have equal
        weights ``d``): large products then go through a :class:`~._schur_classes.ClassPlan`
        (the same sums in another order).

        ``d2``/``tail``: also ``V``, the upper triangle of ``A21v diag(d2) A21v'`` (A21
        without the last ``tail`` entries of each column), from
        ``_kernels.schur_scalar_upper_v`` where the package has it (the gradient's traces).
        """
        m = A22.shape[0]
        plan = None if n_key is None else self._plan(A22, indptr, indices, data, n_key)
        if 8 * m * m > CACHE_BYTES:
            PV = None if plan is None else plan.unscaled(d, n_threads, d2, tail)
            if PV is None:
                PV = _direct(A22, indptr, indices, data, d, d2, tail, n_threads)
            return (scale_upper(PV, scale, q_rest), None) if d2 is None else (scale_upper(PV[0], scale, q_rest), PV[1])
        for e in self.entries:
            if (e[0] is A22 and e[1] is data and e[4] == tail and np.array_equal(e[2], d)
                    and (e[3] is None if d2 is None else e[3] is not None and np.array_equal(e[3], d2))):
                self.hits += 1
                return scale_upper(e[5], scale, q_rest), e[6]
        PV = None if plan is None else plan.unscaled(d, n_threads, d2, tail)
        if PV is None:
            PV = _direct(A22, indptr, indices, data, d, d2, tail, n_threads)
        P, V = (PV, None) if d2 is None else PV
        keep = max(1, min(CACHE_ENTRIES, CACHE_BYTES // (8 * m * m)))
        live = [e for e in self.entries if e[0] is A22 and e[1] is data]
        self.entries = live[max(0, len(live) - keep + 1):]
        self.entries.append((A22, data, np.array(d, copy=True), None if d2 is None else np.array(d2, copy=True),
                             tail, P, V))
        return scale_upper(P, scale, q_rest), V


def _direct(A22, indptr, indices, data, d, d2, tail, n_threads):
    """The unscaled product without a plan: every column scattered (``rest_upper``: the
    kernel's sums in its order; U and V interleaved), ``P`` or ``(P, V)``."""
    return rest_upper(A22, indptr, indices, data, d, n_threads, d2, tail)


def schur_cache(owner) -> SchurCache:
    """The :class:`SchurCache` of ``owner`` (a blocked system), made on first use."""
    cache = owner.__dict__.get("_schur_cache")
    if cache is None:
        cache = owner.__dict__["_schur_cache"] = SchurCache()
    return cache


@numba.njit(cache=True, nogil=True)
def scale_upper(P, scale, q_rest):  # pragma: no cover - compiled
    """Upper triangle of ``diag(scale) P diag(scale) + diag(I_qr, 0)`` (the kernel's last step)."""
    m = P.shape[0]
    U = np.empty((m, m))
    for i in range(m):
        si = scale[i]
        for j in range(i, m):
            U[i, j] = P[i, j] * (si * scale[j])
        if i < q_rest:
            U[i, i] += 1.0
    return U
