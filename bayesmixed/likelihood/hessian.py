"""Accurate gradient and Hessian of a GLMM criterion over (theta, beta).

The Laplace (or adaptive Gauss-Hermite) deviance is a smooth function of
``pars = (theta, beta)`` once its inner PIRLS iterations are converged far below
the finite-difference noise. Its Hessian is taken here by symmetric central
differences (numDeriv's ``genD`` stencil): with per-parameter steps ``h``,

* ``f(x +- h_i e_i)`` give the gradient and the diagonal,
* ``f(x + h_i e_i + h_j e_j)`` and ``f(x - h_i e_i - h_j e_j)`` the mixed partials
  ``H_ij = (f(++) + f(--) - 2 f0 - h_i^2 H_ii - h_j^2 H_jj) / (2 h_i h_j)``,

so every entry carries an O(h^2) error (lme4's ``deriv12`` needs four evaluations per
pair for the same order; forward differences for the mixed partials leave an O(h)
error that put Contraception's standard errors 3e-3 off). That is ``2k + k(k - 1)`` evaluations for k parameters; with
``levels=2`` a second stencil at h/2 is combined by Richardson extrapolation (O(h^4)).

The steps are scaled to the curvature: ``h_i = step * s_i`` with ``s_i`` the
conditional standard error ``sqrt(2 / H_ii)`` of a deviance (-2 log L), from a pilot
pass over the parameters without a given scale (whose evaluations are reused when the
pilot step is within a factor 3 of the chosen one). Each step then moves the deviance by
about ``2 step^2`` whatever the parameter's units.

The inner iterations are warm-started: given ``warm=(get, set)`` (read the inner state
after an evaluation, set the start of the next one) every point starts from a
first-order prediction of its inner state built from the points already evaluated, so
Newton-type inner iterations need one step fewer than from the centre's state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DerivResult", "central_hessian"]


@dataclass(frozen=True)
class DerivResult:
    """Gradient, Hessian, the number of criterion evaluations they took and the steps."""

    gradient: np.ndarray
    hessian: np.ndarray
    n_evals: int
    steps: np.ndarray


class _Evaluator:
    """f at displaced points, each warm-started from a prediction of its inner state."""

    def __init__(self, f, x, warm):
        self.f, self.x, self.warm = f, x, warm
        self.n = 0
        self.u0 = None if warm is None else np.array(warm[0](), dtype=float)
        self.slope = {}                    # i -> d(inner state)/dx_i estimate
        self.axis = {}                     # i -> (h, f(x + h e_i), f(x - h e_i)) evaluated so far

    def __call__(self, d: np.ndarray, start=None) -> tuple[float, np.ndarray | None]:
        if self.warm is not None:
            self.warm[1](self.u0.copy() if start is None else start)
        v = float(self.f(self.x + d))
        self.n += 1
        return v, (None if self.warm is None else np.array(self.warm[0](), dtype=float))

    def predict(self, steps) -> np.ndarray | None:
        """Inner state at ``x + sum(h e_i)`` for ``steps = ((i, h), ...)`` from the slopes known
        so far (None without a warm start)."""
        if self.warm is None:
            return None
        u = self.u0.copy()
        for i, h in steps:
            s = self.slope.get(i)
            if s is not None:
                u += h * s
        return u

    def pair(self, e: np.ndarray, steps) -> tuple[float, float, np.ndarray | None, np.ndarray | None]:
        """f(x + e), f(x - e) and their inner states; x - e starts from the mirror of x + e's."""
        fp, up = self(e, self.predict(steps))
        fm, um = self(-e, None if up is None else 2 * self.u0 - up)
        return fp, fm, up, um

    def axis_pair(self, i: int, h: float) -> tuple[float, float]:
        """f(x + h e_i), f(x - h e_i); records the slope of the inner state along e_i."""
        e = np.zeros(self.x.size)
        e[i] = h
        fp, fm, up, um = self.pair(e, ((i, h),))
        if up is not None:
            self.slope[i] = (up - um) / (2 * h)
        self.axis[i] = (h, fp, fm)
        return fp, fm


