"""Analytic gradient of the profiled ML deviance and REML criterion when every term is scalar.

With scalar terms ``Lambda = diag(theta_i I_{q_i})`` and ``M = Lambda'Z'WZ Lambda + I``
(with the X rows as well for REML: the leading ``(q + p)`` block of the PLS system),

    d/dtheta_i [log det M] = 2 (q_i - tr_i(M^{-1})) / theta_i,
    d/dtheta_i [pwrss]     = -2 |u_i|^2 / theta_i,

``tr_i`` the trace over term i's block and ``u_i`` its spherical modes (the second by the
envelope theorem: ``pwrss`` is a minimum over u and beta). So the ML deviance
``log det M + n log pwrss`` has ``g_i = 2 (q_i - tr_i(M^{-1})) / theta_i - 2 n |u_i|^2 /
(theta_i pwrss)``, and the REML criterion the same with ``n - p`` and M including X. Both
are even in each ``theta_i``, so ``g_i = 0`` at ``theta_i = 0``.

The traces come from the blocked factor (``_blocked.py``): with ``D`` the diagonal first
block of M, ``B`` the rest of its first block column and ``S = L22 L22'`` the Schur
complement, the first term's block of ``M^{-1}`` is ``D^{-1} + D^{-1} B' S^{-1} B D^{-1}``,
whose trace is ``tr(D^{-1}) + sum(S^{-1} * (B D^{-2} B'))``; ``B D^{-2} B'`` is accumulated
in the same pass as the Schur complement, and ``S^{-1}`` is one LAPACK ``potri``. The other
terms' traces are sums of the diagonal of ``S^{-1}``.

It is worth it for large models only: an evaluation with the gradient costs about two to
three plain ones, and a gradient method (L-BFGS-B) needs three to four times fewer of them
than BOBYQA. Smaller models keep lme4's optimizer (BOBYQA). From a start near the optimum
(a subsample's fit, ``subsample.py``) Newton's method with differences of this gradient
as Hessian needs two to three times fewer again (:func:`minimize_profiled`).
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import scipy.linalg as sla

from bayesmixed._threads import blas_threads_for
from bayesmixed.design.spec import MixedDesign
from bayesmixed.likelihood.optimize import OptResult, minimize_bobyqa, minimize_lbfgsb, minimize_newton
from bayesmixed.likelihood.pls import PLSState, ProfiledDeviance
from bayesmixed.likelihood.subsample import subsample_design, worth_subsampling

GRADIENT_MIN_Q = 1000      # random-effects columns from which the gradient path pays
SUB_FTOL = 1e-10           # a subsample's fit (a start only) stops at this relative decrease
BOUNDARY_TOL = 1e-4        # a theta this close to its bound of 0 is checked by BOBYQA (lme4's isSingular tol)
_potri = sla.get_lapack_funcs("potri", (np.zeros(1),))


def gradient_applies(design: MixedDesign) -> bool:
    """All terms scalar and the model large enough for the gradient path to pay.

    Examples
    --------
    >>> import bayesmixed as bm
    >>> gradient_applies(bm.Model("diameter ~ 1 + (1 | plate) + (1 | sample)",
    ...                           bm.load_dataset("Penicillin")).design)       # q = 30: BOBYQA
    False
    """
    return bool(design.reterms) and all(t.n_cols == 1 for t in design.reterms) \
        and design.q >= GRADIENT_MIN_Q


class ProfiledGradient:
    """``theta -> (criterion, gradient)`` of a :class:`ProfiledDeviance` with scalar terms.

    Examples
    --------
    >>> import bayesmixed as bm
    >>> dev = ProfiledDeviance(bm.Model("diameter ~ 1 + (1 | plate) + (1 | sample)",
    ...                                 bm.load_dataset("Penicillin")).design, reml=False)
    >>> f, g = ProfiledGradient(dev)(np.array([1.5, 3.0]))
    >>> h = 1e-6
    >>> fd = (dev(np.array([1.5 + h, 3.0])) - dev(np.array([1.5 - h, 3.0]))) / (2 * h)
    >>> bool(abs(g[0] - fd) < 1e-5 * max(1.0, abs(fd)))
    True
    """

    def __init__(self, dev: ProfiledDeviance) -> None:
        if not all(t.n_cols == 1 for t in dev.design.reterms):
            raise ValueError("the analytic gradient needs scalar random-effects terms only")
        self.dev = dev
        s = dev.system
        self.n_v = s.q_rest + (s.p if dev.reml else 0)
        self.n_grads = 0
        self._last: tuple = (None, 0.0, None, None)   # (theta, criterion, gradient, state)
        self._best: tuple = (None, np.inf, None, None)  # the same at the lowest criterion seen
        self.hessians: list = []                      # (theta, H) the optimizer computed (gradient_hessian)

    def __call__(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        theta = np.asarray(theta, dtype=float)
        kept = self._kept(theta)
        if kept is not None:
            return kept[1], kept[2].copy()      # e.g. the optimizer's last or best point, again
        st = self.dev.evaluate(theta, v_rows=self.n_v)
        self.n_grads += 1
        g = self.gradient(st)
        st.factor.trace_V = None                      # used by the traces only: the kept states hold no V
        self._last = (theta.copy(), st.deviance, g, st)
        if st.deviance < self._best[1]:
            self._best = self._last
        return st.deviance, g.copy()

    @property
    def best(self) -> tuple:
        """``(criterion, theta)`` at the lowest criterion seen (theta None before any evaluation)."""
        return self._best[1], self._best[0]

    def _kept(self, theta: np.ndarray) -> tuple | None:
        for e in (self._last, self._best):
            if e[0] is not None and np.array_equal(e[0], theta):
                return e
        return None

    def state_at(self, theta: np.ndarray) -> PLSState | None:
        """The state of the last evaluation, or of the best one, if it was at ``theta``.

        Saves the fit one evaluation; the best point's is kept too because Newton's last
        Hessian (evaluations next to it) can come after it.
        """
        kept = self._kept(theta)
        return None if kept is None else kept[3]

    def excess(self, st: PLSState) -> np.ndarray:
        """``q_i - tr_i(M^{-1})`` per term, M the leading block of the system (see the module)."""
        s, F, theta = self.dev.system, st.factor, st.theta
        d = F.L11[:, 0, 0] ** 2                               # diagonal of D: theta_1^2 a_g + 1
        t1 = theta[s._theta_slices[0]][0]
        out = np.empty(len(s.design.reterms))
        out[0] = float(np.sum(t1 * t1 * s.A11[:, 0, 0] / d))  # q_1 - tr(D^{-1}), no cancellation
        n_v = self.n_v
        if not n_v:
            return out
        with blas_threads_for(2.0 * n_v**3 / 3.0):
            Sinv, info = _potri(F.L22[:n_v, :n_v], lower=1)
        if info != 0:                         # pragma: no cover - the factor has a positive diagonal
            raise np.linalg.LinAlgError("inverse of the Schur complement failed")
        sc = np.ones(n_v)
        for i, (start, t) in enumerate(zip(s._starts, s.rest)):
            sc[start : start + t.q] = theta[s._theta_slices[i + 1]][0]
        out[0] -= _upper_trace(F.trace_V, Sinv.T, sc)         # B D^-2 B' = diag(sc) V diag(sc)
        dS = np.diagonal(Sinv)
        for i, (start, t) in enumerate(zip(s._starts, s.rest)):
            out[i + 1] = t.q - float(dS[start : start + t.q].sum())
        return out

    def gradient(self, st: PLSState) -> np.ndarray:
        """The gradient at a state evaluated with ``v_rows=self.n_v``."""
        s = self.dev.system
        design = s.design
        _, u = s.solve_beta_u(st.factor)
        excess = self.excess(st)
        nn = design.n - design.p if self.dev.reml else design.n
        g = np.zeros(design.n_theta)
        start = 0
        for i, (t, sl) in enumerate(zip(design.reterms, s._theta_slices)):
            th = st.theta[sl][0]
            ui = u[start : start + t.q]
            start += t.q
            if th != 0.0:
                g[sl] = 2.0 * excess[i] / th - 2.0 * nn * float(ui @ ui) / (th * st.pwrss)
        return g


def _upper_trace(V: np.ndarray, W: np.ndarray, sc: np.ndarray, rows: int = 256) -> float:
    """``sum((diag(sc) V diag(sc)) * W)`` over two symmetric matrices given by their upper triangles.

    ``W``'s strict lower triangle is zero (the inverse from ``potri``, transposed), so each
    row block's full product counts the upper triangle once; the diagonal is then taken
    once off the doubled sum. Row blocks: no ``m x m`` temporary.

    Examples
    --------
    >>> A = np.array([[2.0, 1.0], [0.0, 3.0]]); B = np.array([[1.0, 4.0], [0.0, 5.0]])
    >>> full = lambda U: np.triu(U) + np.triu(U, 1).T
    >>> sc = np.array([0.5, 2.0])
    >>> _upper_trace(A, B, sc), float(np.sum(np.outer(sc, sc) * full(A) * full(B)))
    (68.5, 68.5)
    """
    total = 0.0
    for a in range(0, V.shape[0], rows):
        blk = V[a : a + rows] * W[a : a + rows]
        total += float(sc[a : a + rows] @ (blk @ sc))
    diag = np.diagonal(V) * np.diagonal(W)
    return 2.0 * total - float(diag @ (sc * sc))


def gradient_hessian(fg, theta: np.ndarray, delta: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """Gradient at ``theta`` and the Hessian by forward differences of the analytic gradient.

    ``1 + k`` evaluations of ``fg`` (the first is usually the optimizer's last, cached by
    :class:`ProfiledGradient`), against ``2k^2`` of the criterion for lme4's ``deriv12``;
    the same step ``delta`` as lme4's convergence check. The error, O(delta) times the
    third derivative, is far below what the check (a scaled gradient of 2e-3) can notice,
    and there is no round-off from differencing the criterion twice.

    When the optimizer (``minimize_newton``) already computed this Hessian at a point
    within ``delta`` of ``theta`` in every component (``fg.hessians``), that one is used:
    it differs from the Hessian at ``theta`` by no more than the differences' own error.

    Examples
    --------
    >>> fg = lambda x: (float(x @ x), 2 * x * np.array([1.0, 3.0]))
    >>> g, H = gradient_hessian(fg, np.array([1.0, 2.0]))
    >>> g.tolist(), np.round(H, 8).tolist()
    ([2.0, 12.0], [[2.0, 0.0], [0.0, 6.0]])
    """
    theta = np.asarray(theta, dtype=float)
    g = np.asarray(fg(theta)[1], dtype=float)
    for x, H in reversed(getattr(fg, "hessians", [])):
        if x.shape == theta.shape and np.max(np.abs(x - theta)) <= delta:
            return g, H
    return g, fd_hessian(fg, theta, g, delta)


def fd_hessian(fg, theta: np.ndarray, g: np.ndarray, delta: float = 1e-4, relative: bool = False) -> np.ndarray:
    """Symmetrised forward differences ``(grad(theta + h_i e_i) - g) / h_i``: ``k`` evaluations.

    ``h_i = delta`` (lme4's check), or with ``relative`` ``delta * max(1, |theta_i|)``
    (Newton's Hessians: a large theta's gradient changes too little over ``delta``).

    The first coordinate goes last: the steps along the others keep the first term's
    theta, so the blocked system reuses the Schur product of the evaluation at ``theta``
    (``_schur_cache``; it keeps one product of a large system).

    Examples
    --------
    >>> fg = lambda x: (0.0, np.array([2 * x[0] + x[1], x[0] + 6 * x[1]]))
    >>> np.round(fd_hessian(fg, np.array([1.0, 2.0]), np.array([4.0, 13.0])), 8).tolist()
    [[2.0, 1.0], [1.0, 6.0]]
    """
    k = theta.size
    H = np.empty((k, k))
    for i in [*range(1, k), 0]:
        e = np.zeros(k)
        e[i] = delta * max(1.0, abs(theta[i])) if relative else delta
        H[:, i] = (np.asarray(fg(theta + e)[1], dtype=float) - g) / e[i]
    return (H + H.T) / 2.0


def _newton_hessian(fg, theta: np.ndarray, g: np.ndarray) -> np.ndarray:
    return fd_hessian(fg, theta, g, relative=True)


def minimize_profiled(dev: ProfiledDeviance, fg: ProfiledGradient, x0: np.ndarray,
                      lower: np.ndarray) -> OptResult:
    """Newton from a subsample's optimum for large designs, else L-BFGS-B; BOBYQA at the boundary.

    A design large enough (``subsample.worth_subsampling``) is first fitted on a subsample of
    its levels (``subsample.py``); from that optimum, when it is inside the bounds, Newton's
    method with finite-difference Hessians of the analytic gradient (``minimize_newton``)
    converges in ``3 + 2k`` evaluations or a few more for k terms (two Hessians of k
    each, two or three steps), and leaves a Hessian near the optimum for the convergence check
    (:func:`gradient_hessian`). If it gives up, or for other
    designs, L-BFGS-B continues from the best point (:func:`_lbfgsb_bobyqa`). A start
    ``x0`` other than lme4's (``fit(start=...)``) is kept: L-BFGS-B from there.
    """
    from_theta0 = np.array_equal(x0, dev.design.theta0)        # not a user's start
    start = _subsample_start(dev) if from_theta0 and worth_subsampling(dev.design) else None
    if start is None:
        return _lbfgsb_bobyqa(dev, fg, x0, lower)
    n0 = fg.n_grads
    try:
        res, fg.hessians = minimize_newton(fg, start, lower, _newton_hessian)
    except np.linalg.LinAlgError:
        res = None
    if res is not None and not np.any(_on_boundary(res.x, lower)):
        return res
    spent = fg.n_grads - n0
    runs = _lbfgsb_bobyqa(dev, fg, fg.best[1] if fg.best[1] is not None else start, lower)
    return dataclasses.replace(runs, n_evals=runs.n_evals + spent,
                               status="Newton (gave up), then " + runs.status)


def _subsample_start(dev: ProfiledDeviance) -> np.ndarray | None:
    """The optimum of the model on a subsample of its levels, when inside the bounds (else None)."""
    sub = subsample_design(dev.design)
    if sub is None:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")                 # the subsample's fit is not the user's
            sdev = ProfiledDeviance(sub, reml=dev.reml)
            res = _lbfgsb_bobyqa(sdev, ProfiledGradient(sdev), sub.theta0, sub.lower, ftol=SUB_FTOL)
    except Exception:  # noqa: BLE001 - a failed start must not fail the fit: lme4's start then
        return None
    if not np.all(np.isfinite(res.x)) or np.any(_on_boundary(res.x, sub.lower)):
        return None
    return res.x


def _lbfgsb_bobyqa(dev: ProfiledDeviance, fg: ProfiledGradient, x0: np.ndarray,
                   lower: np.ndarray, ftol: float = 1e-13) -> OptResult:
    """L-BFGS-B with the analytic gradient; BOBYQA from its optimum when that is on the boundary.

    The criterion is even in each scalar ``theta_i``, so its gradient vanishes at
    ``theta_i = 0`` whether or not the criterion falls for ``theta_i > 0``: a gradient
    method that reaches the bound can stop there at a stationary point that is no minimum.
    When a component ends within ``BOUNDARY_TOL`` of 0 (at the best point, or at L-BFGS-B's
    final iterate, which can be a corner where the gradient vanishes while a better point
    was seen on the way), BOBYQA (lme4's optimizer, which samples the interior) continues
    from the best point, and if it leaves the boundary,
    L-BFGS-B again from there (BOBYQA's own stopping rule can leave 1e-6 on the table in
    a flat valley). The best point is returned, with every evaluation counted. ``ftol``:
    L-BFGS-B's relative decrease at which it stops (a subsample's start needs less).
    """
    runs = [minimize_lbfgsb(fg, x0, lower, ftol=ftol)]
    last = runs[0].x if runs[0].last is None else runs[0].last
    if np.any(_on_boundary(runs[0].x, lower)) or np.any(_on_boundary(last, lower)):
        runs.append(minimize_bobyqa(dev, runs[0].x, lower))
        if not np.any(_on_boundary(runs[1].x, lower)):
            runs.append(minimize_lbfgsb(fg, runs[1].x, lower, ftol=ftol))
    if len(runs) == 1:
        return runs[0]
    best = min(runs, key=lambda r: r.fun)
    names = ["L-BFGS-B", "BOBYQA", "L-BFGS-B"]
    return OptResult(x=best.x, fun=best.fun, n_evals=sum(r.n_evals for r in runs),
                     status=", then ".join(f"{n} ({r.status})" for n, r in zip(names, runs)),
                     messages=[m for r in runs for m in r.messages])


def _on_boundary(x: np.ndarray, lower: np.ndarray) -> np.ndarray:
    return (lower == 0) & (x < BOUNDARY_TOL)
