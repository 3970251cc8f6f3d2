"""Results of Laplace / adaptive Gauss-Hermite GLMM fits (lme4's glmerMod)."""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd
from scipy import stats

from bayesmixed.errors import DesignError
from bayesmixed.results.base import varcorr_frame
from bayesmixed.results.display import Summary, random_effects_text, signif_stars, formula_label
from bayesmixed.results.likelihood import LikelihoodFit

HESS_TOL = 1e-6            # glmerControl(check.conv.hess = .makeCC("warning", tol = 1e-6))
GRAD_TOL = 2e-3


class GlmmFit(LikelihoodFit):
    """A Laplace (nAGQ=1) or adaptive Gauss-Hermite (nAGQ > 1) fit of a GLMM.

    Attributes mirror lme4's glmerMod: ``theta``, ``fixef``, ``ranef`` (conditional
    modes ``b = Lambda u``), ``varcorr``, ``sigma`` (1 unless the family has a scale),
    ``loglik = -criterion / 2`` as glmer reports it, ``deviance`` (sum of the
    conditional deviance residuals, lme4's ``deviance()``), ``vcov`` from the
    finite-difference Hessian of the criterion over (theta, beta) (lme4's default,
    ``use.hessian=TRUE``), ``vcov_rx`` from the PIRLS factor (``use.hessian=FALSE``).

    Examples
    --------
    >>> import bayesmixed as bm
    >>> fit = bm.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...                bm.load_dataset("cbpp"), family="binomial").fit()
    >>> round(fit.loglik, 3), fit.n_params
    (-92.026, 5)
    """

    def __init__(self, *, design, family, nAGQ, theta, beta, state, objective, devfun, opt,
                 is_singular=False, warnings_issued=(), conv_messages=(), shape_estimated=False):
        self.design = design
        self.family = family
        self.nAGQ = int(nAGQ)
        self.method = "laplace" if self.nAGQ == 1 else "agq"
        self.theta = np.asarray(theta, dtype=float)
        self._beta = np.asarray(beta, dtype=float)
        self.u = state.u
        self._state = state
        self.objective = float(objective)
        self._devfun = devfun
        self.opt = opt
        self.is_singular = bool(is_singular)
        self.warnings_issued = tuple(warnings_issued)
        self.conv_messages = tuple(conv_messages)
        self.shape_estimated = bool(shape_estimated)

    # ---- scale --------------------------------------------------------------------------
    @cached_property
    def sigma(self) -> float:
        """Residual scale: 1 for binomial / poisson / negative binomial; otherwise
        sqrt((Pearson chi^2 + |u|^2) / n) as lme4's ``sigma()`` for glmer."""
        if not self.family.has_dispersion:
            return 1.0
        st = self._state
        d = self.design
        var = self.family.variance(st.mu)
        wrss = float(np.sum(d.weights * (d.y - st.mu) ** 2 / var))
        return float(np.sqrt((wrss + st.sqrL) / d.n))

    @property
    def shape(self) -> float | None:
        """Negative binomial size k (Var = mu + mu^2/k); ``glmer.nb``'s theta."""
        return self.family.shape

    @property
    def deviance_criterion(self) -> float:
        """The optimised criterion (glmer's ``-2 logLik``; AGQ omits the saturated log-likelihood)."""
        return self.objective

    # ---- fixed effects --------------------------------------------------------------------
    def _pars(self) -> np.ndarray:
        return np.concatenate([self.theta, self._beta])

    def _criterion(self, pars: np.ndarray) -> float:
        dev = self._devfun
        return dev(pars) if self.nAGQ == 1 else dev.agq(pars, self.nAGQ)

    @cached_property
    def derivs(self) -> tuple[np.ndarray, np.ndarray]:
        """Gradient and Hessian of the criterion over (theta, beta) by lme4's ``deriv12``."""
        from bayesmixed.likelihood.glmm import single_blas_thread
        from bayesmixed.likelihood.numderiv import deriv12

        dev = self._devfun
        u_save = dev._u_start.copy()
        try:
            with single_blas_thread():
                g, H = deriv12(self._criterion, self._pars(), f0=self.objective)
        finally:
            dev._u_start = u_save
        return g, H

    @cached_property
    def vcov_rx(self) -> pd.DataFrame:
        """Covariance of beta from the PIRLS factor: sigma^2 (RX'RX)^{-1} (``use.hessian=FALSE``)."""
        dev, st = self._devfun, self._state
        w = st.weights
        WX = w[:, None] * dev.X
        RZX = st.factor.solve_L(dev.Lambda_mul(self.theta, dev.Ztmul(WX), trans=True))
        XtX = dev.X.T @ WX - RZX.T @ RZX
        V = np.linalg.inv(XtX) * self.sigma**2
        names = list(self.design.fixef_names)
        return pd.DataFrame(V, index=names, columns=names)

    @cached_property
    def vcov(self) -> pd.DataFrame:
        """Covariance of beta: 2 H^{-1} restricted to beta (lme4's default), else the RX version."""
        nth = self.design.n_theta
        names = list(self.design.fixef_names)
        try:
            _, H = self.derivs
            Hi = np.linalg.inv(H)
            V = 2 * Hi[nth:, nth:]
            V = (V + V.T) / 2
            if np.all(np.isfinite(V)) and np.all(np.linalg.eigvalsh(V) > 0):
                return pd.DataFrame(V, index=names, columns=names)
        except np.linalg.LinAlgError:
            pass
        return self.vcov_rx

    # ---- variance components ----------------------------------------------------------------
    @cached_property
    def varcorr(self) -> pd.DataFrame:
        """``as.data.frame(VarCorr(fit))``: no Residual row unless the family has a scale."""
        disp = self.family.has_dispersion
        s = self.sigma if disp else 1.0
        covs = [t.covariance(self.theta[sl], s) for t, sl in zip(self.design.reterms, self.design.theta_slices)]
        return varcorr_frame(self.design, covs, self.sigma if disp else None)

    @cached_property
    def _condvar_blocks(self) -> list[np.ndarray]:
        """Per term (n_levels, k, k) conditional covariances of b (lme4's condVar)."""
        d = self.design
        F = self._state.factor
        if d.q > 6000:
            raise DesignError(f"conditional variances need a dense (q x q) inverse; q = {d.q} is too large")
        Linv = F.solve_L(np.eye(d.q))                                   # (q, q)
        A = self._devfun.Lambda_mul(self.theta, Linv.T)                 # Lambda L^{-T}
        s2 = self.sigma**2 if self.family.has_dispersion else 1.0
        out = []
        for t, sl in zip(d.reterms, d.b_slices):
            rows = A[sl].reshape(t.n_levels, t.n_cols, -1)
            out.append(s2 * np.einsum("gak,gbk->gab", rows, rows))
        return out

    # ---- likelihood summaries -------------------------------------------------------------
    @property
    def n_params(self) -> int:
        # a residual scale (gaussian, Gamma) or an estimated negative-binomial shape count, as in lme4
        extra = 1 if (self.family.has_dispersion or self.shape_estimated) else 0
        return self.design.p + self.design.n_theta + extra

    @property
    def loglik(self) -> float:
        """-criterion / 2, as glmer's ``logLik`` (for nAGQ > 1 without the saturated term, as lme4)."""
        return -0.5 * self.objective

    @property
    def deviance(self) -> float:
        """Sum of the conditional deviance residuals at the modes (lme4's ``deviance()`` for glmer)."""
        return float(self._state.dev_resid.sum())

    @property
    def reml_criterion(self):
        return None

    @property
    def reml(self) -> bool:
        return False

    @property
    def df_resid(self) -> int:
        return self.nobs - self.n_params

    # ---- residuals and predictions ----------------------------------------------------------
    def residuals(self, type: str = "deviance") -> pd.Series:
        """Residuals at the conditional modes: ``"deviance"`` (lme4's default), ``"pearson"``,
        ``"response"`` or ``"working"``."""
        d, st, fam = self.design, self._state, self.family
        r = d.y - st.mu
        if type == "deviance":
            out = np.sign(r) * np.sqrt(np.maximum(st.dev_resid, 0))
        elif type == "pearson":
            out = r * np.sqrt(d.weights / fam.variance(st.mu))
        elif type == "response":
            out = r
        elif type == "working":
            out = r / fam.link.mu_eta(st.eta)
        else:
            raise DesignError(f"type must be 'deviance', 'pearson', 'response' or 'working', got {type!r}")
        return pd.Series(out, index=d.index)

    def predict(self, newdata=None, *, include_random: bool = True, allow_new_levels: bool = False,
                type: str = "response", marginal: bool = False, n_nodes: int = 40) -> pd.Series:
        """Conditional or marginal (population-averaged) predictions.

        Parameters
        ----------
        newdata : DataFrame, optional
        include_random : bool
            Conditional predictions at the estimated random effects (``False``: at b = 0,
            lme4's ``re.form=NA``).
        allow_new_levels : bool
            New levels get b = 0 (conditional) instead of an error.
        type : {"response", "link"}
        marginal : bool
            Average the response over the random-effects distribution instead:
            ``E[g^{-1}(x'beta + z'b)]``, b ~ N(0, Sigma). The random part of each row is
            normal with variance ``sum_t z_t' Sigma_t z_t``, so one Gauss-Hermite rule with
            ``n_nodes`` nodes integrates it exactly for any number of terms.
        """
        if not marginal:
            return super().predict(newdata, include_random=include_random, allow_new_levels=allow_new_levels,
                                   type=type)
        if type not in ("link", "response"):
            raise DesignError(f"type must be 'link' or 'response', got {type!r}")
        eta = self._linear_predictor(newdata, include_random=False, allow_new_levels=True)
        Xis = self._random_design(newdata)
        v = np.zeros(len(eta))
        for t, sl, Xi in zip(self.design.reterms, self.design.theta_slices, Xis):
            C = self._scaled_covariance(t, sl)
            v += np.einsum("ij,jk,ik->i", Xi, C, Xi)
        from bayesmixed.likelihood.agq import gh_rule

        z, w = gh_rule(n_nodes)
        e = eta.to_numpy()[:, None] + np.sqrt(v)[:, None] * z[None, :]
        mu = (self.family.link.linkinv(e) * w).sum(axis=1)
        out = mu if type == "response" else self.family.link.linkfun(mu)
        return pd.Series(out, index=eta.index)

    def _scaled_covariance(self, t, sl) -> np.ndarray:
        s = self.sigma if self.family.has_dispersion else 1.0
        return t.covariance(self.theta[sl], s)

    def _random_design(self, newdata) -> list[np.ndarray]:
        d = self.design
        if newdata is None:
            return [t.Xi for t in d.reterms]
        from bayesmixed.design.newdata import new_matrices

        nd = new_matrices(d, newdata, include_random=True, allow_new_levels=True)
        return list(nd.Xis)

    def r2(self) -> dict[str, float]:
        """Nakagawa-Schielzeth R² on the latent scale (binomial: distribution variance pi²/3 for logit,
        1 for probit, pi²/6 for cloglog; poisson log: log(1 + 1/mean))."""
        d, fam = self.design, self.family
        var_f = float(np.var(d.X @ self._beta, ddof=1))
        var_r = 0.0
        for t, sl in zip(d.reterms, d.theta_slices):
            C = self._scaled_covariance(t, sl)
            var_r += float(np.mean(np.einsum("ij,jk,ik->i", t.Xi, C, t.Xi)))
        if fam.name == "binomial":
            var_e = {"logit": np.pi**2 / 3, "probit": 1.0, "cloglog": np.pi**2 / 6}[fam.link.name]
        elif fam.name == "poisson" and fam.link.name == "log":
            lam = np.exp(np.mean(d.X @ self._beta + d.offset) + 0.5 * var_r)
            var_e = float(np.log1p(1 / lam))
        else:
            raise NotImplementedError(f"R² is not implemented for {fam.name}({fam.link.name})")
        tot = var_f + var_r + var_e
        return {"marginal": var_f / tot, "conditional": (var_f + var_r) / tot}

    # ---- convergence checks (lme4's checkConv) ------------------------------------------------
    def _convergence_messages(self) -> list[str]:
        msgs: list[str] = []
        if self._pars().size > 40:
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

    # ---- tables ---------------------------------------------------------------------------------
    def tidy(self, *, conf_int: bool = False, conf_level: float = 0.95, effects=("fixed", "ran_pars"),
             ddf: str = "z") -> pd.DataFrame:
        """broom.mixed-style table: fixed effects with Wald z tests, then variance parameters."""
        return super().tidy(conf_int=conf_int, conf_level=conf_level, effects=effects, ddf="z")

    def _fixed_table(self) -> pd.DataFrame:
        z = self.fixef / self.fixef_se
        p = 2 * stats.norm.sf(np.abs(z))
        tab = pd.DataFrame({"Estimate": self.fixef, "Std. Error": self.fixef_se, "z value": z, "Pr(>|z|)": p})
        tab[""] = [signif_stars(v) for v in p]
        return tab

    def summary(self) -> Summary:
        d, fam = self.design, self.family
        how = ("Laplace Approximation" if self.nAGQ == 1
               else f"Adaptive Gauss-Hermite Quadrature, nAGQ = {self.nAGQ}")
        title = f"Generalized linear mixed model fit by maximum likelihood ({how}) ['glmerMod']"
        famname = {"gamma": "Gamma"}.get(fam.name, fam.name)
        if fam.name == "negativebinomial":
            famname = f"Negative Binomial({fam.shape:.4g})"   # glmer.nb's family name
        header = [f" Family: {famname}  ( {fam.link.name} )", f"Formula: {formula_label(d.parsed)}"]
        if d.has_user_weights:
            header.append("Weights: (prior weights)")
        header.append("     AIC      BIC   logLik deviance df.resid")
        header.append(f"{self.aic:8.1f} {self.bic:8.1f} {self.loglik:8.1f} {self.deviance:8.1f} "
                      f"{self.df_resid:8d}")
        res = self.residuals("pearson").to_numpy()
        if fam.has_dispersion:
            res = res / self.sigma
        q = np.quantile(res, [0, 0.25, 0.5, 0.75, 1])
        scaled = pd.DataFrame([q], columns=["Min", "1Q", "Median", "3Q", "Max"], index=[""])
        tables, blocks, footer = self._summary_tables(scaled)
        return Summary(title=title, header=header, tables=tables, footer=footer, text_blocks=blocks)
