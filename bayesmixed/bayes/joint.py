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
from dataclasses import dataclass, replace

import numpy as np
from scipy.special import gammaln

from bayesmixed.bayes import _joint_kernels as K
from bayesmixed.bayes.build import binomial_counts
from bayesmixed.bayes.collapsed import _POSITIVE, _hyper_layout
from bayesmixed.bayes.priors import Prior, Priors, resolve_priors

__all__ = ["JointDesign", "joint_logp_and_grad", "prepare_joint", "to_pymc_point", "unsupported_reason"]


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
    return K.joint_logp_grad(np.ascontiguousarray(x, dtype=float), *jd.args)


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
