"""REML / ML optimisation of linear mixed models (lme4's optimizeLmer; results/ is its mkMerMod)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from bayesmixed._threads import single_blas_thread
from bayesmixed.design.spec import MixedDesign
from bayesmixed.errors import ConvergenceWarning, DesignError, SingularFitWarning
from bayesmixed.likelihood.gradient import ProfiledGradient, gradient_applies, gradient_hessian, minimize_profiled
from bayesmixed.likelihood.numderiv import deriv12, hessian, jacobian
from bayesmixed.likelihood.optimize import OptResult, minimize_bobyqa
from bayesmixed.likelihood.pls import PLSState, ProfiledDeviance

SINGULAR_TOL = 1e-4        # lme4's isSingular(tol = 1e-4)
GRAD_TOL = 2e-3            # lme4's check.conv.grad tolerance


def is_singular(theta: np.ndarray, lower: np.ndarray, tol: float = SINGULAR_TOL) -> bool:
    """lme4's isSingular: a diagonal element of the relative covariance factor is ~0.

    Examples
    --------
    >>> import numpy as np
    >>> is_singular(np.array([0.0, 0.3, 1.2]), np.array([0.0, -np.inf, 0.0]))
    True
    >>> is_singular(np.array([0.97, 0.02, 0.23]), np.array([0.0, -np.inf, 0.0]))
    False
    """
    return bool(np.any(theta[lower == 0] < tol))


def check_convergence(devfun, theta: np.ndarray, lower: np.ndarray, f0: float | None = None,
                      fg=None) -> list[str]:
    """Scaled-gradient and Hessian checks like lme4's checkConv (skipped at the boundary).

    Returns the warning messages, empty when the optimum passes. ``fg``: an analytic
    ``theta -> (criterion, gradient)``; the gradient is then exact and the Hessian its
    central differences (``gradient.gradient_hessian``) instead of ``deriv12``'s.

    Examples
    --------
    >>> import bayesmixed as bm
    >>> from bayesmixed.likelihood.pls import ProfiledDeviance
    >>> fit = bm.Model("Yield ~ 1 + (1 | Batch)", bm.load_dataset("Dyestuff")).fit()
    >>> check_convergence(ProfiledDeviance(fit.design, reml=True), fit.theta, fit.design.lower)
    []
    """
    msgs: list[str] = []
    if theta.size > 12:
        return msgs
    try:
        g, H = deriv12(devfun, theta, f0=f0) if fg is None else gradient_hessian(fg, theta)
    except Exception:  # noqa: BLE001 - a failed check must not fail the fit
        return msgs
    try:
        R = np.linalg.cholesky(H)
        scaled = np.linalg.solve(R.T, np.linalg.solve(R, g))
        sg = np.max(np.abs(scaled))
        if sg > GRAD_TOL:
            msgs.append(f"Model failed to converge with max|grad| = {sg:.3g} (tol = {GRAD_TOL}); "
                        "try rescaling predictors or a different start (start=...)")
    except np.linalg.LinAlgError:
        ev = np.linalg.eigvalsh(H)
        if np.min(ev) < 0:
            msgs.append("Model is nearly unidentifiable: the Hessian has a negative eigenvalue; "
                        "simplify the random effects or rescale predictors")
    return msgs


def singular_message(design: MixedDesign, theta: np.ndarray) -> str:
    """The text of the singular-fit warning, naming theta's values."""
    return ("boundary (singular) fit: a random-effects variance is estimated as (nearly) zero or a "
            "correlation as ±1 (theta: " + ", ".join(f"{n}={v:.3g}" for n, v in zip(design.theta_names, theta))
            + "); consider a simpler random-effects structure, e.g. (x || g) or dropping a term")


