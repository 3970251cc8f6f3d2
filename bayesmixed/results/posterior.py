"""Results of NUTS fits: posterior summaries behind the same face as the likelihood fits."""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd

from bayesmixed.errors import DesignError
from bayesmixed.results.base import MixedFit
from bayesmixed.results.display import Summary, random_effects_text, formula_label


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
    beta; ``ranef``/``coef`` posterior means per level; ``varcorr`` posterior
    means of the standard deviations (``sdcor``) and variances (``vcov``), and of
    the correlations. ``idata`` holds every draw.
    """

    method = "nuts"

    def __init__(self, *, design, idata, priors=None, sampler: str = "", timings=None, settings=None):
        self.design = design
        self.idata = idata
        self.priors = priors
        self.sampler = sampler
        self.timings = dict(timings or {})
        self.settings = dict(settings or {})
        self.diagnostics: dict = {}

    # ---- draws ------------------------------------------------------------------------
    @property
    def posterior(self):
        return self.idata["posterior"]

    def _draws(self, name: str) -> np.ndarray:
        return np.asarray(self.posterior[name])

    @property
    def param_names(self) -> list[str]:
        """Model parameters (not per-level effects) used for diagnostics."""
        names = ["beta"]
        for t in self.design.reterms:
            names.append(f"sd_{t.name}")
            if t.correlated and t.n_cols > 1:
                names.append(f"corr_{t.name}")
        names += [a for a in ("sigma", "alpha", "shape") if a in self.posterior]
        return names

    @property
    def n_draws(self) -> int:
        p = self.posterior
        return int(p.sizes["chain"] * p.sizes["draw"])

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

    def _b_vector(self) -> np.ndarray:
        parts = [self._draws(f"b_{t.name}").mean(axis=(0, 1)).ravel() for t in self.design.reterms]
        return np.concatenate(parts) if parts else np.zeros(0)

    @property
    def ranef_sd(self) -> dict[str, pd.DataFrame]:
        """Posterior sds of the random effects, laid out as ``ranef``."""
        parts = [self._draws(f"b_{t.name}").std(axis=(0, 1), ddof=1).ravel() for t in self.design.reterms]
        return self._ranef_from_b(np.concatenate(parts))

    @property
    def sigma(self) -> float | None:
        return float(self._draws("sigma").mean()) if "sigma" in self.posterior else None

    def _scalar_params(self) -> list[tuple[str, str | None, str, np.ndarray]]:
        """(effect, group, term, (chain, draw) draws) for every model parameter, tidy's rows."""
        rows = []
        beta = self._draws("beta")
        for j, name in enumerate(self.design.fixef_names):
            rows.append(("fixed", None, name, beta[:, :, j]))
        for t in self.design.reterms:
            sd = self._draws(f"sd_{t.name}")
            for i, c in enumerate(t.cnames):
                rows.append(("ran_pars", t.name, f"sd__{c}", sd[:, :, i]))
            if t.correlated and t.n_cols > 1:
                corr = self._draws(f"corr_{t.name}")
                for i in range(t.n_cols):
                    for j in range(i + 1, t.n_cols):
                        rows.append(("ran_pars", t.name, f"cor__{t.cnames[i]}.{t.cnames[j]}", corr[:, :, i, j]))
        if "sigma" in self.posterior:
            rows.append(("ran_pars", "Residual", "sd__Observation", self._draws("sigma")))
        for aux in ("alpha", "shape"):
            if aux in self.posterior:
                rows.append(("aux", None, aux, self._draws(aux)))
        return rows

    @cached_property
    def varcorr(self) -> pd.DataFrame:
        """R's ``as.data.frame(VarCorr())`` layout with posterior means (sdcor: of sd and corr)."""
        rows = []
        for t in self.design.reterms:
            sd = self._draws(f"sd_{t.name}")                          # (c, d, k)
            for i, c in enumerate(t.cnames):
                rows.append({"grp": t.name, "var1": c, "var2": None, "vcov": float((sd[..., i] ** 2).mean()),
                             "sdcor": float(sd[..., i].mean())})
            if t.correlated and t.n_cols > 1:
                corr = self._draws(f"corr_{t.name}")
                for i in range(t.n_cols):
                    for j in range(i + 1, t.n_cols):
                        cov = sd[..., i] * sd[..., j] * corr[..., i, j]
                        rows.append({"grp": t.name, "var1": t.cnames[i], "var2": t.cnames[j],
                                     "vcov": float(cov.mean()), "sdcor": float(corr[..., i, j].mean())})
        if "sigma" in self.posterior:
            s = self._draws("sigma")
            rows.append({"grp": "Residual", "var1": None, "var2": None, "vcov": float((s**2).mean()),
                         "sdcor": float(s.mean())})
        return pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"])

    def tidy(self, *, conf_int: bool = True, conf_level: float = 0.95, conf_method: str = "hdi",
             effects=("fixed", "ran_pars", "aux")) -> pd.DataFrame:
        """broom.mixed-style table of posterior summaries.

        Columns ``effect, group, term, estimate`` (posterior mean), ``std_error``
        (posterior sd), ``conf_low, conf_high`` (HDI, or equal-tailed with
        ``conf_method="eti"``), ``rhat``, ``ess_bulk``.
        """
        out = []
        for effect, group, term, x in self._scalar_params():
            if effect not in effects:
                continue
            ess, rhat = _ess_rhat(x)
            row = {"effect": effect, "group": group, "term": term, "estimate": float(x.mean()),
                   "std_error": float(x.std(ddof=1))}
            if conf_int:
                row["conf_low"], row["conf_high"] = _interval(x, conf_level, conf_method)
            row.update(rhat=rhat, ess_bulk=ess)
            out.append(row)
        return pd.DataFrame(out)

    def summary(self, *, conf_level: float = 0.95) -> Summary:
        d = self.design
        fam = d.family
        kind = "linear" if fam.is_gaussian_identity else "generalized linear"
        title = f"Bayesian {kind} mixed model fit by NUTS ({self.sampler})"
        p = self.posterior
        header = [f"Formula: {formula_label(d.parsed)}",
                  f" Family: {fam.name} ({fam.link.name})",
                  f"  Draws: {p.sizes['chain']} chains x {p.sizes['draw']} draws (after "
                  f"{self.settings.get('tune', '?')} tuning), divergences: {self.diagnostics.get('divergences', 0)}"]
        tab = self.tidy(conf_level=conf_level)
        lo, hi = f"{100 * (1 - conf_level) / 2:g}%", f"{100 * (1 + conf_level) / 2:g}%"
        cols = {"estimate": "Mean", "std_error": "SD", "conf_low": f"HDI {lo}", "conf_high": f"HDI {hi}",
                "rhat": "R-hat", "ess_bulk": "ESS bulk"}
        fixed = tab[tab["effect"] == "fixed"].set_index("term")[list(cols)].rename(columns=cols)
        fixed.index.name = None
        ranp = tab[tab["effect"] != "fixed"].set_index(["group", "term"])[list(cols)].rename(columns=cols)
        ng = ", ".join(f"{g}, {n}" for g, n in d.ngroups.items())
        tables = {"Random effects": ranp, "Fixed effects": fixed}
        blocks = {"Random effects": random_effects_text(self.varcorr) + f"\nNumber of obs: {d.n}, groups:  {ng}"
                  + "\n(posterior means)\n\n" + ranp.to_string(float_format=lambda v: f"{v:.4g}")}
        footer = [f"Posterior means and sds; {int(100 * conf_level)}% highest-density intervals; "
                  "R-hat and bulk ESS from ArviZ."]
        return Summary(title=title, header=header, tables=tables, footer=footer, text_blocks=blocks)

    # ---- LOO --------------------------------------------------------------------------
    def loo(self, **kwargs):
        """PSIS-LOO from the stored pointwise log-likelihood (``arviz.loo``)."""
        import arviz as az

        return az.loo(self.idata, **kwargs)

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

        from bayesmixed.bayes.loglik import eta_draws, simulate_response
        from bayesmixed.design.newdata import new_matrices

        if kind not in ("mean", "draws", "predictive"):
            raise DesignError(f"kind must be 'mean', 'draws' or 'predictive', got {kind!r}")
        if type not in ("link", "response"):
            raise DesignError(f"type must be 'link' or 'response', got {type!r}")
        if new_levels not in ("population", "zero"):
            raise DesignError(f"new_levels must be 'population' or 'zero', got {new_levels!r}")
        d = self.design
        rng = np.random.default_rng(random_seed)
        post = self.posterior
        if newdata is None:
            X, off, index = d.X, d.offset, d.index
            codes = [t.codes for t in d.reterms] if include_random else []
            Xis = [t.Xi for t in d.reterms] if include_random else []
        else:
            nd = new_matrices(d, newdata, include_random=include_random, allow_new_levels=allow_new_levels)
            X, off, index, codes, Xis = nd.X, nd.offset, nd.index, nd.codes, nd.Xis
            term_labels = nd.labels
        beta = np.asarray(post["beta"])
        eta = np.einsum("cdp,np->cdn", beta, X) + off
        if include_random:
            for i, (t, c, Xi) in enumerate(zip(d.reterms, codes, Xis)):
                b = np.asarray(post[f"b_{t.name}"])                                # (C, D, L, k)
                new = c < 0
                if new.any():
                    extra = np.zeros((*b.shape[:2], 1, t.n_cols))
                    if new_levels == "population":
                        # one fresh level per distinct new label and posterior draw
                        # per-row labels from new_matrices: safe with duplicated index labels
                        labels = np.asarray(term_labels[i], dtype=object)[new].astype(str)
                        uniq, inv = np.unique(labels, return_inverse=True)
                        extra = self._population_draws(t, len(uniq), rng)          # (C, D, U, k)
                        c = c.copy()
                        c[new] = b.shape[2] + inv
                    else:
                        c = np.where(new, b.shape[2], c)
                    b = np.concatenate([b, extra], axis=2)
                eta = eta + np.einsum("cdnk,nk->cdn", b[:, :, c, :], Xi)
        out = eta if type == "link" else d.family.link.linkinv(eta)
        if kind == "predictive":
            trials = d.trials if newdata is None and d.trials is not None else None
            out = simulate_response(d, post, d.family.link.linkinv(eta), rng, trials=trials)
        if kind == "mean":
            return pd.Series(out.mean(axis=(0, 1)), index=index, name="prediction")
        return xr.DataArray(out, dims=("chain", "draw", "obs"),
                            coords={"chain": post["chain"].values, "draw": post["draw"].values,
                                    "obs": np.asarray(index)})

    def _population_draws(self, t, n_new: int, rng) -> np.ndarray:
        """(C, D, n_new, k) fresh effects N(0, Sigma_draw) for unseen levels of term ``t``."""
        sd = self._draws(f"sd_{t.name}")                                       # (C, D, k)
        z = rng.standard_normal((*sd.shape[:2], n_new, t.n_cols))
        if t.correlated and t.n_cols > 1:
            corr = self._draws(f"corr_{t.name}")
            L = np.linalg.cholesky(corr + 1e-12 * np.eye(t.n_cols))             # (C, D, k, k)
            z = np.einsum("cdij,cdnj->cdni", L, z)
        return z * sd[:, :, None, :]

    def __repr__(self) -> str:
        return str(self.summary())
