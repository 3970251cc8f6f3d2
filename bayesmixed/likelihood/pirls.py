"""Penalized iteratively reweighted least squares and the Laplace deviance of a GLMM.

For a GLMM with spherical random effects ``u`` (``b = Lambda(theta) u``), PIRLS finds
the conditional mode of ``u`` at (theta, beta) by Newton steps on the penalized
deviance ``sum(dev_resids) + |u|^2`` (Bates et al. 2015, JSS; lme4's ``pwrssUpdate``,
MixedModels.jl's ``pirls!``). The Laplace approximation to -2 log L is then glmer's
nAGQ=1 objective::

    aic(mu) + |u|^2 + log det(Lambda' Z' W Z Lambda + I)

with ``aic`` R's ``family$aic`` (-2 log-likelihood, binomial coefficients included)
and ``W`` the GLM working weights at the mode.

Every step reweights and refactors the LMM's blocked system (``_blocked.py``) with the
working weights and the working response, as MixedModels.jl's GLMM does with its LMM:
the Z rows of its factor give u given beta, its X rows beta jointly with u.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bayesmixed.design.spec import MixedDesign
from bayesmixed.errors import FitError
from bayesmixed.families import Family
from bayesmixed.likelihood._blocked import BlockedFactor, BlockedSystem
from bayesmixed.likelihood._pirls_kernel import FAMILY_CODES as _FAMILY_CODES  # noqa: F401 (tests)
from bayesmixed.likelihood._pirls_kernel import LINK_CODES as _LINK_CODES  # noqa: F401
from bayesmixed.likelihood._pirls_kernel import scalar_laplace, scalar_pirls
from bayesmixed.likelihood.agq import agq_deviance
from bayesmixed.likelihood.glm import GlmResponse, glm_fit


@dataclass
class PirlsState:
    """Result of PIRLS at one parameter vector."""

    theta: np.ndarray
    beta: np.ndarray
    u: np.ndarray
    eta: np.ndarray
    mu: np.ndarray
    factor: BlockedFactor
    dev_resid: np.ndarray      # (n,) unit deviances times prior weights
    weights: np.ndarray        # (n,) working weights at the mode
    iterations: int
    RX: np.ndarray | None = None   # joint (u, beta) PIRLS only: upper (p, p)

    @property
    def sqrL(self) -> float:
        return float(self.u @ self.u)

    @property
    def pdev(self) -> float:
        return float(self.dev_resid.sum() + self.sqrL)


@dataclass
class _Iterate:
    """One PIRLS iterate: (u, beta) and what the response gives at it."""

    u: np.ndarray
    beta: np.ndarray
    fixed: np.ndarray          # X beta + offset
    eta: np.ndarray
    mu: np.ndarray
    mu_eta: np.ndarray
    var: np.ndarray
    dev_resid: np.ndarray

    @property
    def pdev(self) -> float:
        return float(self.dev_resid.sum() + self.u @ self.u)


class LaplaceDeviance:
    """glmer's objective: the Laplace (or adaptive Gauss-Hermite) approximation to -2 log L.

    Call it with ``pars = (theta, beta)``; ``profiled(theta)`` is glmer's nAGQ=0
    criterion with beta from PIRLS over (u, beta) jointly.

    Parameters
    ----------
    design : MixedDesign
    family : Family, optional
        Defaults to ``design.family`` (pass one to fix a negative-binomial shape).

    Attributes
    ----------
    system : BlockedSystem
        ``[Z X y]`` system for PIRLS over (u, beta) jointly (its X rows give R_X).
    zsystem : BlockedSystem
        ``[Z y]`` system for PIRLS at fixed beta (y: the working response less X beta).
    resp : GlmResponse
        Mean, weights, deviance residuals and aic of the response.

    Notes
    -----
    lme4: ``mkGlmerDevfun`` / ``glmerLaplace`` / ``glmerAGQ``. Bates et al. (2015, JSS).

    Examples
    --------
    >>> import bayesmixed as bm
    >>> m = bm.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...              bm.load_dataset("cbpp"), family="binomial")
    >>> dev = LaplaceDeviance(m.design)
    >>> round(dev(np.array([0.642064309689732, -1.39833155181282, -0.991923809038708,
    ...                     -1.12821438763116, -1.57975005595514])), 6)
    184.052573

    glmer reports 184.053133 at these parameters with its default PIRLS tolerance
    (``tolPwrss=1e-7``) and 184.052573 with ``tolPwrss=1e-10``.
    """

    MAXIT = 100

    def __init__(self, design: MixedDesign, family: Family | None = None, *, utol: float = 1e-10) -> None:
        self.design = design
        d = design
        self.system = BlockedSystem(design)                          # (u, beta) jointly
        self.zsystem = BlockedSystem(design, X=np.empty((d.n, 0)))   # u at fixed beta
        self.resp = GlmResponse(design.family if family is None else family, d.y, d.weights, d.trials)
        self.utol = utol
        self.y, self.X, self.offset = d.y, d.X, d.offset
        self.wt = d.weights
        self.n_trials = self.resp.n_trials
        self._u_start = np.zeros(d.q)
        self._beta_start = None
        self._no_beta = np.zeros(0)
        self.n_theta, self.p = d.n_theta, d.p
        self.n_evals = 0
        self.n_unconverged = 0
        self._laplace_const = (None, 0.0)     # (family, aic - deviance) for the compiled value path
        self._scalar1 = len(d.reterms) == 1 and d.reterms[0].n_cols == 1
        if self._scalar1:
            self._x1 = np.ascontiguousarray(d.reterms[0].Xi[:, 0], dtype=float)

    # ---- products with Z and Lambda (the design's terms own them) ---------------------------
    def Zmul(self, b: np.ndarray) -> np.ndarray:
        """Z b for b (q,)."""
        return self.design.Zb(b)

    def Ztmul(self, v: np.ndarray) -> np.ndarray:
        """Z' v for v (n,) or (n, m)."""
        return self.design.Ztv(v)

    def Lambda_mul(self, theta: np.ndarray, u: np.ndarray, trans: bool = False) -> np.ndarray:
        """Lambda u (or Lambda' u) for u (q,) or (q, m)."""
        return self.design.lambda_mul(theta, u, trans)

    # ---- the response side -------------------------------------------------------------------
    @property
    def family(self) -> Family:
        return self.resp.family

    @family.setter
    def family(self, fam: Family) -> None:
        self.resp.family = fam

    def _glm(self, eta: np.ndarray):
        return self.resp.glm(eta)

    def devres(self, mu: np.ndarray, eta: np.ndarray | None = None, nodes: int = 1) -> np.ndarray:
        return self.resp.devres(mu, eta, nodes)

    def aic(self, mu: np.ndarray, dev_resid: np.ndarray) -> float:
        return self.resp.aic(mu, dev_resid)

    def _iterate(self, theta, u, beta, fixed=None) -> _Iterate:
        fixed = self.X @ beta + self.offset if fixed is None else fixed
        eta = fixed + self.design.Zb(self.design.lambda_mul(theta, u))
        return _Iterate(u, beta, fixed, eta, *self.resp.evaluate(eta))

    # ---- PIRLS -------------------------------------------------------------------------
    def pirls(self, theta: np.ndarray, beta: np.ndarray | None = None, u0: np.ndarray | None = None) -> PirlsState:
        """Conditional modes of u at (theta, beta); with ``beta=None`` over (u, beta) jointly."""
        theta = np.asarray(theta, dtype=float)
        joint = beta is None
        if self._scalar1 and not joint and u0 is None and self.resp.compiled:
            return self._pirls_compiled(theta, np.asarray(beta, dtype=float))
        u = (self._u_start if u0 is None else u0).copy()
        if joint:
            beta = self._beta_start if self._beta_start is not None else self._glm_start()
        cur = self._iterate(theta, u, np.asarray(beta, dtype=float).copy())
        it = flat = 0
        change = np.inf
        for it in range(1, self.MAXIT + 1):
            u_new, beta_new, F = self._newton_step(theta, cur, joint)
            du, db = u_new - cur.u, beta_new - cur.beta
            if max(np.max(np.abs(du), initial=0.0), np.max(np.abs(db), initial=0.0)) < self.utol:
                # converged: the factor just used (Fisher weights at the current mu) is final to ~utol
                cur = self._iterate(theta, u_new, beta_new)
                return self._final_state(theta, cur, joint, it, None if self.resp.newton else F)
            step, new = self._halve(theta, cur, du, db)
            change = step * max(np.max(np.abs(du), initial=0.0), np.max(np.abs(db), initial=0.0))
            old, cur = cur.pdev, new
            # the criterion's log-determinant is first order in u's error, so converge on u itself
            # (no test on the change in pdev: it is quadratic in u's error and stalls first) ...
            flat = flat + 1 if abs(old - cur.pdev) <= 1e-13 * abs(cur.pdev) else 0
            # ... except when it stays flat while the parameters drift (separation: the mode
            # is at infinity); the fit reports that
            if change < self.utol or flat >= 4:
                break
        else:
            if not np.isfinite(cur.pdev):
                raise FitError(f"PIRLS did not converge in {self.MAXIT} iterations (last change {change:.2g})")
            # still decreasing after MAXIT steps: a mode at infinity (separation, all-zero
            # groups); keep the last iterate and let the fit warn about it
            self.n_unconverged += 1
        return self._final_state(theta, cur, joint, it)

    def _newton_step(self, theta, cur: _Iterate, joint: bool):
        """(u, beta) minimising the quadratic model of the penalized deviance at ``cur``."""
        w, zres = self.resp.working(cur.eta, cur.mu, cur.mu_eta, cur.var)
        if joint:
            self.system.reweight(w, cur.eta - self.offset + zres)
            F = self.system.factor(theta)
            beta, u = self.system.solve_beta_u(F)
            return u, beta, F
        self.zsystem.reweight(w, cur.eta - cur.fixed + zres)
        F = self.zsystem.factor(theta)
        return self.zsystem.solve_u(F, self._no_beta), cur.beta, F

    def _halve(self, theta, cur: _Iterate, du, db):
        """Step halving on the penalized deviance (lme4's pwrssUpdate)."""
        step = 1.0
        for _ in range(12):
            new = self._iterate(theta, cur.u + step * du, cur.beta + step * db,
                                None if db.any() else cur.fixed)
            pdev = new.pdev
            if np.isfinite(pdev) and pdev <= cur.pdev + 1e-10 * abs(cur.pdev):
                return step, new
            step /= 2
        raise FitError("PIRLS step-halving failed to reduce the penalized deviance")

    def _final_state(self, theta, cur: _Iterate, joint: bool, iterations: int,
                     F: BlockedFactor | None = None) -> PirlsState:
        """The state at the mode, with the factor at glmer's Fisher weights there (or ``F``)."""
        w = self.resp.fisher_weights(cur.mu_eta, cur.var)
        if F is None:
            if joint:
                self.system.reweight(w, cur.eta - self.offset + (self.y - cur.mu) / cur.mu_eta)
                F = self.system.factor(theta)
            else:                  # at fixed beta the criterion needs the Z block only
                self.zsystem.reweight(w, None)
                F = self.zsystem.factor(theta, z_only=True)
        if joint:
            self._beta_start = cur.beta.copy()
        self._u_start = cur.u.copy()
        return PirlsState(theta=theta, beta=cur.beta, u=cur.u, eta=cur.eta, mu=cur.mu, factor=F,
                          dev_resid=cur.dev_resid, weights=w, iterations=iterations,
                          RX=self.system.RX(F) if joint else None)

    def _pirls_compiled(self, theta: np.ndarray, beta: np.ndarray) -> PirlsState:
        """u-only PIRLS for one scalar term by the compiled kernel; the state is rebuilt in NumPy."""
        t1 = self.design.reterms[0]
        fixed = self.X @ beta + self.offset
        fam_code, link_code, shape = self.resp._codes
        u, it, ok = scalar_pirls(
            fam_code, link_code, self.resp.newton, shape, self.y, self.wt, self._x1, t1.codes, t1.n_levels,
            float(theta[0]), fixed, self._u_start.copy(), self.utol, self.MAXIT)
        if not ok:
            raise FitError("PIRLS step-halving failed to reduce the penalized deviance")
        return self._final_state(theta, self._iterate(theta, u, beta), False, int(it))

    def _glm_start(self) -> np.ndarray:
        """beta from a few IRLS steps of the GLM without random effects (glm's start)."""
        return glm_fit(self.X, self.y, self.family, self.wt, self.offset)

    # ---- objectives ----------------------------------------------------------------------
    def laplace(self, state: PirlsState) -> float:
        return self.aic(state.mu, state.dev_resid) + state.sqrL + state.factor.ldL2

    def __call__(self, pars: np.ndarray) -> float:
        """Laplace criterion at ``pars = (theta, beta)`` (glmer nAGQ=1 devfun)."""
        self.n_evals += 1
        pars = np.asarray(pars, dtype=float)
        theta, beta = pars[: self.n_theta], pars[self.n_theta:]
        if self._scalar1 and self.resp.compiled and self._laplace_const[0] is self.family:
            return self._laplace_compiled(theta, beta)
        st = self.pirls(theta, beta)
        if self._scalar1 and self.resp.compiled and not self.family.has_dispersion:
            # aic = deviance + a constant here: the compiled value path needs only the constant
            self._laplace_const = (self.family, self.aic(st.mu, st.dev_resid) - float(st.dev_resid.sum()))
        return self.laplace(st)

    def _laplace_compiled(self, theta: np.ndarray, beta: np.ndarray) -> float:
        """The criterion alone (no state) for one scalar term: modes and Laplace pieces compiled."""
        t1 = self.design.reterms[0]
        fixed = self.X @ beta + self.offset
        fam_code, link_code, shape = self.resp._codes
        args = (self.y, self.wt, self._x1, t1.codes, t1.n_levels, float(theta[0]), fixed)
        u, _, ok = scalar_pirls(fam_code, link_code, self.resp.newton, shape, *args, self._u_start.copy(),
                                self.utol, self.MAXIT)
        if not ok:
            raise FitError("PIRLS step-halving failed to reduce the penalized deviance")
        self._u_start = u.copy()
        dev, sqrL, ldL2 = scalar_laplace(fam_code, link_code, shape, *args, u)
        return float(dev) + self._laplace_const[1] + float(sqrL) + float(ldL2)

    def profiled(self, theta: np.ndarray) -> float:
        """glmer's nAGQ=0 criterion: Laplace at (u, beta) from joint PIRLS."""
        self.n_evals += 1
        return self.laplace(self.pirls(theta))

    def agq(self, pars: np.ndarray, nAGQ: int) -> float:
        """Adaptive Gauss-Hermite criterion (glmerAGQ), one scalar random-effects term."""
        self.n_evals += 1
        pars = np.asarray(pars, dtype=float)
        st = self.pirls(pars[: self.n_theta], pars[self.n_theta:])
        return agq_deviance(self, st, nAGQ)
