"""The joint (non-centred) GLMM density without per-model compilation.

The log density and its analytic gradient of the PyMC model that
:func:`bayesmixed.bayes.build.build_pymc_model` makes (same unconstrained parameters,
same priors and Jacobians), for every family and link, evaluated by one numba kernel
compiled once per installation (:mod:`bayesmixed.bayes._joint_kernels`) against the
design's arrays. The PyMC model stays the specification: tests/test_joint_density.py
checks both agree to 1e-8.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, replace

import numpy as np
from scipy.special import gammaln

from bayesmixed.bayes import _joint_kernels as K
from bayesmixed.bayes._collapsed_hyper import hyper_forward
from bayesmixed.bayes._native import nutpie_model
from bayesmixed.bayes.build import binomial_counts, cor_pairs, model_coords, pair_dim
from bayesmixed.bayes.collapsed import _POSITIVE, _hyper_layout
from bayesmixed.bayes.pyfunc import run_pyfunc
from bayesmixed.bayes.priors import Prior, Priors, resolve_priors

__all__ = ["JointDesign", "joint_logp_and_grad", "prepare_joint", "sample_joint", "to_pymc_point",
           "unsupported_reason"]


def unsupported_reason(design, priors: Priors) -> str | None:
    """Why the compiled joint density cannot serve ``design`` (``None`` when it can).

    Examples
    --------
    >>> import bayesmixed as bm
    >>> m = bm.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...              bm.load_dataset("cbpp"), family="binomial")
    >>> unsupported_reason(m.design, m.priors) is None
    True
    """
    fam = design.family
    if not design.reterms:
        return "no random-effects terms"
    if design.has_user_weights and not fam.pymc_weights:
        return f"prior weights are not supported for {fam.name!r}"
    if design.p and "Intercept" in design.fixef_names and not priors.centered_intercept:
        return "an uncentred intercept prior"
    if bad := [k for k, p in priors.fixef.items() if p.distribution != "Normal"]:
        return f"fixed effects {bad} have non-normal priors"
    others = [p for cols in priors.sd.values() for p in cols.values()] + list(priors.aux.values())
    if any(p.distribution not in _POSITIVE for p in others):
        return "an sd or family-parameter prior the compiled density does not know"
    return None


@dataclass
class JointDesign:
    """The design's arrays packed for :func:`bayesmixed.bayes._joint_kernels.joint_logp_grad`."""

    design: object
    priors: Priors
    args: tuple
    names: list[str]            # one label per unconstrained coordinate
    blocks: list[tuple]         # (base name, start, shape) of each PyMC value variable (base without transform)
    xbar: np.ndarray | None
    i0: int | None

    @property
    def ndim(self) -> int:
        return len(self.names)


def _fixed(design, priors: Priors):
    """(Xf, mu, sd, blocks, names, xbar, i0): the fixed coefficients as the PyMC model has them."""
    names = list(design.fixef_names)
    X = np.asarray(design.X, dtype=float)
    mu = [float(priors.fixef[n].args.get("mu", 0.0)) for n in names]
    sd = [float(priors.fixef[n].args.get("sigma", 1.0)) for n in names]
    if design.p == 0:
        return np.zeros((design.n, 0)), np.zeros(0), np.ones(0), [], [], None, None
    if "Intercept" in names:
        i0 = names.index("Intercept")
        rest = [j for j in range(design.p) if j != i0]
        xbar = X[:, rest].mean(axis=0)
        Xf = np.column_stack([np.ones(design.n), X[:, rest] - xbar])
        order = [i0] + rest
        # one slope is a scalar value variable in the PyMC model, several a vector
        blocks = [("Intercept_c", 0, ())] + ([("beta_slopes", 1, (len(rest),) if len(rest) > 1 else ())]
                                             if rest else [])
        labels = ["Intercept_c"] + [f"beta_slopes[{names[j]}]" for j in rest]
        return Xf, np.array(mu)[order], np.array(sd)[order], blocks, labels, xbar, i0
    return X, np.array(mu), np.array(sd), [("beta", 0, (design.p,))], [f"beta[{n}]" for n in names], None, None


def _response(design):
    """(y, trials, weights, constant) per row: the family's observed values and log-density constants."""
    fam = design.family
    y = np.asarray(design.y, dtype=float)
    ones = np.ones(design.n)
    if fam.code == 0:
        counts = binomial_counts(design)
        s, n = (y, ones) if counts is None else (counts[0].astype(float), counts[1].astype(float))
        const = gammaln(n + 1) - gammaln(s + 1) - gammaln(n - s + 1) if counts is not None else np.zeros(design.n)
        return s, n, ones, const
    if fam.code in (1, 3):
        return y, ones, ones, -gammaln(y + 1)
    if fam.code == 2:
        return y, ones, ones, np.zeros(design.n)
    w = np.asarray(design.weights, dtype=float) if design.has_user_weights else ones
    return y, ones, w, -0.5 * np.log(2 * np.pi) + 0.5 * np.log(w)


