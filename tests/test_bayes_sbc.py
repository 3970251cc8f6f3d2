"""Slow: full-length NUTS runs and simulation-based calibration (Talts et al. 2018).

SBC: draw parameters from the prior, simulate data, sample the posterior, and record
the rank of the true value among (thinned) posterior draws. With a correct model
(prior, likelihood, transforms, Jacobians) and a correct sampler the ranks are
uniform; a chi-square test on the rank histogram checks that. The compiled nutpie
model is reused across simulations by swapping the response (``pm.Data("y_obs")``).

Run with ``pytest --runslow tests/test_bayes_sbc.py``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import bayesmixed as bm
from bayesmixed.bayes import build_pymc_model, resolve_priors

pytestmark = pytest.mark.slow
N_SIMS, DRAWS, THIN, BINS = 200, 400, 4, 10       # 2 chains x 400 draws, thinned to 200 per chain


def _sbc_ranks(model, params: dict[str, tuple[str, tuple]], seed: int = 0) -> dict[str, np.ndarray]:
    """Ranks of the prior draws of ``params`` ({label: (variable, index)}) among posterior draws."""
    import nutpie
    import pymc as pm

    pmm = build_pymc_model(model.design, model.priors, data_container=True)
    compiled = nutpie.compile_pymc_model(pmm)
    prior = pm.sample_prior_predictive(draws=N_SIMS, model=pmm, random_seed=seed)
    ranks = {k: [] for k in params}
    for s in range(N_SIMS):
        y_sim = np.asarray(prior["prior_predictive"]["y"])[0, s]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tr = nutpie.sample(compiled.with_data(y_obs=y_sim), draws=DRAWS, tune=400, chains=2,
                               seed=seed * 100_000 + s, progress_bar=False)
        post = tr["posterior"]
        for label, (var, idx) in params.items():
            truth = np.asarray(prior["prior"][var])[0, s][idx]
            draws = np.asarray(post[var])[:, ::THIN][(slice(None), slice(None), *idx)].ravel()
            ranks[label].append(int((draws < truth).sum()))
    return {k: np.asarray(v) for k, v in ranks.items()}


def _assert_uniform(ranks: dict[str, np.ndarray], n_draws: int):
    for label, r in ranks.items():
        hist = np.histogram(r, bins=BINS, range=(0, n_draws + 1))[0]
        p = stats.chisquare(hist).pvalue
        # Bonferroni over the parameters checked at an overall 1% level
        assert p > 0.01 / len(ranks), f"{label}: rank histogram {hist.tolist()} (p = {p:.2g})"


def test_sbc_random_intercept_and_slope():
    rng = np.random.default_rng(1)
    g = np.repeat(np.arange(8), 6)
    data = pd.DataFrame({"y": rng.normal(size=48), "x": np.tile(np.linspace(-1, 1, 6), 8),
                         "g": [f"g{i}" for i in g]})
    m = bm.Model("y ~ x + (x | g)", data, priors={
        "Intercept": ("Normal", {"mu": 0, "sigma": 1}), "x": ("Normal", {"mu": 0, "sigma": 1}),
        "sd_g": ("HalfNormal", {"sigma": 1}), "lkj_eta": 2, "sigma": ("Exponential", {"lam": 1})})
    params = {"Intercept_c": ("Intercept_c", ()), "x": ("beta", (1,)), "sd_g[Intercept]": ("sd_g", (0,)),
              "sd_g[x]": ("sd_g", (1,)), "cor": ("cor_g", (0,)), "sigma": ("sigma", ()),
              "b[g0, x]": ("b_g", (0, 1))}
    _assert_uniform(_sbc_ranks(m, params), 2 * DRAWS // THIN)


def test_sbc_binomial_glmm():
    rng = np.random.default_rng(2)
    g = np.repeat(np.arange(10), 4)
    data = pd.DataFrame({"s": rng.integers(0, 10, size=40), "x": rng.normal(size=40),
                         "g": [f"g{i}" for i in g]})
    data["f"] = 10 - data["s"]
    m = bm.Model("cbind(s, f) ~ x + (1 | g)", data, family="binomial", priors={
        "Intercept": ("Normal", {"mu": 0, "sigma": 1}), "x": ("Normal", {"mu": 0, "sigma": 1}),
        "sd_g": ("HalfNormal", {"sigma": 1})})
    params = {"Intercept_c": ("Intercept_c", ()), "x": ("beta", (1,)), "sd_g": ("sd_g", (0,)),
              "b[g3]": ("b_g", (3, 0))}
    _assert_uniform(_sbc_ranks(m, params), 2 * DRAWS // THIN)


def test_full_length_sleepstudy_and_cbpp_against_lme4():
    """4 x 1000 draws with the defaults: no divergences, R-hat < 1.01, means near lme4's."""
    for formula, name, family in [("Reaction ~ Days + (Days | Subject)", "sleepstudy", "gaussian"),
                                  ("cbind(incidence, size - incidence) ~ period + (1 | herd)", "cbpp",
                                   "binomial")]:
        m = bm.Model(formula, bm.load_dataset(name), family=family)
        fit = m.fit(method="nuts", random_seed=5, progressbar=False)
        ref = m.fit()
        assert fit.diagnostics["divergences"] == 0
        assert fit.diagnostics["max_rhat"] < 1.01
        z = (fit.fixef - ref.fixef) / fit.fixef_se
        assert (z.abs() < 2).all(), z


def test_compare_ranks_posterior_fits_by_loo():
    d = bm.load_dataset("sleepstudy")
    fits = {}
    for label, f in [("slope", "Reaction ~ Days + (Days | Subject)"), ("intercept", "Reaction ~ Days + (1 | Subject)")]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fits[label] = bm.Model(f, d).fit(method="nuts", random_seed=1, progressbar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tab = bm.compare(fits)
    assert tab.index[0] == "slope"                # the random slope is clearly better (lme4: chisq 42)


def test_resolve_priors_is_what_the_sbc_uses():
    d = pd.DataFrame({"y": [0.1, 0.5, 0.2, 0.9], "g": ["a", "a", "b", "b"]})
    pr = resolve_priors(bm.Model("y ~ 1 + (1 | g)", d, control={"check_nobs_vs_nlev": "ignore"}).design,
                        {"sd_g": ("HalfNormal", {"sigma": 1})})
    assert str(pr.sd["g"]["Intercept"]) == "HalfNormal(sigma=1)"
