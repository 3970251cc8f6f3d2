"""One result face for every fitting method (lme4's mkMerMod + its accessors)."""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd
from scipy import stats

from bayesmixed.design.spec import MixedDesign
from bayesmixed.errors import DesignError
from bayesmixed.results.display import Summary, fixef_correlation_text, formula_label, random_effects_text
from bayesmixed.results.interpret import InterpretMixin
from bayesmixed.results.predict import check_type, eta_draws

TIDY_COLUMNS = ["effect", "group", "term", "estimate", "std_error", "statistic", "df", "p_value"]
RESIDUAL_TYPES = ("response", "deviance", "pearson", "working")
CORRELATION_MAX = 12          # lme4's option lme4.summary.cor.max: print the correlation up to p = 12


def varcorr_frame(design: MixedDesign, covs: list[np.ndarray], sigma: float | None,
                  sdcor: np.ndarray | None = None, residual_vcov: float | None = None) -> pd.DataFrame:
    """R's ``as.data.frame(VarCorr(fit))`` from per-term covariance matrices.

    ``sdcor``, when given, replaces the standard deviations and correlations derived
    from ``covs`` (row by row): posterior fits report posterior means of the sds and
    correlations, which are not the sds of the posterior mean covariance; and
    ``residual_vcov`` the Residual row's variance (default ``sigma**2``).

    Examples
    --------
    >>> import numpy as np
    >>> import bayesmixed as bm
    >>> d = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).design
    >>> varcorr_frame(d, [np.array([[4.0, 1.0], [1.0, 1.0]])], sigma=3.0)
            grp       var1  var2  vcov  sdcor
    0   Subject  Intercept   NaN   4.0    2.0
    1   Subject       Days   NaN   1.0    1.0
    2   Subject  Intercept  Days   1.0    0.5
    3  Residual        NaN   NaN   9.0    3.0
    """
    rows = []
    for t, C in zip(design.reterms, covs):
        sd = np.sqrt(np.clip(np.diag(C), 0, None))
        for i, c in enumerate(t.cnames):
            rows.append({"grp": t.name, "var1": c, "var2": None, "vcov": C[i, i], "sdcor": sd[i]})
        if t.correlated:
            for i in range(t.n_cols):
                for j in range(i + 1, t.n_cols):
                    denom = sd[i] * sd[j]
                    rows.append({"grp": t.name, "var1": t.cnames[i], "var2": t.cnames[j],
                                 "vcov": C[i, j], "sdcor": C[i, j] / denom if denom > 0 else np.nan})
    if sigma is not None:
        rows.append({"grp": "Residual", "var1": None, "var2": None,
                     "vcov": sigma**2 if residual_vcov is None else residual_vcov, "sdcor": sigma})
    out = pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"])
    if sdcor is not None:
        out["sdcor"] = np.asarray(sdcor, dtype=float)
    return out



def ran_pars_rows(varcorr: pd.DataFrame) -> list[tuple[str, str, float]]:
    """(group, term, estimate) of each variance parameter, broom.mixed's names (``sd__Days``...).

    Examples
    --------
    >>> import bayesmixed as bm
    >>> fit = bm.Model("Reaction ~ Days + (1 | Subject)", bm.load_dataset("sleepstudy")).fit()
    >>> [(g, t) for g, t, _ in ran_pars_rows(fit.varcorr)]
    [('Subject', 'sd__Intercept'), ('Residual', 'sd__Observation')]
    """
    out = []
    for _, r in varcorr.iterrows():
        if r["grp"] == "Residual":
            out.append(("Residual", "sd__Observation", r["sdcor"]))
        elif pd.isna(r["var2"]):
            out.append((r["grp"], f"sd__{r['var1']}", r["sdcor"]))
        else:
            out.append((r["grp"], f"cor__{r['var1']}.{r['var2']}", r["sdcor"]))
    return out