def _terms(design, start: int):
    """(XZ, zcol, codes, tk, tl, tz, blocks, names) of the random-effects terms, z from ``start``."""
    XZ = np.column_stack([np.asarray(t.Xi, dtype=float) for t in design.reterms])
    zcol = np.cumsum([0] + [t.n_cols for t in design.reterms])[:-1]
    codes = np.column_stack([np.asarray(t.codes, dtype=np.int64) for t in design.reterms])
    tz, blocks, names, o = [], [], [], start
    for t in design.reterms:
        tz.append(o)
        blocks.append((f"z_{t.name}", o, (t.n_levels, t.n_cols)))
        names += [f"z_{t.name}[{lv},{c}]" for lv in t.levels for c in t.cnames]
        o += t.n_levels * t.n_cols
    ints = [np.asarray(a, dtype=np.int64) for a in
            (zcol, [t.n_cols for t in design.reterms], [t.n_levels for t in design.reterms], tz)]
    return XZ, ints[0], codes, ints[1], ints[2], ints[3], blocks, names


def _hyper_blocks(design, hnames: list[str], hx: int) -> list[tuple]:
    """(base, start, shape) of ``sd_<t>`` (or its stacked scalars), ``cpc_<t>`` and the family parameter."""
    out, groups = [], {}
    for i, nm in enumerate(hnames):
        groups.setdefault(nm.split("[")[0], []).append(hx + i)
    for base, idx in groups.items():
        out.append((base, idx[0], (len(idx),) if base.startswith(("sd_", "cpc_")) else ()))
    return out


def prepare_joint(design, priors: Priors | None = None) -> JointDesign:
    """Pack ``design`` and ``priors`` for the compiled joint density (theta-free, built once).

    Examples
    --------
    >>> import bayesmixed as bm
    >>> m = bm.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...              bm.load_dataset("cbpp"), family="binomial")
    >>> jd = prepare_joint(m.design, m.priors)
    >>> jd.ndim, jd.names[:2], jd.names[-1]
    (20, ['Intercept_c', 'beta_slopes[period[T.2]]'], 'sd_herd[Intercept]')
    """
    priors = resolve_priors(design) if priors is None else priors
    fam = design.family
    aux = list(fam.extra_params)
    has_aux = int(bool(aux))
    aux_prior = priors.aux[aux[0]] if aux else Prior("HalfFlat", {})
    hyper, hnames = _hyper_layout(design, replace(priors, aux={"sigma": aux_prior}))
    hnames = hnames[:-1] + ([aux[0]] if aux else [])
    Xf, f_mu, f_sd, fblocks, fnames, xbar, i0 = _fixed(design, priors)
    XZ, zcol, codes, tk, tl, tz, zblocks, znames = _terms(design, Xf.shape[1])
    hx = Xf.shape[1] + len(znames)
    y, ntr, w, const = _response(design)
    tk_h, _tl, tcorr, tx, tc, _tst, sd_code, sd_par, cpc_beta, cpc_c0, aux_code, aux_par = hyper
    args = (int(fam.code), int(fam.link.code), has_aux, y, ntr, w, const,
            np.asarray(design.offset, dtype=float), np.ascontiguousarray(Xf), f_mu, f_sd,
            np.ascontiguousarray(XZ), zcol, np.ascontiguousarray(codes), tk, tl, tz, hx, tcorr, tx, tc,
            sd_code, sd_par, cpc_beta, cpc_c0, aux_code, aux_par)
    blocks = fblocks + zblocks + _hyper_blocks(design, hnames, hx)
    return JointDesign(design, priors, args, fnames + znames + hnames, blocks, xbar, i0)


def joint_logp_and_grad(jd: JointDesign, x) -> tuple[float, np.ndarray]:
    """Log density of the joint PyMC model and its gradient at the unconstrained point ``x``.

    Examples
    --------
    >>> import bayesmixed as bm
    >>> m = bm.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...              bm.load_dataset("cbpp"), family="binomial")
    >>> jd = prepare_joint(m.design, m.priors)
    >>> lp, g = joint_logp_and_grad(jd, np.zeros(jd.ndim))
    >>> bool(np.isfinite(lp)), g.shape
    (True, (20,))
    """
    return K.joint_logp_grad(np.ascontiguousarray(x, dtype=float), *K.kernel_args(jd.args))


