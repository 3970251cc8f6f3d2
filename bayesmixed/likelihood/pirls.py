"""Penalized iteratively reweighted least squares and the Laplace deviance of a GLMM.

For a GLMM with spherical random effects ``u`` (``b = Lambda(theta) u``), PIRLS finds
the conditional mode of ``u`` at (theta, beta) by Newton steps on the penalized
deviance ``sum(dev_resids) + |u|^2`` (Bates et al. 2015, JSS; lme4's ``pwrssUpdate``,
MixedModels.jl's ``pirls!``). The Laplace approximation to -2 log L is then glmer's
nAGQ=1 objective::

    aic(mu) + |u|^2 + log det(Lambda' Z' W Z Lambda + I)

with ``aic`` R's ``family$aic`` (-2 log-likelihood, binomial coefficients included)
and ``W`` the GLM working weights at the mode.

The factor of ``Lambda' Z' W Z Lambda + I`` is blocked as in ``_blocked.py`` but
for the Z part only (X enters through the offset when beta is fixed): the first
term's diagonal blocks are a batch of tiny Cholesky factors, the remaining terms a
dense Schur complement. Its index structure is computed once, so every PIRLS
iteration costs a few ``bincount`` calls and one small dense Cholesky.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np
import scipy.linalg as sla
from scipy import special

from bayesmixed.design.spec import MixedDesign
from bayesmixed.errors import FitError
from bayesmixed.families import Family


_EPS = np.finfo(float).eps


def _rep(w: np.ndarray, k: int) -> np.ndarray:
    return w if k == 1 else np.repeat(w, k)
_TINY = np.finfo(float).tiny


class ZStructure:
    """Theta- and weight-free index structure of ``Z'WZ`` in the blocked layout.

    Parameters
    ----------
    design : MixedDesign
        Needs at least one random-effects term.

    Examples
    --------
    >>> import bayesmixed as bm
    >>> m = bm.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...              bm.load_dataset("cbpp"), family="binomial")
    >>> zs = ZStructure(m.design)
    >>> F = zs.factor(np.array([1.0]), np.ones(m.design.n))   # W = I, theta = 1
    >>> n_per_herd = np.bincount(m.design.reterms[0].codes)
    >>> bool(np.isclose(F.ldL2, np.log1p(n_per_herd).sum()))   # log det(Z'Z + I)
    True
    """

    def __init__(self, design: MixedDesign) -> None:
        terms = design.reterms
        if not terms:
            raise FitError("no random-effects terms")
        self.design = design
        self.terms = terms
        t1, rest = terms[0], terms[1:]
        self.t1, self.rest = t1, rest
        self.k1, self.l1, self.q1 = t1.n_cols, t1.n_levels, t1.q
        k1 = self.k1
        self.q = design.q
        # A11 = blocks of Z1'WZ1: flat index (level, a, b) for each row's k1 x k1 outer product
        ar = np.arange(k1)
        self._idx11 = (t1.codes[:, None, None] * k1 * k1 + ar[:, None] * k1 + ar[None, :]).ravel()
        self._val11 = (t1.Xi[:, :, None] * t1.Xi[:, None, :]).ravel()
        self._rep11 = k1 * k1
        starts, start = [], 0
        cols, vals = [], []
        for t in rest:
            starts.append(start)
            cols.append(start + t.codes[:, None] * t.n_cols + np.arange(t.n_cols))
            vals.append(t.Xi)
            start += t.q
        self.qr = start
        self._starts = starts
        if rest:
            C = np.hstack(cols)                                     # (n, kr) rest columns of each row
            V = np.hstack(vals)
            kr = C.shape[1]
            self._kr = kr
            qr = self.qr
            # A22 = Zr'WZr as a dense (qr, qr) bincount
            self._idx22 = (C[:, :, None] * qr + C[:, None, :]).ravel()
            self._val22 = (V[:, :, None] * V[:, None, :]).ravel()
            # A21 = Zr'WZ1: fixed sparsity pattern, values by bincount into the unique pairs
            c1 = t1.codes[:, None] * k1 + ar                       # (n, k1)
            keys = (C[:, :, None].astype(np.int64) * self.q1 + c1[:, None, :]).ravel()
            uniq, inv = np.unique(keys, return_inverse=True)
            self._inv21 = inv.ravel()
            self._val21 = (V[:, :, None] * t1.Xi[:, None, :]).ravel()
            self._nnz21 = uniq.size
            self._rows21 = (uniq // self.q1).astype(np.int64)
            self._cols21 = (uniq % self.q1).astype(np.int64)
            # P = A21 D A21' by scatter-add over the pairs of nonzeros that share a first-term
            # level (D is block diagonal by level), unless A21 is dense enough for a matmul
            lev = self._cols21 // k1
            order = np.argsort(lev, kind="stable")
            counts = np.bincount(lev, minlength=self.l1)
            n_pairs = int(np.sum(counts.astype(np.int64) ** 2))
            self._dense21 = (n_pairs > 0.5 * qr * self.q1 * min(qr, 64) or uniq.size > 0.3 * qr * self.q1) \
                and qr * self.q1 <= 4_000_000
            if self._dense21:
                self._key21 = keys                                    # flat (qr * q1) index
            else:
                ptr = np.concatenate([[0], np.cumsum(counts)])
                e1, e2 = [], []
                for c in np.unique(counts):
                    if c == 0:
                        continue
                    levels = np.flatnonzero(counts == c)
                    ent = order[ptr[levels][:, None] + np.arange(c)]          # (nl, c) entries
                    e1.append(np.repeat(ent, c, axis=1).ravel())
                    e2.append(np.tile(ent, (1, c)).ravel())
                e1 = np.concatenate(e1)
                e2 = np.concatenate(e2)
                self._pe1, self._pe2 = e1, e2
                self._ptarget = self._rows21[e1] * qr + self._rows21[e2]
                # index into D (l1, k1, k1) of each pair
                self._pdidx = lev[e1] * k1 * k1 + (self._cols21[e1] % k1) * k1 + self._cols21[e2] % k1
            self.scalar_rest = all(t.n_cols == 1 for t in rest)

    # ---- Lambda products on the blocked vectors ------------------------------------
    def lam1(self, T1: np.ndarray, v: np.ndarray, trans: bool = False) -> np.ndarray:
        """(I (x) T1) v (or its transpose) for v of shape (q1, m)."""
        k1 = self.k1
        if k1 == 1:
            return v * T1[0, 0]
        vv = v.reshape(self.l1, k1, -1)
        M = T1.T if trans else T1
        return np.einsum("ab,gbm->gam", M, vv).reshape(v.shape)

    def lamr(self, Tr: list[np.ndarray], v: np.ndarray, trans: bool = False) -> np.ndarray:
        """Lambda_rest v (or its transpose) for v of shape (qr, m)."""
        out = np.empty_like(v)
        for s, t, T in zip(self._starts, self.rest, Tr):
            sl = slice(s, s + t.q)
            if t.n_cols == 1:
                out[sl] = v[sl] * T[0, 0]
            else:
                M = T.T if trans else T
                out[sl] = np.einsum("ab,gbm->gam", M, v[sl].reshape(t.n_levels, t.n_cols, -1)).reshape(
                    v[sl].shape)
        return out

    # ---- the factor ------------------------------------------------------------------
    def factor(self, theta: np.ndarray, w: np.ndarray) -> "ZFactor":
        """Blocked Cholesky factor of Lambda' Z' diag(w) Z Lambda + I."""
        blocks = self.design.lambda_blocks(np.asarray(theta, dtype=float))
        T1, Tr = blocks[0], blocks[1:]
        k1, l1 = self.k1, self.l1
        A11 = np.bincount(self._idx11, weights=_rep(w, self._rep11) * self._val11,
                          minlength=l1 * k1 * k1).reshape(l1, k1, k1)
        if k1 == 1:
            t2 = T1[0, 0] ** 2
            M = t2 * A11[:, 0, 0] + 1.0
            L11 = np.sqrt(M)[:, None, None]
            L11inv = (1.0 / L11)
            D = (t2 / M)[:, None, None]
        else:
            M11 = T1.T @ A11 @ T1 + np.eye(k1)
            L11 = np.linalg.cholesky(M11)
            L11inv = np.linalg.inv(L11)
            Wt = T1 @ np.swapaxes(L11inv, 1, 2)                    # T1 L^{-T}
            D = Wt @ np.swapaxes(Wt, 1, 2)                          # T1 M11^{-1} T1'
        A21 = L22 = None
        if self.qr:
            qr = self.qr
            A22 = np.bincount(self._idx22, weights=_rep(w, self._kr * self._kr) * self._val22,
                              minlength=qr * qr).reshape(qr, qr)
            w21 = _rep(w, self._kr * k1) * self._val21
            if self._dense21:
                A21 = np.bincount(self._key21, weights=w21, minlength=qr * self.q1).reshape(qr, self.q1)
                if k1 == 1:
                    P = (A21 * D[:, 0, 0]) @ A21.T
                else:
                    A3 = A21.reshape(qr, l1, k1)
                    P = np.einsum("rga,gab,sgb->rs", A3, D, A3, optimize=True)
            else:
                a21 = np.bincount(self._inv21, weights=w21, minlength=self._nnz21)
                A21 = _Scatter(a21, self._rows21, self._cols21, (qr, self.q1))
                vals = a21[self._pe1] * a21[self._pe2] * D.ravel()[self._pdidx]
                P = np.bincount(self._ptarget, weights=vals, minlength=qr * qr).reshape(qr, qr)
            S = A22 - P
            if self.scalar_rest:
                sc = np.empty(qr)
                for s0, t, T in zip(self._starts, self.rest, Tr):
                    sc[s0:s0 + t.q] = T[0, 0]
                S *= sc[:, None]
                S *= sc[None, :]
            else:
                S = self.lamr(Tr, self.lamr(Tr, S, trans=True).T.copy(), trans=True).T
            S[np.diag_indices(qr)] += 1.0
            try:
                L22 = sla.cholesky(S, lower=True, overwrite_a=True, check_finite=False)
            except np.linalg.LinAlgError as exc:       # pragma: no cover - S is PD by construction
                raise FitError(f"Cholesky factor failed: {exc}") from exc
        return ZFactor(self, T1, Tr, L11, L11inv, A21, L22)


class _Scatter:
    """A fixed-pattern sparse matrix with matmuls by bincount (no per-call sparse overhead)."""

    def __init__(self, data, rows, cols, shape, transposed=False):
        self.data, self.rows, self.cols, self.shape, self._tr = data, rows, cols, shape, transposed

    @property
    def T(self) -> "_Scatter":
        return _Scatter(self.data, self.cols, self.rows, self.shape[::-1], not self._tr)

    def __matmul__(self, v: np.ndarray) -> np.ndarray:
        V = v[:, None] if v.ndim == 1 else v
        out = np.empty((self.shape[0], V.shape[1]))
        for j in range(V.shape[1]):
            out[:, j] = np.bincount(self.rows, weights=self.data * V[self.cols, j], minlength=self.shape[0])
        return out[:, 0] if v.ndim == 1 else out


@dataclass
class ZFactor:
    """L with LL' = Lambda'Z'WZ Lambda + I in blocks [[L11, 0], [L21, L22]]."""

    zs: ZStructure
    T1: np.ndarray
    Tr: list
    L11: np.ndarray            # (l1, k1, k1) lower
    L11inv: np.ndarray         # (l1, k1, k1)
    A21: object                # (qr, q1) Zr'WZ1, dense or _Scatter; L21 = Lam_r' A21 Lam_1 L11^-T
    L22: np.ndarray | None     # (qr, qr) lower

    @property
    def _L22inv(self) -> np.ndarray:
        # a small rest block (qr <= 64): one triangular inverse makes every later solve a matmul
        inv = self.__dict__.get("_inv22")
        if inv is None:
            inv, info = sla.lapack.dtrtri(self.L22, lower=1)
            if info != 0:                   # pragma: no cover - L22 has a positive diagonal
                raise FitError("triangular inverse failed")
            self.__dict__["_inv22"] = inv
        return inv

    @property
    def ldL2(self) -> float:
        """log det(Lambda'Z'WZ Lambda + I)."""
        out = 2.0 * np.log(np.diagonal(self.L11, axis1=1, axis2=2)).sum()
        if self.L22 is not None:
            out += 2.0 * np.log(np.diag(self.L22)).sum()
        return float(out)

    def _b11(self, v: np.ndarray, inv: np.ndarray) -> np.ndarray:
        zs = self.zs
        if zs.k1 == 1:
            return v * inv[:, 0, :]
        vv = v.reshape(zs.l1, zs.k1, -1)
        return (inv @ vv).reshape(v.shape)

    def solve_L(self, b: np.ndarray) -> np.ndarray:
        """L^{-1} b for b of shape (q,) or (q, m)."""
        zs = self.zs
        vec = b.ndim == 1
        B = b[:, None] if vec else b
        x1 = self._b11(B[: zs.q1], self.L11inv)
        if zs.qr:
            v = self._b11(x1, np.swapaxes(self.L11inv, 1, 2))        # L11^{-T} x1
            v = zs.lam1(self.T1, v)
            r = zs.lamr(self.Tr, np.asarray(self.A21 @ v), trans=True)
            x2 = (self._L22inv @ (B[zs.q1:] - r) if zs.qr <= 64 else
                  sla.solve_triangular(self.L22, B[zs.q1:] - r, lower=True, check_finite=False))
            x = np.vstack([x1, x2])
        else:
            x = x1
        return x[:, 0] if vec else x

    def solve_Lt(self, b: np.ndarray) -> np.ndarray:
        """L^{-T} b for b of shape (q,) or (q, m)."""
        zs = self.zs
        vec = b.ndim == 1
        B = b[:, None] if vec else b
        b1 = B[: zs.q1]
        if zs.qr:
            x2 = (self._L22inv.T @ B[zs.q1:] if zs.qr <= 64 else
                  sla.solve_triangular(self.L22, B[zs.q1:], lower=True, trans=1, check_finite=False))
            v = np.asarray(self.A21.T @ zs.lamr(self.Tr, x2))
            v = zs.lam1(self.T1, v, trans=True)
            b1 = b1 - self._b11(v, self.L11inv)
        x1 = self._b11(b1, np.swapaxes(self.L11inv, 1, 2))
        x = np.vstack([x1, x2]) if zs.qr else x1
        return x[:, 0] if vec else x

    def diag_L(self) -> np.ndarray:
        """Diagonal of L (for a single scalar term: the inverse conditional sds of u)."""
        d = np.diagonal(self.L11, axis1=1, axis2=2).ravel()
        if self.L22 is not None:
            d = np.concatenate([d, np.diag(self.L22)])
        return d


