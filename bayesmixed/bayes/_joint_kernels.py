"""Compiled joint log density of the non-centred GLMM (numba, cached once per installation).

One kernel for every family and link: rows are keyed by ``family.code`` and
``family.link.code`` (the codes of :mod:`bayesmixed.likelihood._pirls_kernel`), the
random-effects terms by packed arrays of any number and width. The hyperparameters (sds,
LKJ canonical partial correlations, the family's parameter) go through the kernels of
:mod:`bayesmixed.bayes._collapsed_hyper`.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import types

from bayesmixed.bayes._addrcall import piece_addresses, propagating_caller
from bayesmixed.bayes._collapsed_hyper import hyper_backward, hyper_forward, positive_prior

LOG2PI = math.log(2.0 * math.pi)
# pm.math.invprobit divides by sqrt(2.0) evaluated in float32 (PyTensor casts the Python 2.0 to the
# narrowest exact dtype); the PyMC model is the specification, so its probit uses this constant
SQRT2_F32 = float(np.sqrt(np.float32(2.0)))
# called from compiled code only: no CPython or C wrapper to generate (less to compile)
_INTERNAL = {"no_cpython_wrapper": True, "no_cfunc_wrapper": True}


@numba.njit(cache=True, nogil=True, **_INTERNAL)
def digamma(x):  # pragma: no cover - compiled
    """psi(x) for x > 0: recurrence up to 10, then the asymptotic series."""
    acc = 0.0
    while x < 10.0:
        acc -= 1.0 / x
        x += 1.0
    x2 = 1.0 / (x * x)
    ser = x2 * (1.0 / 12 - x2 * (1.0 / 120 - x2 * (1.0 / 252 - x2 * (1.0 / 240 - x2 * (1.0 / 132)))))
    return acc + math.log(x) - 0.5 / x - ser


@numba.njit(cache=True, nogil=True, **_INTERNAL)
def _mean(link, eta):  # pragma: no cover - compiled
    """(mu, d mu / d eta) without clipping (as the PyMC model)."""
    if link == 3:
        mu = math.exp(eta)
        return mu, mu
    if link == 4:
        return 1.0 / eta, -1.0 / (eta * eta)
    if link == 5:
        return eta, 1.0
    if link == 6:
        return eta * eta, 2.0 * eta
    mu = 1.0 / (1.0 + math.exp(-eta))
    return mu, mu * (1.0 - mu)


@numba.njit(cache=True, nogil=True, **_INTERNAL)
def _binomial(link, s, n, eta):  # pragma: no cover - compiled
    """(log density without the binomial coefficient, d/d eta)."""
    if link == 0:
        sp = eta + math.log1p(math.exp(-eta)) if eta > 0 else math.log1p(math.exp(eta))
        p = 1.0 / (1.0 + math.exp(-eta))
        return s * eta - n * sp, s - n * p
    if link == 1:
        c = SQRT2_F32
        p = 0.5 * math.erfc(-eta / c)
        q = 0.5 * math.erfc(eta / c)
        dp = math.exp(-(eta / c) ** 2) / (c * math.sqrt(math.pi))
        ll = (s * math.log(p) if s > 0 else 0.0) + ((n - s) * math.log(q) if n > s else 0.0)
        return ll, s * dp / p - (n - s) * dp / q
    ee = math.exp(eta)
    p = -math.expm1(-ee)
    dp = math.exp(eta - ee)
    ll = (s * math.log(p) if s > 0 else 0.0) - (n - s) * ee
    return ll, s * dp / p - (n - s) * ee


@numba.njit(cache=True, nogil=True, **_INTERNAL)
def row_loglik(fam, link, y, n, w, eta, aux):  # pragma: no cover - compiled
    """(log density minus the row's constant, d/d eta, d/d aux) of one observation."""
    if fam == 0:
        ll, d = _binomial(link, y, n, eta)
        return ll, d, 0.0
    mu, dmu = _mean(link, eta)
    if fam == 1:
        return y * math.log(mu) - mu, (y / mu - 1.0) * dmu, 0.0
    if fam == 3:
        a = aux
        lma = math.log(mu + a)
        ll = math.lgamma(y + a) - math.lgamma(a) + y * (math.log(mu) - lma) + a * (math.log(a) - lma)
        d = (y / mu - (y + a) / (mu + a)) * dmu
        da = digamma(y + a) - digamma(a) + math.log(a) - lma + 1.0 - (y + a) / (mu + a)
        return ll, d, da
    if fam == 2:
        k = aux
        ly = math.log(y)
        ll = k * math.log(k) - k * math.log(mu) - math.lgamma(k) + (k - 1.0) * ly - k * y / mu
        d = k * (y - mu) / (mu * mu) * dmu
        dk = math.log(k) + 1.0 - math.log(mu) - digamma(k) + ly - y / mu
        return ll, d, dk
    r = y - mu
    s2 = aux * aux
    ll = -math.log(aux) - 0.5 * w * r * r / s2
    return ll, w * r / s2 * dmu, -1.0 / aux + w * r * r / (s2 * aux)


_F1, _F2 = types.Array(types.float64, 1, "C"), types.Array(types.float64, 2, "C")
_I1, _I8, _D = types.Array(types.int64, 1, "C"), types.int64, types.float64
# the hyperparameters' forward and backward pass, called through their addresses (not compiled
# into joint_logp_grad: with empty caches a second process compiles them meanwhile)
PIECES = {
    "forward": (hyper_forward, types.Tuple((_D, _F1, _D)),
                (_F1, _I1, _I1, _I1, _I1, _I1, _F2, _F1, _F1, _I8, _F1, _F1, _F1, _F1)),
    "backward": (hyper_backward, types.none, (_F1, _F1, _I1, _I1, _I1, _I1, _I1, _F2, _F1, _F1, _F1, _F1)),
}
_forward_at, _backward_at = (propagating_caller(name, res, args) for name, (_, res, args) in PIECES.items())


def kernel_args(args: tuple) -> tuple:
    """``(addresses, *args)``: what :func:`joint_logp_grad` takes after ``x`` (the pieces' native
    addresses, compiled or loaded once; ``joint_logp_grad`` compiles meanwhile)."""
    return (piece_addresses(__name__, PIECES, ("forward",), joint_logp_grad, tuple(args)), *args)


@numba.njit(cache=True, nogil=True)
def joint_logp_grad(x, addr, fam, link, has_aux, y, ntr, w, const, offset, Xf, f_mu, f_sd, XZ, zcol, codes, tk,
                    tl, tz, hx, tcorr, tx, tc, sd_code, sd_par, cpc_beta, cpc_c0, aux_code,
                    aux_par):  # pragma: no cover - compiled
    """Log density and gradient of the non-centred joint model at unconstrained ``x``
    (``addr``: the native addresses of :data:`PIECES`, see :func:`kernel_args`).

    ``x`` = fixed coefficients (``Xf`` columns: the centred intercept first when there
    is one), then ``z_<t>`` of every term (levels x columns, row-major, at ``tz[t]``),
    then the hyperparameters from ``hx`` on in the layout of
    :func:`bayesmixed.bayes._collapsed_hyper.hyper_forward` (the family's parameter
    last when ``has_aux``). ``XZ`` holds the terms' model-matrix columns side by side
    (term t from ``zcol[t]``), ``codes[:, t]`` the level of each row.
    """
    nx = x.shape[0]
    nh = nx - hx
    xh = np.zeros(nh + 1 - has_aux)
    for i in range(nh):                  # element loops: a slice assignment compiles its error message
        xh[i] = x[hx + i]
    nc = 0
    ncpc = 0
    for t in range(tk.shape[0]):
        nc += tk[t] * tk[t]
        ncpc += tk[t] * (tk[t] - 1) // 2 if tcorr[t] else 0
    C = np.zeros(nc)
    zs = np.empty(max(ncpc, 1))
    rem = np.empty(max(ncpc, 1))
    lp, gh, aux = _forward_at(addr[0], (xh, tk, tcorr, tx, tc, sd_code, sd_par, cpc_beta, cpc_c0, aux_code, aux_par,
                                        C, zs, rem))
    g = np.zeros(nx)
    p = Xf.shape[1]
    for j in range(p):
        u = (x[j] - f_mu[j]) / f_sd[j]
        lp += -0.5 * u * u - math.log(f_sd[j]) - 0.5 * LOG2PI
        g[j] = -u / f_sd[j]
    for i in range(tz[0], hx):
        lp += -0.5 * x[i] * x[i] - 0.5 * LOG2PI
        g[i] = -x[i]
    n = y.shape[0]
    r = np.empty(n)
    gaux = 0.0
    for i in range(n):
        eta = offset[i]
        for j in range(p):
            eta += Xf[i, j] * x[j]
        for t in range(tk.shape[0]):
            k, c0, lev = tk[t], tc[t], codes[i, t]
            zo = tz[t] + lev * k
            for a in range(k):
                ba = 0.0
                for b in range(a + 1):
                    ba += C[c0 + a * k + b] * x[zo + b]
                eta += XZ[i, zcol[t] + a] * ba
        ll, d, da = row_loglik(fam, link, y[i], ntr[i], w[i], eta, aux)
        lp += ll + const[i]
        r[i] = d
        gaux += da
    gC = np.zeros(nc)
    for i in range(n):
        for j in range(p):
            g[j] += Xf[i, j] * r[i]
        for t in range(tk.shape[0]):
            k, c0, lev = tk[t], tc[t], codes[i, t]
            zo = tz[t] + lev * k
            for a in range(k):
                gb = XZ[i, zcol[t] + a] * r[i]
                for b in range(a + 1):
                    g[zo + b] += C[c0 + a * k + b] * gb
                    gC[c0 + a * k + b] += gb * x[zo + b]
    _backward_at(addr[1], (xh, gC, tk, tcorr, tx, tc, sd_code, sd_par, C, zs, rem, gh))
    if has_aux:
        _, _, _, dsdx = positive_prior(aux_code, aux_par, xh[nh - 1])
        gh[nh - 1] += gaux * dsdx
    for i in range(nh):
        g[hx + i] += gh[i]
    return lp, g