def _value_name(base: str, names) -> list[str]:
    """The PyMC value variable(s) of ``base``: itself, its transformed name, or stacked scalars."""
    pat = re.escape(base) + r"(_(log|logodds|interval)__)?"
    hit = [n for n in names if re.fullmatch(pat, n)]
    if hit:
        return hit
    return sorted((n for n in names if re.fullmatch(re.escape(base) + r"_\d+_(log|interval)__", n)),
                  key=lambda n: int(n[len(base) + 1:].split("_")[0]))


def to_pymc_point(jd: JointDesign, x, names) -> dict[str, np.ndarray]:
    """The PyMC value-variable point (``names``: the model's value-variable names) of ``x``.

    Examples
    --------
    >>> import bayesmixed as bm
    >>> m = bm.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...              bm.load_dataset("cbpp"), family="binomial")
    >>> jd = prepare_joint(m.design, m.priors)
    >>> sorted(to_pymc_point(jd, np.zeros(jd.ndim), m.pymc_model.initial_point()))
    ['Intercept_c', 'beta_slopes', 'sd_herd_log__', 'z_herd']
    """
    x = np.asarray(x, dtype=float)
    out = {}
    for base, start, shape in jd.blocks:
        size = int(np.prod(shape))
        vn = _value_name(base, names)
        if len(vn) == 1:
            out[vn[0]] = x[start:start + size].reshape(shape)
        else:
            for i, n in enumerate(vn):
                out[n] = np.asarray(x[start + i])
    return out


def _logp_fn(jd: JointDesign):
    """``x -> (logp, grad)`` for nutpie; ``-inf`` outside the support (e.g. a negative identity-link mean)."""
    bad = np.zeros(jd.ndim)

    def logp(x, **_):
        try:
            v, g = joint_logp_and_grad(jd, x)
        except (ZeroDivisionError, ValueError, FloatingPointError):
            return -np.inf, bad
        if not np.isfinite(v) or not np.all(np.isfinite(g)):
            return -np.inf, bad
        return float(v), g
    return logp


def initial_point(jd: JointDesign, seed: int) -> np.ndarray:
    """The fixed effects at their prior means, z = 0, sds near 1, with jitter in (-0.5, 0.5) (0.1 for z)."""
    rng = np.random.default_rng(seed)
    p = jd.args[8].shape[1]
    hx = jd.args[17]
    x = rng.uniform(-0.5, 0.5, size=jd.ndim)
    x[p:hx] *= 0.2
    x[:p] = jd.args[9] + rng.uniform(-0.1, 0.1, size=p)
    return x


def compile_nutpie(jd: JointDesign, native: bool = True):
    """The nutpie model of the joint density: the kernel's C function (:mod:`bayesmixed.bayes._native`),
    else Python callbacks into the cached kernel."""
    import nutpie

    if native:
        model = nutpie_model("joint", K.joint_logp_grad, K.kernel_args(tuple(jd.args)), initial_point(jd, 0),
                             list(jd.names), "param", lambda seed: initial_point(jd, seed))
        if model is not None:
            return model

    def make_expand(seed1, seed2, chain):
        def expand(x, **_):
            return {"theta_u": np.array(x, dtype=np.float64)}
        return expand

    return nutpie.compiled_pyfunc.from_pyfunc(
        jd.ndim, lambda: _logp_fn(jd), make_expand, [np.dtype("float64")], [(jd.ndim,)], ["theta_u"],
        coords={"param": list(jd.names)}, dims={"theta_u": ("param",)},
        make_initial_point_fn=lambda seed: initial_point(jd, seed))