@dataclass
class PirlsState:
    """Result of PIRLS at one parameter vector."""

    theta: np.ndarray
    beta: np.ndarray
    u: np.ndarray
    eta: np.ndarray
    mu: np.ndarray
    factor: ZFactor
    dev_resid: np.ndarray      # (n,) unit deviances times prior weights
    weights: np.ndarray        # (n,) working weights at the mode
    iterations: int
    RX: np.ndarray | None = None   # joint (u, beta) PIRLS only: upper (p, p)
    RZX: np.ndarray | None = None

    @property
    def sqrL(self) -> float:
        return float(self.u @ self.u)

    @property
    def pdev(self) -> float:
        return float(self.dev_resid.sum() + self.sqrL)


class LaplaceDeviance:
    """glmer's objective: the Laplace (or adaptive Gauss-Hermite) approximation to -2 log L.

    Call it with ``pars = (theta, beta)``; ``profiled(theta)`` is glmer's nAGQ=0
    criterion with beta from PIRLS over (u, beta) jointly.

    Parameters
    ----------
    design : MixedDesign
    family : Family, optional
        Defaults to ``design.family`` (pass one to fix a negative-binomial shape).

    Notes
    -----
    lme4: ``mkGlmerDevfun`` / ``glmerLaplace`` / ``glmerAGQ``. Bates et al. (2015, JSS).

    Examples
    --------
    >>> import bayesmixed as bm
    >>> m = bm.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...              bm.load_dataset("cbpp"), family="binomial")
    >>> dev = LaplaceDeviance(m.design)
    >>> round(dev(np.array([0.642064309689732, -1.39833155181282, -0.991923809038708,
    ...                     -1.12821438763116, -1.57975005595514])), 6)
    184.052573

    glmer reports 184.053133 at these parameters with its default PIRLS tolerance
    (``tolPwrss=1e-7``) and 184.052573 with ``tolPwrss=1e-10``.
    """

    MAXIT = 100

    def __init__(self, design: MixedDesign, family: Family | None = None, *, utol: float = 1e-10) -> None:
        self.design = design
        self._family = design.family if family is None else family
        self.zs = ZStructure(design)
        self.utol = utol
        d = design
        self.y, self.X, self.offset = d.y, d.X, d.offset
        self.wt = d.weights
        self.n_trials = d.trials if d.trials is not None else np.ones(d.n)
        self._setup_response()
        self._u_start = np.zeros(d.q)
        self._beta_start = None
        self.n_theta, self.p = d.n_theta, d.p
        self.n_evals = 0
        self.n_unconverged = 0
        self._scalar1 = len(d.reterms) == 1 and d.reterms[0].n_cols == 1
        if self._scalar1:
            self._x1 = np.ascontiguousarray(d.reterms[0].Xi[:, 0], dtype=float)

    # ---- Z products (term by term, no sparse matrix) ---------------------------------
    def Zmul(self, b: np.ndarray) -> np.ndarray:
        """Z b for b (q,)."""
        out = np.zeros(self.design.n)
        for t, s in zip(self.design.reterms, self.design.b_slices):
            bt = b[s].reshape(t.n_levels, t.n_cols)
            if t.n_cols == 1:
                out += t.Xi[:, 0] * bt[t.codes, 0]
            else:
                out += np.einsum("ij,ij->i", t.Xi, bt[t.codes])
        return out

    def Ztmul(self, v: np.ndarray) -> np.ndarray:
        """Z' v for v (n,) or (n, m)."""
        vec = v.ndim == 1
        V = v[:, None] if vec else v
        parts = []
        for t in self.design.reterms:
            k = t.n_cols
            blk = np.empty((t.q, V.shape[1]))
            for a in range(k):
                xv = V * t.Xi[:, a:a + 1]
                for j in range(V.shape[1]):
                    blk[a::k, j] = np.bincount(t.codes, weights=xv[:, j], minlength=t.n_levels)
            parts.append(blk)
        out = np.vstack(parts)
        return out[:, 0] if vec else out

    def Lambda_mul(self, theta: np.ndarray, u: np.ndarray, trans: bool = False) -> np.ndarray:
        """Lambda u (or Lambda' u) for u (q,) or (q, m)."""
        zs = self.zs
        blocks = self.design.lambda_blocks(theta)
        vec = u.ndim == 1
        U = u[:, None] if vec else u
        out = np.vstack([zs.lam1(blocks[0], U[: zs.q1], trans)]
                        + ([zs.lamr(blocks[1:], U[zs.q1:], trans)] if zs.qr else []))
        return out[:, 0] if vec else out

    # ---- the response side -----------------------------------------------------------
    def _glm(self, eta: np.ndarray):
        """(mu, d mu / d eta, variance) at eta; fused for the canonical binomial / poisson links."""
        fam = self.family
        if self._fast == "logit":
            mu = special.expit(eta)
            np.clip(mu, _EPS, 1 - _EPS, out=mu)
            v = mu * (1 - mu)
            return mu, v, v
        if self._fast == "poisson":
            mu = np.exp(eta)
            np.maximum(mu, _TINY, out=mu)
            return mu, mu, mu
        mu = fam.link.linkinv(eta)
        return mu, fam.link.mu_eta(eta), fam.variance(mu)

    def devres(self, mu: np.ndarray, eta: np.ndarray | None = None, nodes: int = 1) -> np.ndarray:
        """Unit deviances times prior weights, with the saturated part precomputed.

        For the canonical links the log-likelihood is written in eta, one pass:
        logit ``y eta - log(1 + e^eta)``, poisson log ``y eta - mu``. With ``nodes=K``,
        ``mu`` and ``eta`` are (n, K) raveled row-major (every row at K quadrature nodes).
        """
        y, wt, two_wt, neg_two_wt, binary, sat = self._response_arrays(nodes)
        if binary is not None:
            # 0/1 response: the deviance is -2 wt log(probability of the observed value)
            return neg_two_wt * np.log(np.where(binary, mu, 1.0 - mu))
        if eta is not None and self._fast == "logit":
            return sat + two_wt * (np.logaddexp(0.0, eta) - y * eta)
        if eta is not None and self._fast == "poisson":
            return sat + two_wt * (mu - y * eta)
        if self._fast == "logit" or self._fast == "binomial":
            return sat - two_wt * (special.xlogy(y, mu) + special.xlog1py(1 - y, -mu))
        if self._fast == "poisson":
            return sat - two_wt * (special.xlogy(y, mu) - mu)
        return self.family.dev_resids(y, mu, wt)

    def _response_arrays(self, nodes: int):
        if nodes == 1:
            return self.y, self.wt, self._2wt, self._2wt_neg, self._binary, self._sat
        if nodes not in self._rep_cache:
            def rep(a):
                return None if a is None else np.repeat(a, nodes)
            self._rep_cache[nodes] = tuple(rep(a) for a in (self.y, self.wt, self._2wt, self._2wt_neg,
                                                             self._binary, self._sat))
        return self._rep_cache[nodes]

    def _setup_response(self) -> None:
        fam, y, wt = self.family, self.y, self.wt
        self._fast = None
        self._sat = None
        self._rep_cache: dict = {}
        self._2wt = 2 * wt
        self._2wt_neg = -2 * wt
        self._binary = None
        if fam.name == "binomial" and np.all((y == 0) | (y == 1)):
            self._binary = y == 1
        canonical = {"binomial": "logit", "poisson": "log", "gaussian": "identity", "gamma": "inverse"}
        self._newton = canonical.get(fam.name) != fam.link.name
        self._kernel_ok = (getattr(self, "_scalar1", len(self.design.reterms) == 1
                                   and self.design.reterms[0].n_cols == 1)
                           and fam.name in _FAMILY_CODES and fam.link.name in _LINK_CODES)
        if fam.name == "binomial":
            self._fast = "logit" if fam.link.name == "logit" else "binomial"
            self._sat = 2 * wt * (special.xlogy(y, y) + special.xlogy(1 - y, 1 - y))
        elif fam.name == "poisson" and fam.link.name == "log":
            self._fast = "poisson"
            self._sat = 2 * wt * (special.xlogy(y, y) - y)
        self._aic_const = None

    @property
    def family(self) -> Family:
        return self._family

    @family.setter
    def family(self, fam: Family) -> None:
        self._family = fam
        if hasattr(self, "y"):
            self._setup_response()

    def aic(self, mu: np.ndarray, dev_resid: np.ndarray) -> float:
        """R's ``family$aic``; for binomial, poisson and negative binomial it is the deviance plus a
        constant (-2 log-likelihood of the saturated model), computed once."""
        fam = self.family
        if fam.name in ("binomial", "poisson", "negativebinomial"):
            if self._aic_const is None:
                self._aic_const = fam.aic(self.y, self.n_trials, mu, self.wt, 0.0) - float(dev_resid.sum())
            return float(dev_resid.sum()) + self._aic_const
        return fam.aic(self.y, self.n_trials, mu, self.wt, float(dev_resid.sum()))

    # ---- PIRLS -------------------------------------------------------------------------
    def pirls(self, theta: np.ndarray, beta: np.ndarray | None = None, u0: np.ndarray | None = None) -> PirlsState:
        """Conditional modes of u at (theta, beta); with ``beta=None`` over (u, beta) jointly."""
        theta = np.asarray(theta, dtype=float)
        joint = beta is None
        if self._kernel_ok and not joint and u0 is None:
            return self._pirls_compiled(theta, np.asarray(beta, dtype=float))
        fam, y, wt = self.family, self.y, self.wt
        u = (self._u_start if u0 is None else u0).copy()
        if joint:
            beta = self._beta_start if self._beta_start is not None else self._glm_start()
        beta = np.asarray(beta, dtype=float).copy()
        fixed = self.X @ beta + self.offset
        eta = fixed + self.Zmul(self.Lambda_mul(theta, u))
        mu, mu_eta, var = self._glm(eta)
        dr = self.devres(mu, eta)
        pdev = dr.sum() + u @ u
        RX = RZX = None
        it = flat = 0
        change = np.inf
        scalar = self._scalar1 and not joint
        jscalar = self._scalar1 and joint
        if scalar or jscalar:
            t1 = self.design.reterms[0]
            codes, x1, L1 = t1.codes, t1.Xi[:, 0], t1.n_levels
            th = theta[0]
            xth = x1 * th
        for it in range(1, self.MAXIT + 1):
            w = wt * mu_eta**2 / var
            if self._newton:
                # observed information (full Newton): quadratic convergence for non-canonical links,
                # where Fisher scoring converges only linearly; the working response keeps the
                # score w (y - mu) / mu_eta exact, so the fixed point is the same mode
                wN = self._observed_weights(eta, mu, mu_eta, var, w)
                zres = w * (y - mu) / (mu_eta * wN)
                w = wN
            else:
                zres = (y - mu) / mu_eta
            if scalar:
                # one scalar term: Lambda'Z'WZ Lambda + I is diagonal, PIRLS is elementwise by level
                wx = w * x1
                M = th * th * np.bincount(codes, weights=wx * x1, minlength=L1) + 1.0
                z = eta - fixed + zres
                u_new = th * np.bincount(codes, weights=wx * z, minlength=L1) / M
                beta_new = beta
                F = None
            elif jscalar:
                # joint (u, beta) with one scalar term: L is diagonal, sqrt(t^2 Z'WZ + 1)
                wx = w * x1
                sq = np.sqrt(th * th * np.bincount(codes, weights=wx * x1, minlength=L1) + 1.0)
                z = eta - self.offset + zres
                wz = w * z
                cu = th * np.bincount(codes, weights=wx * z, minlength=L1) / sq
                WX = w[:, None] * self.X
                RZX = th * self.Ztmul(WX) / sq[:, None]
                RX = np.linalg.cholesky(self.X.T @ WX - RZX.T @ RZX).T
                beta_new = sla.cho_solve((RX, False), self.X.T @ wz - RZX.T @ cu)
                u_new = (cu - RZX @ beta_new) / sq
                F = None
            else:
                F = self.zs.factor(theta, w)
            if joint and not jscalar:
                z = eta - self.offset + zres
                wz = w * z
                cu = F.solve_L(self.Lambda_mul(theta, self.Ztmul(wz), trans=True))
                WX = w[:, None] * self.X
                RZX = F.solve_L(self.Lambda_mul(theta, self.Ztmul(WX), trans=True))
                XtWX = self.X.T @ WX - RZX.T @ RZX
                RX = np.linalg.cholesky(XtWX).T
                rhs = self.X.T @ wz - RZX.T @ cu
                beta_new = sla.cho_solve((RX, False), rhs)
                u_new = F.solve_Lt(cu - RZX @ beta_new)
            elif not (scalar or jscalar):
                z = eta - fixed + zres
                u_new = F.solve_Lt(F.solve_L(self.Lambda_mul(theta, self.Ztmul(w * z), trans=True)))
                beta_new = beta
            du, db = u_new - u, beta_new - beta
            if max(np.max(np.abs(du), initial=0.0), np.max(np.abs(db), initial=0.0)) < self.utol:
                # converged: the factor just used (weights at the current mu) is final to ~utol
                u, beta = u_new, beta_new
                if joint:
                    fixed = self.X @ beta + self.offset
                eta = fixed + self.Zmul(self.Lambda_mul(theta, u))
                mu, mu_eta, var = self._glm(eta)
                dr = self.devres(mu, eta)
                if F is None or self._newton:        # the criterion needs the Fisher weights
                    F, RX, RZX = self._final_factor(theta, mu_eta, var, joint)
                break
            # step halving on the penalized deviance (lme4's pwrssUpdate)
            step = 1.0
            for _ in range(12):
                u_try, b_try = u + step * du, beta + step * db
                fixed_try = self.X @ b_try + self.offset if joint else fixed
                eta_try = fixed_try + (xth * u_try[codes] if scalar else self.Zmul(self.Lambda_mul(theta, u_try)))
                mu_try, mu_eta_try, var_try = self._glm(eta_try)
                dr_try = self.devres(mu_try, eta_try)
                pdev_try = dr_try.sum() + u_try @ u_try
                if np.isfinite(pdev_try) and pdev_try <= pdev + 1e-10 * abs(pdev):
                    break
                step /= 2
            else:
                raise FitError("PIRLS step-halving failed to reduce the penalized deviance")
            change = max(np.max(np.abs(step * du), initial=0.0), np.max(np.abs(step * db), initial=0.0))
            u, beta, eta, mu, mu_eta, var, dr = u_try, b_try, eta_try, mu_try, mu_eta_try, var_try, dr_try
            if joint:
                fixed = fixed_try
            old, pdev = pdev, pdev_try
            # the criterion's log-determinant is first order in u's error, so converge on u itself
            # (no test on the change in pdev: it is quadratic in u's error and stalls first) ...
            flat = flat + 1 if abs(old - pdev) <= 1e-13 * abs(pdev) else 0
            # ... except when it stays flat while the parameters drift (separation: the mode
            # is at infinity); the fit reports that
            if change < self.utol or flat >= 4:
                F, RX, RZX = self._final_factor(theta, mu_eta, var, joint)
                break
        else:
            if not np.isfinite(pdev):
                raise FitError(f"PIRLS did not converge in {self.MAXIT} iterations (last change {change:.2g})")
            # still decreasing after MAXIT steps: a mode at infinity (separation, all-zero
            # groups); keep the last iterate and let the fit warn about it
            self.n_unconverged += 1
            F, RX, RZX = self._final_factor(theta, mu_eta, var, joint)
        w = wt * mu_eta**2 / var
        if joint:
            self._beta_start = beta.copy()
        self._u_start = u.copy()
        return PirlsState(theta=theta, beta=beta, u=u, eta=eta, mu=mu, factor=F, dev_resid=dr, weights=w,
                          iterations=it, RX=RX, RZX=RZX)

    def _pirls_compiled(self, theta: np.ndarray, beta: np.ndarray) -> PirlsState:
        """u-only PIRLS for one scalar term by the compiled kernel; the state is rebuilt in NumPy."""
        fam = self.family
        t1 = self.design.reterms[0]
        fixed = self.X @ beta + self.offset
        u, it, ok = _scalar_pirls_kernel(
            _FAMILY_CODES[fam.name], _LINK_CODES[fam.link.name], self._newton,
            float(fam.shape) if fam.shape is not None else 1.0, self.y, self.wt, self._x1, t1.codes,
            t1.n_levels, float(theta[0]), fixed, self._u_start.copy(), self.utol, self.MAXIT)
        if not ok:
            raise FitError("PIRLS step-halving failed to reduce the penalized deviance")
        eta = fixed + theta[0] * self._x1 * u[t1.codes]
        mu, mu_eta, var = self._glm(eta)
        dr = self.devres(mu, eta)
        F, _, _ = self._final_factor(theta, mu_eta, var, False)
        self._u_start = u.copy()
        return PirlsState(theta=theta, beta=beta, u=u, eta=eta, mu=mu, factor=F, dev_resid=dr,
                          weights=self.wt * mu_eta**2 / var, iterations=int(it))

    def _final_factor(self, theta, mu_eta, var, joint):
        """Factor (and RX, RZX for the joint system) with glmer's Fisher weights at the mode."""
        w = self.wt * mu_eta**2 / var
        F = self.zs.factor(theta, w)
        RX = RZX = None
        if joint:
            WX = w[:, None] * self.X
            RZX = F.solve_L(self.Lambda_mul(theta, self.Ztmul(WX), trans=True))
            RX = np.linalg.cholesky(self.X.T @ WX - RZX.T @ RZX).T
        return F, RX, RZX

    def _observed_weights(self, eta, mu, mu_eta, var, w):
        """Second derivative of the half deviance in eta, floored at a fraction of Fisher's."""
        fam = self.family
        link = fam.link.name
        if link == "log":
            mu_ee = mu_eta
        elif link == "logit":
            mu_ee = mu_eta * (1 - 2 * mu)
        elif link == "probit":
            mu_ee = -eta * mu_eta
        elif link == "cloglog":
            mu_ee = mu_eta * (1 - np.exp(eta))
        elif link == "inverse":
            mu_ee = 2 / eta**3
        elif link == "sqrt":
            mu_ee = np.full_like(eta, 2.0)
        else:
            mu_ee = np.zeros_like(eta)
        dvar = {"binomial": lambda: 1 - 2 * mu, "poisson": lambda: np.ones_like(mu),
                "gamma": lambda: 2 * mu, "gaussian": lambda: np.zeros_like(mu),
                "negativebinomial": lambda: 1 + 2 * mu / fam.shape}[fam.name]()
        obs = w - self.wt * (self.y - mu) * (mu_ee / var - mu_eta**2 * dvar / var**2)
        # where the observed information is not positive, Fisher's keeps the step a descent one
        return np.where(obs > 1e-3 * w, obs, w)

    def _glm_start(self) -> np.ndarray:
        """beta from a few IRLS steps of the GLM without random effects (glm's start)."""
        fam, y, wt = self.family, self.y, self.wt
        if fam.name == "binomial":
            mu = (wt * y + 0.5) / (wt + 1)
        elif fam.name in ("poisson", "negativebinomial"):
            mu = y + 0.1
        else:
            mu = np.where(y > 0, y, 0.1) if fam.name == "gamma" else y.copy()
        eta = fam.link.linkfun(mu)
        beta = np.zeros(self.p)
        for _ in range(25):
            mu_eta = fam.link.mu_eta(eta)
            var = fam.variance(fam.link.linkinv(eta))
            w = wt * mu_eta**2 / var
            z = eta - self.offset + (y - fam.link.linkinv(eta)) / mu_eta
            WX = w[:, None] * self.X
            new = np.linalg.lstsq(self.X.T @ WX, WX.T @ z, rcond=None)[0]
            eta = self.X @ new + self.offset
            if np.max(np.abs(new - beta)) < 1e-8:
                beta = new
                break
            beta = new
        return beta

    # ---- objectives ----------------------------------------------------------------------
    def laplace(self, state: PirlsState) -> float:
        return self.aic(state.mu, state.dev_resid) + state.sqrL + state.factor.ldL2

    def __call__(self, pars: np.ndarray) -> float:
        """Laplace criterion at ``pars = (theta, beta)`` (glmer nAGQ=1 devfun)."""
        self.n_evals += 1
        pars = np.asarray(pars, dtype=float)
        st = self.pirls(pars[: self.n_theta], pars[self.n_theta:])
        return self.laplace(st)

    def profiled(self, theta: np.ndarray) -> float:
        """glmer's nAGQ=0 criterion: Laplace at (u, beta) from joint PIRLS."""
        self.n_evals += 1
        return self.laplace(self.pirls(theta))

    def agq(self, pars: np.ndarray, nAGQ: int) -> float:
        """Adaptive Gauss-Hermite criterion (glmerAGQ), one scalar random-effects term."""
        from bayesmixed.likelihood.agq import agq_deviance

        self.n_evals += 1
        pars = np.asarray(pars, dtype=float)
        st = self.pirls(pars[: self.n_theta], pars[self.n_theta:])
        return agq_deviance(self, st, nAGQ)


