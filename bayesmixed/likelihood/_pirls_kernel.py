"""Compiled PIRLS for one scalar random-effects term (conditional modes of u by level).

With one scalar term the whole u-only PIRLS is a loop over rows and levels; compiling it
removes the interpreter overhead that dominates small GLMMs (cbpp: 56 rows, 15 levels).
The kernels switch on the integer codes of the family and the link (``family.code``,
``family.link.code``: binomial 0, poisson 1, gamma 2, negative binomial 3, gaussian 4;
logit 0, probit 1, cloglog 2, log 3, inverse 4, identity 5, sqrt 6).
"""

from __future__ import annotations

import math

import numba
import numpy as np


# The codes the kernels are written for; families.py's ``Family.code`` / ``Link.code`` equal them
# (tests/test_families.py checks that).
FAMILY_CODES = {"binomial": 0, "poisson": 1, "gamma": 2, "negativebinomial": 3, "gaussian": 4}
LINK_CODES = {"logit": 0, "probit": 1, "cloglog": 2, "log": 3, "inverse": 4, "identity": 5, "sqrt": 6}


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
def scalar_pirls(fam, link, newton, shape, y, wt, x, codes, n_levels, th, fixed, u,
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


@numba.njit(cache=True, nogil=True)
def response_pass(fam, link, shape, y, wt, eta):  # pragma: no cover - compiled
    """One pass over the rows: (mu, d mu/d eta, V(mu), deviance residual times prior weight).

    The canonical binomial and poisson deviances are written in eta (stable where the
    mean is clipped): ``2 wt [y log y + (1-y) log(1-y) + log(1 + e^eta) - y eta]`` and
    ``2 wt [y log y - y + mu - y eta]``; a 0/1 binomial response is ``-2 wt log p(y)``.
    """
    n = eta.size
    mu = np.empty(n)
    mu_eta = np.empty(n)
    var = np.empty(n)
    dev = np.empty(n)
    for i in range(n):
        m, d, _ = _link_parts(link, eta[i])
        v, _ = _variance(fam, m, shape)
        mu[i], mu_eta[i], var[i] = m, d, v
        dev[i] = _dev_eta(fam, link, shape, y[i], wt[i], eta[i], m)
    return mu, mu_eta, var, dev


@numba.njit(cache=True, nogil=True)
def _dev_eta(fam, link, shape, yi, wi, e, m):  # pragma: no cover - compiled
    """One deviance residual times prior weight; canonical binomial and poisson written in eta."""
    if fam == 0 and link == 0 and 0.0 < yi < 1.0:
        sat = yi * math.log(yi) + (1.0 - yi) * math.log(1.0 - yi)
        soft = e + math.log1p(math.exp(-e)) if e > 0 else math.log1p(math.exp(e))
        return 2.0 * wi * (sat + soft - yi * e)
    if fam == 1 and link == 3:
        sat = yi * math.log(yi) - yi if yi > 0 else 0.0
        return 2.0 * wi * (sat + m - yi * e)
    return _unit_dev(fam, yi, m, wi, shape)


@numba.njit(cache=True, nogil=True)
def scalar_laplace(fam, link, shape, y, wt, x, codes, n_levels, th, fixed, u):  # pragma: no cover - compiled
    """Laplace pieces at the modes u of one scalar term: (sum of deviance residuals, |u|^2,
    log det(th^2 Z'WZ + I)) with glmer's Fisher weights ``W = wt mu_eta^2 / V(mu)``."""
    A = np.zeros(n_levels)
    dev = 0.0
    for i in range(y.size):
        e = fixed[i] + th * x[i] * u[codes[i]]
        m, d, _ = _link_parts(link, e)
        v, _ = _variance(fam, m, shape)
        A[codes[i]] += wt[i] * d * d / v * x[i] * x[i]
        dev += _dev_eta(fam, link, shape, y[i], wt[i], e, m)
    sq = 0.0
    ld = 0.0
    for j in range(n_levels):
        sq += u[j] * u[j]
        ld += math.log(th * th * A[j] + 1.0)
    return dev, sq, ld