def _hyper_draw(jd: JointDesign, xh: np.ndarray):
    """(C flat factors, family parameter) at one draw's hyperparameters."""
    a = jd.args
    tk, tcorr = a[14], a[18]
    nc = int(np.sum(tk * tk))
    ncpc = max(int(sum(k * (k - 1) // 2 for k, c in zip(tk, tcorr) if c)), 1)
    C = np.zeros(nc)
    xx = xh if a[2] else np.append(xh, 0.0)
    _, _, aux = hyper_forward(xx, tk, tcorr, a[19], a[20], a[21], a[22], a[23], a[24], a[25], a[26], C,
                              np.empty(ncpc), np.empty(ncpc))
    return C, aux


def posterior_arrays(jd: JointDesign, X: np.ndarray) -> dict[str, np.ndarray]:
    """beta, b_<t>, sd_<t>, cor_<t> and the family parameter of every draw of X (chain, draw, ndim)."""
    d = jd.design
    nch, ndr, _ = X.shape
    flat = X.reshape(nch * ndr, -1)
    p, hx = jd.args[8].shape[1], jd.args[17]
    coef = flat[:, :p]
    if jd.i0 is not None:
        beta = np.empty((flat.shape[0], d.p))
        rest = [j for j in range(d.p) if j != jd.i0]
        beta[:, jd.i0] = coef[:, 0] - coef[:, 1:] @ jd.xbar
        beta[:, rest] = coef[:, 1:]
    else:
        beta = coef
    out = {"beta": beta}
    hyper = [_hyper_draw(jd, row[hx:]) for row in flat]
    Cs = np.array([h[0] for h in hyper])
    for t, k, c0, z0 in zip(d.reterms, jd.args[14], jd.args[20], jd.args[16]):
        Ct = Cs[:, c0:c0 + k * k].reshape(-1, k, k)
        z = flat[:, z0:z0 + t.n_levels * k].reshape(-1, t.n_levels, k)
        out[f"b_{t.name}"] = np.einsum("sgj,sij->sgi", z, Ct)
        sd = np.sqrt(np.sum(Ct**2, axis=2))
        out[f"sd_{t.name}"] = sd
        if t.correlated and k > 1:
            L = Ct / sd[:, :, None]
            R = np.einsum("sik,sjk->sij", L, L)
            pi, pj, _ = cor_pairs(t.cnames)
            out[f"cor_{t.name}"] = R[:, pi, pj]
    for name in d.family.extra_params:
        out[name] = np.array([h[1] for h in hyper])
    return {k: v.reshape(nch, ndr, *v.shape[1:]) for k, v in out.items()}


def posterior_dataset(jd: JointDesign, arrays: dict):
    """xarray posterior with the PyMC model's names, dims and coords."""
    import xarray as xr

    d = jd.design
    nch, ndr = arrays["beta"].shape[:2]
    coords = {"chain": np.arange(nch), "draw": np.arange(ndr),
              **{k: v for k, v in model_coords(d).items() if k != "obs"}}
    dims = {"beta": ("fixef",)}
    for t in d.reterms:
        dims[f"b_{t.name}"] = (t.group_dim, t.term_dim)
        dims[f"sd_{t.name}"] = (t.term_dim,)
        if t.correlated and t.n_cols > 1:
            dims[f"cor_{t.name}"] = (pair_dim(t),)
    return xr.Dataset({k: xr.DataArray(v, dims=("chain", "draw", *dims.get(k, ()))) for k, v in arrays.items()},
                      coords=coords)


def sample_joint(model_or_design, priors: Priors | None = None, *, draws: int = 1000, tune: int = 1000,
                 chains: int = 4, random_seed: int | None = None, progressbar: bool = True,
                 target_accept: float = 0.8, timings: dict | None = None, **nutpie_kwargs):
    """NUTS on the joint non-centred model through the compiled density: no per-model compilation.

    Parameters
    ----------
    model_or_design : bayesmixed.Model or MixedDesign
        A model :func:`unsupported_reason` accepts.
    priors : Priors, optional
        Default: the model's priors or :func:`resolve_priors`.
    draws, tune, chains : int
        Draws kept per chain, tuning iterations per chain, number of chains.
    random_seed : int, optional
        Same seed, same draws.
    progressbar : bool
        nutpie's progress bar.
    target_accept : float
        NUTS target acceptance rate.
    timings : dict, optional
        Filled with ``setup``, ``sampling`` and ``deterministics`` wall times (s).
    **nutpie_kwargs
        Passed to ``nutpie.sample`` (e.g. ``maxdepth``).

    Returns
    -------
    xarray.DataTree
        ``posterior`` (``beta``, ``b_<t>``, ``sd_<t>``, ``cor_<t>``, the family's parameter) and
        ``sample_stats``: what :func:`bayesmixed.bayes.idata.assemble_idata` takes.

    Examples
    --------
    >>> import bayesmixed as bm
    >>> m = bm.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...              bm.load_dataset("cbpp"), family="binomial")
    >>> tr = sample_joint(m, draws=100, tune=200, chains=2, random_seed=1, progressbar=False)  # doctest: +SKIP
    >>> tr["posterior"]["b_herd"].dims  # doctest: +SKIP
    ('chain', 'draw', 'herd', 'herd__term')
    """
    import xarray as xr

    timings = {} if timings is None else timings

    def build(design, priors):
        jd = prepare_joint(design, priors)
        return jd, compile_nutpie(jd)

    _, jd, _, trace = run_pyfunc(model_or_design, priors, build, draws=draws, tune=tune, chains=chains,
                                 random_seed=random_seed, progressbar=progressbar, target_accept=target_accept,
                                 timings=timings, **nutpie_kwargs)
    t0 = time.perf_counter()
    post = posterior_dataset(jd, posterior_arrays(jd, np.asarray(trace["posterior"]["theta_u"])))
    stats = trace["sample_stats"].to_dataset()
    stats = stats.drop_vars([v for v in stats.data_vars if "param" in stats[v].dims])
    stats = stats.assign_coords(chain=post["chain"], draw=post["draw"])
    timings["deterministics"] = time.perf_counter() - t0
    return xr.DataTree.from_dict({"posterior": post, "sample_stats": stats})
