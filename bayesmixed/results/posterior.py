"""Results of NUTS fits: posterior summaries behind the same face as the likelihood fits.

Built from what the Bayesian engine returns (the draws as ArviZ data, with the
pointwise log-likelihood and the sampler's diagnostics); nothing here samples.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd

from bayesmixed.errors import DesignError
from bayesmixed.results.base import MixedFit
from bayesmixed.results.posterior_stats import (
    bayes_r2_draws, interval_table, loo_with_labels, nakagawa_r2_draws, waic,
)
from bayesmixed.results.predict import check_type, eta_draws


def _interval(x: np.ndarray, prob: float, kind: str) -> tuple[float, float]:
    """Equal-tailed ("eti") or highest-density ("hdi", shortest window) interval of 1-d draws."""
    x = np.sort(np.ravel(x))
    if kind == "eti":
        a = (1 - prob) / 2
        return float(np.quantile(x, a)), float(np.quantile(x, 1 - a))
    if kind != "hdi":
        raise DesignError(f"conf_method must be 'hdi' or 'eti', got {kind!r}")
    m = len(x)
    w = max(int(np.floor(prob * m)), 1)
    widths = x[w:] - x[:m - w]
    i = int(np.argmin(widths))
    return float(x[i]), float(x[i + w])


def cor_matrix(pairs: np.ndarray, k: int) -> np.ndarray:
    """(..., k, k) correlation matrices from (..., k(k-1)/2) pairs in ``cor_<term>`` order (upper triangle).

    Examples
    --------
    >>> cor_matrix(np.array([0.5]), 2).tolist()
    [[1.0, 0.5], [0.5, 1.0]]
    """
    pairs = np.asarray(pairs, dtype=float)
    i, j = np.triu_indices(k, 1)
    out = np.zeros((*pairs.shape[:-1], k, k))
    out[..., i, j] = pairs
    out[..., j, i] = pairs
    out[..., np.arange(k), np.arange(k)] = 1.0
    return out


def _ess_rhat(draws: np.ndarray) -> tuple[float, float]:
    """Bulk ESS and rank R-hat of (chain, draw) draws (NaN for a constant)."""
    import arviz as az

    if np.ptp(draws) == 0:
        return np.nan, np.nan
    ess = float(az.ess(draws, method="bulk", chain_axis=0, draw_axis=1))
    rhat = float(az.rhat(draws, chain_axis=0, draw_axis=1)) if draws.shape[0] > 1 else np.nan
    return ess, rhat


class PosteriorFit(MixedFit):
    """A posterior from ``method="nuts"``: point summaries are posterior means.

    ``fixef``/``fixef_se``/``vcov`` are the posterior mean, sd and covariance of
    beta; ``ranef``/``coef`` posterior means per level; ``covariances()`` the
    posterior mean covariance of each term; ``varcorr`` posterior means of the
    variances and covariances (``vcov``) and of the standard deviations and
    correlations (``sdcor``). ``idata`` holds every draw.

    Parameters
    ----------
    draws : PosteriorDraws
        What the Bayesian engine returns: ``design``, ``idata``, ``priors``, ``sampler``,
        ``timings``, ``settings``, ``diagnostics``, ``param_names`` and ``simulate``.
    """

    method = "nuts"
    is_posterior = True      # draws behind every summary (plots and comparisons ask this, not method)

    def __init__(self, draws):
        self._engine = draws
        self.design = draws.design
        self.idata = draws.idata
        self.priors = draws.priors
        self.sampler = draws.sampler
        self.timings = dict(draws.timings or {})
        self.settings = dict(draws.settings or {})
        self.diagnostics: dict = dict(draws.diagnostics or {})
        self.sigma = float(self._draws("sigma").mean()) if "sigma" in self.posterior else None
        self._covs = [self._mean_covariance(t) for t in self.design.reterms]

    # ---- draws ------------------------------------------------------------------------
    @property
    def posterior(self):
        return self.idata["posterior"]

    def _draws(self, name: str) -> np.ndarray:
        return np.asarray(self.posterior[name])

    @property
    def param_names(self) -> list[str]:
        """Model parameters (not per-level effects) used for diagnostics."""
        return list(self._engine.param_names)

    @property
    def n_draws(self) -> int:
        p = self.posterior
        return int(p.sizes["chain"] * p.sizes["draw"])

    def _sd_corr(self, t) -> tuple[np.ndarray, np.ndarray | None]:
        """(chain, draw, k) sds and (chain, draw, k, k) correlations (None if uncorrelated) of term ``t``."""
        sd = self._draws(f"sd_{t.name}")
        if not (t.correlated and t.n_cols > 1):
            return sd, None
        return sd, cor_matrix(self._draws(f"cor_{t.name}"), t.n_cols)

    def _mean_covariance(self, t) -> np.ndarray:
        sd, corr = self._sd_corr(t)
        if corr is None:
            return np.diag((sd**2).mean(axis=(0, 1)))
        return (sd[..., :, None] * sd[..., None, :] * corr).mean(axis=(0, 1))

    # ---- fit face ---------------------------------------------------------------------
    @cached_property
    def fixef(self) -> pd.Series:
        return pd.Series(self._draws("beta").mean(axis=(0, 1)), index=list(self.design.fixef_names),
                         name="estimate")

    @cached_property
    def fixef_se(self) -> pd.Series:
        return pd.Series(self._draws("beta").std(axis=(0, 1), ddof=1), index=list(self.design.fixef_names),
                         name="std_error")

    @cached_property
    def vcov(self) -> pd.DataFrame:
        b = self._draws("beta").reshape(-1, self.design.p)
        names = list(self.design.fixef_names)
        return pd.DataFrame(np.atleast_2d(np.cov(b, rowvar=False)), index=names, columns=names)

    def _beta_draws(self) -> np.ndarray:
        return self._draws("beta").reshape(-1, self.design.p)

    def _b_draws(self) -> np.ndarray:
        parts = [self._draws(f"b_{t.name}").reshape(self.n_draws, -1) for t in self.design.reterms]
        return np.concatenate(parts, axis=1) if parts else np.zeros((self.n_draws, 0))

    def _b_vector(self) -> np.ndarray:
        parts = [self._draws(f"b_{t.name}").mean(axis=(0, 1)).ravel() for t in self.design.reterms]
        return np.concatenate(parts) if parts else np.zeros(0)

    @property
    def ranef_sd(self) -> dict[str, pd.DataFrame]:
        """Posterior sds of the random effects, laid out as ``ranef``."""
        parts = [self._draws(f"b_{t.name}").std(axis=(0, 1), ddof=1).ravel() for t in self.design.reterms]
        return self._ranef_from_b(np.concatenate(parts))

    def _scalar_params(self) -> list[tuple[str, str | None, str, np.ndarray]]:
        """(effect, group, term, (chain, draw) draws) for every model parameter, tidy's rows."""
        rows = []
        beta = self._draws("beta")
        for j, name in enumerate(self.design.fixef_names):
            rows.append(("fixed", None, name, beta[:, :, j]))
        for t in self.design.reterms:
            sd, corr = self._sd_corr(t)
            for i, c in enumerate(t.cnames):
                rows.append(("ran_pars", t.name, f"sd__{c}", sd[:, :, i]))
            if corr is not None:
                for i in range(t.n_cols):
                    for j in range(i + 1, t.n_cols):
                        rows.append(("ran_pars", t.name, f"cor__{t.cnames[i]}.{t.cnames[j]}", corr[:, :, i, j]))
        if "sigma" in self.posterior:
            rows.append(("ran_pars", "Residual", "sd__Observation", self._draws("sigma")))
        for aux in ("alpha", "shape"):
            if aux in self.posterior:
                rows.append(("aux", None, aux, self._draws(aux)))
        return rows

    def _varcorr_sdcor(self) -> np.ndarray:
        """Posterior means of the sds, correlations and sigma, in ``varcorr``'s row order."""
        return np.array([float(x.mean()) for e, *_, x in self._scalar_params() if e == "ran_pars"])

    def _residual_vcov(self) -> float | None:
        return float((self._draws("sigma") ** 2).mean()) if "sigma" in self.posterior else None

    # ---- tables -----------------------------------------------------------------------
    def _tidy_frame(self, effects, **kwargs) -> pd.DataFrame:
        rows = [(e, g, t, float(x.mean()), float(x.std(ddof=1)), np.nan, np.nan, np.nan)
                for e, g, t, x in self._scalar_params() if e in effects]
        return pd.DataFrame(rows, columns=["effect", "group", "term", "estimate", "std_error", "statistic",
                                           "df", "p_value"])

    def _tidy_intervals(self, out, conf_level: float, conf_method: str = "hdi", **kwargs):
        draws = {(e, t, g or ""): x for e, g, t, x in self._scalar_params()}
        iv = [_interval(draws[(r.effect, r.term, r.group if isinstance(r.group, str) else "")], conf_level,
                        conf_method) for r in out.itertuples()]
        return np.array([a for a, _ in iv]), np.array([b for _, b in iv])

    def tidy(self, *, conf_int: bool = False, conf_level: float = 0.95, conf_method: str = "hdi",
             effects=("fixed", "ran_pars", "aux")) -> pd.DataFrame:
        """broom.mixed-style table of posterior summaries, the columns of every fit's ``tidy``.

        ``estimate`` is the posterior mean, ``std_error`` the posterior sd; ``statistic``,
        ``df`` and ``p_value`` are NaN. With ``conf_int=True``, ``conf_low, conf_high``
        are the highest-density interval of the draws (equal-tailed with
        ``conf_method="eti"``). R-hat and ESS are in :meth:`mcmc_diagnostics`.
        """
        return self._tidy(conf_int, conf_level, effects, conf_method=conf_method)

    def mcmc_diagnostics(self, effects=("fixed", "ran_pars", "aux")) -> pd.DataFrame:
        """Rank R-hat and bulk ESS of each parameter, in the rows of :meth:`tidy`."""
        rows = []
        for e, g, t, x in self._scalar_params():
            if e in effects:
                ess, rhat = _ess_rhat(x)
                rows.append({"effect": e, "group": g, "term": t, "rhat": rhat, "ess_bulk": ess})
        return pd.DataFrame(rows, columns=["effect", "group", "term", "rhat", "ess_bulk"])

    def _summary_table(self, conf_level: float) -> pd.DataFrame:
        cache = self.__dict__.setdefault("_summary_cache", {})
        if conf_level not in cache:
            cache[conf_level] = self._make_summary_table(conf_level)
        return cache[conf_level]

    def _make_summary_table(self, conf_level: float) -> pd.DataFrame:
        tab = self.tidy(conf_int=True, conf_level=conf_level)
        diag = self.mcmc_diagnostics()
        tab["rhat"], tab["ess_bulk"] = diag["rhat"].to_numpy(), diag["ess_bulk"].to_numpy()
        lo, hi = f"{100 * (1 - conf_level) / 2:g}%", f"{100 * (1 + conf_level) / 2:g}%"
        cols = {"estimate": "Mean", "std_error": "SD", "conf_low": f"HDI {lo}", "conf_high": f"HDI {hi}",
                "rhat": "R-hat", "ess_bulk": "ESS bulk"}
        return tab.rename(columns=cols)[["effect", "group", "term", *cols.values()]]

    def _summary_title(self) -> str:
        kind = "linear" if self.design.family.is_gaussian_identity else "generalized linear"
        return f"Bayesian {kind} mixed model fit by NUTS ({self.sampler})"

    def _summary_header(self) -> list[str]:
        fam, p = self.design.family, self.posterior
        return super()._summary_header() + [
            f" Family: {fam.name} ({fam.link.name})",
            f"  Draws: {p.sizes['chain']} chains x {p.sizes['draw']} draws (after "
            f"{self.settings.get('tune', '?')} tuning), divergences: {self.diagnostics.get('divergences', 0)}"]

    def _scaled_residuals(self):
        return None

    def _random_effects_table(self, conf_level: float):
        tab = self._summary_table(conf_level)
        ranp = tab[tab["effect"] != "fixed"].drop(columns="effect").set_index(["group", "term"])
        return ranp, "\n(posterior means)\n\n" + ranp.to_string(float_format=lambda v: f"{v:.4g}")

    def _fixed_table(self, conf_level: float = 0.95) -> pd.DataFrame:
        tab = self._summary_table(conf_level)
        fixed = tab[tab["effect"] == "fixed"].drop(columns=["effect", "group"]).set_index("term")
        fixed.index.name = None
        return fixed

    def _fixef_correlation(self):
        return None

    def _summary_footer(self, conf_level: float) -> list[str]:
        return [f"Posterior means and sds; {int(100 * conf_level)}% highest-density intervals; "
                "R-hat and bulk ESS from ArviZ."]

    # ---- R², intervals, LOO, WAIC -------------------------------------------------------
    def r2(self, *, kind: str = "bayes", draws: bool = False):
        """Marginal and conditional R² as posterior means (``draws=True``: one row per draw).

        Parameters
        ----------
        kind : {"bayes", "nakagawa"}
            ``"bayes"``: Gelman, Goodrich, Gabry & Vehtari (2019), residual-based
            (rstanarm/brms ``bayes_R2``; marginal leaves the random effects out of the
            mean). ``"nakagawa"``: Nakagawa & Schielzeth on each draw, the definition
            the likelihood fits' ``r2()`` uses at their estimate.
        draws : bool
            A DataFrame of the draws (columns ``marginal``, ``conditional``) instead of means.
        """
        if kind == "bayes":
            y = np.asarray(self.design.y, dtype=float)
            cond = np.asarray(self.predict(kind="draws")).reshape(self.n_draws, -1)
            marg = np.asarray(self.predict(kind="draws", include_random=False)).reshape(self.n_draws, -1)
            out = bayes_r2_draws(y, cond, marg)
        elif kind == "nakagawa":
            covs = []
            for t in self.design.reterms:
                sd, corr = self._sd_corr(t)
                sd = sd.reshape(self.n_draws, -1)
                C = np.einsum("si,sj->sij", sd, sd)
                covs.append(C * corr.reshape(self.n_draws, t.n_cols, t.n_cols) if corr is not None
                            else C * np.eye(t.n_cols))
            sigma = self._draws("sigma").ravel() if "sigma" in self.posterior else None
            out = nakagawa_r2_draws(self.design, self._beta_draws(), covs, sigma)
        else:
            raise DesignError(f"kind must be 'bayes' or 'nakagawa', got {kind!r}")
        if draws:
            return pd.DataFrame(out)
        return {k: float(np.mean(v)) for k, v in out.items()}

    def confint(self, prob: float = 0.95, kind: str = "eti") -> pd.DataFrame:
        """Credible intervals of the fixed effects and variance parameters.

        Rows: the fixed effects, then ``sd_<term>|<group>``, ``cor_<a>.<b>|<group>``,
        ``sigma`` and the family's parameters; columns ``2.5 %``, ``97.5 %`` (as the
        likelihood fits' ``confint``). ``kind="eti"``: equal-tailed (quantiles);
        ``"hdi"``: highest density.
        """
        rows = []
        for e, g, term, x in self._scalar_params():
            if e == "fixed" or e == "aux":
                rows.append((term, x))
            elif g == "Residual":
                rows.append(("sigma", x))
            else:
                rows.append((f"{term.replace('__', '_', 1)}|{g}", x))
        return interval_table(rows, prob, kind, _interval)

    def loo(self, **kwargs):
        """PSIS-LOO from the stored pointwise log-likelihood (``arviz.loo``, pointwise).

        Warns (``LooWarning``) naming the data rows whose Pareto k is too high.
        """
        return loo_with_labels(self.idata, self.design.index, stacklevel=3, **kwargs)

    def waic(self):
        """WAIC from the stored pointwise log-likelihood; warns naming rows with unreliable terms."""
        ll = self.idata["log_likelihood"].to_dataset()
        return waic(np.asarray(ll[list(ll.data_vars)[0]]), self.design.index, stacklevel=3)

    # ---- predictions ------------------------------------------------------------------
    def predict(self, newdata=None, *, include_random: bool = True, allow_new_levels: bool = False,
                new_levels: str = "population", kind: str = "mean", type: str = "response",
                random_seed: int | None = None):
        """Posterior predictions on the data or ``newdata``.

        Parameters
        ----------
        include_random : bool
            False: population-level predictions (lme4's ``re.form=NA``).
        allow_new_levels : bool
            Accept levels not seen in the fit.
        new_levels : {"population", "zero"}
            For new levels: a fresh random effect from the population distribution
            of each posterior draw (default), or zero.
        kind : {"mean", "draws", "predictive"}
            ``"mean"``: a Series of posterior means; ``"draws"``: (chain, draw, obs)
            DataArray of the expected value (or linear predictor with
            ``type="link"``); ``"predictive"``: draws of new observations.
        """
        import xarray as xr

        if kind not in ("mean", "draws", "predictive"):
            raise DesignError(f"kind must be 'mean', 'draws' or 'predictive', got {kind!r}")
        check_type(type)
        if new_levels not in ("population", "zero"):
            raise DesignError(f"new_levels must be 'population' or 'zero', got {new_levels!r}")
        d = self.design
        rng = np.random.default_rng(random_seed)
        post = self.posterior
        C, D = post.sizes["chain"], post.sizes["draw"]

        def fresh(t, labels):
            # one fresh level per distinct new label and posterior draw
            uniq, inv = np.unique(labels, return_inverse=True)
            return inv, self._population_draws(t, len(uniq), rng).reshape(C * D, len(uniq), t.n_cols)

        eta, index = eta_draws(d, self._beta_draws(), self._b_draws(), newdata, include_random=include_random,
                               allow_new_levels=allow_new_levels,
                               new_level_draws=fresh if new_levels == "population" else None)
        eta = eta.reshape(C, D, -1)
        out = eta if type == "link" else d.family.link.linkinv(eta)
        if kind == "predictive":
            trials = d.trials if newdata is None and d.trials is not None else None
            out = self._engine.simulate(d.family.link.linkinv(eta), rng, trials=trials)
        if kind == "mean":
            return pd.Series(out.mean(axis=(0, 1)), index=index, name="prediction")
        return xr.DataArray(out, dims=("chain", "draw", "obs"),
                            coords={"chain": post["chain"].values, "draw": post["draw"].values,
                                    "obs": np.asarray(index)})

    def _population_draws(self, t, n_new: int, rng) -> np.ndarray:
        """(C, D, n_new, k) fresh effects N(0, Sigma_draw) for unseen levels of term ``t``."""
        sd, corr = self._sd_corr(t)                                            # (C, D, k)
        z = rng.standard_normal((*sd.shape[:2], n_new, t.n_cols))
        if corr is not None:
            L = np.linalg.cholesky(corr + 1e-12 * np.eye(t.n_cols))             # (C, D, k, k)
            z = np.einsum("cdij,cdnj->cdni", L, z)
        return z * sd[:, :, None, :]