# ---- compiled PIRLS for one scalar random-effects term ------------------------------------
# With one scalar term the whole u-only PIRLS is a loop over rows and levels; compiling it
# removes the interpreter overhead that dominates small GLMMs (cbpp: 56 rows, 15 levels).

_FAMILY_CODES = {"binomial": 0, "poisson": 1, "gamma": 2, "negativebinomial": 3, "gaussian": 4}
_LINK_CODES = {"logit": 0, "probit": 1, "cloglog": 2, "log": 3, "inverse": 4, "identity": 5, "sqrt": 6}


@numba.njit(cache=True, nogil=True)
def _link_parts(link, eta):  # pragma: no cover - compiled
    """(mu, d mu/d eta, d2 mu/d eta2), clipped as the NumPy links clip."""
    eps = 2.220446049250313e-16
    if link == 0:
        mu = 1.0 / (1.0 + math.exp(-eta)) if eta >= 0 else math.exp(eta) / (1.0 + math.exp(eta))
        d = max(mu * (1.0 - mu), eps)
        mu = min(max(mu, eps), 1.0 - eps)
        return mu, d, d * (1.0 - 2.0 * mu)
    if link == 1:
        mu = min(max(0.5 * math.erfc(-eta / math.sqrt(2.0)), eps), 1.0 - eps)
        d = max(math.exp(-0.5 * eta * eta) / math.sqrt(2.0 * math.pi), eps)
        return mu, d, -eta * d
    if link == 2:
        ee = math.exp(eta)
        mu = min(max(-math.expm1(-ee), eps), 1.0 - eps)
        d = max(math.exp(eta - ee), eps)
        return mu, d, d * (1.0 - ee)
    if link == 3:
        mu = max(math.exp(eta), 2.2250738585072014e-308)
        return mu, mu, mu
    if link == 4:
        return 1.0 / eta, -1.0 / (eta * eta), 2.0 / (eta * eta * eta)
    if link == 5:
        return eta, 1.0, 0.0
    return eta * eta, 2.0 * eta, 2.0


