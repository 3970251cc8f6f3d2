"""Laplace and adaptive Gauss-Hermite fits of generalized linear mixed models (glmer).

The optimisation follows glmer's two stages: first theta alone with beta from PIRLS
over (u, beta) jointly (glmer's nAGQ=0 criterion), then (theta, beta) jointly on
the Laplace (or AGQ) criterion with BOBYQA. Stage 2 runs in whitened coordinates
``beta = beta1 + RX1^{-1} z`` (RX1 from stage 1), so that one unit in every
direction is about one standard error: BOBYQA then needs few evaluations from a
start that is already close.

Standard errors: as glmer's default (``use.hessian=TRUE``), from the Hessian of the
criterion over (theta, beta) at the optimum, here by central differences of the
criterion with fully converged PIRLS (``likelihood/hessian.py``; accurate to ~1e-6,
where glmer's ``deriv12`` of its criterion, which carries its PIRLS tolerance, is 1e-3
to 1e-2 off);
``use_hessian=False`` gives glmer's RX-based ``vcov(fit, use.hessian=FALSE)``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from threadpoolctl import ThreadpoolController

from bayesmixed.design.spec import MixedDesign
from bayesmixed.errors import (
    ConvergenceWarning, DesignError, SeparationWarning, SingularFitWarning,
)
from bayesmixed.families import Family, get_family
from bayesmixed.likelihood.agq import check_agq_design
from bayesmixed.likelihood.lmm import is_singular, singular_message
from bayesmixed.likelihood.hessian import glmm_derivs
from bayesmixed.likelihood.optimize import OptResult, minimize_bobyqa
from bayesmixed.likelihood.pirls import LaplaceDeviance

GRAD_TOL = 2e-3            # glmerControl(check.conv.grad = .makeCC("warning", tol = 2e-3))
HESS_TOL = 1e-6            # glmerControl(check.conv.hess = .makeCC("warning", tol = 1e-6))


def optimize_glmm(design: MixedDesign, *, method: str = "laplace", nAGQ: int | None = None, start=None,
                  check_conv: bool = True, optimizer_options: dict | None = None,
                  shape: float | None = None, use_hessian: bool = True) -> "GlmmOptimum":
    """Fit a GLMM by the Laplace approximation or adaptive Gauss-Hermite quadrature.

    Parameters
    ----------
    design : MixedDesign
        From ``bm.Model(..., family=...)``.
    method : {"laplace", "agq"}
        ``"agq"`` with ``nAGQ=k`` (1 to 25) needs one scalar random-effects term.
    nAGQ : int, optional
        Quadrature points for ``method="agq"`` (required there); 1 is the Laplace
        approximation, glmer's default and the only value for ``method="laplace"``.
    start : dict or array, optional
        ``{"theta": ..., "beta": ...}`` or theta alone.
    check_conv : bool
        Run lme4's gradient / Hessian convergence checks.
    shape : float, optional
        Negative binomial only: fix the shape k instead of estimating it.
    use_hessian : bool
        Covariance of the fixed effects from the Hessian of the criterion over
        (theta, beta) (default, glmer's ``vcov(fit)``), or with ``False`` from the PIRLS
        factor, ``sigma^2 (RX'RX)^{-1}`` (glmer's ``vcov(fit, use.hessian = FALSE)``:
        cheaper, but it ignores the curvature of the log-determinant and the
        theta-beta coupling, ~1% off). The Hessian is computed anyway when
        ``check_conv`` runs.

    Returns
    -------
    GlmmOptimum
        The optimum; ``results`` makes a :class:`~bayesmixed.results.glmm.GlmmFit` of it.

    Notes
    -----
    lme4: ``glmer(formula, data, family, nAGQ=k)``; negative binomial as ``glmer.nb``
    (shape by maximum likelihood, here jointly with theta and beta).

    Examples
    --------
    >>> import bayesmixed as bm
    >>> m = bm.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...              bm.load_dataset("cbpp"), family="binomial")
    >>> opt = optimize_glmm(m.design)
    >>> round(opt.objective, 3), opt.method
    (184.053, 'laplace')
    """
    method = method.lower()
    if method not in ("laplace", "agq"):
        raise DesignError(f"optimize_glmm fits method='laplace' or 'agq', not {method!r}")
    if method == "agq" and nAGQ is None:
        raise DesignError("method='agq' needs the number of quadrature points, e.g. fit(method='agq', nAGQ=9) "
                          "(glmer's nAGQ; 1 is the Laplace approximation)")
    nAGQ = 1 if nAGQ is None else int(nAGQ)
    if method == "laplace" and nAGQ != 1:
        raise DesignError(f"method='laplace' is nAGQ=1; for nAGQ={nAGQ} use method='agq'")
    if nAGQ < 1 or nAGQ > 25:
        raise DesignError(f"nAGQ must be between 1 and 25 (as glmer), got {nAGQ}")
    if nAGQ > 1:
        check_agq_design(design)
    if not design.reterms:
        raise DesignError("the formula has no random-effects terms such as (1 | group); this is not a "
                          "mixed model: use a GLM")
    fam = design.family
    if fam.is_gaussian_identity:
        raise DesignError("gaussian models with the identity link are fitted by method='reml' or 'ml'")
    _check_response(design)
    with single_blas_thread():
        # small dense factorizations: BLAS threads only add overhead and contention
        out = _fit(design, nAGQ=nAGQ, start=start, check_conv=check_conv,
                   optimizer_options=optimizer_options or {}, shape=shape)
    out.use_hessian = bool(use_hessian)
    return out


_CONTROLLER = None


def single_blas_thread():
    """Context manager limiting BLAS to one thread (the library scan is done once, not per fit)."""
    global _CONTROLLER
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1)


def _check_response(design: MixedDesign) -> None:
    fam, y = design.family, design.y
    fam.check_response(y, design.response_name)
    if fam.name == "binomial" and design.trials is None:
        m = design.weights * y
        if np.any(np.abs(m - np.round(m)) > 1e-3):
            warnings.warn(f"non-integer #successes in the binomial response {design.response_name!r}: "
                          "proportions need weights= equal to the number of trials", UserWarning, stacklevel=4)


def _start_values(design, start):
    theta0, beta0 = design.theta0, None
    if start is None:
        return theta0, beta0
    if isinstance(start, dict):
        if "theta" in start:
            theta0 = np.asarray(start["theta"], dtype=float)
        if "beta" in start or "fixef" in start:
            beta0 = np.asarray(start.get("beta", start.get("fixef")), dtype=float)
    else:
        theta0 = np.asarray(start, dtype=float)
    if theta0.shape != design.theta0.shape:
        raise DesignError(f"start theta must have {design.n_theta} values ({', '.join(design.theta_names)})")
    if beta0 is not None and beta0.shape != (design.p,):
        raise DesignError(f"start beta must have {design.p} values ({', '.join(design.fixef_names)})")
    return theta0, beta0


def _moment_shape(dev: LaplaceDeviance, mu: np.ndarray) -> float:
    """Method-of-moments negative-binomial shape from Poisson-scale fitted means."""
    y = dev.y
    excess = np.sum((y - mu) ** 2 - mu)
    k = np.sum(mu**2) / excess if excess > 0 else 100.0
    return float(np.clip(k, 0.05, 1e4))


def _start_family(design: MixedDesign, shape: float | None) -> tuple[Family, bool]:
    """The family to start from and whether its negative-binomial shape is estimated."""
    fam = design.family
    nb = fam.name == "negativebinomial"
    estimate_shape = nb and shape is None and fam.shape is None
    if nb:
        k0 = shape if shape is not None else fam.shape
        if k0 is None:
            # start the shape from a Poisson-scale stage 1, as glmer.nb starts from a Poisson glmer
            pois = LaplaceDeviance(design, family=_poisson_like(fam))
            opt0 = minimize_bobyqa(pois.profiled, design.theta0, design.lower, ftol_rel=1e-6, xtol_abs=1e-4)
            st0 = pois.pirls(opt0.x)
            k0 = _moment_shape(pois, st0.mu)
        fam = fam.with_shape(k0)
    return fam, estimate_shape


def _fit(design, *, nAGQ, start, check_conv, optimizer_options, shape):
    fam, estimate_shape = _start_family(design, shape)
    dev = LaplaceDeviance(design, family=fam)
    theta0, beta0 = _start_values(design, start)
    lower = design.lower
    nth = design.n_theta

    # while optimising, modes to 1e-8 (criterion error ~1e-8); the final state and the
    # finite-difference Hessian use 1e-10 (Newton PIRLS: modes exact to rounding)
    dev.utol = 1e-8

    # ---- stage 1: theta with beta (and u) from joint PIRLS (glmer nAGQ=0)
    if beta0 is not None:
        dev._beta_start = beta0
    # stage 1 only has to land near the optimum: loose tolerances
    opt1 = minimize_bobyqa(dev.profiled, theta0, lower, ftol_rel=1e-6, xtol_abs=1e-3, initial_step=0.2)
    st1 = dev.pirls(opt1.x)
    theta1, beta1 = st1.theta, st1.beta
    n_eval1 = opt1.n_evals

    # ---- stage 2: (theta, beta[, log shape]) on the Laplace / AGQ criterion, whitened beta
    RX1 = st1.RX
    Rinv = np.linalg.inv(RX1) if RX1 is not None else np.eye(design.p)
    objective = dev if nAGQ == 1 else (lambda pars: dev.agq(pars, nAGQ))
    lo = np.concatenate([lower, np.full(design.p, -np.inf)])

    def to_pars(x):
        return np.concatenate([x[:nth], beta1 + Rinv @ x[nth:nth + design.p]])

    if estimate_shape:
        base_fam = fam

        def f2(x):
            dev.family = base_fam.with_shape(np.exp(x[-1]))
            return objective(to_pars(x))

        x0 = np.concatenate([theta1, np.zeros(design.p), [np.log(fam.shape)]])
        lo = np.concatenate([lo, [np.log(1e-3)]])
        hi = np.concatenate([np.full(nth + design.p, np.inf), [np.log(1e6)]])
    else:
        def f2(x):
            return objective(to_pars(x))

        x0 = np.concatenate([theta1, np.zeros(design.p)])
        hi = None
    opts = dict(ftol_rel=1e-12, xtol_abs=1e-6, initial_step=0.05)
    opts.update(optimizer_options)
    x0 = np.maximum(x0, lo)
    opt2 = minimize_bobyqa(f2, x0, lo, upper=hi, **opts)
    x = opt2.x
    if estimate_shape:
        dev.family = base_fam.with_shape(np.exp(x[-1]))
    pars = to_pars(x)
    theta, beta = pars[:nth], pars[nth:]
    theta = np.where((lower == 0) & (theta < 0), 0.0, theta)
    pars = np.concatenate([theta, beta])
    dev.utol = 1e-10
    f_opt = objective(pars)
    st = dev.pirls(theta, beta)
    opt = OptResult(x=pars, fun=float(f_opt), n_evals=n_eval1 + opt2.n_evals, status=opt2.status,
                    messages=list(opt1.messages) + list(opt2.messages))

    return _checked_optimum(design, dev, nAGQ=nAGQ, theta=theta, beta=beta, st=st, f_opt=float(f_opt), opt=opt,
                            check_conv=check_conv, shape_estimated=estimate_shape)


def _checked_optimum(design, dev, *, nAGQ, theta, beta, st, f_opt, opt, check_conv, shape_estimated):
    """The optimum with lme4's checks run: singular fit, separation, convergence (warnings at the caller)."""
    singular = is_singular(theta, design.lower)
    issued, msgs = [], list(opt.messages)
    if singular:
        issued.append("singular")
        warnings.warn(singular_message(design, theta), SingularFitWarning, stacklevel=5)
    sep = _separation_message(dev, st, beta)
    if sep:
        issued.append("separation")
        warnings.warn(sep, SeparationWarning, stacklevel=5)
        msgs.append(sep)
    out = GlmmOptimum(design=design, family=dev.family, nAGQ=nAGQ, theta=theta, beta=beta, state=st,
                      objective=f_opt, devfun=dev, opt=opt, sigma=_sigma(dev.family, design, st),
                      is_singular=singular, warnings_issued=tuple(issued), conv_messages=tuple(msgs),
                      shape_estimated=shape_estimated)
    if check_conv and not singular:
        conv = out.convergence_messages()
        for m in conv:
            warnings.warn(m, ConvergenceWarning, stacklevel=5)
        out.conv_messages = tuple(msgs + conv)
    return out


