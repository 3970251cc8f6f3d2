"""Exact conditional draws of b and beta at every posterior draw, and the posterior dataset.

Given the hyperparameters, the spherical effects are normal with precision ``M`` (the
blocked factor of :mod:`bayesmixed.bayes._collapsed_kernels`) and mean ``M^{-1} c``:
one blocked Cholesky and one back-substitution with ``L^{-T}(l / sigma + z)`` per draw.
Small models (dense part up to ``SMALL_DENSE``) draw through the density kernel itself
(its ``z`` argument), so the first fit after installing compiles one kernel, not two;
larger ones through :func:`draw_effects`.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from bayesmixed.bayes._collapsed_hyper import hyper_forward
from bayesmixed.bayes._collapsed_kernels import SMALL_DENSE, back_solve, response_row, schur
from bayesmixed.bayes._collapsed_one import small_kernel

# collapsed designs whose dense part is larger than this draw chains in two threads
PARALLEL_DENSE = 64


@numba.njit(cache=True, nogil=True)
def draw_effects(X, Zn, tk, tl, tcorr, tx, tc, tst, sd_code, sd_par, cpc_beta, cpc_c0, sig_code, sig_par,
                 s0, m0, A11, ptr, rows, vals, A22, hyp, eff):  # pragma: no cover - compiled
    """For every draw (row of X): sds, correlations and sigma into ``hyp``; b and the fixed
    effects drawn from their conditional normal (standard normals ``Zn``) into ``eff``."""
    nc = tc[-1] + tk[-1] * tk[-1]
    ncpc = cpc_beta.shape[0]
    k1, l1 = tk[0], tl[0]
    q1 = k1 * l1
    p = s0.shape[0]
    for d in range(X.shape[0]):
        x = X[d]
        C = np.zeros(nc)
        zs = np.empty(max(ncpc, 1))
        rem = np.empty(max(ncpc, 1))
        _, _, sigma = hyper_forward(x, tk, tcorr, tx, tc, sd_code, sd_par, cpc_beta, cpc_c0, sig_code,
                                    sig_par, C, zs, rem)
        Minv = np.empty((l1, k1, k1))
        L11 = np.empty((l1, k1, k1))
        S, _ = schur(C, sigma, s0, tk, tl, tc, tst, A11, ptr, rows, vals, A22, Minv, L11)
        U = np.ascontiguousarray(np.linalg.cholesky(S).T)
        rho = response_row(U, C, sigma, tk, tl, tc, L11, ptr, rows, vals) / sigma + Zn[d]
        th = back_solve(U, rho, C, sigma, s0, tk, tl, tc, tst, Minv, L11, ptr, rows, vals)
        j = 0
        for t in range(tk.shape[0]):
            k, co = tk[t], tc[t]
            base = 0 if t == 0 else q1 + tst[t]
            for h in range(tl[t]):
                for a in range(k):
                    acc = 0.0
                    for b in range(a + 1):
                        acc += C[co + a * k + b] * th[base + h * k + b]
                    eff[d, (0 if t == 0 else q1 + tst[t]) + h * k + a] = acc
            for a in range(k):
                s = 0.0
                for b in range(a + 1):
                    s += C[co + a * k + b] ** 2
                hyp[d, j] = math.sqrt(s)
                j += 1
        qr = th.shape[0] - q1 - p
        for i in range(p):
            eff[d, q1 + qr + i] = m0[i] + s0[i] * th[q1 + qr + i]
        for t in range(tk.shape[0]):             # correlations (i < j) of correlated terms
            k, co = tk[t], tc[t]
            if not tcorr[t] or k < 2:
                continue
            for a in range(k):
                for b in range(a + 1, k):
                    sa, sb, ab = 0.0, 0.0, 0.0
                    for c in range(k):
                        ca = C[co + a * k + c] if c <= a else 0.0
                        cb = C[co + b * k + c] if c <= b else 0.0
                        sa += ca * ca
                        sb += cb * cb
                        ab += ca * cb
                    hyp[d, j] = ab / math.sqrt(sa * sb)
                    j += 1
        hyp[d, j] = sigma


def _draw_chain(cd, X: np.ndarray, Zn: np.ndarray):
    tk, tl, tcorr, tx, tc, tst, sd_code, sd_par, cpc_beta, cpc_c0, sig_code, sig_par = cd.args_hyper
    nh = int(tk.sum()) + len(cpc_beta) + 1
    hyp = np.empty((X.shape[0], nh))
    eff = np.empty((X.shape[0], cd.n_effects))
    draw_effects(np.ascontiguousarray(X), Zn, tk, tl, tcorr, tx, tc, tst, sd_code, sd_par, cpc_beta, cpc_c0,
                   sig_code, sig_par, cd.s0, cd.m0, cd.A11, cd.ptr, cd.rows, cd.vals, cd.A22, hyp, eff)
    return hyp, eff


def _draw_chain_small(cd, X: np.ndarray, Zn: np.ndarray):
    """(hyp, eff) of one chain of a small model: the density kernel draws theta (its ``z`` argument),
    numpy scales it by the factors: the first fit compiles no second kernel."""
    tk, tl, tcorr, _, tc, tst = cd.args_hyper[:6]
    kernel, rest = small_kernel(cd)
    ndraw, ne = X.shape[0], cd.n_effects
    X = np.ascontiguousarray(X, dtype=np.float64)
    sigma = np.empty(ndraw)
    out = np.empty((ndraw, ne + int(tc[-1] + tk[-1] ** 2)))
    for d in range(ndraw):
        sigma[d], out[d] = kernel(X[d], *rest, Zn[d])
    th, C = out[:, :ne], out[:, ne:]
    q1, p = int(tk[0] * tl[0]), cd.s0.shape[0]
    eff = np.empty_like(th)
    sds, cors = [], []
    for t in range(len(tk)):
        k, lv = int(tk[t]), int(tl[t])
        Ct = np.tril(C[:, tc[t]:tc[t] + k * k].reshape(-1, k, k))
        base = 0 if t == 0 else q1 + int(tst[t])
        blk = th[:, base:base + lv * k].reshape(-1, lv, k)
        eff[:, base:base + lv * k] = np.einsum("dab,dhb->dha", Ct, blk).reshape(-1, lv * k)
        sds.append(np.sqrt(np.sum(Ct**2, axis=2)))
        if tcorr[t] and k > 1:
            iu, ju = np.triu_indices(k, 1)
            R = np.einsum("dac,dbc->dab", Ct, Ct)
            cors.append(R[:, iu, ju] / (sds[-1][:, iu] * sds[-1][:, ju]))
    eff[:, ne - p:] = cd.m0 + cd.s0 * th[:, ne - p:]
    return np.concatenate(sds + cors + [sigma[:, None]], axis=1), eff


def conditional_draws(cd, X: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """User-facing posterior arrays from unconstrained draws ``X`` (chain, draw, ndim).

    b and beta are drawn from their exact conditional normal at every draw (one blocked
    Cholesky per draw; chains in parallel threads, the kernels release the GIL).
    """
    nchain, ndraw, _ = X.shape
    seqs = np.random.SeedSequence([int(seed), 20260])
    rngs = [np.random.default_rng(s) for s in seqs.spawn(nchain)]
    Zs = [r.standard_normal((ndraw, cd.n_effects)) for r in rngs]
    workers = min(nchain, 2) if cd.m > PARALLEL_DENSE else 1
    chain = _draw_chain if cd.m > SMALL_DENSE else _draw_chain_small
    with ThreadPoolExecutor(max_workers=workers) as ex:
        res = list(ex.map(lambda c: chain(cd, X[c], Zs[c]), range(nchain)))
    hyp = np.stack([h for h, _ in res])                      # (chain, draw, nh)
    eff = np.stack([e for _, e in res])                      # (chain, draw, q + p)
    d = cd.design
    out: dict[str, np.ndarray] = {}
    q = d.q
    gamma = eff[..., q:]
    beta = gamma.copy()
    if cd.i0 is not None:
        rest = [j for j in range(d.p) if j != cd.i0]
        beta[..., cd.i0] = gamma[..., cd.i0] - gamma[..., rest] @ cd.xbar
    out["beta"] = beta
    j = 0
    for t, sl in zip(d.reterms, d.b_slices):
        out[f"sd_{t.name}"] = hyp[..., j:j + t.n_cols]
        j += t.n_cols
        out[f"b_{t.name}"] = eff[..., sl].reshape(nchain, ndraw, t.n_levels, t.n_cols)
    for t in d.reterms:
        if t.correlated and t.n_cols > 1:
            npair = t.n_cols * (t.n_cols - 1) // 2
            out[f"cor_{t.name}"] = hyp[..., j:j + npair]
            j += npair
    out["sigma"] = hyp[..., j]
    return out


def cor_pairs(t) -> list[str]:
    """Labels of a correlated term's correlation pairs, ``Intercept.Days`` (i < j, row order)."""
    k = t.n_cols
    return [f"{t.cnames[i]}.{t.cnames[j]}" for i in range(k) for j in range(i + 1, k)]


