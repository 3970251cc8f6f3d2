"""Collapsed NUTS for Gaussian identity-link models: no per-model compilation.

The random effects b and the fixed effects (under their normal priors, the joint
model's) are integrated out analytically::

    y ~ N(X m0 + offset, sigma^2 W^{-1} + Z Sigma_b Z' + X S0 X')

so NUTS runs over the standard deviations, the LKJ partial correlations and sigma only,
in the joint PyMC model's unconstrained parametrisation (same priors, same Jacobians:
:func:`bayesmixed.bayes.build.build_pymc_model`). The density and its analytic gradient
are evaluated on the blocked Cholesky factor the REML engine uses (first term's levels
as independent small blocks, the rest as a dense Schur complement), by numba kernels
compiled once per installation (:mod:`bayesmixed.bayes._collapsed_kernels`) and handed
to nutpie as C functions (:mod:`bayesmixed.bayes._native`; its public ``from_pyfunc``
interface when that is unavailable). A dense part larger than
``SMALL_DENSE`` is factored and inverted by LAPACK called from kernels that release the GIL
(:mod:`bayesmixed.bayes._collapsed_large`), so nutpie's chain threads use every core. After
sampling, b and beta are drawn exactly from their conditional normal at every draw.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.special import gammaln

from bayesmixed._threads import single_blas_thread
from bayesmixed.bayes import _collapsed_kernels as K
from bayesmixed.bayes import _collapsed_large as L
from bayesmixed.bayes._collapsed_draws import conditional_draws, cor_pairs, posterior_dataset
from bayesmixed.bayes._collapsed_one import _NO_DRAW, logp_grad_one, small_kernel
from bayesmixed.bayes._native import nutpie_model
from bayesmixed.bayes.loglik import eta_draws
from bayesmixed.bayes.priors import Priors, resolve_priors
from bayesmixed.bayes.pyfunc import run_pyfunc
from bayesmixed.errors import DesignError

__all__ = ["collapsed_logp_and_grad", "conditional_draws", "cor_pairs", "gaussian_loglik", "posterior_dataset",
           "prepare",
           "sample_collapsed", "unsupported_reason", "CollapsedDesign"]

# positive-prior codes of the kernels and the order of their (a, b) parameters
_POSITIVE = {"HalfNormal": 0, "HalfStudentT": 1, "HalfCauchy": 2, "HalfFlat": 3, "Exponential": 4,
             "Gamma": 5, "InverseGamma": 6, "LogNormal": 7, "Uniform": 8}
SMALL_DENSE = K.SMALL_DENSE          # dense parts up to this size: one kernel call (logp_grad_small)


def _positive_par(prior) -> tuple[int, np.ndarray]:
    """(code, (constant, a, b)) of a positive prior, constants as PyMC's log densities."""
    d, a = prior.distribution, {k: float(v) for k, v in prior.args.items()}
    if d == "HalfNormal":
        s = a.get("sigma", 1.0)
        return 0, np.array([0.5 * math.log(2 / math.pi) - math.log(s), 0.0, s])
    if d == "HalfStudentT":
        nu, s = a["nu"], a.get("sigma", 1.0)
        c = math.log(2) + gammaln((nu + 1) / 2) - gammaln(nu / 2) - 0.5 * math.log(nu * math.pi * s * s)
        return 1, np.array([c, nu, s])
    if d == "HalfCauchy":
        return 2, np.array([math.log(2) - math.log(math.pi * a["beta"]), 0.0, a["beta"]])
    if d == "HalfFlat":
        return 3, np.zeros(3)
    if d == "Exponential":
        return 4, np.array([math.log(a["lam"]), 0.0, a["lam"]])
    if d == "Gamma":
        return 5, np.array([a["alpha"] * math.log(a["beta"]) - gammaln(a["alpha"]), a["alpha"], a["beta"]])
    if d == "InverseGamma":
        return 6, np.array([a["alpha"] * math.log(a["beta"]) - gammaln(a["alpha"]), a["alpha"], a["beta"]])
    if d == "LogNormal":
        mu, s = a.get("mu", 0.0), a.get("sigma", 1.0)
        return 7, np.array([-0.5 * math.log(2 * math.pi) - math.log(s), mu, s])
    if d == "Uniform":
        lo, hi = a.get("lower", 0.0), a.get("upper", 1.0)
        return 8, np.array([-math.log(hi - lo), lo, hi])
    raise DesignError(f"prior {d} is not supported by the collapsed sampler")


