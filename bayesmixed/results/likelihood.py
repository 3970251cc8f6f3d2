"""Results of REML / ML fits (lme4's merMod for lmer)."""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd
from scipy import stats

from bayesmixed.results.base import MixedFit, varcorr_frame
from bayesmixed.results.display import Summary, random_effects_text, signif_stars, formula_label


class LikelihoodFit(MixedFit):
    """A REML or ML fit of a linear mixed model, as returned by ``Model.fit()``.

    Attributes mirror lme4's accessors: ``fixef``, ``fixef_se``, ``vcov``, ``ranef``
    (conditional modes), ``coef``, ``varcorr``, ``sigma``, ``loglik``, ``aic``...

    Attributes
    ----------
    design : MixedDesign
        The model matrices the fit was computed from.
    method : str
        ``"reml"`` or ``"ml"``.
    theta : numpy.ndarray
        Relative covariance factor parameters at the optimum (lme4's ``getME(fit, "theta")``).
    sigma : float
        Residual standard deviation (lme4's ``sigma(fit)``).
    u : numpy.ndarray
        Spherical random effects; ``b = Lambda(theta) @ u``.
    objective : float
        The REML criterion or the deviance at the optimum.
    opt : OptResult
        What the optimizer returned (evaluations, status, messages).
    is_singular : bool
        A variance on its boundary or a correlation of +-1 (lme4's ``isSingular(fit)``).
    warnings_issued : tuple
        The warnings issued while fitting.

    Notes
    -----
    lme4: the ``merMod`` object returned by ``lmer()``.

    Examples
    --------
    >>> import bayesmixed as bm
    >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
    >>> fit.method, fit.nobs, fit.ngroups, fit.is_singular
    ('reml', 180, {'Subject': 18}, False)
    >>> round(fit.sigma, 2), fit.theta.round(3).tolist()
    (25.59, [0.967, 0.015, 0.231])
    """

    def __init__(self, *, design, method, theta, beta, u, sigma, objective, devfun, opt, state,
                 warnings_issued=(), is_singular=False, conv_messages=()):
        self.design = design
        self.method = method
        self.theta = np.asarray(theta)
        self._beta = np.asarray(beta)
        self.u = np.asarray(u)
        self.sigma = float(sigma)
        self.objective = float(objective)
        self._devfun = devfun
        self.opt = opt
        self._state = state
        self.warnings_issued = tuple(warnings_issued)
        self.is_singular = bool(is_singular)
        self.conv_messages = tuple(conv_messages)

    # ---- lme4 accessors ------------------------------------------------------------
    @property
    def reml(self) -> bool:
        """True for a REML fit.

        Examples
        --------
        >>> import bayesmixed as bm
        >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
        >>> fit.reml, fit.n_params, fit.df_resid
        (True, 6, 174)
        """
        return self.method == "reml"

    @cached_property
    def b(self) -> np.ndarray:
        """All random effects as one vector, term by term and level-major (lme4's ``getME(fit, "b")``).

        Examples
        --------
        >>> import bayesmixed as bm
        >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
        >>> fit.b.shape, fit.b[:2].round(2).tolist()
        ((36,), [2.26, 9.2])
        """
        return self.design.Lambda(self.theta) @ self.u

    def _b_vector(self) -> np.ndarray:
        return self.b

    @cached_property
    def fixef(self) -> pd.Series:
        """Fixed-effect estimates (lme4's ``fixef(fit)``).

        Examples
        --------
        >>> import bayesmixed as bm
        >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
        >>> fit.fixef.round(3).to_dict()
        {'Intercept': 251.405, 'Days': 10.467}
        """
        return pd.Series(self._beta, index=list(self.design.fixef_names), name="estimate")

    @cached_property
    def vcov(self) -> pd.DataFrame:
        """Covariance matrix of the fixed effects, ``sigma**2 (RX' RX)^-1`` (lme4's ``vcov(fit)``).

        Examples
        --------
        >>> import bayesmixed as bm
        >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
        >>> fit.vcov.round(2)
                   Intercept  Days
        Intercept      46.57 -1.45
        Days           -1.45  2.39
        """
        RX = self._devfun.system.RX(self._state.factor)
        Rinv = np.linalg.inv(RX)
        V = self.sigma**2 * (Rinv @ Rinv.T)
        names = list(self.design.fixef_names)
        return pd.DataFrame(V, index=names, columns=names)

    @property
    def fixef_se(self) -> pd.Series:
        """Standard errors of the fixed effects.

        Examples
        --------
        >>> import bayesmixed as bm
        >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
        >>> fit.fixef_se.round(3).to_dict()
        {'Intercept': 6.825, 'Days': 1.546}
        """
        return pd.Series(np.sqrt(np.diag(self.vcov.to_numpy())), index=self.fixef.index, name="std_error")

    @cached_property
    def varcorr(self) -> pd.DataFrame:
        """Variance components as R's ``as.data.frame(VarCorr(fit))``: ``grp, var1, var2, vcov, sdcor``.

        Examples
        --------
        >>> import bayesmixed as bm
        >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
        >>> fit.varcorr.round({"vcov": 1, "sdcor": 2})
                grp       var1  var2   vcov  sdcor
        0   Subject  Intercept   NaN  612.1  24.74
        1   Subject       Days   NaN   35.1   5.92
        2   Subject  Intercept  Days    9.6   0.07
        3  Residual        NaN   NaN  654.9  25.59
        """
        covs = [t.covariance(self.theta[s], self.sigma)
                for t, s in zip(self.design.reterms, self.design.theta_slices)]
        return varcorr_frame(self.design, covs, self.sigma)

    @cached_property
    def _condvar_blocks(self) -> list[np.ndarray]:
        """Per term (n_levels, k, k) conditional covariances of b (lme4's condVar)."""
        d = self.design
        rel = self._devfun.system.condcov_blocks(self._state.factor)   # blocks of (L L')^{-1}
        out = []
        for t, s, B in zip(d.reterms, d.theta_slices, rel):
            T = t.lambda_block(self.theta[s])                           # b = Lambda u, per level
            out.append(self.sigma**2 * (T @ B @ T.T))
        return out

    @property
    def ranef_condsd(self) -> dict[str, pd.DataFrame]:
        """Conditional standard deviations of the random effects (lme4: ``condVar=TRUE``).

        Examples
        --------
        >>> import bayesmixed as bm
        >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
        >>> fit.ranef_condsd["Subject"].loc["308"].round(2).to_dict()
        {'Intercept': 12.07, 'Days': 2.3}
        """
        sds = np.concatenate([np.sqrt(np.diagonal(B, axis1=1, axis2=2)).ravel() for B in self._condvar_blocks])
        return self._ranef_from_b(sds)

    # ---- likelihood summaries --------------------------------------------------------
    @property
    def n_params(self) -> int:
        """Number of parameters: fixed effects, theta and sigma (the ``df`` of R's ``logLik``)."""
        return self.design.p + self.design.n_theta + 1

    @property
    def loglik(self) -> float:
        """Log-likelihood (the REML log-likelihood for REML fits, as lme4's logLik).

        Examples
        --------
        >>> import bayesmixed as bm
        >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
        >>> print(round(fit.loglik, 2), round(fit.aic, 1), round(fit.bic, 1))
        -871.81 1755.6 1774.8
        """
        return -0.5 * self.objective

    @property
    def aic(self) -> float:
        """Akaike's information criterion, ``-2 loglik + 2 n_params`` (R's ``AIC(fit)``)."""
        return -2 * self.loglik + 2 * self.n_params

    @property
    def bic(self) -> float:
        """Schwarz's criterion, ``-2 loglik + log(nobs) n_params`` (R's ``BIC(fit)``)."""
        return float(-2 * self.loglik + np.log(self.nobs) * self.n_params)

    @property
    def deviance(self) -> float:
        """-2 log-likelihood; for REML fits the REML criterion (as lme4's deviance() returns).

        Examples
        --------
        >>> import bayesmixed as bm
        >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
        >>> round(fit.deviance, 2), round(fit.reml_criterion, 2)
        (1743.63, 1743.63)
        """
        return self.objective

    @property
    def reml_criterion(self) -> float | None:
        """The REML criterion at the optimum (lme4's ``REMLcrit(fit)``); None for ML fits."""
        return self.objective if self.reml else None

    @property
    def df_resid(self) -> int:
        """Residual degrees of freedom, ``nobs - n_params`` (R's ``df.residual(fit)``)."""
        return self.nobs - self.n_params

    # ---- Satterthwaite (lmerTest) ------------------------------------------------------
    @cached_property
    def _satterthwaite_pieces(self):
        from bayesmixed.likelihood.numderiv import hessian, jacobian

        dev = self._devfun
        varpar = np.concatenate([self.theta, [self.sigma]])
        H = hessian(dev.deviance_varpar, varpar)
        try:
            A = 2 * np.linalg.inv(H)                     # asymptotic cov of (theta, sigma)
        except np.linalg.LinAlgError:
            A = 2 * np.linalg.pinv(H)

        def vcov_at(vp):
            st = dev.evaluate(vp[:-1])
            RX = dev.system.RX(st.factor)
            Rinv = np.linalg.inv(RX)
            return vp[-1] ** 2 * (Rinv @ Rinv.T)

        J = jacobian(vcov_at, varpar)                    # (k, p, p)
        return A, J

    def satterthwaite_df(self, L: np.ndarray) -> float:
        """Satterthwaite denominator df for the contrast ``L`` (lmerTest's contest1D).

        Examples
        --------
        >>> import bayesmixed as bm
        >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
        >>> round(fit.satterthwaite_df([0.0, 1.0]), 2)
        17.0
        """
        A, J = self._satterthwaite_pieces
        L = np.asarray(L, dtype=float)
        V = self.vcov.to_numpy()
        var = L @ V @ L
        g = np.array([L @ Ji @ L for Ji in J])
        denom = g @ A @ g
        return float(2 * var**2 / denom) if denom > 0 else np.nan

    @cached_property
    def satterthwaite(self) -> pd.DataFrame:
        """Fixed-effect t tests with Satterthwaite df, as ``summary(lmerTest::lmer())``.

        Examples
        --------
        >>> import bayesmixed as bm
        >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
        >>> fit.satterthwaite[["estimate", "std_error", "df", "t_value"]].round(3)
                   estimate  std_error    df  t_value
        Intercept   251.405      6.825  17.0   36.838
        Days         10.467      1.546  17.0    6.771
        """
        p = self.design.p
        est, se = self.fixef.to_numpy(), self.fixef_se.to_numpy()
        df = np.array([self.satterthwaite_df(np.eye(p)[i]) for i in range(p)])
        t = est / se
        pv = 2 * stats.t.sf(np.abs(t), df)
        return pd.DataFrame({"estimate": est, "std_error": se, "df": df, "t_value": t, "p_value": pv},
                            index=self.fixef.index)

    # ---- tables ----------------------------------------------------------------------
    def confint(self, level: float = 0.95) -> pd.DataFrame:
        """Wald confidence intervals for the fixed effects (lme4: ``confint(method="Wald")``).

        Examples
        --------
        >>> import bayesmixed as bm
        >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
        >>> fit.confint().round(2)
                    2.5 %  97.5 %
        Intercept  238.03  264.78
        Days         7.44   13.50
        """
        z = stats.norm.ppf(0.5 + level / 2)
        lo = self.fixef - z * self.fixef_se
        hi = self.fixef + z * self.fixef_se
        a = (1 - level) / 2
        return pd.DataFrame({f"{100 * a:.1f} %": lo, f"{100 * (1 - a):.1f} %": hi})

    def r2(self) -> dict[str, float]:
        """Nakagawa & Schielzeth marginal and conditional R² (Johnson's random-slope extension).

        Examples
        --------
        >>> import bayesmixed as bm
        >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
        >>> {k: round(v, 3) for k, v in fit.r2().items()}
        {'marginal': 0.279, 'conditional': 0.799}
        """
        d = self.design
        var_f = float(np.var(d.X @ self._beta, ddof=1))
        var_r = 0.0
        for t, s in zip(d.reterms, d.theta_slices):
            C = t.covariance(self.theta[s], self.sigma)
            var_r += float(np.mean(np.einsum("ij,jk,ik->i", t.Xi, C, t.Xi)))
        var_e = self.sigma**2
        tot = var_f + var_r + var_e
        return {"marginal": var_f / tot, "conditional": (var_f + var_r) / tot}

    def tidy(self, *, conf_int: bool = False, conf_level: float = 0.95, effects=("fixed", "ran_pars"),
             ddf: str = "satterthwaite") -> pd.DataFrame:
        """broom.mixed-style table: fixed effects with Satterthwaite df and p, then variance parameters.

        Examples
        --------
        >>> import bayesmixed as bm
        >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
        >>> fit.tidy(conf_int=True)[["term", "estimate", "df", "conf_low", "conf_high"]].round(2).head(2)
                term  estimate    df  conf_low  conf_high
        0  Intercept    251.41  17.0    237.01     265.80
        1       Days     10.47  17.0      7.21      13.73
        """
        rows = []
        if "fixed" in effects:
            if self.design.family.is_gaussian_identity and ddf == "satterthwaite":
                sat = self.satterthwaite
                df, stat, pv = sat["df"], sat["t_value"], sat["p_value"]
            else:
                stat = self.fixef / self.fixef_se
                df = pd.Series(np.nan, index=stat.index)
                pv = pd.Series(2 * stats.norm.sf(np.abs(stat)), index=stat.index)
            for name in self.fixef.index:
                rows.append({"effect": "fixed", "group": None, "term": name, "estimate": self.fixef[name],
                             "std_error": self.fixef_se[name], "statistic": stat[name], "df": df[name],
                             "p_value": pv[name]})
        if "ran_pars" in effects:
            for _, r in self.varcorr.iterrows():
                if r["grp"] == "Residual":
                    term, grp = "sd__Observation", "Residual"
                elif pd.isna(r["var2"]):
                    term, grp = f"sd__{r['var1']}", r["grp"]
                else:
                    term, grp = f"cor__{r['var1']}.{r['var2']}", r["grp"]
                rows.append({"effect": "ran_pars", "group": grp, "term": term, "estimate": r["sdcor"],
                             "std_error": np.nan, "statistic": np.nan, "df": np.nan, "p_value": np.nan})
        out = pd.DataFrame(rows, columns=["effect", "group", "term", "estimate", "std_error", "statistic",
                                          "df", "p_value"])
        if conf_int:
            crit = np.where(out["df"].notna(), stats.t.ppf(0.5 + conf_level / 2, out["df"].fillna(1)),
                            stats.norm.ppf(0.5 + conf_level / 2))
            out["conf_low"] = out["estimate"] - crit * out["std_error"]
            out["conf_high"] = out["estimate"] + crit * out["std_error"]
        return out

    def summary(self) -> Summary:
        """lme4's ``summary(fit)`` with lmerTest's Satterthwaite t tests: print it, or show it in a notebook.

        Examples
        --------
        >>> import bayesmixed as bm
        >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
        >>> print(fit.summary())            # doctest: +ELLIPSIS
        Linear mixed model fit by REML ['lmerMod'; t-tests use Satterthwaite's method]
        Formula: Reaction ~ Days + (Days | Subject)
        REML criterion at convergence: 1743.6283
        ...
        """
        d = self.design
        title = ("Linear mixed model fit by REML" if self.reml else "Linear mixed model fit by maximum likelihood")
        if d.family.is_gaussian_identity and self.design.p:
            title += " ['lmerMod'; t-tests use Satterthwaite's method]"
        header = [f"Formula: {formula_label(d.parsed)}"]
        if self.reml:
            header.append(f"REML criterion at convergence: {self.objective:.4f}")
        else:
            header.append(f"     AIC      BIC   logLik deviance df.resid")
            header.append(f"{self.aic:8.1f} {self.bic:8.1f} {self.loglik:8.1f} {self.deviance:8.1f} "
                          f"{self.df_resid:8d}")
        res = self.residuals().to_numpy() / self.sigma
        if d.has_user_weights:
            res = res * np.sqrt(d.weights)
        q = np.quantile(res, [0, 0.25, 0.5, 0.75, 1])
        scaled = pd.DataFrame([q], columns=["Min", "1Q", "Median", "3Q", "Max"], index=[""])
        tables, blocks, footer = self._summary_tables(scaled)
        return Summary(title=title, header=header, tables=tables, footer=footer, text_blocks=blocks)

    def _summary_tables(self, scaled: pd.DataFrame):
        """Tables, text blocks and footer notes of ``summary()``, shared by LMM and GLMM fits."""
        d = self.design
        vc = self.varcorr
        ng = "; ".join(f"{g}, {n}" for g, n in d.ngroups.items())   # lme4: "plate, 24; sample, 6"
        fixed = self._fixed_table()
        tables = {"Scaled residuals": scaled, "Random effects": vc, "Fixed effects": fixed}
        blocks = {"Random effects": random_effects_text(vc) +
                  f"\nNumber of obs: {d.n}, groups:  {ng}"}
        if d.p > 1:
            V = self.vcov.to_numpy()
            s = np.sqrt(np.diag(V))
            corr = pd.DataFrame(V / np.outer(s, s), index=self.fixef.index, columns=self.fixef.index)
            tables["Correlation of Fixed Effects"] = corr
            blocks["Correlation of Fixed Effects"] = corr.round(3).to_string()
        footer = []
        if d.dropped_columns:
            footer.append(f"fixed-effect model matrix is rank deficient so dropping "
                          f"{len(d.dropped_columns)} column(s): {', '.join(d.dropped_columns)}")
        if self.is_singular:
            footer.append("boundary (singular) fit: a variance is (nearly) zero or a correlation is ±1; "
                          "consider simplifying the random-effects structure")
        footer.extend(self.conv_messages)
        return tables, blocks, footer

    def _fixed_table(self) -> pd.DataFrame:
        if self.design.family.is_gaussian_identity:
            try:
                sat = self.satterthwaite
                tab = pd.DataFrame({"Estimate": sat["estimate"], "Std. Error": sat["std_error"],
                                    "df": sat["df"], "t value": sat["t_value"], "Pr(>|t|)": sat["p_value"]})
                tab[""] = [signif_stars(p) for p in sat["p_value"]]
                return tab
            except Exception:  # df unavailable (e.g. singular Hessian): print t without df
                pass
        z = self.fixef / self.fixef_se
        return pd.DataFrame({"Estimate": self.fixef, "Std. Error": self.fixef_se, "t value": z})

    @cached_property
    def idata(self):
        """ArviZ data with draws from the normal approximation at the estimate.

        Examples
        --------
        >>> import bayesmixed as bm
        >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
        >>> fit.idata.posterior["b_Subject"].shape
        (1, 1000, 18, 2)
        """
        from bayesmixed.results.idata import normal_approximation_idata

        return normal_approximation_idata(self)
