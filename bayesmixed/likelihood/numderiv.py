"""Finite-difference derivatives with Richardson extrapolation (as numDeriv, which lmerTest uses)."""

from __future__ import annotations

import numpy as np


def _steps(x: np.ndarray, rel: float) -> np.ndarray:
    return rel * np.maximum(np.abs(x), 0.05)


def hessian(f, x: np.ndarray, rel: float = 1e-3) -> np.ndarray:
    """Symmetric Hessian by central differences at steps h and h/2, Richardson-combined."""
    x = np.asarray(x, dtype=float)
    k = x.size
    h0 = _steps(x, rel)
    f0 = f(x)

    def central(h):
        H = np.empty((k, k))
        fp = np.empty(k)
        fm = np.empty(k)
        for i in range(k):
            e = np.zeros(k)
            e[i] = h[i]
            fp[i], fm[i] = f(x + e), f(x - e)
            H[i, i] = (fp[i] - 2 * f0 + fm[i]) / h[i] ** 2
        for i in range(k):
            for j in range(i + 1, k):
                ei = np.zeros(k)
                ej = np.zeros(k)
                ei[i], ej[j] = h[i], h[j]
                H[i, j] = H[j, i] = (
                    f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)
                ) / (4 * h[i] * h[j])
        return H

    return (4 * central(h0 / 2) - central(h0)) / 3


def jacobian(f, x: np.ndarray, rel: float = 1e-4) -> np.ndarray:
    """Jacobian of an array-valued f: returns array of shape (x.size, *f(x).shape)."""
    x = np.asarray(x, dtype=float)
    h = _steps(x, rel)
    out = []
    for i in range(x.size):
        e = np.zeros(x.size)
        e[i] = h[i]
        d1 = (f(x + e) - f(x - e)) / (2 * h[i])
        d2 = (f(x + e / 2) - f(x - e / 2)) / h[i]
        out.append((4 * d2 - d1) / 3)
    return np.array(out)


def deriv12(f, x: np.ndarray, delta: float = 1e-4, f0: float | None = None):
    """Gradient and Hessian by central differences, as lme4's ``deriv12``.

    The gradient and the diagonal from ``f(x +- delta e_i)``; each mixed partial from the
    two diagonal points ``f(x +- delta (e_i + e_j))`` and the axis points already made,
    ``(f(++) + f(--) - f(+i) - f(-i) - f(+j) - f(-j) + 2 f(x)) / (2 delta^2)``: every entry
    has an O(delta^2) error, as with lme4's four-point formula, at half its cost per pair.
    ``1 + 2k + k(k - 1)`` evaluations (``f0`` saves one); used for lme4's convergence
    check after an LMM fit.

    Examples
    --------
    >>> f = lambda x: x[0] ** 2 * x[1] + 3 * x[0] * x[1] ** 2
    >>> g, H = deriv12(f, np.array([1.0, 2.0]))
    >>> np.round(g, 6).tolist(), np.round(H, 6).tolist()
    ([16.0, 13.0], [[4.0, 14.0], [14.0, 6.0]])
    """
    x = np.asarray(x, dtype=float)
    k = x.size
    f0 = f(x) if f0 is None else f0
    fp, fm = np.empty(k), np.empty(k)
    for i in range(k):
        e = np.zeros(k)
        e[i] = delta
        fp[i], fm[i] = f(x + e), f(x - e)
    g = (fp - fm) / (2 * delta)
    H = np.diag((fp - 2 * f0 + fm) / delta**2)
    axis = fp + fm - f0                        # f(+i) + f(-i) - f(x), the diagonal's share
    for i in range(k):
        for j in range(i + 1, k):
            e = np.zeros(k)
            e[i] = e[j] = delta
            H[i, j] = H[j, i] = (f(x + e) + f(x - e) - axis[i] - axis[j]) / (2 * delta**2)
    return g, H
