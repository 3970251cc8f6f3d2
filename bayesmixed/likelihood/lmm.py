"""REML / ML fitting of linear mixed models (lme4's optimizeLmer + mkMerMod)."""

from __future__ import annotations

import warnings

import numpy as np

from bayesmixed.design.spec import MixedDesign
from bayesmixed.errors import ConvergenceWarning, DesignError, SingularFitWarning
from bayesmixed.likelihood.optimize import minimize_bobyqa
from bayesmixed.likelihood.pls import ProfiledDeviance

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


def check_convergence(devfun, theta: np.ndarray, lower: np.ndarray, f0: float | None = None) -> list[str]:
    """Scaled-gradient and Hessian checks like lme4's checkConv (skipped at the boundary).

    Returns the warning messages, empty when the optimum passes.

    Examples
    --------
    >>> import bayesmixed as bm
    >>> from bayesmixed.likelihood.pls import ProfiledDeviance
    >>> fit = bm.Model("Yield ~ 1 + (1 | Batch)", bm.load_dataset("Dyestuff")).fit()
    >>> check_convergence(ProfiledDeviance(fit.design, reml=True), fit.theta, fit.design.lower)
    []
    """
    from bayesmixed.likelihood.numderiv import deriv12

    msgs: list[str] = []
    if theta.size > 12:
        return msgs
    try:
        g, H = deriv12(devfun, theta, f0=f0)
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


def fit_lmm(design: MixedDesign, *, reml: bool = True, start=None, check_conv: bool = True,
            optimizer_options: dict | None = None):
    """Fit a linear mixed model by REML or ML; returns a :class:`LikelihoodFit`.

    Notes
    -----
    lme4: ``lmer(formula, data, REML=...)``. Optimises the profiled criterion over
    theta with BOBYQA (lme4's default ``nloptwrap``), then beta, u and sigma come in
    closed form (Bates et al. 2015, JSS Sec. 3.4-3.6).

    Examples
    --------
    >>> import bayesmixed as bm
    >>> fit = fit_lmm(bm.Model("Yield ~ 1 + (1 | Batch)", bm.load_dataset("Dyestuff")).design, reml=True)
    >>> round(fit.reml_criterion, 4), fit.theta.round(4).tolist(), round(fit.sigma, 2)
    (319.6543, [0.8483], 49.51)
    """
    from bayesmixed.results.likelihood import LikelihoodFit

    if not (design.family.name == "gaussian" and design.family.link.name == "identity"):
        raise DesignError("method='reml'/'ml' fits gaussian models with the identity link; "
                          "use method='laplace' for other families")
    if not design.reterms:
        raise DesignError("the formula has no random-effects terms such as (1 | group); "
                          "this is not a mixed model")
    if reml and design.n <= design.p:
        raise DesignError(f"REML needs more observations ({design.n}) than fixed effects ({design.p})")
    dev = ProfiledDeviance(design, reml=reml)
    x0 = design.theta0 if start is None else np.asarray(start, dtype=float)
    if x0.shape != design.theta0.shape:
        raise DesignError(f"start must have {design.n_theta} theta values ({', '.join(design.theta_names)})")
    opt = minimize_bobyqa(dev, x0, design.lower, **(optimizer_options or {}))
    theta = opt.x
    state = dev.evaluate(theta)
    beta, u = dev.system.solve_beta_u(state.factor)
    sigma = dev.sigma(state)
    singular = is_singular(theta, design.lower)
    msgs = list(opt.messages)
    issued = []
    if singular:
        issued.append("singular")
        warnings.warn(
            "boundary (singular) fit: a random-effects variance is estimated as (nearly) zero or a "
            "correlation as ±1 (theta: " + ", ".join(
                f"{n}={v:.3g}" for n, v in zip(design.theta_names, theta)) +
            "); consider a simpler random-effects structure, e.g. (x || g) or dropping a term",
            SingularFitWarning, stacklevel=3,
        )
    elif check_conv:
        conv = check_convergence(dev, theta, design.lower, f0=state.deviance)
        for m in conv:
            warnings.warn(m, ConvergenceWarning, stacklevel=3)
        msgs += conv
    return LikelihoodFit(design=design, method="reml" if reml else "ml", theta=theta, beta=beta, u=u,
                         sigma=sigma, objective=state.deviance, devfun=dev, opt=opt, state=state,
                         warnings_issued=issued, is_singular=singular, conv_messages=msgs)
