"""Inverse interpolation of a likelihood profile (R's ``splines::interpSpline`` + ``backSpline``).

lme4's ``confint.thpr`` fits a natural interpolating cubic spline of the signed
root deviance ``zeta`` against the parameter, inverts it piecewise (a cubic Hermite
interpolant of the parameter against zeta, with slopes ``1 / zeta'`` at the knots and
quadratic end pieces) and reads the interval ends at ``zeta = qnorm(alpha / 2)`` and
``qnorm(1 - alpha / 2)``. Outside the profiled range the result is NaN, as in R.
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import CubicSpline


class BackSpline:
    """The parameter as a piecewise cubic function of zeta, from profile points.

    Parameters
    ----------
    x, zeta : array_like
        Profile points (parameter values and signed root deviances); zeta must be
        strictly increasing in x (a ``ValueError`` otherwise).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.linspace(-3, 3, 13)
    >>> BackSpline(x, 2 * x)(np.array([-1.96, 0.5, 7.0])).round(4).tolist()
    [-0.98, 0.25, nan]
    """

    def __init__(self, x, zeta) -> None:
        x = np.asarray(x, dtype=float)
        z = np.asarray(zeta, dtype=float)
        order = np.argsort(x)
        x, z = x[order], z[order]
        if x.size < 4:
            raise ValueError("an interpolating cubic spline needs at least 4 profile points")
        if np.any(np.diff(x) <= 0):
            raise ValueError("profile parameter values must be distinct")
        slope = CubicSpline(x, z, bc_type="natural")(x, 1)
        kdiff, adiff = np.diff(x), np.diff(z)
        if not np.all(adiff > 0):
            raise ValueError("the profile is not monotone")
        nk = x.size
        b = np.zeros((nk, 4))
        b[:, 0] = x
        b[:, 1] = 1.0 / slope
        for i in range(nk - 1):
            a = adiff[i]
            A = np.array([[a**2, a**3], [2 * a, 3 * a**2]])
            rhs = np.array([kdiff[i] - a * b[i, 1], b[i + 1, 1] - b[i, 1]])
            b[i, 2:4] = np.linalg.solve(A, rhs)
        b[nk - 1, 1:] = np.nan
        if nk > 2:
            b[0, 3] = b[nk - 2, 3] = 0.0
            a0 = adiff[0]
            b[0, 1:3] = np.linalg.solve(np.array([[a0, a0**2], [1.0, 2 * a0]]),
                                        np.array([kdiff[0], 1.0 / slope[1]]))
            b[nk - 2, 2] = (kdiff[-1] - adiff[-1] * b[nk - 2, 1]) / adiff[-1] ** 2
        if b[0, 2] > 0:
            b[0, 2] = 0.0
            b[0, 1] = kdiff[0] / adiff[0]
        if b[nk - 2, 2] < 0:
            b[nk - 2, 2] = 0.0
            b[nk - 2, 1] = kdiff[-1] / adiff[-1]
        self.knots = z
        self.coef = b

    def __call__(self, zeta) -> np.ndarray:
        zq = np.atleast_1d(np.asarray(zeta, dtype=float))
        k = self.knots
        i = np.searchsorted(k, zq, side="left") - 1      # k[i] < zq <= k[i+1]
        i = np.where(zq == k[0], 0, i)
        ok = (i >= 0) & (i < k.size - 1)
        ii = np.clip(i, 0, k.size - 2)
        t = zq - k[ii]
        c = self.coef[ii]
        y = c[:, 0] + t * (c[:, 1] + t * (c[:, 2] + t * c[:, 3]))
        return np.where(ok, y, np.nan)


def linear_inverse(x, zeta, zq) -> np.ndarray:
    """Linear interpolation of x against zeta (R's ``approxfun``); NaN outside the range.

    Examples
    --------
    >>> linear_inverse([0.0, 1.0, 2.0], [-1.0, 0.0, 3.0], [1.5, 5.0]).tolist()
    [1.5, nan]
    """
    x = np.asarray(x, dtype=float)
    z = np.asarray(zeta, dtype=float)
    order = np.argsort(z)
    z, x = z[order], x[order]
    zq = np.asarray(zq, dtype=float)
    return np.where((zq < z[0]) | (zq > z[-1]), np.nan, np.interp(zq, z, x))
