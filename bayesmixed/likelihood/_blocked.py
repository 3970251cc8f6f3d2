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
    L21: sp.csr_array | None   # (m, q1) sparse; filled on demand by BlockedSystem.L21
    L22: np.ndarray            # (m, m) dense lower
    q1: int
    q_rest: int
    p: int
    theta: np.ndarray | None = None

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

    def _lambda_rest_sparse(self, blocks_rest) -> sp.csr_array:
        mats = [sp.kron(sp.eye_array(t.n_levels), T, format="csr") for t, T in zip(self.rest, blocks_rest)]
        mats.append(sp.eye_array(self.p + 1, format="csr"))
        return sp.csr_array(sp.block_diag(mats, format="csr"))

    def _prepare_products(self) -> None:
        """Index the level blocks of A21 once, for P(theta1) = A21 D A21' by scatter-add.

        For level g of the first term, V_g holds the nonzero rows of its k1 columns
        of A21 (r_g x k1). Then A21 D A21' = sum_g V_g D_g V_g' with the small
        k1 x k1 matrices D_g = T1 (T1' A11_g T1 + I)^{-1} T1' (the Schur complement
        of the first term's block; JSS Sec. 3.6). Levels with equal r_g are batched.
        """
        k1, l1 = self.t1.n_cols, self.t1.n_levels
        A = sp.csr_array(self.A21).tocsc()
        A.sort_indices()
        # large designs: a compiled rank update over the CSC arrays, no index expansion
        work = int(np.sum(np.diff(A.indptr) ** 2)) * k1
        if work > 300_000:
            self._csc = (A.indptr.astype(np.int64), A.indices.astype(np.int64), A.data.astype(float))
            self._pgroups, self._pflat = None, None
            return
        self._csc = None
        groups: dict[int, list[int]] = {}
        level_rows = []
        for g in range(l1):
            lo, hi = A.indptr[g * k1], A.indptr[(g + 1) * k1]
            rows = np.unique(A.indices[lo:hi])
            level_rows.append(rows)
            groups.setdefault(len(rows), []).append(g)
        self._pgroups = []
        flat_parts = []
        dense = A.toarray() if A.shape[0] * A.shape[1] <= 4_000_000 else None
        for r, levels in sorted(groups.items()):
            if r == 0:
                continue
            levels = np.asarray(levels)
            rows = np.stack([level_rows[g] for g in levels])                     # (nl, r)
            cols = levels[:, None] * k1 + np.arange(k1)                          # (nl, k1)
            if dense is not None:
                V = dense[rows[:, :, None], cols[:, None, :]]                    # (nl, r, k1)
            else:
                V = np.stack([A[rows[i]][:, cols[i]].toarray() for i in range(len(levels))])
            self._pgroups.append((levels, V))
            flat_parts.append((rows[:, :, None] * self.m + rows[:, None, :]).ravel())
        self._pflat = np.concatenate(flat_parts) if flat_parts else np.zeros(0, dtype=np.int64)

    def _D_blocks(self, T1: np.ndarray):
        """(L11, D): first-term factors and D_g = T1 M11_g^{-1} T1' for every level."""
        k1 = self.t1.n_cols
        if k1 == 1:
            t2 = T1[0, 0] ** 2
            M = t2 * self.A11 + 1.0
            return np.sqrt(M), t2 / M
        M11 = T1.T @ self.A11 @ T1 + np.eye(k1)
        L11 = np.linalg.cholesky(M11)
        Linv = np.linalg.inv(L11)
        W = T1 @ np.swapaxes(Linv, 1, 2)                                         # T1 L^{-T}
        return L11, W @ np.swapaxes(W, 1, 2)

    def factor(self, theta: np.ndarray) -> BlockedFactor:
        d = self.design
        blocks = d.lambda_blocks(np.asarray(theta, dtype=float))
        T1, Trest = blocks[0], blocks[1:]
        if not hasattr(self, "_csc"):
            self._prepare_products()
        L11, D = self._D_blocks(T1)
        scalar_rest = all(t.n_cols == 1 for t in self.rest)
        if scalar_rest:
            scale = np.ones(self.m)
            for start, t, T in zip(self._starts, self.rest, Trest):
                scale[start : start + t.q] = T[0, 0]
        if self._csc is not None and self.t1.n_cols == 1 and scalar_rest:
            from bayesmixed.likelihood._kernels import schur_scalar_upper

            U = schur_scalar_upper(self.A22, *self._csc, D.reshape(-1), scale, self.q_rest)
            L22 = sla.cholesky(U.T, lower=True, overwrite_a=True, check_finite=False)
            return BlockedFactor(L11=L11, L21=None, L22=L22, q1=self.q1, q_rest=self.q_rest, p=self.p,
                                 theta=np.asarray(theta, dtype=float))
        # P = A21 D A21' (dense m x m); only its lower triangle is used by the factorization
        if self._csc is not None:
            from bayesmixed.likelihood._kernels import rank_update_lower, symmetric_from_lower

            P = rank_update_lower(np.zeros((self.m, self.m)), *self._csc,
                                  np.ascontiguousarray(D.reshape(-1, self.t1.n_cols, self.t1.n_cols)),
                                  self.t1.n_cols)
            if not scalar_rest:                      # Lr' S0 Lr mixes both triangles
                P = symmetric_from_lower(P)
        else:
            contrib = []
            for levels, V in self._pgroups:
                Dg = D[levels]                                                   # (nl, k1, k1)
                contrib.append(((V @ Dg) @ np.swapaxes(V, 1, 2)).ravel())        # (nl, r, r)
            vals = np.concatenate(contrib) if contrib else np.zeros(0)
            P = np.bincount(self._pflat, weights=vals, minlength=self.m * self.m).reshape(self.m, self.m)
        S0 = self.A22 - P
        # S = Lr' S0 Lr + diag(I_qr, 0)
        if scalar_rest:
            S = S0 * scale[:, None]
            S *= scale[None, :]
        else:
            half = _right_kron(S0, self._starts, self.rest, Trest)
            S = _right_kron(np.ascontiguousarray(half.T), self._starts, self.rest, Trest)
        S[self._diag_idx, self._diag_idx] += 1.0
        L22 = sla.cholesky(S, lower=True, overwrite_a=True, check_finite=False)
        return BlockedFactor(L11=L11, L21=None, L22=L22, q1=self.q1, q_rest=self.q_rest, p=self.p,
                             theta=np.asarray(theta, dtype=float))

    def L21(self, F: BlockedFactor) -> sp.csr_array:
        """Sparse (m, q1) block L21 = Lr' A21 T1blk L11^{-T} (needed only at the optimum)."""
        if F.L21 is not None:
            return F.L21
        blocks = self.design.lambda_blocks(F.theta)
        T1, Trest = blocks[0], blocks[1:]
        k1, l1 = self.t1.n_cols, self.t1.n_levels
        if k1 == 1:
            Binv = sp.diags_array(T1[0, 0] / F.L11[:, 0, 0])
        else:
            blk = T1 @ np.swapaxes(np.linalg.inv(F.L11), 1, 2)
            Binv = sp.bsr_array((blk, np.arange(l1), np.arange(l1 + 1)), shape=(self.q1, self.q1))
        Lr = self._lambda_rest_sparse(Trest)
        F.L21 = sp.csr_array(Lr.T @ self.A21 @ Binv)
        return F.L21

    # ---- solutions at a factor ------------------------------------------------------
    def solve_beta_u(self, F: BlockedFactor) -> tuple[np.ndarray, np.ndarray]:
        """beta and spherical u from back-substitution with L' (MixedModels.jl)."""
        qr, p = self.q_rest, self.p
        L22, L21 = F.L22, self.L21(F)
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
            L[q1:, :q1] = self.L21(F)[:qr, :].toarray()
            L[q1:, q1:] = F.L22[:qr, :qr]
        return L

    def condcov_blocks(self, F: BlockedFactor) -> list[np.ndarray]:
        """Diagonal k x k blocks of (L_Z L_Z')^{-1}, per term as (n_levels, k, k).

        Uses the block structure instead of a dense q x q inverse: the columns of
        L_Z^{-1} for the first term are [L11^{-1}; -L22z^{-1} L21z L11^{-1}], those of
        the other terms [0; L22z^{-1}], and each block is C_g' C_g over its columns.
        """
        k1, l1, qr = self.t1.n_cols, self.t1.n_levels, self.q_rest
        L11inv = np.linalg.inv(F.L11)                                   # (l1, k1, k1)
        first = np.swapaxes(L11inv, 1, 2) @ L11inv                      # top part
        out = []
        if qr:
            L22z = F.L22[:qr, :qr]
            L21z = self.L21(F)[:qr, :]
            if k1 == 1:
                B = (L21z @ sp.diags_array(L11inv[:, 0, 0])).toarray()
            else:
                Bd = sp.bsr_array((L11inv, np.arange(l1), np.arange(l1 + 1)), shape=(self.q1, self.q1))
                B = (L21z @ Bd).toarray()
            bottom = sla.solve_triangular(L22z, B, lower=True, check_finite=False)   # (qr, q1)
            bottom = bottom.reshape(qr, l1, k1)
            first = first + np.einsum("rgi,rgj->gij", bottom, bottom)
            out.append(first)
            Linv22 = sla.solve_triangular(L22z, np.eye(qr), lower=True, check_finite=False)
            for start, t in zip(self._starts, self.rest):
                cols = Linv22[:, start : start + t.q].reshape(qr, t.n_levels, t.n_cols)
                out.append(np.einsum("rgi,rgj->gij", cols, cols))
        else:
            out.append(first)
        return out