def _pilot_scales(ev: _Evaluator, x: np.ndarray, f0: float, which: np.ndarray, rel: float) -> np.ndarray:
    """Conditional standard errors sqrt(2 / H_ii) of the parameters ``which`` from a pilot pass.

    Capped at ``max(|x_i|, 0.1)``: a flat direction (a variance at zero) gets that scale.
    """
    out = np.empty(which.size)
    for n, i in enumerate(which):
        size = max(abs(x[i]), 0.1)
        fp, fm = ev.axis_pair(int(i), rel * size)
        curv = abs(fp + fm - 2 * f0) / (rel * size) ** 2
        out[n] = min(np.sqrt(2.0 / curv), size) if curv > 0 else size
    return out


def _stencil(ev: _Evaluator, h: np.ndarray, f0: float):
    k = h.size
    fp, fm = np.empty(k), np.empty(k)
    for i in range(k):
        known = ev.axis.get(i)
        if known is not None and known[0] / 3 <= h[i] <= 3 * known[0]:
            h[i], fp[i], fm[i] = known          # the pilot's pair is a good enough step: reuse it
        else:
            fp[i], fm[i] = ev.axis_pair(i, h[i])
    g = (fp - fm) / (2 * h)
    d = (fp + fm - 2 * f0) / h**2
    H = np.diag(d)
    for i in range(k):
        for j in range(i + 1, k):
            e = np.zeros(k)
            e[i], e[j] = h[i], h[j]
            fp_ij, fm_ij, _, _ = ev.pair(e, ((i, h[i]), (j, h[j])))
            s = fp_ij + fm_ij - 2 * f0
            H[i, j] = H[j, i] = (s - h[i] ** 2 * d[i] - h[j] ** 2 * d[j]) / (2 * h[i] * h[j])
    return g, H


def central_hessian(f, x, *, f0: float | None = None, scales=None, step: float = 1e-2, levels: int = 1,
                    warm=None, pilot: float = 1e-3) -> DerivResult:
    """Gradient and Hessian of a smooth ``f`` at ``x`` by central differences.

    Parameters
    ----------
    f : callable
        Scalar function of a 1-d array (a deviance, evaluated to ~1e-12).
    x : array_like
    f0 : float, optional
        ``f(x)`` if already known.
    scales : array_like, optional
        Per-parameter scales (conditional standard errors); NaN entries, or all when
        omitted, come from a pilot pass with steps ``pilot * max(|x_i|, 0.1)``.
    step : float
        Steps are ``step * scales``.
    levels : int
        1: one stencil (O(h^2) error); 2: Richardson extrapolation with a second
        stencil at h/2 (O(h^4)).
    warm : (callable, callable), optional
        ``(get, set)`` of ``f``'s inner state (e.g. the conditional modes of a GLMM):
        each evaluation starts from a prediction of its own state; the state at
        ``x`` is restored on return.

    Returns
    -------
    DerivResult

    Examples
    --------
    >>> import numpy as np
    >>> A = np.array([[4.0, 1.0], [1.0, 3.0]])
    >>> def f(x):
    ...     return x @ A @ x + 0.1 * x[0] ** 4
    >>> res = central_hessian(f, np.array([0.5, -0.2]), levels=2)
    >>> bool(np.allclose(res.hessian, 2 * A + np.diag([1.2 * 0.5**2, 0.0]), atol=1e-8)), res.n_evals
    (True, 17)
    """
    x = np.asarray(x, dtype=float)
    ev = _Evaluator(f, x, warm)
    try:
        f0 = ev(np.zeros(x.size))[0] if f0 is None else float(f0)
        s = np.full(x.size, np.nan) if scales is None else np.array(scales, dtype=float)
        todo = np.flatnonzero(~np.isfinite(s) | (s <= 0))
        if todo.size:
            s[todo] = _pilot_scales(ev, x, f0, todo, pilot)
        h = step * s
        g, H = _stencil(ev, h, f0)             # may adopt the pilot's steps (within a factor 3)
        if levels >= 2:
            ev.axis.clear()
            g2, H2 = _stencil(ev, h / 2, f0)
            g, H = (4 * g2 - g) / 3, (4 * H2 - H) / 3
    finally:
        if warm is not None:
            warm[1](ev.u0.copy())
    return DerivResult(gradient=g, hessian=(H + H.T) / 2, n_evals=ev.n, steps=h)