def _sigma(fam: Family, design: MixedDesign, st) -> float:
    """Residual scale: 1 without one; else sqrt((Pearson chi^2 + |u|^2) / n), lme4's ``sigma()`` for glmer."""
    if not fam.has_dispersion:
        return 1.0
    var = fam.variance(st.mu)
    wrss = float(np.sum(design.weights * (design.y - st.mu) ** 2 / var))
    return float(np.sqrt((wrss + st.sqrL) / design.n))


def _poisson_like(fam):
    return get_family("poisson", fam.link.name)


def _separation_message(dev, st, beta) -> str | None:
    """glm's 'fitted probabilities numerically 0 or 1' test plus huge coefficients."""
    if dev.family.name != "binomial":
        return None
    eps = 1e-10
    extreme = np.mean((st.mu < eps) | (st.mu > 1 - eps))
    big = [n for n, b in zip(dev.design.fixef_names, beta) if abs(b) > 15]
    if extreme > 0 or big:
        which = f" (coefficients {', '.join(big)} are very large)" if big else ""
        return ("fitted probabilities numerically 0 or 1 occurred: the data look (quasi-)completely "
                f"separated{which}; estimates and standard errors of the affected fixed effects are "
                "unreliable. Consider merging sparse categories, dropping the separating predictor, or "
                "a penalized / Bayesian fit (method='nuts' with its weakly-informative priors)")
    return None


