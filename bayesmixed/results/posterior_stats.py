"""What posterior fits add to the common face: R² on draws, intervals, LOO and WAIC.

- Bayesian R² (Gelman, Goodrich, Gabry & Vehtari 2019, "R-squared for Bayesian
  regression models", *The American Statistician* 73(3)): per draw, ``var(mu) /
  (var(mu) + var(y - mu))`` over the observations, the residual-based form of
  rstanarm's and brms's ``bayes_R2``; conditional with the random effects in ``mu``,
  marginal without (brms's ``re_formula = NA``).
- Nakagawa & Schielzeth's R² (with Johnson's random-slope extension) on each draw,
  the definition ``LikelihoodFit.r2`` uses at the estimate.
- PSIS-LOO (ArviZ) and WAIC (Watanabe 2010; computed here, ArviZ 1.x has none), with
  warnings that name the observations (the data's row labels) behind unreliable values.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayesmixed.errors import DesignError, LooWarning


def residual_variance_link_scale(family, eta_fixed_mean: np.ndarray, var_r: np.ndarray,
                                 sigma: np.ndarray | None) -> np.ndarray:
    """Nakagawa's distribution-specific variance per draw (as ``LikelihoodFit.r2`` / ``GlmmFit.r2``)."""
    if family.is_gaussian_identity:
        return sigma**2
    return family.latent_variance(eta_fixed_mean, var_r)


def nakagawa_r2_draws(design, beta: np.ndarray, covs: list[np.ndarray], sigma: np.ndarray | None) -> dict:
    """Marginal and conditional Nakagawa R² per draw.

    ``beta`` (S, p), ``covs`` one (S, k, k) covariance per term, ``sigma`` (S,) or None.
    """
    fixed = beta @ design.X.T                                                  # (S, n)
    var_f = fixed.var(axis=1, ddof=1)
    var_r = np.zeros(len(beta))
    for t, C in zip(design.reterms, covs):
        var_r += np.einsum("ij,sjk,ik->si", t.Xi, C, t.Xi).mean(axis=1)
    var_e = residual_variance_link_scale(design.family, (fixed + design.offset).mean(axis=1), var_r, sigma)
    tot = var_f + var_r + var_e
    return {"marginal": var_f / tot, "conditional": (var_f + var_r) / tot}


def bayes_r2_draws(y: np.ndarray, mu_conditional: np.ndarray, mu_marginal: np.ndarray) -> dict:
    """Residual-based Bayesian R² per draw: ``var(mu) / (var(mu) + var(y - mu))``; ``mu`` (S, n)."""
    out = {}
    for key, mu in (("marginal", mu_marginal), ("conditional", mu_conditional)):
        vf = mu.var(axis=1, ddof=1)
        ve = (y[None, :] - mu).var(axis=1, ddof=1)
        out[key] = vf / (vf + ve)
    return out


def interval_table(rows: list[tuple[str, np.ndarray]], prob: float, kind: str, interval) -> pd.DataFrame:
    """``lo %`` / ``hi %`` columns (as ``LikelihoodFit.confint``) of each named 1-d draw array."""
    if not 0 < prob < 1:
        raise DesignError(f"prob must be strictly between 0 and 1, got {prob!r}")
    if kind not in ("eti", "hdi"):
        raise DesignError(f"kind must be 'eti' or 'hdi', got {kind!r}")
    a = (1 - prob) / 2
    bounds = [interval(x, prob, kind) for _, x in rows]
    return pd.DataFrame(bounds, index=[n for n, _ in rows], columns=[f"{100 * a:.1f} %", f"{100 * (1 - a):.1f} %"])


def _name_rows(labels, mask, limit: int = 10) -> str:
    bad = [str(v) for v in np.asarray(labels)[mask]]
    shown = ", ".join(bad[:limit]) + (f" and {len(bad) - limit} more" if len(bad) > limit else "")
    return f"{len(bad)} observation(s): rows {shown}"


def loo_with_labels(idata, labels, stacklevel: int = 3, **kwargs):
    """``arviz.loo`` (pointwise), warning with the row labels of the observations with high Pareto k."""
    import arviz as az

    kwargs.setdefault("pointwise", True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Estimated shape parameter of Pareto")
        res = az.loo(idata, **kwargs)
    k = getattr(res, "pareto_k", None)
    if k is not None:
        bad = np.asarray(k).ravel() > res.good_k
        if bad.any():
            warnings.warn(
                f"PSIS-LOO is unreliable for {_name_rows(labels, bad)} (Pareto k > {res.good_k:.2f}): these "
                "observations are influential; consider a more robust model or exact LOO for them "
                "(refit without each).", LooWarning, stacklevel=stacklevel)
    return res


@dataclass(frozen=True)
class Waic:
    """WAIC on the log score: ``elpd`` = lppd - p; ``waic`` = -2 elpd (the deviance scale)."""

    elpd: float
    se: float
    p: float
    elpd_i: pd.Series

    @property
    def waic(self) -> float:
        return -2 * self.elpd

    def __repr__(self) -> str:
        return (f"Computed from {len(self.elpd_i)} observations (WAIC)\n"
                f"        Estimate    SE\nelpd_waic {self.elpd:8.2f} {self.se:5.2f}\n"
                f"p_waic    {self.p:8.2f}      -\nwaic      {self.waic:8.2f} {2 * self.se:5.2f}")


def waic(log_lik: np.ndarray, labels, stacklevel: int = 3) -> Waic:
    """WAIC from (chain, draw, n) pointwise log-likelihoods; warns for observations with var > 0.4.

    Examples
    --------
    >>> ll = np.log(np.full((2, 50, 3), 0.5))
    >>> round(waic(ll, ["a", "b", "c"]).elpd, 4)
    -2.0794
    """
    ll = np.asarray(log_lik, dtype=float).reshape(-1, np.shape(log_lik)[-1])         # (S, n)
    m = ll.max(axis=0)
    lppd_i = m + np.log(np.mean(np.exp(ll - m), axis=0))
    p_i = ll.var(axis=0, ddof=1)
    elpd_i = lppd_i - p_i
    bad = p_i > 0.4
    if bad.any():
        warnings.warn(f"WAIC is unreliable for {_name_rows(labels, bad)} (posterior variance of the "
                      "log-likelihood > 0.4); prefer fit.loo().", LooWarning, stacklevel=stacklevel)
    n = len(elpd_i)
    return Waic(elpd=float(elpd_i.sum()), se=float(np.sqrt(n * elpd_i.var(ddof=1))) if n > 1 else np.nan,
                p=float(p_i.sum()), elpd_i=pd.Series(elpd_i, index=list(labels), name="elpd_waic"))