def glmm_derivs(dev, pars, *, nAGQ: int = 1, f0: float | None = None, u=None, beta_scales=None,
                step: float = 1e-2, levels: int = 1, utol: float = 1e-10) -> DerivResult:
    """Gradient and Hessian of glmer's criterion over ``pars = (theta, beta)``.

    Parameters
    ----------
    dev : LaplaceDeviance
        The fit's deviance (``dev(pars)``; ``dev.agq(pars, nAGQ)`` for nAGQ > 1).
    pars : array_like
        The optimum ``(theta, beta)``.
    nAGQ : int
    f0 : float, optional
        The criterion at ``pars``.
    u : array_like, optional
        The conditional modes at ``pars`` (the inner iterations start from them; by
        default ``dev``'s current start).
    beta_scales : array_like, optional
        Conditional standard errors of beta (e.g. ``1 / sqrt(diag(RX'RX)) * sigma``,
        what ``use.hessian=FALSE`` gives); theta's scales always come from a pilot pass.
    step, levels
        As in :func:`central_hessian`.
    utol : float
        PIRLS tolerance on the modes during the evaluations (at most the deviance's own).

    Returns
    -------
    DerivResult

    Notes
    -----
    PIRLS converges quadratically (full Newton steps for non-canonical links), so with
    ``utol = 1e-10`` the modes are exact to rounding and the criterion is smooth to
    ~1e-12 relative; with steps of 1% of each conditional standard error the Hessian is
    then accurate to ~1e-7 relative (checked against glmmTMB's exact Hessian in
    ``tests/test_glmm_se_exact.py``). ``dev``'s PIRLS start and tolerance are restored.

    Examples
    --------
    >>> import bayesmixed as bm
    >>> from bayesmixed.likelihood.glmm import optimize_glmm
    >>> m = bm.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...              bm.load_dataset("cbpp"), family="binomial")
    >>> opt = optimize_glmm(m.design)
    >>> res = glmm_derivs(opt.devfun, np.concatenate([opt.theta, opt.beta]), f0=opt.objective, u=opt.u)
    >>> se = np.sqrt(np.diag(2 * np.linalg.inv(res.hessian)))[1:]
    >>> np.round(se, 4).tolist()            # glmmTMB's exact-Hessian SEs: 0.2325 0.3066 0.3266 0.4274
    [0.2325, 0.3066, 0.3266, 0.4274]
    """
    pars = np.asarray(pars, dtype=float)
    nth = dev.n_theta
    u_save, utol_save = dev._u_start.copy(), dev.utol
    if u is not None:
        dev._u_start = np.array(u, dtype=float)
    dev.utol = min(utol, utol_save)

    def crit(p):
        return dev(p) if nAGQ == 1 else dev.agq(p, nAGQ)

    def set_u(v):
        dev._u_start = v

    scales = np.full(pars.size, np.nan)
    if beta_scales is not None:
        scales[nth:] = beta_scales
    try:
        return central_hessian(crit, pars, f0=f0, scales=scales, step=step, levels=levels,
                               warm=(lambda: dev._u_start, set_u))
    finally:
        dev._u_start, dev.utol = u_save, utol_save