@numba.njit(cache=True, nogil=True)
def _variance(fam, mu, shape):  # pragma: no cover - compiled
    """(V(mu), V'(mu))."""
    if fam == 0:
        return mu * (1.0 - mu), 1.0 - 2.0 * mu
    if fam == 1:
        return mu, 1.0
    if fam == 2:
        return mu * mu, 2.0 * mu
    if fam == 3:
        return mu + mu * mu / shape, 1.0 + 2.0 * mu / shape
    return 1.0, 0.0


@numba.njit(cache=True, nogil=True)
def _unit_dev(fam, y, mu, wt, shape):  # pragma: no cover - compiled
    """Deviance residual times prior weight (R's dev.resids)."""
    if fam == 0:
        a = y * math.log(y / mu) if y > 0 else 0.0
        b = (1.0 - y) * math.log((1.0 - y) / (1.0 - mu)) if y < 1 else 0.0
        return 2.0 * wt * (a + b)
    if fam == 1:
        a = y * math.log(y / mu) if y > 0 else 0.0
        return 2.0 * wt * (a - (y - mu))
    if fam == 2:
        return -2.0 * wt * (math.log(y / mu) - (y - mu) / mu)
    if fam == 3:
        a = y * math.log(y / mu) if y > 0 else 0.0
        return 2.0 * wt * (a - (y + shape) * math.log((y + shape) / (mu + shape)))
    return wt * (y - mu) ** 2