class MixedFit(InterpretMixin):
    """Shared face of every fit: ``fixef``, ``ranef``, ``coef``, ``varcorr``, ``tidy``, ``predict``...

    A fit holds its per-term covariance matrices (``_covs``, returned by
    ``covariances()``), the residual scale ``sigma`` (None without one) and either a
    point estimate of beta with its covariance (``_beta``, ``_vcov``) or draws; the
    random effects are one vector ``_b_vector()`` (term by term, level-major), and
    posterior fits give ``_beta_draws()``/``_b_draws()`` over their draws. From these the
    base derives ``varcorr``, ``tidy()``, ``summary()`` and ``predict()``; subclasses
    add their criteria and fill the summary's hooks (``_summary_title`` ...).

    Examples
    --------
    >>> import bayesmixed as bm
    >>> from bayesmixed.results.base import MixedFit
    >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
    >>> isinstance(fit, MixedFit), fit.nobs, fit.ngroups
    (True, 180, {'Subject': 18})
    >>> [C.shape for C in fit.covariances()]
    [(2, 2)]
    """

    design: MixedDesign
    method: str
    data = None               # the user's data frame (set by Model.fit; interpretation reads it)
    sigma: float | None = None
    _covs: list[np.ndarray] | None = None
    _beta: np.ndarray | None = None
    _vcov: np.ndarray | None = None
    _residual_default = "response"

    # ---- variance components ----------------------------------------------------------
    def covariances(self) -> list[np.ndarray]:
        """Per-term covariance matrices of the random effects (k x k, in ``design.reterms`` order).

        On the variance scale: point estimates for likelihood fits, posterior means for
        posterior fits.

        Examples
        --------
        >>> import bayesmixed as bm
        >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
        >>> fit.covariances()[0].round(1)
        array([[612.1,   9.6],
               [  9.6,  35.1]])
        """
        if self._covs is None:
            raise NotImplementedError(f"{type(self).__name__} does not hold its covariance matrices")
        return [np.array(C, dtype=float, copy=True) for C in self._covs]

    @property
    def _residual_sd(self) -> float | None:
        """The Residual row of ``varcorr``: sigma where the family has a residual scale."""
        return self.sigma if self.design.family.has_dispersion and self.sigma is not None else None

    def _varcorr_sdcor(self) -> np.ndarray | None:
        return None

    def _residual_vcov(self) -> float | None:
        return None

    def _varcorr(self) -> pd.DataFrame:
        return varcorr_frame(self.design, self.covariances(), self._residual_sd, sdcor=self._varcorr_sdcor(),
                             residual_vcov=self._residual_vcov())

    @cached_property
    def varcorr(self) -> pd.DataFrame:
        """Variance components as R's ``as.data.frame(VarCorr(fit))``: ``grp, var1, var2, vcov, sdcor``.

        Examples
        --------
        >>> import bayesmixed as bm
        >>> fit = bm.Model("Reaction ~ Days + (1 | Subject)", bm.load_dataset("sleepstudy")).fit()
        >>> list(fit.varcorr["grp"])
        ['Subject', 'Residual']
        """
        return self._varcorr()

    # ---- fixed effects (point fits: beta and its covariance) ----------------------------
    def _vcov_beta(self) -> np.ndarray:
        return self._vcov

    def _fixef_series(self) -> pd.Series:
        return pd.Series(self._beta, index=list(self.design.fixef_names), name="estimate")

    def _vcov_frame(self) -> pd.DataFrame:
        names = list(self.design.fixef_names)
        return pd.DataFrame(self._vcov_beta(), index=names, columns=names)

    def _fixef_se_series(self) -> pd.Series:
        return pd.Series(np.sqrt(np.diag(self.vcov.to_numpy())), index=self.fixef.index, name="std_error")

    @cached_property
    def fixef(self) -> pd.Series:
        """Fixed-effect estimates (posterior means for posterior fits)."""
        return self._fixef_series()

    @cached_property
    def vcov(self) -> pd.DataFrame:
        """Covariance matrix of the fixed effects (the posterior covariance for posterior fits)."""
        return self._vcov_frame()

    @property
    def fixef_se(self) -> pd.Series:
        """Standard errors of the fixed effects (posterior sds for posterior fits)."""
        return self._fixef_se_series()

    # ---- random effects ---------------------------------------------------------------
    def _b_vector(self) -> np.ndarray:
        raise NotImplementedError

    def _beta_draws(self) -> np.ndarray:
        """(S, p) draws of beta; a point fit is one draw."""
        return self.fixef.to_numpy()[None]

    def _b_draws(self) -> np.ndarray:
        """(S, q) draws of b; a point fit is one draw."""
        return self._b_vector()[None]

    def _ranef_from_b(self, b: np.ndarray) -> dict[str, pd.DataFrame]:
        out: dict[str, pd.DataFrame] = {}
        for t, s in zip(self.design.reterms, self.design.b_slices):
            block = pd.DataFrame(b[s].reshape(t.n_levels, t.n_cols), index=pd.Index(t.levels, name=t.group),
                                 columns=list(t.cnames))
            if t.group in out:
                prev = out[t.group]
                dup = [c for c in block.columns if c in prev.columns]
                block = block.rename(columns={c: f"{c}.{t.name.rsplit('.', 1)[-1]}" for c in dup})
                out[t.group] = prev.join(block, how="outer")
            else:
                out[t.group] = block
        return out

    @property
    def ranef(self) -> dict[str, pd.DataFrame]:
        """Random effects per grouping factor: rows are levels, columns are terms.

        Conditional modes for likelihood fits, posterior means for posterior fits
        (lme4's ``ranef(fit)``).

        Examples
        --------
        >>> import bayesmixed as bm
        >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
        >>> fit.ranef["Subject"].loc["309"].round(2).to_dict()
        {'Intercept': -40.4, 'Days': -8.62}
        """
        return self._ranef_from_b(self._b_vector())

    @property
    def coef(self) -> dict[str, pd.DataFrame]:
        """Fixed plus random effects per level, like lme4's ``coef()``.

        Examples
        --------
        >>> import bayesmixed as bm
        >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
        >>> fit.coef["Subject"].loc["309"].round(2).to_dict()
        {'Intercept': 211.01, 'Days': 1.85}
        """
        fe = self.fixef
        out = {}
        for g, re in self.ranef.items():
            frame = pd.DataFrame(np.tile(fe.to_numpy(), (len(re), 1)), index=re.index, columns=fe.index)
            for c in re.columns:
                if c in frame.columns:
                    frame[c] = frame[c] + re[c]
                else:
                    frame[c] = re[c]
            out[g] = frame
        return out

    @property
    def nobs(self) -> int:
        """Number of observations used (rows with missing values dropped)."""
        return self.design.n

    @property
    def ngroups(self) -> dict[str, int]:
        """Number of levels of each grouping factor (lme4's ``ngrps(fit)``)."""
        return self.design.ngroups

    # ---- predictions ------------------------------------------------------------------
    def _linear_predictor(self, newdata=None, include_random: bool = True,
                          allow_new_levels: bool = False) -> pd.Series:
        """The linear predictor at the point estimate (posterior means for posterior fits)."""
        eta, index = eta_draws(self.design, self.fixef.to_numpy()[None], self._b_vector()[None], newdata,
                               include_random=include_random, allow_new_levels=allow_new_levels)
        return pd.Series(eta[0], index=index)

    def predict(self, newdata=None, *, include_random: bool = True, allow_new_levels: bool = False,
                type: str = "response") -> pd.Series:
        """Predictions on the data or ``newdata`` (``type="link"`` or ``"response"``).

        ``include_random=False`` gives population-level predictions (lme4's
        ``re.form=NA``); new levels get a zero random effect when
        ``allow_new_levels=True``.

        Examples
        --------
        >>> import bayesmixed as bm
        >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
        >>> import pandas as pd
        >>> new = pd.DataFrame({"Days": [0.0, 5.0], "Subject": ["308", "new"]})
        >>> fit.predict(new, allow_new_levels=True).round(2).tolist()
        [253.66, 303.74]
        >>> fit.predict(new, include_random=False).round(2).tolist()
        [251.41, 303.74]
        """
        check_type(type)
        eta = self._linear_predictor(newdata, include_random, allow_new_levels)
        if type == "link":
            return eta
        return pd.Series(self.design.family.link.linkinv(eta.to_numpy()), index=eta.index)

    def fitted(self) -> pd.Series:
        """Fitted values on the response scale, indexed like the rows used.

        Examples
        --------
        >>> import bayesmixed as bm
        >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
        >>> fit.fitted().head(2).round(2).tolist()
        [253.66, 273.33]
        """
        return self.predict()

    def _eta_mu_devres(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Linear predictor, mean and unit deviances (None: from the family) at the estimate."""
        mu = self.fitted().to_numpy()
        return self.design.family.link.linkfun(mu), mu, None

    def residuals(self, type: str | None = None) -> pd.Series:
        """Residuals at the estimate: ``"response"`` y - fitted, ``"deviance"``, ``"pearson"``, ``"working"``.

        The default is lme4's: response residuals for linear mixed models, deviance
        residuals for GLMMs.

        Examples
        --------
        >>> import bayesmixed as bm
        >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
        >>> fit.residuals().head(2).round(2).tolist()
        [-4.1, -14.63]
        """
        type = self._residual_default if type is None else type
        if type not in RESIDUAL_TYPES:
            raise DesignError(f"type must be 'deviance', 'pearson', 'response' or 'working', got {type!r}")
        d = self.design
        fam = getattr(self, "family", d.family)         # a GLMM's fitted family (negative binomial: its shape)
        if type == "response":
            return pd.Series(d.y - self.fitted().to_numpy(), index=d.index)
        eta, mu, devres = self._eta_mu_devres()
        r = d.y - mu
        if type == "deviance":
            devres = fam.dev_resids(d.y, mu, d.weights) if devres is None else devres
            out = np.sign(r) * np.sqrt(np.maximum(devres, 0))
        elif type == "pearson":
            out = r * np.sqrt(d.weights / fam.variance(mu))
        else:
            out = r / fam.link.mu_eta(eta)
        return pd.Series(out, index=d.index)

    # ---- tables ----------------------------------------------------------------------
    def _fixed_tests(self, **kwargs) -> tuple[pd.Series, pd.Series, pd.Series, pd.Series]:
        """(std error, statistic, df, p value) of each fixed effect: Wald z tests unless a fit knows better."""
        stat = self.fixef / self.fixef_se
        df = pd.Series(np.nan, index=stat.index)
        return self.fixef_se, stat, df, pd.Series(2 * stats.norm.sf(np.abs(stat)), index=stat.index)

    def _tidy_frame(self, effects, **kwargs) -> pd.DataFrame:
        """The rows of ``tidy()`` without intervals (point fits: tests on beta, varcorr's sds)."""
        rows = []
        if "fixed" in effects:
            se, stat, df, pv = self._fixed_tests(**kwargs)
            for name in self.fixef.index:
                rows.append(("fixed", None, name, self.fixef[name], se[name], stat[name], df[name], pv[name]))
        if "ran_pars" in effects:
            for grp, term, est in ran_pars_rows(self.varcorr):
                rows.append(("ran_pars", grp, term, est, np.nan, np.nan, np.nan, np.nan))
        return pd.DataFrame(rows, columns=TIDY_COLUMNS)

    def _tidy_intervals(self, out: pd.DataFrame, conf_level: float, **kwargs) -> tuple[np.ndarray, np.ndarray]:
        """Wald intervals: t quantiles where the row has df, normal ones otherwise."""
        crit = np.where(out["df"].notna(), stats.t.ppf(0.5 + conf_level / 2, out["df"].fillna(1)),
                        stats.norm.ppf(0.5 + conf_level / 2))
        return (out["estimate"] - crit * out["std_error"]).to_numpy(), \
            (out["estimate"] + crit * out["std_error"]).to_numpy()

    def tidy(self, *, conf_int: bool = False, conf_level: float = 0.95,
             effects=("fixed", "ran_pars")) -> pd.DataFrame:
        """broom.mixed-style table, one column contract for every fit.

        Columns ``effect, group, term, estimate, std_error, statistic, df, p_value``
        (NaN where a column does not apply), and ``conf_low, conf_high`` with
        ``conf_int=True``.

        Examples
        --------
        >>> import bayesmixed as bm
        >>> fit = bm.Model("Reaction ~ Days + (1 | Subject)", bm.load_dataset("sleepstudy")).fit()
        >>> list(fit.tidy(conf_int=True).columns)  # doctest: +NORMALIZE_WHITESPACE
        ['effect', 'group', 'term', 'estimate', 'std_error', 'statistic', 'df', 'p_value',
         'conf_low', 'conf_high']
        """
        return self._tidy(conf_int, conf_level, effects)

    def _tidy(self, conf_int: bool, conf_level: float, effects, **opts) -> pd.DataFrame:
        """``tidy()`` with a fit's own options (``ddf``, ``conf_method``) passed to its hooks."""
        out = self._tidy_frame(effects, **opts)
        if conf_int:
            out["conf_low"], out["conf_high"] = self._tidy_intervals(out, conf_level, **opts)
        return out

    # ---- summary ---------------------------------------------------------------------
    def _summary_title(self) -> str:
        return f"Mixed model fit by {self.method}"

    def _formula_line(self) -> str:
        return formula_label(self.design.parsed)

    def _summary_header(self) -> list[str]:
        return [f"Formula: {self._formula_line()}"]

    def _scaled_residuals(self) -> pd.DataFrame | None:
        """Quantiles of the Pearson residuals over sigma (summary's 'Scaled residuals')."""
        res = self.residuals("pearson").to_numpy()
        if self.sigma is not None:
            res = res / self.sigma
        q = np.quantile(res, [0, 0.25, 0.5, 0.75, 1])
        return pd.DataFrame([q], columns=["Min", "1Q", "Median", "3Q", "Max"], index=[""])

    def _random_effects_table(self, conf_level: float) -> tuple[pd.DataFrame, str]:
        """The random-effects table and the text printed after lme4's block."""
        return self.varcorr, ""

    def _fixed_table(self, conf_level: float = 0.95) -> pd.DataFrame:
        return pd.DataFrame({"Estimate": self.fixef, "Std. Error": self.fixef_se})

    def _fixef_correlation(self) -> pd.DataFrame | None:
        V = self.vcov.to_numpy()
        s = np.sqrt(np.diag(V))
        return pd.DataFrame(V / np.outer(s, s), index=self.fixef.index, columns=self.fixef.index)

    def _summary_footer(self, conf_level: float) -> list[str]:
        return []

    def summary(self, *, conf_level: float = 0.95, correlation: bool | str | None = None) -> Summary:
        """The fit's summary: print it (lme4-like text) or show it in a notebook.

        ``correlation`` chooses the 'Correlation of Fixed Effects' block as lme4's
        ``print(summary(fit), correlation=)``: None (default) prints lme4's lower
        triangle with abbreviated names when there are at most 12 fixed effects,
        True always prints it, False never, ``"full"`` prints the whole matrix with full
        names. ``Summary.correlation`` always holds the full matrix.

        Examples
        --------
        >>> import bayesmixed as bm
        >>> fit = bm.Model("Reaction ~ Days + (1 | Subject)", bm.load_dataset("sleepstudy")).fit()
        >>> "Random effects:" in str(fit.summary())
        True
        >>> print(str(fit.summary()).split("Correlation of Fixed Effects:")[1])
             Intrcp
        Days -0.371
        >>> fit.summary(correlation="full").correlation.round(3)
                   Intercept   Days
        Intercept      1.000 -0.371
        Days          -0.371  1.000
        """
        if correlation not in (None, True, False, "full"):
            raise DesignError(f"correlation must be None, True, False or 'full', got {correlation!r}")
        d = self.design
        tables, blocks = {}, {}
        scaled = self._scaled_residuals()
        if scaled is not None:
            tables["Scaled residuals"] = scaled
        ranef_table, extra = self._random_effects_table(conf_level)
        ng = "; ".join(f"{g}, {n}" for g, n in d.ngroups.items())   # lme4: "plate, 24; sample, 6"
        tables["Random effects"] = ranef_table
        blocks["Random effects"] = (random_effects_text(self.varcorr) + f"\nNumber of obs: {d.n}, groups:  {ng}"
                                    + extra)
        tables["Fixed effects"] = self._fixed_table(conf_level)
        corr = self._fixef_correlation() if d.p > 1 else None
        footer = self._summary_footer(conf_level)
        if corr is not None:
            show = correlation if correlation is not None else d.p <= CORRELATION_MAX
            if show:
                tables["Correlation of Fixed Effects"] = corr
                blocks["Correlation of Fixed Effects"] = (corr.round(3).to_string() if show == "full"
                                                          else fixef_correlation_text(corr))
            elif correlation is None:
                footer = [f"Correlation matrix not shown by default, as p = {d.p} > {CORRELATION_MAX}. "
                          "Use fit.summary(correlation=True) or fit.vcov if you need it.", *footer]
        return Summary(title=self._summary_title(), header=self._summary_header(), tables=tables,
                       footer=footer, text_blocks=blocks, correlation=corr)

    def _repr_html_(self) -> str:
        return self.summary()._repr_html_()

    def __repr__(self) -> str:
        return str(self.summary())
