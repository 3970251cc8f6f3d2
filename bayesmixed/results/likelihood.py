"""Results of REML / ML fits (lme4's merMod for lmer), built from the engine's optimum."""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd
from scipy import stats

from bayesmixed.errors import DesignError
from bayesmixed.inference import boot_confint, bootstrap, kenward_roger, profile_confint
from bayesmixed.results.base import MixedFit
from bayesmixed.results.display import Summary, aictab_lines, signif_stars
from bayesmixed.results.idata import normal_approximation_idata


class LikelihoodFit(MixedFit):
    """A REML or ML fit of a linear mixed model, as returned by ``Model.fit()``.

    Attributes mirror lme4's accessors: ``fixef``, ``fixef_se``, ``vcov``, ``ranef``
    (conditional modes), ``coef``, ``varcorr``, ``sigma``, ``loglik``, ``aic``...

    Parameters
    ----------
    optimum : LmmOptimum
        What the engine returned (``bayesmixed.likelihood.lmm.optimize_lmm``); ``Model.fit``
        builds the fit from it.

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

    is_posterior = False     # a point estimate (plots and comparisons ask this, not method)

    def __init__(self, optimum):
        o = optimum
        self._optimum = o
        self.design = o.design
        self.method = o.method
        self.theta = np.asarray(o.theta, dtype=float)
        self._beta = np.asarray(o.beta, dtype=float)
        self.u = np.asarray(o.u)
        self.sigma = float(o.sigma)
        self.objective = float(o.objective)
        self.opt = o.opt
        self.warnings_issued = tuple(o.warnings_issued)
        self.is_singular = bool(o.is_singular)
        self.conv_messages = tuple(o.conv_messages)
        self._covs = o.covariances()

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
        return self._optimum.b

    def _b_vector(self) -> np.ndarray:
        return self.b

    def _eta_mu_devres(self):
        o = self._optimum
        if o.mu is None:                      # linear mixed models: from the predictions
            return super()._eta_mu_devres()
        return o.eta, o.mu, o.dev_resid

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
        return self._fixef_series()

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
        return self._vcov_frame()

    def _vcov_beta(self) -> np.ndarray:
        return self._optimum.vcov_beta()

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
        return self._fixef_se_series()

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
        return self._varcorr()

    @cached_property
    def _condvar_blocks(self) -> list[np.ndarray]:
        """Per term (n_levels, k, k) conditional covariances of b (lme4's condVar)."""
        return self._optimum.condvar_blocks()

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
    def satterthwaite_df(self, L: np.ndarray) -> float:
        """Satterthwaite denominator df for the contrast ``L`` (lmerTest's contest1D).

        Examples
        --------
        >>> import bayesmixed as bm
        >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
        >>> round(fit.satterthwaite_df([0.0, 1.0]), 2)
        17.0
        """
        A, J = self._optimum.satterthwaite_pieces
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
    def confint(self, level: float = 0.95, method: str = "wald", *, parm=None, nsim: int = 500, seed=None,
                client=None, n_jobs=None) -> pd.DataFrame:
        """Confidence intervals: Wald (fixed effects), profile likelihood or parametric bootstrap.

        ``method="profile"`` is lme4's default ``confint(fit)``: every parameter
        (``sd_(Intercept)|Subject``, ``cor_(Intercept).Days|Subject``, ``sigma``, fixed
        effects) from the profiled ML deviance. ``method="boot"`` refits ``nsim``
        simulated responses (lme4's ``confint(method="boot")``; ``seed``, ``client``
        (a dask.distributed Client) and ``n_jobs`` as in :meth:`bootstrap`).

        Examples
        --------
        >>> import bayesmixed as bm
        >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
        >>> fit.confint().round(2)
                    2.5 %  97.5 %
        Intercept  238.03  264.78
        Days         7.44   13.50
        >>> fit.confint(method="profile").round(2).loc[["sigma", "Days"]]
               2.5 %  97.5 %
        sigma  22.90   28.86
        Days    7.36   13.58
        """
        method = str(method).lower()
        if method == "profile":
            return profile_confint(self, level=level, parm=parm)
        if method == "boot":
            return boot_confint(self, level=level, nsim=nsim, seed=seed, client=client, n_jobs=n_jobs)
        if method != "wald":
            raise DesignError(f"method must be 'wald', 'profile' or 'boot', got {method!r}")
        z = stats.norm.ppf(0.5 + level / 2)
        lo = self.fixef - z * self.fixef_se
        hi = self.fixef + z * self.fixef_se
        a = (1 - level) / 2
        return pd.DataFrame({f"{100 * a:.1f} %": lo, f"{100 * (1 - a):.1f} %": hi})

    def bootstrap(self, nsim: int, seed=None, client=None, n_jobs=None) -> pd.DataFrame:
        """Parametric bootstrap (lme4's ``bootMer``): one row of estimates per simulated refit.

        Replicates run in sequence, through joblib (``n_jobs``) or on a Dask cluster
        (``client``); the same ``seed`` gives the same replicates in every mode. Failed
        refits stay as rows of NaN with ``status == "failed"`` (counted in ``attrs``).

        Examples
        --------
        >>> import bayesmixed as bm
        >>> fit = bm.Model("Yield ~ 1 + (1 | Batch)", bm.load_dataset("Dyestuff")).fit()
        >>> boot = fit.bootstrap(5, seed=1)
        >>> len(boot), list(boot.columns)
        (5, ['Intercept', 'sd_(Intercept)|Batch', 'sigma', 'status'])
        """
        return bootstrap(self, nsim, seed=seed, client=client, n_jobs=n_jobs)

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
        for t, C in zip(d.reterms, self.covariances()):
            var_r += float(np.mean(np.einsum("ij,jk,ik->i", t.Xi, C, t.Xi)))
        var_e = self._r2_residual_variance(var_r)
        tot = var_f + var_r + var_e
        return {"marginal": var_f / tot, "conditional": (var_f + var_r) / tot}

    def _r2_residual_variance(self, var_r: float) -> float:
        return self.sigma**2

    def _t_table(self, ddf: str = "satterthwaite") -> pd.DataFrame:
        """``estimate, std_error, df, t_value, p_value`` by Satterthwaite's or Kenward-Roger's method."""
        return self.kenward_roger.table if _ddf(ddf) == "kenward-roger" else self.satterthwaite

    @cached_property
    def kenward_roger(self):
        """Kenward-Roger results: adjusted ``vcov``, ``df`` and t ``table`` (pbkrtest / lmerTest).

        Examples
        --------
        >>> import bayesmixed as bm
        >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
        >>> fit.kenward_roger.df.round(2).tolist()
        [17.0, 17.0]
        """
        return kenward_roger(self)

    def _fixed_tests(self, ddf: str = "satterthwaite", **kwargs):
        if self.design.family.is_gaussian_identity:
            tab = self._t_table(ddf)
            return tab["std_error"], tab["t_value"], tab["df"], tab["p_value"]
        return super()._fixed_tests()

    def tidy(self, *, conf_int: bool = False, conf_level: float = 0.95, effects=("fixed", "ran_pars"),
             ddf: str = "satterthwaite") -> pd.DataFrame:
        """broom.mixed-style table: fixed effects with Satterthwaite df and p, then variance parameters.

        Columns ``effect, group, term, estimate, std_error, statistic, df, p_value``, and
        ``conf_low, conf_high`` with ``conf_int=True`` (the contract of every fit's ``tidy``).

        Examples
        --------
        >>> import bayesmixed as bm
        >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
        >>> fit.tidy(conf_int=True)[["term", "estimate", "df", "conf_low", "conf_high"]].round(2).head(2)
                term  estimate    df  conf_low  conf_high
        0  Intercept    251.41  17.0    237.01     265.80
        1       Days     10.47  17.0      7.21      13.73
        """
        return self._tidy(conf_int, conf_level, effects, ddf=_ddf(ddf))

    # ---- summary ----------------------------------------------------------------------
    def summary(self, *, conf_level: float = 0.95, ddf: str = "satterthwaite",
                correlation: bool | str | None = None) -> Summary:
        """lme4's ``summary(fit)`` with lmerTest's t tests: print it, or show it in a notebook.

        ``ddf="Kenward-Roger"`` uses Kenward-Roger's adjusted standard errors and df
        (lmerTest's ``summary(fit, ddf="Kenward-Roger")``) instead of Satterthwaite's.
        ``correlation`` chooses the correlation block as in ``MixedFit.summary``.

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
        self._summary_ddf = _ddf(ddf)
        try:
            return super().summary(conf_level=conf_level, correlation=correlation)
        finally:
            del self._summary_ddf

    def _summary_title(self) -> str:
        title = "Linear mixed model fit by REML" if self.reml else "Linear mixed model fit by maximum likelihood"
        if self.design.family.is_gaussian_identity and self.design.p:
            method = "Kenward-Roger's" if getattr(self, "_summary_ddf", "") == "kenward-roger" else "Satterthwaite's"
            title += f" ['lmerMod'; t-tests use {method} method]"
        return title

    def _criteria_lines(self) -> list[str]:
        """lme4's ``AIC BIC logLik deviance df.resid`` lines after a blank one: the deviance column
        is -2 logLik (lme4's ``AICtab``), which for a GLMM is not ``deviance()``."""
        return ["", *aictab_lines(self.aic, self.bic, self.loglik, -2 * self.loglik, self.df_resid)]

    def _summary_header(self) -> list[str]:
        header = super()._summary_header()
        if self.reml:
            return header + [f"REML criterion at convergence: {self.objective:.4f}"]
        return header + self._criteria_lines()

    def _summary_footer(self, conf_level: float) -> list[str]:
        d = self.design
        footer = []
        if d.dropped_columns:
            footer.append(f"fixed-effect model matrix is rank deficient so dropping "
                          f"{len(d.dropped_columns)} column(s): {', '.join(d.dropped_columns)}")
        if self.is_singular:
            footer.append("boundary (singular) fit: a variance is (nearly) zero or a correlation is ±1; "
                          "consider simplifying the random-effects structure")
        footer.extend(self.conv_messages)
        return footer

    def _fixed_table(self, conf_level: float = 0.95) -> pd.DataFrame:
        if self.design.family.is_gaussian_identity:
            try:
                sat = self._t_table(getattr(self, "_summary_ddf", "satterthwaite"))
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
        """ArviZ data from the normal approximation at the estimate (see :mod:`bayesmixed.results.idata`).

        Examples
        --------
        >>> import bayesmixed as bm
        >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
        >>> fit.idata.posterior["b_Subject"].shape, list(fit.idata.children)
        ((1, 1000, 18, 2), ['posterior', 'observed_data', 'posterior_predictive'])
        """
        return normal_approximation_idata(self)


def _ddf(ddf: str) -> str:
    """``"satterthwaite"`` or ``"kenward-roger"`` from the spellings lmerTest accepts."""
    key = str(ddf).lower().replace("_", "-")
    if key in ("satterthwaite", "kenward-roger", "kr"):
        return "kenward-roger" if key == "kr" else key
    raise DesignError(f"ddf must be 'Satterthwaite' or 'Kenward-Roger', got {ddf!r}")