@dataclass(eq=False)
class GlmmOptimum:
    """The optimum of a Laplace / AGQ fit: estimates, the PIRLS state there and the checks' findings.

    What ``results`` builds a :class:`~bayesmixed.results.glmm.GlmmFit` from. The
    methods evaluate what needs the deviance object (the factor, the Hessian of the
    criterion), so that results never reach into the engine.

    Examples
    --------
    >>> import bayesmixed as bm
    >>> m = bm.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...              bm.load_dataset("cbpp"), family="binomial")
    >>> opt = optimize_glmm(m.design)
    >>> opt.sigma, opt.vcov_beta().shape, [B.shape for B in opt.condvar_blocks()]
    (1.0, (4, 4), [(15, 1, 1)])
    """

    design: MixedDesign
    family: Family
    nAGQ: int
    theta: np.ndarray
    beta: np.ndarray
    state: object
    objective: float
    devfun: LaplaceDeviance
    opt: OptResult
    sigma: float
    is_singular: bool = False
    warnings_issued: tuple = ()
    conv_messages: tuple = ()
    shape_estimated: bool = False
    use_hessian: bool = True

    @property
    def method(self) -> str:
        return "laplace" if self.nAGQ == 1 else "agq"

    @property
    def u(self) -> np.ndarray:
        return self.state.u

    @property
    def b(self) -> np.ndarray:
        return self.design.Lambda(self.theta) @ self.state.u

    @property
    def eta(self) -> np.ndarray:
        return self.state.eta

    @property
    def mu(self) -> np.ndarray:
        return self.state.mu

    @property
    def dev_resid(self) -> np.ndarray:
        return self.state.dev_resid

    @property
    def weights(self) -> np.ndarray:
        """PIRLS weights at the optimum."""
        return self.state.weights

    def covariances(self) -> list[np.ndarray]:
        """Per-term covariance matrices of b (scaled by sigma^2 where the family has a scale)."""
        d = self.design
        return [t.covariance(self.theta[s], self.sigma) for t, s in zip(d.reterms, d.theta_slices)]

    @cached_property
    def derivs(self) -> tuple[np.ndarray, np.ndarray]:
        """Gradient and Hessian of the criterion over (theta, beta) by central differences.

        Steps of 1% of each parameter's conditional standard error (beta's from the
        PIRLS factor, theta's from a pilot pass), PIRLS started from predicted modes and
        converged to 1e-10 at every point: about ``k^2 + k`` criterion evaluations for
        k parameters (see :func:`~bayesmixed.likelihood.hessian.glmm_derivs`).
        """
        prec = np.diag(self._rx_rx) / self.sigma**2
        scales = np.where(prec > 0, 1 / np.sqrt(np.abs(prec)), np.nan)
        with single_blas_thread():
            res = glmm_derivs(self.devfun, np.concatenate([self.theta, self.beta]), nAGQ=self.nAGQ,
                              f0=self.objective, u=self.state.u, beta_scales=scales)
        return res.gradient, res.hessian

    @cached_property
    def _rx_rx(self) -> np.ndarray:
        """RX'RX = X'WX - RZX'RZX from the PIRLS factor at the optimum."""
        dev, st = self.devfun, self.state
        WX = st.weights[:, None] * dev.X
        RZX = st.factor.solve_L(dev.Lambda_mul(self.theta, dev.Ztmul(WX), trans=True))
        return dev.X.T @ WX - RZX.T @ RZX

    def vcov_rx(self) -> np.ndarray:
        """Covariance of beta from the PIRLS factor: sigma^2 (RX'RX)^{-1} (``use.hessian=FALSE``)."""
        return np.linalg.inv(self._rx_rx) * self.sigma**2

    def vcov_beta(self) -> np.ndarray:
        """Covariance of beta: 2 H^{-1} restricted to beta (lme4's default), else :meth:`vcov_rx`.

        :meth:`vcov_rx` with ``use_hessian=False``, or when ``2 H^{-1}`` is not positive
        definite (as lme4, which warns there).
        """
        if not self.use_hessian:
            return self.vcov_rx()
        nth = self.design.n_theta
        try:
            _, H = self.derivs
            V = 2 * np.linalg.inv(H)[nth:, nth:]
            V = (V + V.T) / 2
            if np.all(np.isfinite(V)) and np.all(np.linalg.eigvalsh(V) > 0):
                return V
        except np.linalg.LinAlgError:
            pass
        return self.vcov_rx()

    def condvar_blocks(self) -> list[np.ndarray]:
        """Per term (n_levels, k, k) conditional covariances of b (lme4's condVar)."""
        d = self.design
        if d.q > 6000:
            raise DesignError(f"conditional variances need a dense (q x q) inverse; q = {d.q} is too large")
        Linv = self.state.factor.solve_L(np.eye(d.q))                       # (q, q)
        A = self.devfun.Lambda_mul(self.theta, Linv.T)                       # Lambda L^{-T}
        s2 = self.sigma**2 if self.family.has_dispersion else 1.0
        out = []
        for t, sl in zip(d.reterms, d.b_slices):
            rows = A[sl].reshape(t.n_levels, t.n_cols, -1)
            out.append(s2 * np.einsum("gak,gbk->gab", rows, rows))
        return out

    def convergence_messages(self) -> list[str]:
        """lme4's checkConv on (theta, beta): scaled gradient and Hessian eigenvalues."""
        msgs: list[str] = []
        if self.theta.size + self.beta.size > 40:
            return msgs
        try:
            g, H = self.derivs
        except Exception:  # noqa: BLE001 - a failed check must not fail the fit
            return msgs
        try:
            R = np.linalg.cholesky(H)
            scaled = np.linalg.solve(R.T, np.linalg.solve(R, g))
            mg = float(np.max(np.minimum(np.abs(scaled), np.abs(g))))
            if mg > GRAD_TOL:
                msgs.append(f"Model failed to converge with max|grad| = {mg:.3g} (tol = {GRAD_TOL}); "
                            "try rescaling predictors, or start=fit's estimates to restart")
        except np.linalg.LinAlgError:
            pass
        ev = np.linalg.eigvalsh(H)
        if np.min(ev) < -HESS_TOL:
            msgs.append("Model is nearly unidentifiable: the Hessian has a negative eigenvalue; "
                        "simplify the random effects or rescale predictors")
        elif np.max(ev) * HESS_TOL > 1:
            msgs.append("Model is nearly unidentifiable: very large eigenvalue of the Hessian; "
                        "rescale variables (e.g. scale(x)) to make the estimates more reliable")
        return msgs
