"""Blocked Cholesky factor of the augmented PLS system (MixedModels.jl's layout).

The system is ``M(theta) = Lam~' [Z X y]' W [Z X y] Lam~ + diag(I_q, 0)`` with
``Lam~ = blockdiag(Lambda(theta), I_{p+1})``. Terms come in lme4's order (most
levels first), so the first term's block of ``Z'WZ`` is block diagonal with
``n_cols x n_cols`` blocks: its factor is a batch of tiny Cholesky factors. The
rest (other terms, X, y) is a dense Schur complement of moderate size, factored by
LAPACK. This is the sparsity that matters for nested and crossed designs
(Bates et al. 2015, JSS Sec. 3.6; MixedModels.jl's ``BlockedSparse``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from bayesmixed.design.spec import MixedDesign


def _right_kron(A: np.ndarray, starts: list[int], terms, blocks) -> np.ndarray:
    """A @ blockdiag(I_l (x) T_j ...) applied to the leading column blocks of dense A."""
    out = A.copy()
    for start, t, T in zip(starts, terms, blocks):
        k, l = t.n_cols, t.n_levels
        cols = slice(start, start + l * k)
        if k == 1:
            out[:, cols] *= T[0, 0]
        else:
            m = A.shape[0]
            out[:, cols] = (A[:, cols].reshape(m, l, k) @ T).reshape(m, l * k)
    return out


@dataclass
class BlockedFactor:
    """Factor pieces at one theta. L = [[L11, 0], [L21, L22]] over (Z1 | Zrest, X, y)."""

    L11: np.ndarray            # (l1, k1, k1) lower factors of the first term's diagonal blocks
    L21: sp.csr_array          # (m, q1) sparse
    L22: np.ndarray            # (m, m) dense lower
    q1: int
    q_rest: int
    p: int

    @property
    def ldL2(self) -> float:
        """log |L_Z|^2 = log det(Lambda'Z'WZ Lambda + I)."""
        d1 = np.diagonal(self.L11, axis1=1, axis2=2)
        d2 = np.diag(self.L22)[: self.q_rest]
        return 2.0 * (np.log(d1).sum() + np.log(d2).sum())

    @property
    def RX_diag(self) -> np.ndarray:
        return np.diag(self.L22)[self.q_rest : self.q_rest + self.p]

    @property
    def ldRX2(self) -> float:
        return 2.0 * np.log(np.abs(self.RX_diag)).sum()

    @property
    def pwrss(self) -> float:
        return float(self.L22[-1, -1] ** 2)


class BlockedSystem:
    """Theta-free cross products, computed once; ``factor(theta)`` per evaluation."""

    def __init__(self, design: MixedDesign, y: np.ndarray | None = None,
                 weights: np.ndarray | None = None) -> None:
        if not design.reterms:
            raise ValueError("no random-effects terms")
        self.design = design
        terms = design.reterms
        w = design.weights if weights is None else weights
        sw = np.sqrt(w)
        yy = (design.y - design.offset) if y is None else y
        self.t1, self.rest = terms[0], terms[1:]
        t1 = self.t1
        k1, l1 = t1.n_cols, t1.n_levels
        # A11: (l1, k1, k1) blocks of Z1' W Z1
        Xw1 = t1.Xi * sw[:, None]
        outer = Xw1[:, :, None] * Xw1[:, None, :]
        A11 = np.zeros((l1, k1, k1))
        np.add.at(A11, t1.codes, outer)
        self.A11 = A11
        # B = [Zrest X y] weighted
        p = design.p
        self.q1 = t1.q
        self.q_rest = sum(t.q for t in self.rest)
        self.p = p
        Zr = (sp.hstack([t.Zi for t in self.rest], format="csc") if self.rest
              else sp.csc_array((design.n, 0)))
        Zrw = sp.csc_array(sp.diags_array(sw) @ Zr)
        XYw = np.column_stack([design.X, yy]) * sw[:, None]
        Z1w = sp.csc_array(sp.diags_array(sw) @ t1.Zi)
        # A22 dense (m, m), A21 sparse (m, q1)
        ZrZr = (Zrw.T @ Zrw).toarray()
        ZrXY = np.asarray(Zrw.T @ XYw)
        XYXY = XYw.T @ XYw
        self.A22 = np.block([[ZrZr, ZrXY], [ZrXY.T, XYXY]])
        A21_top = sp.csr_array(Zrw.T @ Z1w)
        A21_bot = sp.csr_array(np.asarray((Z1w.T @ XYw).T))
        self.A21 = sp.csr_array(sp.vstack([A21_top, A21_bot]))
        self.m = self.A22.shape[0]
        self._starts = np.cumsum([0] + [t.q for t in self.rest])[:-1].tolist()
        self._diag_idx = np.arange(self.q_rest)
        self.ldW = float(np.log(w[w > 0]).sum())
        self.n_eff = int(np.sum(w > 0)) if weights is None else design.n

    def _lambda_rest_sparse(self, blocks_rest) -> sp.csr_array:
        mats = [sp.kron(sp.eye_array(t.n_levels), T, format="csr") for t, T in zip(self.rest, blocks_rest)]
        mats.append(sp.eye_array(self.p + 1, format="csr"))
        return sp.csr_array(sp.block_diag(mats, format="csr"))

    def factor(self, theta: np.ndarray) -> BlockedFactor:
        d = self.design
        blocks = d.lambda_blocks(np.asarray(theta, dtype=float))
        T1, Trest = blocks[0], blocks[1:]
        k1, l1 = self.t1.n_cols, self.t1.n_levels
        # first term: M11[g] = T1' A11[g] T1 + I, factor each block
        if k1 == 1:
            L11 = np.sqrt(T1[0, 0] ** 2 * self.A11 + 1.0)
            Binv = sp.diags_array(T1[0, 0] / L11[:, 0, 0])          # T1blk @ L11^{-T}
        else:
            M11 = T1.T @ self.A11 @ T1 + np.eye(k1)
            L11 = np.linalg.cholesky(M11)
            Linv = np.linalg.inv(L11)                               # (l1, k1, k1)
            blk = T1 @ np.swapaxes(Linv, 1, 2)                      # T1 L11^{-T}
            Binv = sp.bsr_array((blk, np.arange(l1), np.arange(l1 + 1)), shape=(self.q1, self.q1))
        # M21 = Lr' A21 T1blk ; L21 = M21 L11^{-T}
        if all(t.n_cols == 1 for t in self.rest):
            scale = np.ones(self.m)
            for start, t, T in zip(self._starts, self.rest, Trest):
                scale[start : start + t.q] = T[0, 0]
            L21 = sp.csr_array(sp.diags_array(scale) @ self.A21 @ Binv)
            M22 = self.A22 * scale[:, None] * scale[None, :]
        else:
            Lr = self._lambda_rest_sparse(Trest)
            L21 = sp.csr_array(Lr.T @ self.A21 @ Binv)
            half = _right_kron(self.A22, self._starts, self.rest, Trest)
            M22 = _right_kron(np.ascontiguousarray(half.T), self._starts, self.rest, Trest)
        S = M22 - (L21 @ L21.T).toarray()
        S[self._diag_idx, self._diag_idx] += 1.0
        L22 = sla.cholesky(S, lower=True, overwrite_a=True, check_finite=False)
        return BlockedFactor(L11=L11, L21=L21, L22=L22, q1=self.q1, q_rest=self.q_rest, p=self.p)

    # ---- solutions at a factor ------------------------------------------------------
    def solve_beta_u(self, F: BlockedFactor) -> tuple[np.ndarray, np.ndarray]:
        """beta and spherical u from back-substitution with L' (MixedModels.jl)."""
        qr, p = self.q_rest, self.p
        L22, L21 = F.L22, F.L21
        ly = L22[-1, :-1]                                   # y row, over (Zrest, X)
        LXX = L22[qr : qr + p, qr : qr + p]
        beta = sla.solve_triangular(LXX.T, ly[qr:], lower=False) if p else np.zeros(0)
        # rest part: L_ZrZr' u_r = ly_Zr - L_XZr' beta
        LZrZr = L22[:qr, :qr]
        LXZr = L22[qr : qr + p, :qr]
        rhs_r = ly[:qr] - LXZr.T @ beta
        u_r = sla.solve_triangular(LZrZr.T, rhs_r, lower=False) if qr else np.zeros(0)
        # first term: L11' u1 = l_y1 - L21_Zr' u_r - L21_X' beta
        L21d = L21.tocsc()
        coef = np.concatenate([u_r, beta, [0.0]])
        yrow = np.asarray(L21d[[self.m - 1], :].toarray()).ravel()
        rhs1 = yrow - L21d.T @ coef
        k1 = self.t1.n_cols
        rhs1 = rhs1.reshape(-1, k1)
        Lt = np.swapaxes(F.L11, 1, 2)
        u1 = np.linalg.solve(Lt, rhs1[:, :, None])[:, :, 0].ravel()
        return beta, np.concatenate([u1, u_r])

    def RX(self, F: BlockedFactor) -> np.ndarray:
        """(p, p) upper-triangular R_X with R_X'R_X = X'V^{-1}X / sigma^2 (lme4's RX)."""
        qr, p = self.q_rest, self.p
        return F.L22[qr : qr + p, qr : qr + p].T.copy()

    def dense_LZ(self, F: BlockedFactor) -> np.ndarray:
        """(q, q) dense lower factor of Lambda'Z'WZ Lambda + I (for conditional variances)."""
        q1, qr = self.q1, self.q_rest
        L = np.zeros((q1 + qr, q1 + qr))
        k1 = self.t1.n_cols
        for g in range(self.t1.n_levels):
            s = slice(g * k1, (g + 1) * k1)
            L[s, s] = F.L11[g]
        if qr:
            L[q1:, :q1] = F.L21[:qr, :].toarray()
            L[q1:, q1:] = F.L22[:qr, :qr]
        return L