@numba.njit(cache=True, nogil=True)
def _scalar_pirls_kernel(fam, link, newton, shape, y, wt, x, codes, n_levels, th, fixed, u,
                         utol, maxit):  # pragma: no cover - compiled
    """Conditional modes of u for eta = fixed + th * x * u[codes]; returns (u, iterations, ok)."""
    n = y.size
    A = np.empty(n_levels)
    r = np.empty(n_levels)
    unew = np.empty(n_levels)
    utry = np.empty(n_levels)

    def pdev_at(uu):
        s = 0.0
        for j in range(n_levels):
            s += uu[j] * uu[j]
        for i in range(n):
            mu, _, _ = _link_parts(link, fixed[i] + th * x[i] * uu[codes[i]])
            s += _unit_dev(fam, y[i], mu, wt[i], shape)
        return s

    pdev = pdev_at(u)
    for it in range(1, maxit + 1):
        A[:] = 0.0
        r[:] = 0.0
        for i in range(n):
            ere = th * x[i] * u[codes[i]]
            eta = fixed[i] + ere
            mu, me, mee = _link_parts(link, eta)
            V, dV = _variance(fam, mu, shape)
            w = wt[i] * me * me / V
            if newton:
                obs = w - wt[i] * (y[i] - mu) * (mee / V - me * me * dV / (V * V))
                wn = obs if obs > 1e-3 * w else w
            else:
                wn = w
            z = ere + w * (y[i] - mu) / (me * wn)
            xi = th * x[i]
            A[codes[i]] += wn * xi * xi
            r[codes[i]] += wn * xi * z
        change = 0.0
        for j in range(n_levels):
            unew[j] = r[j] / (A[j] + 1.0)
            change = max(change, abs(unew[j] - u[j]))
        if change < utol:
            for j in range(n_levels):
                u[j] = unew[j]
            return u, it, True
        step = 1.0
        ok = False
        for _ in range(12):
            for j in range(n_levels):
                utry[j] = u[j] + step * (unew[j] - u[j])
            pt = pdev_at(utry)
            if np.isfinite(pt) and pt <= pdev + 1e-10 * abs(pdev):
                ok = True
                break
            step /= 2.0
        if not ok:
            return u, it, False
        for j in range(n_levels):
            u[j] = utry[j]
        pdev = pt
        if step * change < utol:
            return u, it, True
    return u, maxit, True
