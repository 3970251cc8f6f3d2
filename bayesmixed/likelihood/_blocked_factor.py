"""The factor of the blocked PLS system at one theta (see ``_blocked.py``) and its solves.

``BlockedFactor`` holds L = [[L11, 0], [L21, L22]] without forming L21: products with it go
through the weighted cross products ``A21`` the factor was computed from (dense, or the
fixed-pattern sparse :class:`SparseA21`), so a later reweighting of the system leaves an
older factor valid.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from bayesmixed._threads import blas_threads_for
from bayesmixed.likelihood._kernels import csc_rmatvec

_potrf = sla.get_lapack_funcs("potrf", (np.zeros(1),))
_trtrs = sla.get_lapack_funcs("trtrs", (np.zeros(1),))


def _rep(w: np.ndarray, k: int) -> np.ndarray:
    return w if k == 1 else np.repeat(w, k)


class SparseA21:
    """Fixed-pattern CSC matrix (sorted row indices) with products by ``bincount``."""

    def __init__(self, data, indices, indptr, cols, shape):
        self.data, self.indices, self.indptr, self.cols, self.shape = data, indices, indptr, cols, shape

    def matvec(self, v: np.ndarray) -> np.ndarray:
        """A v for v (q1,) or (q1, r)."""
        V = v[:, None] if v.ndim == 1 else v
        out = np.empty((self.shape[0], V.shape[1]))
        for j in range(V.shape[1]):
            out[:, j] = np.bincount(self.indices, weights=self.data * V[self.cols, j], minlength=self.shape[0])
        return out[:, 0] if v.ndim == 1 else out

    def rmatvec(self, v: np.ndarray) -> np.ndarray:
        """A' v for v (m,) or (m, r): per column, its entries summed in order (compiled)."""
        V = v[:, None] if v.ndim == 1 else v
        out = np.empty((self.shape[1], V.shape[1]))
        for j in range(V.shape[1]):
            out[:, j] = csc_rmatvec(self.indptr, self.indices, self.data, np.ascontiguousarray(V[:, j], dtype=float))
        return out[:, 0] if v.ndim == 1 else out

    def tocsr(self) -> sp.csr_array:
        return sp.csr_array(sp.csc_array((self.data, self.indices, self.indptr), shape=self.shape))


def _a21_mul(A21, v, trans=False):
    if isinstance(A21, SparseA21):
        return A21.rmatvec(v) if trans else A21.matvec(v)
    return A21.T @ v if trans else A21 @ v


