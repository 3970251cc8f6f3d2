"""Blocked Cholesky factor of the augmented PLS system, for LMMs and (reweighted) GLMMs.

The system is ``M(theta) = Lam~' [Z X y]' W [Z X y] Lam~ + diag(I_q, 0)`` with
``Lam~ = blockdiag(Lambda(theta), I_{p+1})`` (MixedModels.jl's layout). Terms come
in lme4's order (most levels first), so the first term's block of ``Z'WZ`` is block
diagonal with ``n_cols x n_cols`` blocks: its factor is a batch of tiny Cholesky
factors. The rest (other terms, X, y) is a dense Schur complement of moderate size,
factored by LAPACK (Bates et al. 2015, JSS Sec. 3.6; MixedModels.jl's ``BlockedSparse``).

An LMM weights the system once (prior weights, y); PIRLS for a GLMM calls
:meth:`BlockedSystem.reweight` with the working weights and working response at every
iteration and refactors the same system, as MixedModels.jl's GLMM does with its LMM.
The index structure of every cross product is computed once, so a reweight is a few
``bincount`` calls.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from bayesmixed._threads import MIN_KERNEL_FLOPS, blas_threads_for, threads_for
from bayesmixed.design.spec import MixedDesign
from bayesmixed.errors import FitError
from bayesmixed.likelihood._blocked_factor import (
    BlockedFactor, SparseA21, _a21_mul, _cholesky, _mul11, _rep, _trsolve,
)
from bayesmixed.likelihood._kernels import (
    coo_pattern_csc, first_term_blocks, rank_update_lower, schur_scalar_upper_v, symmetric_from_lower,
)
from bayesmixed.likelihood._schur_cache import schur_cache


class BlockedSystem:
    """Index structure of the weighted cross products (built once); ``reweight`` and ``factor``.

    Parameters
    ----------
    design : MixedDesign
        Needs at least one random-effects term.
    weights, y : array, optional
        Weights and response of the initial weighting (default: the design's prior
        weights and ``y - offset``, the LMM's system).
    X : array, optional
        The dense columns between Z and y (default ``design.X``; PIRLS at fixed beta
        uses none: ``np.empty((n, 0))``).
    layout : {"dense", "sparse"}, optional
        Storage of ``A21 = [Zrest X y]' W Z1``: dense (products by BLAS) or a fixed-pattern
        CSC matrix (products by the compiled kernels of ``_kernels.py``); chosen from the
        work each needs unless given.

    Examples
    --------
    >>> import bayesmixed as bm
    >>> m = bm.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...              bm.load_dataset("cbpp"), family="binomial")
    >>> system = BlockedSystem(m.design)
    >>> system.reweight(np.ones(m.design.n), m.design.y)
    >>> F = system.factor(np.array([1.0]))                      # W = I, theta = 1
    >>> n_per_herd = np.bincount(m.design.reterms[0].codes)
    >>> bool(np.isclose(F.ldL2, np.log1p(n_per_herd).sum()))   # log det(Z'Z + I)
    True
    """

    def __init__(self, design: MixedDesign, y: np.ndarray | None = None,
                 weights: np.ndarray | None = None, *, X: np.ndarray | None = None,
                 layout: str | None = None) -> None:
        X = design.X if X is None else X
        self._structure(design, X.shape[1])
        self._XY = np.empty((design.n, self.p + 1))           # [X y], y rewritten by reweight
        self._XY[:, :-1] = X
        self._Xi1 = np.ascontiguousarray(self.t1.Xi, dtype=float)
        self._index(layout)
        w = design.weights if weights is None else weights
        self.ldW = float(np.log(w[w > 0]).sum())
        if y is None:
            # the LMM: y less its weighted least-squares fit on X, so that the y row of the
            # factor (and pwrss = L[y, y]^2) does not lose digits to the mean of y
            yy = design.y - design.offset
            sw = np.sqrt(w)
            shift = np.linalg.lstsq(self._XY[:, :-1] * sw[:, None], yy * sw, rcond=None)[0] if self.p \
                else np.zeros(0)
            self.reweight(w, yy - self._XY[:, :-1] @ shift)
            self.beta_shift = shift
            self._presum_ok = True          # fixed weights: columns with equal A11 may be pre-summed
        else:
            self.reweight(w, y)

    # ---- structure ---------------------------------------------------------------------------
    def _structure(self, design: MixedDesign, p: int) -> None:
        """Sizes and term layout of the system (no rows needed)."""
        if not design.reterms:
            raise FitError("no random-effects terms")
        self.design = design
        self.t1, self.rest = design.reterms[0], design.reterms[1:]
        t1 = self.t1
        self.k1, self.l1, self.q1 = t1.n_cols, t1.n_levels, t1.q
        self.q_rest = sum(t.q for t in self.rest)
        self.p = p
        self._zero_shift = np.zeros(self.p)
        self.m = self.q_rest + self.p + 1
        self._starts = np.cumsum([0] + [t.q for t in self.rest])[:-1].tolist()
        self._theta_slices = design.theta_slices
        self.scalar_rest = all(t.n_cols == 1 for t in self.rest)
        self._diag_rest = (np.arange(self.q_rest), np.arange(self.q_rest))

    def _index(self, layout: str | None) -> None:
        t1, k1, q1, qr = self.t1, self.k1, self.q1, self.q_rest
        ar = np.arange(k1)
        self._idx11 = (t1.codes[:, None, None] * k1 * k1 + ar[:, None] * k1 + ar[None, :]).ravel()
        self._val11 = (self._Xi1[:, :, None] * self._Xi1[:, None, :]).ravel()
        c1 = t1.codes[:, None] * k1 + ar                                     # (n, k1) Z1 columns
        pp = self.p + 1
        self._idx_xy1 = (np.arange(pp)[None, :, None] * q1 + c1[:, None, :]).ravel()
        cols, vals = [], []
        for s, t in zip(self._starts, self.rest):
            cols.append(s + t.codes[:, None] * t.n_cols + np.arange(t.n_cols))
            vals.append(np.asarray(t.Xi, dtype=float))
        if self.rest:
            C, V = np.hstack(cols), np.hstack(vals)                          # (n, kr)
            self._kr = C.shape[1]
            self._V = V
            self._idx22 = (C[:, :, None] * qr + C[:, None, :]).ravel()
            self._val22 = (V[:, :, None] * V[:, None, :]).ravel()
            self._idx_rxy = (C[:, :, None] * pp + np.arange(pp)).ravel()
            shape = (C.shape[0], self._kr, k1)                               # entries of Zrest' W Z1
            rows_r, cols_r, self._inv21 = coo_pattern_csc(
                np.broadcast_to(C[:, :, None], shape).astype(np.int64).ravel(),
                np.broadcast_to(c1[:, None, :], shape).astype(np.int64).ravel(), qr, q1)
            self._val21 = (V[:, :, None] * self._Xi1[:, None, :]).ravel()
        else:
            rows_r = cols_r = np.zeros(0, dtype=np.int64)
            self._kr = 0
        self._layout21(rows_r, cols_r, layout, csc_order=True)

    def _layout21(self, rows_r: np.ndarray, cols_r: np.ndarray, layout: str | None,
                  csc_order: bool = False) -> None:
        """Dense or CSC storage of A21 for the distinct Z-rest entries at (rows_r, cols_r).

        ``csc_order``: the entries come sorted by column, then row (no sort needed).
        """
        k1, q1, qr, pp = self.k1, self.q1, self.q_rest, self.p + 1
        nnz = rows_r.size + pp * q1
        work = (np.bincount(cols_r, minlength=q1) + pp).astype(np.int64) ** 2
        self._dense21 = self.m * q1 <= 4_000_000 and (int(work.sum()) * k1 > 0.1 * self.m**2 * q1
                                                       or self.m * q1 <= 2_000)
        if layout is not None:
            self._dense21 = layout == "dense"
        if self._dense21:
            self._flat_r = rows_r * q1 + cols_r
            return
        # CSC with sorted rows: each column holds its Z-rest rows, then the p + 1 rows of X and y
        counts = np.bincount(cols_r, minlength=q1) + pp
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        starts_c = np.concatenate([[0], np.cumsum(counts - pp)])
        if csc_order:
            rank = np.arange(rows_r.size) - starts_c[cols_r]
        else:
            order = np.lexsort((rows_r, cols_r))
            rank = np.empty(rows_r.size, dtype=np.int64)
            rank[order] = np.arange(rows_r.size) - starts_c[cols_r[order]]
        self._pos_r = indptr[cols_r] + rank
        nr = counts - pp
        self._pos_xy = (indptr[:-1][None, :] + nr[None, :] + np.arange(pp)[:, None]).ravel()   # (pp, q1)
        indices = np.empty(nnz, dtype=np.int64)
        indices[self._pos_r] = rows_r
        indices[self._pos_xy] = (qr + np.arange(pp)[:, None] + np.zeros(q1, dtype=np.int64)).ravel()
        self._indptr, self._indices = indptr, indices
        self._cols = np.repeat(np.arange(q1), counts)

    @classmethod
    def from_crossproducts(cls, design, layout: str | None = None) -> "BlockedSystem":
        """The LMM's system from cross-products accumulated chunk by chunk (out-of-memory data).

        ``design`` is a :class:`~bayesmixed.design.streamed.StreamedDesign`: its
        ``crossproducts`` hold ``A11``, the ``[X y]`` rows of ``A21``, the Z-rest entries
        of ``A21`` as sorted COO keys, ``A22`` and ``ldW``, with ``y`` already less its
        least-squares fit ``X beta_shift`` (the layout of :meth:`reweight`). There are no
        rows, so it cannot be reweighted (GLMMs need the rows).
        """
        cp = design.crossproducts
        self = cls.__new__(cls)
        self._structure(design, cp.layout.p)
        self._layout21(cp.keys // self.q1, cp.keys % self.q1, layout)
        self.A11 = cp.A11
        self._assemble(cp.xy1.ravel(), cp.A22.copy(), cp.vals)
        self.ldW = cp.ldW
        self.beta_shift = np.asarray(design.beta_shift, dtype=float)
        self._presum_ok = True
        return self

    def theta_of(self, theta: np.ndarray, i: int) -> np.ndarray:
        return theta[self._theta_slices[i]]

    # ---- weighting ---------------------------------------------------------------------------
    def reweight(self, w: np.ndarray, y: np.ndarray | None) -> None:
        """Cross products of ``[Z X y]`` with weights ``w`` (new arrays: older factors keep theirs).

        ``y=None``: the Z blocks only (X and y rows zero), for ``factor(theta, z_only=True)``.
        """
        if not hasattr(self, "_XY"):
            raise FitError("a system built from cross-products (out-of-memory data) has no rows to "
                           "reweight: GLMMs need the data in memory")
        k1, l1, q1, qr = self.k1, self.l1, self.q1, self.q_rest
        pp = self.p + 1
        self.beta_shift = self._zero_shift
        self._presum_ok = False             # PIRLS reweights at every step: no pre-summing
        self.A11 = np.bincount(self._idx11, weights=_rep(w, k1 * k1) * self._val11,
                               minlength=l1 * k1 * k1).reshape(l1, k1, k1)
        A22 = np.zeros((self.m, self.m))
        if y is None:
            xy1 = 0.0
        else:
            XY = self._XY
            XY[:, -1] = y
            wXY = XY * w[:, None]
            xy1 = np.bincount(self._idx_xy1, weights=(wXY[:, :, None] * self._Xi1[:, None, :]).ravel(),
                              minlength=pp * q1)                              # (pp, q1) flat
            A22[qr:, qr:] = XY.T @ wXY
        if self.rest:
            kr = self._kr
            A22[:qr, :qr] = np.bincount(self._idx22, weights=_rep(w, kr * kr) * self._val22,
                                        minlength=qr * qr).reshape(qr, qr)
            if y is not None:
                rxy = np.bincount(self._idx_rxy, weights=(self._V[:, :, None] * wXY[:, None, :]).ravel(),
                                  minlength=qr * pp).reshape(qr, pp)
                A22[:qr, qr:] = rxy
                A22[qr:, :qr] = rxy.T
            a21r = np.bincount(self._inv21, weights=_rep(w, kr * k1) * self._val21)
        else:
            a21r = np.zeros(0)
        self._assemble(xy1, A22, a21r)

    def _assemble(self, xy1: np.ndarray, A22: np.ndarray, a21r: np.ndarray) -> None:
        """A22 and A21 in the chosen storage from the X/y rows ``xy1`` and Z-rest entries ``a21r``."""
        q1, qr = self.q1, self.q_rest
        self.A22 = A22
        if self._dense21:
            A21 = np.zeros(self.m * q1)
            A21[self._flat_r] = a21r
            A21[qr * q1:] = xy1
            self.A21 = A21.reshape(self.m, q1)
        else:
            data = np.empty(self._indices.size)
            data[self._pos_r] = a21r
            data[self._pos_xy] = xy1
            self.A21 = SparseA21(data, self._indices, self._indptr, self._cols, (self.m, q1))

    # ---- the factor ----------------------------------------------------------------------------
    def lambda_rest(self, theta: np.ndarray, v: np.ndarray, trans: bool = False) -> np.ndarray:
        """Lambda_rest v (or its transpose) for v of shape (q_rest, r), term by term."""
        out = np.empty_like(v)
        for i, (s, t) in enumerate(zip(self._starts, self.rest)):
            out[s : s + t.q] = t.lambda_mul(self.theta_of(theta, i + 1), v[s : s + t.q], trans)
        return out

    def _D_blocks(self, T1: np.ndarray):
        """(L11, L11^{-1}, W): factors of T1' A11_g T1 + I and W_g = T1 L11_g^{-T} (D_g = W_g W_g')."""
        if self.k1 == 1:
            t = T1[0, 0]
            L11 = np.sqrt(t * t * self.A11 + 1.0)
            Linv = 1.0 / L11
            return L11, Linv, t * Linv
        return first_term_blocks(self.A11, np.ascontiguousarray(T1))

    def _schur_product(self, Wd: np.ndarray, scale: np.ndarray | None, d2: np.ndarray | None = None,
                       v_rows: int = 0):
        """A21 D A21' (or, fused, the whole scaled Schur complement's upper triangle).

        With ``d2`` (k1 = 1, scalar terms only): also ``(P, V)``, V the upper triangle of
        ``A21[:v_rows] diag(d2) A21[:v_rows]'`` (unscaled), for the gradient's traces.
        """
        k1, A21 = self.k1, self.A21
        if isinstance(A21, SparseA21):
            csc = (A21.indptr, A21.indices, A21.data)
            if k1 == 1 and scale is not None:
                n_threads = threads_for(self._kernel_flops(A21), MIN_KERNEL_FLOPS)
                if self.__dict__.get("_presum_ok", False):   # fixed weights: reuse and the class plan
                    U, V = schur_cache(self).upper(self.A22, *csc, (Wd[:, 0, 0] ** 2), scale, self.q_rest,
                                                   d2, self.m - v_rows, n_threads, self.A11.ravel())
                else:                                         # PIRLS reweights: the direct kernel
                    U, V = schur_scalar_upper_v(self.A22, *csc, (Wd[:, 0, 0] ** 2), scale, self.q_rest,
                                                d2, self.m - v_rows, n_threads)
                return U if d2 is None else (U, V)
            D = np.ascontiguousarray(Wd @ np.swapaxes(Wd, 1, 2))
            P = rank_update_lower(np.zeros((self.m, self.m)), *csc, D, k1)
            return P if scale is not None else symmetric_from_lower(P)
        if k1 == 1:
            B = A21 * Wd[:, 0, 0]
        else:
            B = np.matmul(A21.reshape(self.m, self.l1, k1).transpose(1, 0, 2), Wd)      # (l1, m, k1)
            B = B.transpose(1, 0, 2).reshape(self.m, -1)
        with blas_threads_for(float(self.m) ** 2 * B.shape[1]):
            P = B @ B.T
        if d2 is None:
            return P
        Av = A21[:v_rows]
        return P, np.triu((Av * d2) @ Av.T)

    def _kernel_flops(self, A21: SparseA21) -> float:
        """Work of the fused Schur kernel (pair updates and the m x m copy), cached per pattern."""
        key = id(A21.indptr)
        if self.__dict__.get("_flops_key") != key:
            counts = np.diff(A21.indptr).astype(float)
            self._flops_key, self._flops = key, float((counts * (counts + 1)).sum()) + 2.0 * self.m**2
        return self._flops

    def factor(self, theta: np.ndarray, z_only: bool = False, v_rows: int = 0) -> BlockedFactor:
        """Blocked Cholesky factor of the system at ``theta`` with the current weights.

        ``z_only``: the factor of ``Lambda'Z'WZ Lambda + I`` alone (no X and y rows), enough
        for the Laplace criterion and conditional variances at fixed beta.
        ``v_rows > 0`` (all terms scalar): the factor also keeps ``V = A21v D^2 A21v'``
        (``A21v`` the first ``v_rows`` rows, D the first term's block of the inverse),
        as ``F.trace_V``, from the same pass as the Schur complement (``gradient.py``).
        """
        theta = np.asarray(theta, dtype=float)
        blocks = self.design.lambda_blocks(theta)
        L11, L11inv, Wd = self._D_blocks(blocks[0])
        qr = self.q_rest
        if z_only and not qr:
            return self._new_factor(blocks, L11, L11inv, np.zeros((0, 0)), theta, True)
        scale = None
        if self.scalar_rest:
            scale = np.ones(self.m)
            for start, t, T in zip(self._starts, self.rest, blocks[1:]):
                scale[start : start + t.q] = T[0, 0]
        V = None
        if v_rows:
            P, V = self._schur_product(Wd, scale, Wd[:, 0, 0] ** 2 * L11inv[:, 0, 0] ** 2, v_rows)
        else:
            P = self._schur_product(Wd, scale)
        if isinstance(self.A21, SparseA21) and self.k1 == 1 and scale is not None:
            S = P.T                                    # fused kernel: P is already S's upper triangle
        else:
            S = self.A22 - P
            if not qr:
                pass                                   # one term: only X and y in the dense block
            elif scale is not None:
                S *= scale[:, None]
                S *= scale[None, :]
            else:
                S[:qr] = self.lambda_rest(theta, S[:qr], trans=True)
                S[:, :qr] = self.lambda_rest(theta, np.ascontiguousarray(S[:, :qr].T), trans=True).T
            if qr:
                S[self._diag_rest] += 1.0
        L22 = _cholesky(S[:qr, :qr] if z_only else S)
        F = self._new_factor(blocks, L11, L11inv, L22, theta, z_only)
        F.trace_V = V
        return F

    def _new_factor(self, blocks, L11, L11inv, L22, theta, z_only) -> BlockedFactor:
        F = BlockedFactor(system=self, blocks=blocks, L11=L11, L22=L22, A21=self.A21, theta=theta,
                          beta_shift=self.beta_shift, z_only=z_only)
        F.__dict__["_L11inv"] = L11inv
        return F

    # ---- solutions at a factor -------------------------------------------------------------
    def solve_u(self, F: BlockedFactor, beta: np.ndarray) -> np.ndarray:
        """Spherical u given beta: ``L_Z' u = c_Z - L_XZ' beta`` (back-substitution with L')."""
        qr, p = self.q_rest, self.p
        beta = beta - F.beta_shift
        L22 = F.L22
        ly = L22[-1, :-1]
        u_r = np.zeros(0)
        if qr:
            rhs = np.zeros(L22.shape[0])                # the whole factor (no copy of its leading block):
            rhs[:qr] = ly[:qr] - L22[qr : qr + p, :qr].T @ beta   # zeros below give zeros there
            u_r = _trsolve(L22, rhs, trans=1)[:qr] if L22.flags.f_contiguous else \
                _trsolve(L22[:qr, :qr], rhs[:qr], trans=1)
        e = np.concatenate([-self.lambda_rest(F.theta, u_r[:, None])[:, 0] if qr else u_r, -beta, [1.0]])
        v = self.t1.lambda_mul(self.theta_of(F.theta, 0), _a21_mul(F.A21, e, trans=True), trans=True)
        rhs1 = _mul11(F.L11inv, v[:, None])
        u1 = _mul11(np.swapaxes(F.L11inv, 1, 2), rhs1)[:, 0]
        return np.concatenate([u1, u_r])

    def solve_beta(self, F: BlockedFactor) -> np.ndarray:
        """beta from ``R_X beta = c_X`` (the X rows of L)."""
        qr, p = self.q_rest, self.p
        if not p:
            return np.zeros(0)
        LXX = F.L22[qr : qr + p, qr : qr + p]
        return _trsolve(LXX, F.L22[-1, qr : qr + p], trans=1) + F.beta_shift

    def solve_beta_u(self, F: BlockedFactor) -> tuple[np.ndarray, np.ndarray]:
        """beta and spherical u from back-substitution with L' (MixedModels.jl)."""
        beta = self.solve_beta(F)
        return beta, self.solve_u(F, beta)

    def RX(self, F: BlockedFactor) -> np.ndarray:
        """(p, p) upper-triangular R_X with R_X'R_X = X'V^{-1}X / sigma^2 (lme4's RX)."""
        qr, p = self.q_rest, self.p
        return F.L22[qr : qr + p, qr : qr + p].T.copy()

    def L21(self, F: BlockedFactor) -> sp.csr_array:
        """Sparse (m, q1) block L21 = Lr' A21 T1blk L11^{-T} (needed only at the optimum)."""
        if F.L21 is not None:
            return F.L21
        T1 = F.blocks[0]
        k1, l1 = self.k1, self.l1
        if k1 == 1:
            Binv = sp.diags_array(T1[0, 0] / F.L11[:, 0, 0])
        else:
            blk = T1 @ np.swapaxes(F.L11inv, 1, 2)
            Binv = sp.bsr_array((blk, np.arange(l1), np.arange(l1 + 1)), shape=(self.q1, self.q1))
        mats = [t.lambda_matrix(self.theta_of(F.theta, i + 1)) for i, t in enumerate(self.rest)]
        mats.append(sp.eye_array(self.p + 1, format="csr"))
        Lr = sp.csr_array(sp.block_diag(mats, format="csr"))
        A21 = F.A21.tocsr() if isinstance(F.A21, SparseA21) else sp.csr_array(F.A21)
        F.L21 = sp.csr_array(Lr.T @ A21 @ Binv)
        return F.L21

    def dense_LZ(self, F: BlockedFactor) -> np.ndarray:
        """(q, q) dense lower factor of Lambda'Z'WZ Lambda + I (for conditional variances)."""
        q1, qr, k1 = self.q1, self.q_rest, self.k1
        L = np.zeros((q1 + qr, q1 + qr))
        for g in range(self.l1):
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
        k1, l1, qr = self.k1, self.l1, self.q_rest
        L11inv = F.L11inv
        first = np.swapaxes(L11inv, 1, 2) @ L11inv
        if not qr:
            return [first]
        L22z = F.L22[:qr, :qr]
        L21z = self.L21(F)[:qr, :]
        if k1 == 1:
            B = (L21z @ sp.diags_array(L11inv[:, 0, 0])).toarray()
        else:
            Bd = sp.bsr_array((L11inv, np.arange(l1), np.arange(l1 + 1)), shape=(self.q1, self.q1))
            B = (L21z @ Bd).toarray()
        with blas_threads_for(float(qr) ** 2 * B.shape[1]):
            bottom = sla.solve_triangular(L22z, B, lower=True, check_finite=False).reshape(qr, l1, k1)
        out = [first + np.einsum("rgi,rgj->gij", bottom, bottom)]
        with blas_threads_for(float(qr) ** 3 / 3.0):
            Linv22 = sla.solve_triangular(L22z, np.eye(qr), lower=True, check_finite=False)
        for start, t in zip(self._starts, self.rest):
            cols = Linv22[:, start : start + t.q].reshape(qr, t.n_levels, t.n_cols)
            out.append(np.einsum("rgi,rgj->gij", cols, cols))
        return out
