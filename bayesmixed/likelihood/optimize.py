"""Bounded derivative-free minimisation over theta (lme4's optimizeLmer with nloptwrap)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import nlopt
import numpy as np
from scipy.optimize import minimize

from bayesmixed.errors import ConvergenceWarning


@dataclass
class OptResult:
    """What :func:`minimize_bobyqa` found: the best point, its value, evaluations, NLopt's status.

    Examples
    --------
    >>> import numpy as np
    >>> res = minimize_bobyqa(lambda x: float((x[0] - 1.0) ** 2), np.array([3.0]), lower=np.array([0.0]))
    >>> res.x.round(4).tolist(), res.status in ("ftol reached", "xtol reached", "success"), res.messages
    ([1.0], True, [])
    """

    x: np.ndarray
    fun: float
    n_evals: int
    status: str
    messages: list[str] = field(default_factory=list)
    last: np.ndarray | None = field(default=None, repr=False)   # the final iterate, when not x (L-BFGS-B)


NLOPT_STATUS = {
    1: "success", 2: "stopval reached", 3: "ftol reached", 4: "xtol reached",
    5: "maxeval reached", 6: "maxtime reached", -1: "failure", -2: "invalid args",
    -3: "out of memory", -4: "roundoff limited", -5: "forced stop",
}


def minimize_bobyqa(fun, x0: np.ndarray, lower: np.ndarray, *, upper: np.ndarray | None = None,
                    ftol_abs: float = 0.0, xtol_abs: float = 1e-6, ftol_rel: float = 1e-12,
                    maxeval: int = 100_000, initial_step: np.ndarray | float | None = None) -> OptResult:
    """Minimise ``fun`` with NLopt's BOBYQA under box constraints (MixedModels.jl's default).

    Returns the best point seen even when NLopt stops on a round-off error; a
    :class:`~bayesmixed.errors.ConvergenceWarning` when ``maxeval`` is reached.

    Notes
    -----
    lme4: ``optimizeLmer`` with ``optimizer = "nloptwrap"`` (also BOBYQA).

    Examples
    --------
    >>> import numpy as np
    >>> res = minimize_bobyqa(lambda x: (x[0] - 2.0) ** 2 + (x[1] + 1.0) ** 2,
    ...                       np.array([0.5, 0.5]), lower=np.array([0.0, 0.0]))
    >>> res.x.round(4).tolist(), round(res.fun, 4), res.n_evals > 0
    ([2.0, 0.0], 1.0, True)
    """
    x0 = np.asarray(x0, dtype=float)
    k = x0.size
    best = {"f": np.inf, "x": x0.copy()}
    count = [0]

    def objective(x, grad):
        count[0] += 1
        f = fun(np.array(x))
        if not np.isfinite(f):
            f = 1e300
        if f < best["f"]:
            best["f"], best["x"] = f, np.array(x)
        return f

    opt = nlopt.opt(nlopt.LN_BOBYQA, k)
    opt.set_min_objective(objective)
    opt.set_lower_bounds(np.asarray(lower, dtype=float))
    if upper is not None:
        opt.set_upper_bounds(np.asarray(upper, dtype=float))
    opt.set_ftol_abs(ftol_abs)
    opt.set_ftol_rel(ftol_rel)
    opt.set_xtol_abs(xtol_abs)
    opt.set_maxeval(maxeval)
    if initial_step is not None:
        opt.set_initial_step(initial_step)
    try:
        x = opt.optimize(x0)
        status = NLOPT_STATUS.get(opt.last_optimize_result(), "unknown")
    except nlopt.RoundoffLimited:
        x, status = best["x"], "roundoff limited"
    except (RuntimeError, ValueError) as exc:
        x, status = best["x"], f"failure: {exc}"
    x = np.asarray(x)
    f = fun(x)
    if best["f"] < f:
        x, f = best["x"], best["f"]
    msgs = []
    if status == "maxeval reached":
        msgs.append(f"maximum number of function evaluations ({maxeval}) reached")
        warnings.warn(f"optimizer stopped after {maxeval} evaluations without converging; "
                      "the estimates may be inaccurate", ConvergenceWarning, stacklevel=3)
    return OptResult(x=x, fun=float(f), n_evals=count[0], status=status, messages=msgs)


def minimize_lbfgsb(fg, x0: np.ndarray, lower: np.ndarray, *, upper: np.ndarray | None = None,
                    gtol: float = 1e-4, ftol: float = 1e-13,
                    maxiter: int = 500) -> OptResult:
    """Minimise ``fg(x) -> (f, grad)`` with an exact gradient by L-BFGS-B under box constraints.

    For large models with an analytic gradient (``gradient.py``): several times fewer
    evaluations than BOBYQA. It stops when the largest projected gradient is below ``gtol``,
    when a step lowers the criterion by less than ``ftol`` relative to it (the criterion's
    round-off: 1e-13 of a deviance of 3e6 is 3e-7), or when the line search makes no more
    progress (round-off again). Returns the best point seen, and the final iterate as
    ``last`` (it can be another point: a bound where the gradient vanishes, see
    ``gradient._lbfgsb_bobyqa``).

    Examples
    --------
    >>> import numpy as np
    >>> fg = lambda x: (float((x[0] - 2.0) ** 2 + (x[1] + 1.0) ** 2), np.array([2 * (x[0] - 2.0), 2 * (x[1] + 1.0)]))
    >>> res = minimize_lbfgsb(fg, np.array([0.5, 0.5]), lower=np.array([0.0, 0.0]))
    >>> res.x.round(6).tolist(), round(res.fun, 6), res.messages
    ([2.0, 0.0], 1.0, [])
    """
    x0 = np.asarray(x0, dtype=float)
    best = {"f": np.inf, "x": x0.copy()}
    count = [0]

    def objective(x):
        count[0] += 1
        try:
            f, g = fg(np.array(x))
        except np.linalg.LinAlgError:
            return 1e300, np.zeros_like(x)
        if not np.isfinite(f):
            return 1e300, np.zeros_like(x)
        if f < best["f"]:
            best["f"], best["x"] = f, np.array(x)
        return f, np.asarray(g, dtype=float)

    hi = np.full(x0.size, np.inf) if upper is None else np.asarray(upper, dtype=float)
    bounds = list(zip(np.asarray(lower, dtype=float), hi))
    res = minimize(objective, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                   options={"ftol": ftol, "gtol": gtol, "maxiter": maxiter, "maxfun": 10 * maxiter})
    msgs = []
    if res.status == 1:
        msgs.append(f"maximum number of iterations ({maxiter}) reached")
        warnings.warn(f"optimizer stopped after {maxiter} iterations without converging; "
                      "the estimates may be inaccurate", ConvergenceWarning, stacklevel=3)
    status = "success" if res.status == 0 else str(res.message)
    return OptResult(x=best["x"], fun=float(best["f"]), n_evals=count[0], status=status, messages=msgs,
                     last=np.asarray(res.x, dtype=float))


def minimize_newton(fg, x0: np.ndarray, lower: np.ndarray, hessian, *, xtol: float = 1e-7,
                    refresh: float = 1e-4, maxiter: int = 30) -> tuple[OptResult | None, list]:
    """Newton's method with finite-difference Hessians for a start near the optimum; ``None`` if it fails.

    ``fg(x) -> (f, grad)`` with an exact gradient; ``hessian(fg, x, g) -> H`` a Hessian at
    x from ``fg`` (e.g. forward differences of the gradient: ``gradient.fd_hessian``; its
    evaluations count). Steps are
    ``-H^{-1} g`` with a backtracking line search; ``H`` is updated by BFGS between
    steps and computed afresh at the first point whose Newton step is below ``refresh``
    (then the convergence is quadratic, and that Hessian is close to the optimum's). It
    stops when the Newton step (the distance to the optimum, to second order) is below
    ``xtol`` in every component, without evaluating that last step. Both thresholds are
    relative to ``|x|`` where that is above 1. Near the optimum, where the criterion's
    round-off can exceed the decrease a step predicts, a step that lowers the Newton
    decrement counts as progress.

    Made for a start from a cheaper fit (``gradient.minimize_profiled``): it gives up
    (``None``) when a Hessian is not positive definite, a step would cross a bound, or
    the line search fails, and the caller continues with a safer method from the best
    point. Also returns the Hessians computed, as ``(x, H)`` pairs.

    Examples
    --------
    >>> import numpy as np
    >>> fg = lambda x: (float((x[0] - 2.0) ** 4 + (x[0] - 2.0) ** 2 + 3 * (x[1] - 1.0) ** 2),
    ...                 np.array([4 * (x[0] - 2.0) ** 3 + 2 * (x[0] - 2.0), 6 * (x[1] - 1.0)]))
    >>> def hess(fg, x, g):
    ...     return np.diag([12 * (x[0] - 2.0) ** 2 + 2.0, 6.0])
    >>> res, hessians = minimize_newton(fg, np.array([2.3, 1.2]), np.zeros(2), hess)
    >>> res.x.round(8).tolist(), res.status, res.n_evals, len(hessians)
    ([2.0, 1.0], 'success', 6, 2)
    """
    x = np.asarray(x0, dtype=float)
    count = [0]

    def counted(z):
        count[0] += 1
        return fg(z)

    f, g = counted(x)
    H = hessian(counted, x, g)
    hessians = [(x.copy(), H)]
    fresh = False                                      # H computed at a point with a small Newton step
    for _ in range(maxiter):
        p = _newton_step(H, g)
        if p is None or not np.all(np.isfinite(p)):
            return None, hessians
        scale = np.maximum(1.0, np.abs(x))
        if not fresh and np.all(np.abs(p) <= refresh * scale):
            H = hessian(counted, x, g)
            hessians.append((x.copy(), H))
            fresh = True
            p = _newton_step(H, g)
            if p is None:
                return None, hessians
        tol = xtol * scale
        if np.all(np.abs(p) <= tol):
            return OptResult(x=x, fun=float(f), n_evals=count[0], status="success"), hessians
        if np.any(x + p < lower):
            return None, hessians
        # near the optimum (fresh H) the criterion's round-off can hide a decrease: a step
        # that lowers the Newton decrement g'H^-1 g is then taken as progress
        closer = None if not fresh else (lambda gn, H=H, dec=-float(g @ p): _decrement(H, gn) < dec)
        step = _line_search(counted, x, f, g, p, closer)
        if step[0] is None:
            if fresh and np.all(np.abs(p) <= 100 * tol):     # round-off of the gradient too
                return OptResult(x=x, fun=float(f), n_evals=count[0], status="success"), hessians
            return None, hessians
        xn, fn, gn = step[:3]
        s, y = xn - x, gn - g
        x, f, g = xn, fn, gn
        if s @ y > 0:
            Hs = H @ s
            H = H + np.outer(y, y) / (y @ s) - np.outer(Hs, Hs) / (s @ Hs)
    return None, hessians


def _newton_step(H: np.ndarray, g: np.ndarray) -> np.ndarray | None:
    """``-H^{-1} g`` by Cholesky; None when H is not positive definite."""
    try:
        R = np.linalg.cholesky(H)
    except np.linalg.LinAlgError:
        return None
    return -np.linalg.solve(R.T, np.linalg.solve(R, g))


def _decrement(H: np.ndarray, g: np.ndarray) -> float:
    """Newton decrement ``g' H^{-1} g`` (infinite when H is not positive definite)."""
    p = _newton_step(H, g)
    return np.inf if p is None else -float(g @ p)


def _line_search(fg, x, f, g, p, closer=None, max_halvings: int = 8):
    """Backtracking (Armijo) along p from a full step: ``(x, f, g)``, all None on failure.

    A rise of the criterion by its round-off (``1e-14 |f|``) is accepted, and so is a point
    whose gradient satisfies ``closer(grad)`` (see :func:`minimize_newton`): near the
    optimum the decrease a Newton step predicts can be below the criterion's round-off.
    """
    slope = float(g @ p)
    slack = 1e-14 * abs(f)
    t = 1.0
    for _ in range(max_halvings + 1):
        xn = x + t * p
        try:
            fn, gn = fg(xn)
        except np.linalg.LinAlgError:
            fn, gn = np.inf, None
        if np.isfinite(fn) and (fn <= f + 1e-4 * t * slope + slack or closer is not None and closer(gn)):
            return xn, fn, np.asarray(gn, dtype=float)
        t *= 0.5
    return None, None, None