def unsupported_reason(design, priors: Priors) -> str | None:
    """Why ``design`` cannot be sampled collapsed (``None`` when it can).

    Examples
    --------
    >>> import bayesmixed as bm
    >>> m = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy"))
    >>> unsupported_reason(m.design, m.priors) is None
    True
    """
    if not design.family.is_gaussian_identity:
        return "the collapsed sampler needs a gaussian family with the identity link"
    if not design.reterms:
        return "no random-effects terms"
    if design.has_user_weights and not np.all(design.weights > 0):
        return "zero prior weights"
    bad = [k for k, p in priors.fixef.items() if p.distribution != "Normal"]
    if bad:
        return f"fixed effects {bad} have non-normal priors (they cannot be integrated out)"
    others = [p for cols in priors.sd.values() for p in cols.values()] + [priors.aux["sigma"]]
    if any(p.distribution not in _POSITIVE for p in others):
        return "an sd or sigma prior the collapsed sampler does not know"
    return None


@dataclass
class CollapsedDesign:
    """A design's cross products and priors, packed as the kernels' arrays (theta-free, built once)."""

    design: object
    priors: Priors
    args_hyper: tuple            # tk, tl, tcorr, tx, tc, tst, sd_code, sd_par, cpc_beta, cpc_c0, sig_code, sig_par
    s0: np.ndarray
    m0: np.ndarray
    A11: np.ndarray
    ptr: np.ndarray
    rows: np.ndarray
    vals: np.ndarray
    A22: np.ndarray
    n: float
    sumlogw: float
    names: list[str]             # unconstrained coordinates, as the joint model's value variables
    xbar: np.ndarray | None      # centred X: column means of the non-intercept columns
    i0: int | None               # index of the intercept in X (centred parametrisation)
    large: object = None         # the large route's evaluator (built on first use)

    @property
    def ndim(self) -> int:
        return len(self.names)

    @property
    def m(self) -> int:
        return self.A22.shape[0]

    @property
    def n_effects(self) -> int:
        return self.design.q + self.design.p


def _fixed_part(design, priors: Priors):
    """(X~, m0, s0, xbar, i0): the X the priors are placed on (centred when the intercept is)."""
    names = list(design.fixef_names)
    X = np.array(design.X, dtype=float)
    m0 = np.array([float(priors.fixef[n].args.get("mu", 0.0)) for n in names])
    s0 = np.array([float(priors.fixef[n].args.get("sigma", 1.0)) for n in names])
    if "Intercept" in names and priors.centered_intercept:
        i0 = names.index("Intercept")
        rest = [j for j in range(design.p) if j != i0]
        xbar = X[:, rest].mean(axis=0)
        X[:, rest] -= xbar
        return X, m0, s0, xbar, i0
    return X, m0, s0, None, None


def _hyper_layout(design, priors: Priors):
    tk, tl, tcorr, tx, tc, tst = [], [], [], [], [], []
    sd_code, sd_par, cpc_beta, cpc_c0, names = [], [], [], [], []
    ox = oc = ost = 0
    for i, t in enumerate(design.reterms):
        k = t.n_cols
        corr = bool(t.correlated and k > 1)
        tk.append(k), tl.append(t.n_levels), tcorr.append(int(corr)), tx.append(ox), tc.append(oc)
        tst.append(ost if i else 0)
        if i:
            ost += t.q
        for c in t.cnames:
            code, par = _positive_par(priors.sd[t.name][c])
            sd_code.append(code), sd_par.append(par), names.append(f"sd_{t.name}[{c}]")
        ncpc = 0
        if corr:
            eta = float(priors.lkj_eta[t.name])
            rows, cols = np.tril_indices(k, -1)
            for r, c in zip(rows, cols):
                b = eta + (k - 2 - c) / 2.0
                cpc_beta.append(b), cpc_c0.append(2 * gammaln(b) - gammaln(2 * b))
                names.append(f"cpc_{t.name}[{r},{c}]")
            ncpc = len(rows)
        ox += k + ncpc
        oc += k * k
    sig_code, sig_par = _positive_par(priors.aux["sigma"])
    names.append("sigma")
    ints = [np.asarray(a, dtype=np.int64) for a in (tk, tl, tcorr, tx, tc, tst)]
    hyper = (*ints, np.asarray(sd_code, dtype=np.int64), np.asarray(sd_par, dtype=float).reshape(-1, 3),
             np.asarray(cpc_beta, dtype=float), np.asarray(cpc_c0, dtype=float), int(sig_code),
             np.asarray(sig_par, dtype=float))
    return hyper, names