@dataclass
class BlockedFactor:
    """Factor pieces at one theta. L = [[L11, 0], [L21, L22]] over (Z1 | Zrest, X, y).

    ``L21 = Lr' A21 T1blk L11^{-T}`` is not formed: products with it go through ``A21``
    (the weighted cross products the factor was computed from).
    """

    system: "BlockedSystem" = field(repr=False)
    blocks: list               # T_i per term
    L11: np.ndarray            # (l1, k1, k1) lower factors of the first term's diagonal blocks
    L22: np.ndarray            # (m, m) dense lower
    A21: object = field(repr=False)   # (m, q1) dense or SparseA21
    theta: np.ndarray | None = None
    L21: sp.csr_array | None = None   # sparse (m, q1), formed on demand by BlockedSystem.L21
    beta_shift: np.ndarray | None = None   # the system's y is y - X beta_shift
    z_only: bool = False                   # L22 holds the Z rows only (no X, y)
    trace_V: np.ndarray | None = field(default=None, repr=False)   # see BlockedSystem.factor(v_rows=)

    @property
    def q_rest(self) -> int:
        return self.system.q_rest

    @property
    def p(self) -> int:
        return self.system.p

    @property
    def ldL2(self) -> float:
        """log |L_Z|^2 = log det(Lambda'Z'WZ Lambda + I)."""
        qr = self.q_rest
        out = np.log(self.L11.diagonal(axis1=1, axis2=2)).sum()
        if qr:
            out += np.log(self.L22.diagonal()[:qr]).sum()
        return float(2.0 * out)

    def _check_full(self) -> None:
        if self.z_only:
            raise ValueError("this factor has the Z block only (factor(theta, z_only=True))")

    @property
    def RX_diag(self) -> np.ndarray:
        self._check_full()
        return self.L22.diagonal()[self.q_rest : self.q_rest + self.p]

    @property
    def ldRX2(self) -> float:
        return 2.0 * np.log(np.abs(self.RX_diag)).sum()

    @property
    def pwrss(self) -> float:
        self._check_full()
        return float(self.L22[-1, -1] ** 2)

    @property
    def L11inv(self) -> np.ndarray:
        inv = self.__dict__.get("_L11inv")
        if inv is None:
            k1 = self.L11.shape[1]
            inv = 1.0 / self.L11 if k1 == 1 else np.linalg.inv(self.L11)
            self.__dict__["_L11inv"] = inv
        return inv

    # ---- the Z block L_Z of L (for conditional modes and variances) -------------------
    def _l21z(self, x1: np.ndarray) -> np.ndarray:
        """L21z x1 (first q_rest rows of L21) for x1 (q1, r)."""
        s = self.system
        v = s.t1.lambda_mul(s.theta_of(self.theta, 0), _mul11(np.swapaxes(self.L11inv, 1, 2), x1))
        return s.lambda_rest(self.theta, _a21_mul(self.A21, v)[: s.q_rest], trans=True)

    def _l21z_t(self, x2: np.ndarray) -> np.ndarray:
        """L21z' x2 for x2 (q_rest, r)."""
        s = self.system
        full = np.zeros((s.m, x2.shape[1]))
        full[: s.q_rest] = s.lambda_rest(self.theta, x2)
        v = s.t1.lambda_mul(s.theta_of(self.theta, 0), _a21_mul(self.A21, full, trans=True), trans=True)
        return _mul11(self.L11inv, v)

    def solve_L(self, b: np.ndarray) -> np.ndarray:
        """L_Z^{-1} b for b of shape (q,) or (q, r)."""
        s = self.system
        B = b[:, None] if b.ndim == 1 else b
        x1 = _mul11(self.L11inv, B[: s.q1])
        if s.q_rest:
            r = B[s.q1:] - self._l21z(x1)
            x2 = _trsolve(self.L22[: s.q_rest, : s.q_rest], r)
            x1 = np.vstack([x1, x2])
        return x1[:, 0] if b.ndim == 1 else x1

    def solve_Lt(self, b: np.ndarray) -> np.ndarray:
        """L_Z^{-T} b for b of shape (q,) or (q, r)."""
        s = self.system
        B = b[:, None] if b.ndim == 1 else b
        b1 = B[: s.q1]
        if s.q_rest:
            x2 = _trsolve(self.L22[: s.q_rest, : s.q_rest], B[s.q1:], trans=1)
            b1 = b1 - self._l21z_t(x2)
        x = _mul11(np.swapaxes(self.L11inv, 1, 2), b1)
        if s.q_rest:
            x = np.vstack([x, x2])
        return x[:, 0] if b.ndim == 1 else x

    def diag_L(self) -> np.ndarray:
        """Diagonal of L_Z (for a single scalar term: the inverse conditional sds of u)."""
        d = np.diagonal(self.L11, axis1=1, axis2=2).ravel()
        return np.concatenate([d, np.diag(self.L22)[: self.q_rest]])


def _mul11(M: np.ndarray, v: np.ndarray) -> np.ndarray:
    """blockdiag(M_g) v for M (l1, k1, k1) and v (l1 * k1, r)."""
    l1, k1 = M.shape[0], M.shape[1]
    if k1 == 1:
        return v * M[:, 0, :]
    return (M @ v.reshape(l1, k1, -1)).reshape(v.shape)


def _cholesky(S: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of S (only its lower triangle is read), LAPACK's potrf directly.

    BLAS threads: as many as there are idle cores when S is large, else one (``_threads``).
    """
    with blas_threads_for(S.shape[0] ** 3 / 3.0):
        L, info = _potrf(S, lower=1, clean=1, overwrite_a=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"Cholesky factor failed: leading minor {info} not positive definite")
    return L


def _trsolve(L: np.ndarray, b: np.ndarray, trans: int = 0) -> np.ndarray:
    """L^{-1} b (trans=0) or L^{-T} b (trans=1) for lower-triangular L, LAPACK's trtrs directly."""
    x, info = _trtrs(L, b if b.ndim == 2 else b[:, None], lower=1, trans=trans)
    if info != 0:                                  # pragma: no cover - L has a positive diagonal
        raise np.linalg.LinAlgError("singular triangular factor")
    return x if b.ndim == 2 else x[:, 0]