def posterior_dataset(cd, arrays: dict, *, corr_matrix: bool = False):
    """xarray posterior with the joint model's names and coords (plus ``cor_<term>`` pairs)."""
    import xarray as xr

    d = cd.design
    nchain, ndraw = arrays["sigma"].shape
    coords = {"chain": np.arange(nchain), "draw": np.arange(ndraw), "fixef": list(d.fixef_names)}
    vars_ = {"beta": (("chain", "draw", "fixef"), arrays["beta"])}
    for t in d.reterms:
        coords[t.group_dim] = list(t.levels)
        coords[t.term_dim] = list(t.cnames)
        vars_[f"sd_{t.name}"] = (("chain", "draw", t.term_dim), arrays[f"sd_{t.name}"])
        if f"cor_{t.name}" in arrays:
            cdim = f"{t.name}__cor"
            coords[cdim] = cor_pairs(t)
            vars_[f"cor_{t.name}"] = (("chain", "draw", cdim), arrays[f"cor_{t.name}"])
            if corr_matrix:
                k = t.n_cols
                R = np.broadcast_to(np.eye(k), (nchain, ndraw, k, k)).copy()
                iu = np.triu_indices(k, 1)
                R[..., iu[0], iu[1]] = arrays[f"cor_{t.name}"]
                R[..., iu[1], iu[0]] = arrays[f"cor_{t.name}"]
                coords[f"{t.term_dim}_bis"] = list(t.cnames)
                vars_[f"corr_{t.name}"] = (("chain", "draw", t.term_dim, f"{t.term_dim}_bis"), R)
    vars_["sigma"] = (("chain", "draw"), arrays["sigma"])
    for t in d.reterms:
        vars_[f"b_{t.name}"] = (("chain", "draw", t.group_dim, t.term_dim), arrays[f"b_{t.name}"])
    return xr.Dataset({k: xr.DataArray(v, dims=dims) for k, (dims, v) in vars_.items()}, coords=coords)