def _level_blocks(A21: sp.csc_array, k1: int, l1: int, m: int):
    """Per level of the first term: the nonzero rows of its k1 columns of A21 and their values."""
    A = sp.coo_array(A21)
    level, col = A.col // k1, A.col % k1
    key = level.astype(np.int64) * m + A.row
    uniq, inv = np.unique(key, return_inverse=True)
    vals = np.zeros((len(uniq), k1))
    np.add.at(vals, (inv, col), A.data)
    rows = (uniq % m).astype(np.int64)
    ptr = np.searchsorted(uniq // m, np.arange(l1 + 1)).astype(np.int64)
    return ptr, rows, np.ascontiguousarray(vals)


def prepare(design, priors: Priors | None = None) -> CollapsedDesign:
    """Pack ``design`` for the collapsed kernels (cross products once; O(n q) work).

    Examples
    --------
    >>> import bayesmixed as bm
    >>> m = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy"))
    >>> cd = prepare(m.design, m.priors)
    >>> cd.names, cd.m
    (['sd_Subject[Intercept]', 'sd_Subject[Days]', 'cpc_Subject[1,0]', 'sigma'], 3)
    """
    priors = resolve_priors(design) if priors is None else priors
    why = unsupported_reason(design, priors)
    if why:
        raise DesignError(f"collapsed sampling is not available: {why}")
    Xt, m0, s0, xbar, i0 = _fixed_part(design, priors)
    hyper, names = _hyper_layout(design, priors)
    w = np.asarray(design.weights, dtype=float) if design.has_user_weights else np.ones(design.n)
    sw = np.sqrt(w)
    r = design.y - design.offset - Xt @ m0
    t1, rest = design.reterms[0], design.reterms[1:]
    k1, l1 = t1.n_cols, t1.n_levels
    Xw1 = t1.Xi * sw[:, None]
    A11 = np.zeros((l1, k1, k1))
    np.add.at(A11, t1.codes, Xw1[:, :, None] * Xw1[:, None, :])
    D = sp.diags_array(sw)
    parts = [sp.csc_array(D @ t.Zi) for t in rest] + [sp.csc_array(np.column_stack([Xt, r]) * sw[:, None])]
    B = sp.hstack(parts, format="csc")
    m = B.shape[1]
    A22 = np.ascontiguousarray((B.T @ B).toarray())
    A21 = sp.csc_array(B.T @ sp.csc_array(D @ t1.Zi))
    ptr, rows, vals = _level_blocks(A21, k1, l1, m)
    return CollapsedDesign(design=design, priors=priors, args_hyper=hyper, s0=s0, m0=m0,
                           A11=np.ascontiguousarray(A11), ptr=ptr, rows=rows, vals=vals, A22=A22,
                           n=float(design.n), sumlogw=float(np.log(w).sum()), names=names, xbar=xbar, i0=i0)


def _large_evaluator(cd: CollapsedDesign):
    """``x -> (logp, grad)`` for a large dense part (:mod:`bayesmixed.bayes._collapsed_large`):
    the scalar-first-term route with its data table (built once here), else the general one."""
    pat = L.scalar_pattern(cd)
    if pat is None:
        return lambda x: L.logp_grad_general(cd, x)
    local = threading.local()                    # one m x m workspace per sampler thread

    def evaluate(x):
        S = getattr(local, "S", None)
        if S is None:
            S = local.S = np.empty((cd.m, cd.m))
        return L.logp_grad_scalar(cd, x, pat, S)
    return evaluate


def _logp_grad_large(cd: CollapsedDesign, x: np.ndarray):
    """One large-route evaluation (the evaluator is kept on ``cd`` after the first call)."""
    if cd.large is None:
        cd.large = _large_evaluator(cd)
    return cd.large(x)


def collapsed_logp_and_grad(cd: CollapsedDesign, x) -> tuple[float, np.ndarray]:
    """Log posterior density (up to the joint model's constant) and its gradient at unconstrained ``x``.

    ``x`` follows ``cd.names``: per term the log standard deviations (logodds for a
    Uniform prior), the logodds of the LKJ canonical partial correlations, then log sigma,
    as the joint PyMC model's value variables. The value is the Gaussian marginal of y
    (b and beta integrated out) plus the log priors and log Jacobians of those values.

    Examples
    --------
    >>> import bayesmixed as bm
    >>> m = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy"))
    >>> cd = prepare(m.design, m.priors)
    >>> lp, g = collapsed_logp_and_grad(cd, [3.2, 1.8, 0.1, 3.3])
    >>> round(lp, 3), g.shape
    (-887.793, (4,))
    """
    x = np.array(x, dtype=np.float64)
    if cd.m > SMALL_DENSE:
        return _logp_grad_large(cd, x)
    kernel, rest = small_kernel(cd)              # one random-effects term: the compact one-term kernel
    return kernel(x, *rest, _NO_DRAW)


def make_logp_fn(cd: CollapsedDesign):
    """``x -> (logp, grad)`` for nutpie; ``-inf`` where a factorization fails (extreme values).

    Called once per gradient from nutpie's threads: the kernel's arguments are bound once
    here, and one sum checks value and gradient for inf/nan.
    """
    bad = np.zeros(cd.ndim)
    errors = (np.linalg.LinAlgError, ZeroDivisionError, FloatingPointError, ValueError)
    if cd.m > SMALL_DENSE:
        if cd.large is None:
            cd.large = _large_evaluator(cd)
        large = cd.large

        def evaluate(x):
            return large(np.array(x, dtype=np.float64))
    else:
        kernel, rest = small_kernel(cd)
        rest = (*rest, _NO_DRAW)

        def evaluate(x):
            return kernel(np.array(x, dtype=np.float64), *rest)

    def logp(x, **_):
        try:
            v, g = evaluate(x)
        except errors:
            return -np.inf, bad
        if not math.isfinite(v + g.sum()):          # inf or nan in the value or any gradient entry
            return -np.inf, bad
        return float(v), g
    return logp


def initial_point(cd: CollapsedDesign, seed: int) -> np.ndarray:
    """Start near half the data's spread for every sd and sigma, correlations 0, with jitter."""
    rng = np.random.default_rng(seed)
    sy = float(np.std(cd.design.y)) or 1.0
    x = np.zeros(cd.ndim)
    j = 0
    for t in cd.design.reterms:
        for c in range(t.n_cols):
            sx = float(np.std(t.Xi[:, c])) if t.cnames[c] != "Intercept" else 1.0
            x[j] = math.log(0.5 * sy / (sx if sx > 0 else 1.0))
            j += 1
        if t.correlated and t.n_cols > 1:
            j += t.n_cols * (t.n_cols - 1) // 2
    x[-1] = math.log(0.5 * sy)
    for i, (code, par) in enumerate(zip(cd.args_hyper[6], cd.args_hyper[7])):
        if code == 8:                       # Uniform: the middle of its interval
            x[_sd_index(cd, i)] = 0.0
    if cd.args_hyper[10] == 8:
        x[-1] = 0.0
    return x + rng.uniform(-0.5, 0.5, size=cd.ndim)


def _sd_index(cd: CollapsedDesign, isd: int) -> int:
    tk, tx = cd.args_hyper[0], cd.args_hyper[3]
    for t in range(len(tk)):
        if isd < tk[t]:
            return int(tx[t] + isd)
        isd -= tk[t]
    raise IndexError(isd)


def compile_nutpie(cd: CollapsedDesign, native: bool = True):
    """The nutpie model of the collapsed density: the kernel's C function
    (:mod:`bayesmixed.bayes._native`) for a small dense part, else Python callbacks into
    the cached kernels."""
    import nutpie

    if native and cd.m <= SMALL_DENSE:
        kernel, rest = small_kernel(cd)
        model = nutpie_model("one" if kernel is logp_grad_one else "small", kernel, (*rest, _NO_DRAW),
                             initial_point(cd, 0), list(cd.names), "hyper", lambda seed: initial_point(cd, seed))
        if model is not None:
            return model

    def make_logp():
        return make_logp_fn(cd)

    def make_expand(seed1, seed2, chain):
        def expand(x, **_):
            return {"theta_u": np.array(x, dtype=np.float64)}
        return expand

    return nutpie.compiled_pyfunc.from_pyfunc(
        cd.ndim, make_logp, make_expand, [np.dtype("float64")], [(cd.ndim,)], ["theta_u"],
        coords={"hyper": list(cd.names)}, dims={"theta_u": ("hyper",)},
        make_initial_point_fn=lambda seed: initial_point(cd, seed))


def gaussian_loglik(design, post) -> np.ndarray:
    """(chain, draw, n) pointwise normal log density of y: :func:`pointwise_loglik`, in place.

    The same numbers as the family's ``logpdf`` (sd ``sigma / sqrt(w)``) without scipy's
    per-call argument handling, which costs more than the sampling of a small model.

    Examples
    --------
    >>> import bayesmixed as bm
    >>> import xarray as xr
    >>> from bayesmixed.bayes.loglik import pointwise_loglik
    >>> m = bm.Model("Reaction ~ Days + (1 | Subject)", bm.load_dataset("sleepstudy"))
    >>> rng = np.random.default_rng(1)
    >>> post = xr.Dataset({"beta": (("chain", "draw", "p"), rng.normal(size=(1, 2, 2))),
    ...                    "b_Subject": (("chain", "draw", "l", "k"), rng.normal(size=(1, 2, 18, 1))),
    ...                    "sigma": (("chain", "draw"), [[25.0, 30.0]])})
    >>> bool(np.allclose(gaussian_loglik(m.design, post), pointwise_loglik(m.design, post), rtol=1e-12))
    True
    """
    ll = eta_draws(design, post)                                   # (chain, draw, n)
    np.subtract(design.y, ll, out=ll)
    sigma = np.asarray(post["sigma"], dtype=float)[..., None]      # (chain, draw, 1)
    scale = 1.0 / sigma
    const = -0.5 * math.log(2 * math.pi) - np.log(sigma)
    if design.has_user_weights:
        sw = np.sqrt(np.asarray(design.weights, dtype=float))
        ll *= sw
        const = const + np.log(sw)
    ll *= scale
    np.square(ll, out=ll)
    ll *= -0.5
    ll += const
    return ll


def sample_collapsed(model_or_design, priors: Priors | None = None, *, draws: int = 1000, tune: int = 1000,
                     chains: int = 4, random_seed: int | None = None, progressbar: bool = True,
                     target_accept: float = 0.8, corr_matrix: bool = False, timings: dict | None = None,
                     **kwargs):
    """NUTS over the covariance parameters and sigma with b and beta integrated out, then drawn.

    Parameters
    ----------
    model_or_design : bayesmixed.Model or MixedDesign
        A gaussian identity-link model (see :func:`unsupported_reason`).
    priors : Priors, optional
        Default: the model's priors (``model.priors``) or :func:`resolve_priors`.
    draws, tune, chains : int
        Draws kept per chain, tuning iterations per chain, number of chains.
    random_seed : int, optional
        Same seed, same draws.
    progressbar : bool
        nutpie's progress bar.
    target_accept : float
        NUTS target acceptance rate.
    corr_matrix : bool
        Also store ``corr_<term>`` correlation matrices (the joint model's layout).
    timings : dict, optional
        Filled with ``setup``, ``sampling`` and ``effects`` wall times (s).
    **kwargs
        Passed to ``nutpie.sample`` (e.g. ``maxdepth``).

    Returns
    -------
    xarray.DataTree
        ``posterior`` (``beta``, ``sd_<term>``, ``cor_<term>``, ``sigma``, ``b_<term>``),
        ``sample_stats`` (nutpie's, with ``diverging``), ``log_likelihood`` (``y``,
        pointwise at each draw's beta, b and sigma) and ``observed_data``.

    Examples
    --------
    >>> import bayesmixed as bm
    >>> m = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy"))
    >>> idata = sample_collapsed(m, draws=100, tune=200, chains=2, random_seed=1,
    ...                          progressbar=False)  # doctest: +SKIP
    >>> idata["posterior"]["cor_Subject"].dims  # doctest: +SKIP
    ('chain', 'draw', 'Subject__cor')
    """
    import xarray as xr

    timings = {} if timings is None else timings

    def build(design, priors):
        cd = prepare(design, priors)
        return cd, compile_nutpie(cd)

    # chains run in threads, one per core: one BLAS thread each (more would spin against each other)
    with single_blas_thread() if chains > 1 else contextlib.nullcontext():
        design, cd, seed, trace = run_pyfunc(model_or_design, priors, build, draws=draws, tune=tune, chains=chains,
                                             random_seed=random_seed, progressbar=progressbar,
                                             target_accept=target_accept, timings=timings, **kwargs)
    t0 = time.perf_counter()
    X = np.asarray(trace["posterior"]["theta_u"])                             # (chain, draw, ndim)
    post = posterior_dataset(cd, conditional_draws(cd, X, seed), corr_matrix=corr_matrix)
    stats = trace["sample_stats"].to_dataset()
    stats = stats.drop_vars([v for v in stats.data_vars if "hyper" in stats[v].dims])
    stats = stats.assign_coords(chain=post["chain"], draw=post["draw"])
    ll = gaussian_loglik(design, post)
    obs = xr.DataArray(np.arange(design.n), dims="obs")
    observed = xr.Dataset({"y": xr.DataArray(design.y, dims="obs", coords={"obs": obs})})
    loglik = xr.Dataset({"y": xr.DataArray(ll, dims=("chain", "draw", "obs"),
                                           coords={"chain": post["chain"], "draw": post["draw"], "obs": obs})})
    timings["effects"] = time.perf_counter() - t0
    return xr.DataTree.from_dict({"posterior": post, "sample_stats": stats, "log_likelihood": loglik,
                                  "observed_data": observed})