@dataclass(eq=False)
class LmmOptimum:
    """The optimum of a REML / ML fit: estimates, the factor at the optimum and the checks' findings.

    What ``results`` builds a :class:`~bayesmixed.results.likelihood.LikelihoodFit` from.
    The methods evaluate what needs the deviance object (the factor, numerical
    derivatives), so that results never reach into the engine.

    Examples
    --------
    >>> import bayesmixed as bm
    >>> opt = optimize_lmm(bm.Model("Yield ~ 1 + (1 | Batch)", bm.load_dataset("Dyestuff")).design)
    >>> opt.method, round(opt.objective, 4), opt.vcov_beta().round(1).tolist()
    ('reml', 319.6543, [[375.7]])
    """

    design: MixedDesign
    reml: bool
    theta: np.ndarray
    beta: np.ndarray
    u: np.ndarray
    sigma: float
    objective: float
    opt: OptResult
    devfun: ProfiledDeviance
    state: PLSState
    is_singular: bool = False
    warnings_issued: tuple = ()
    conv_messages: tuple = ()
    # GLMM-only quantities, absent here (the fit takes them from the predictions)
    eta: np.ndarray | None = field(default=None, repr=False)
    mu: np.ndarray | None = field(default=None, repr=False)
    dev_resid: np.ndarray | None = field(default=None, repr=False)

    @property
    def method(self) -> str:
        return "reml" if self.reml else "ml"

    @property
    def family(self):
        return self.design.family

    @property
    def b(self) -> np.ndarray:
        """Random effects ``b = Lambda(theta) u``."""
        return self.design.Lambda(self.theta) @ self.u

    def covariances(self) -> list[np.ndarray]:
        """Per-term covariance matrices of b on the variance scale."""
        d = self.design
        return [t.covariance(self.theta[s], self.sigma) for t, s in zip(d.reterms, d.theta_slices)]

    def vcov_beta(self) -> np.ndarray:
        """``sigma^2 (RX' RX)^-1``, lme4's ``vcov(fit)``."""
        Rinv = np.linalg.inv(self.devfun.system.RX(self.state.factor))
        return self.sigma**2 * (Rinv @ Rinv.T)

    def condvar_blocks(self) -> list[np.ndarray]:
        """Per term (n_levels, k, k) conditional covariances of b (lme4's condVar)."""
        d = self.design
        with single_blas_thread():
            rel = self.devfun.system.condcov_blocks(self.state.factor)   # blocks of (L L')^{-1}
        out = []
        for t, s, B in zip(d.reterms, d.theta_slices, rel):
            T = t.lambda_block(self.theta[s])                          # b = Lambda u, per level
            out.append(self.sigma**2 * (T @ B @ T.T))
        return out

    @cached_property
    def satterthwaite_pieces(self) -> tuple[np.ndarray, np.ndarray]:
        """Asymptotic covariance of (theta, sigma) and the Jacobian of vcov(beta) over them (lmerTest)."""
        dev = self.devfun
        varpar = np.concatenate([self.theta, [self.sigma]])
        with single_blas_thread():
            H = hessian(dev.deviance_varpar, varpar)
        try:
            A = 2 * np.linalg.inv(H)                     # asymptotic cov of (theta, sigma)
        except np.linalg.LinAlgError:
            A = 2 * np.linalg.pinv(H)

        def vcov_at(vp):
            Rinv = np.linalg.inv(dev.system.RX(dev.evaluate(vp[:-1]).factor))
            return vp[-1] ** 2 * (Rinv @ Rinv.T)

        with single_blas_thread():
            return A, jacobian(vcov_at, varpar)          # (k, k), (k, p, p)


def optimize_lmm(design: MixedDesign, *, reml: bool = True, start=None, check_conv: bool = True,
                 optimizer_options: dict | None = None) -> LmmOptimum:
    """Fit a linear mixed model by REML or ML; returns the optimum (``results`` makes the fit).

    Notes
    -----
    lme4: ``lmer(formula, data, REML=...)``. Optimises the profiled criterion over
    theta with BOBYQA (lme4's default ``nloptwrap``), then beta, u and sigma come in
    closed form (Bates et al. 2015, JSS Sec. 3.4-3.6).

    Examples
    --------
    >>> import bayesmixed as bm
    >>> opt = optimize_lmm(bm.Model("Yield ~ 1 + (1 | Batch)", bm.load_dataset("Dyestuff")).design, reml=True)
    >>> round(opt.objective, 4), opt.theta.round(4).tolist(), round(opt.sigma, 2)
    (319.6543, [0.8483], 49.51)
    """
    if not design.family.is_gaussian_identity:
        raise DesignError("method='reml'/'ml' fits gaussian models with the identity link; "
                          "use method='laplace' for other families")
    if not design.reterms:
        raise DesignError("the formula has no random-effects terms such as (1 | group); "
                          "this is not a mixed model")
    if reml and design.n <= design.p:
        raise DesignError(f"REML needs more observations ({design.n}) than fixed effects ({design.p})")
    with single_blas_thread():
        # one BLAS thread; the blocked factor asks for more around large operations when
        # cores are idle (``_threads``), so a busy machine never makes BLAS threads spin
        return _optimize(design, reml, start, check_conv, optimizer_options)


class _BestPoint:
    """The criterion for the optimizer, remembering its lowest point so the fit never evaluates it again.

    The optimizer's closing evaluation of the point it returns gets the stored value; the
    fit's state there is the stored one when its factor is small (below ``KEEP_BYTES``,
    so a large factor is never held twice), else it is evaluated once more.
    """

    KEEP_BYTES = 1 << 26

    def __init__(self, dev: ProfiledDeviance) -> None:
        self.dev = dev
        self.theta: np.ndarray | None = None
        self.f = np.inf
        self.state: PLSState | None = None

    def _is_best(self, theta: np.ndarray) -> bool:
        return self.theta is not None and np.array_equal(theta, self.theta)

    def __call__(self, theta: np.ndarray) -> float:
        theta = np.asarray(theta, dtype=float)
        if self._is_best(theta):
            return self.f
        try:
            st = self.dev.evaluate(theta)
        except np.linalg.LinAlgError:
            return np.inf
        if st.deviance < self.f:
            self.theta, self.f = theta.copy(), st.deviance
            self.state = st if st.factor.L22.nbytes <= self.KEEP_BYTES else None
        return st.deviance

    def evaluate(self, theta: np.ndarray) -> PLSState:
        """The state at ``theta``: the stored one at the lowest point, else a new evaluation."""
        theta = np.asarray(theta, dtype=float)
        if self.state is not None and self._is_best(theta):
            return self.state
        return self.dev.evaluate(theta)


def _optimize(design: MixedDesign, reml: bool, start, check_conv: bool,
              optimizer_options: dict | None) -> LmmOptimum:
    dev = ProfiledDeviance(design, reml=reml)
    x0 = design.theta0 if start is None else np.asarray(start, dtype=float)
    if x0.shape != design.theta0.shape:
        raise DesignError(f"start must have {design.n_theta} theta values ({', '.join(design.theta_names)})")
    # scalar terms in a large model: the analytic gradient and L-BFGS-B (``gradient.py``)
    fg = ProfiledGradient(dev) if gradient_applies(design) and not optimizer_options else None
    best = _BestPoint(dev)
    opt = minimize_bobyqa(best, x0, design.lower, **(optimizer_options or {})) if fg is None \
        else minimize_profiled(dev, fg, x0, design.lower)
    theta = opt.x
    # the gradient path: fg(theta) is usually the optimizer's last evaluation (cached), and the check needs it
    state = fg.state_at(theta) if fg is not None and fg(theta) else best.evaluate(theta)
    beta, u = dev.system.solve_beta_u(state.factor)
    singular = is_singular(theta, design.lower)
    msgs = list(opt.messages)
    issued = []
    if singular:
        issued.append("singular")
        warnings.warn(singular_message(design, theta), SingularFitWarning, stacklevel=4)
    elif check_conv:
        conv = check_convergence(dev, theta, design.lower, f0=state.deviance, fg=fg)
        for m in conv:
            warnings.warn(m, ConvergenceWarning, stacklevel=4)
        msgs += conv
    return LmmOptimum(design=design, reml=reml, theta=theta, beta=beta, u=u, sigma=dev.sigma(state),
                      objective=state.deviance, opt=opt, devfun=dev, state=state, is_singular=singular,
                      warnings_issued=tuple(issued), conv_messages=tuple(msgs))
