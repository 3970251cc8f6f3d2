"""NUTS fits: posterior near REML on sleepstudy, the fit face, idata/LOO, predict, seeds, diagnostics.

One short nutpie run (2 chains x 300 draws) is shared by the module; the compiled
model is cached with the ``pymc.Model``, so the other runs here do not compile again.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import bayesmixed as bm
from bayesmixed.errors import DesignError, LowESSWarning, SamplingWarning

pytest.importorskip("nutpie")
RUN = dict(draws=300, tune=300, chains=2, progressbar=False)


@pytest.fixture(scope="module")
def model():
    return bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy"))


@pytest.fixture(scope="module")
def fit(model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)   # short run: ESS may be under 100/chain
        return model.fit(method="nuts", random_seed=11, **RUN)


@pytest.fixture(scope="module")
def reml(model):
    return model.fit()


def test_posterior_means_within_two_sd_of_reml(fit, reml):
    z = (fit.fixef - reml.fixef) / fit.fixef_se
    assert (z.abs() < 2).all(), z
    tid = fit.tidy()
    post = tid[tid["effect"] == "ran_pars"].reset_index(drop=True)
    ref = reml.varcorr
    # sd(Intercept), sd(Days), cor, sigma in varcorr's row order
    assert list(post["term"]) == ["sd__Intercept", "sd__Days", "cor__Intercept.Days", "sd__Observation"]
    zs = (post["estimate"].to_numpy() - ref["sdcor"].to_numpy()) / post["std_error"].to_numpy()
    assert np.all(np.abs(zs) < 2), zs
    assert fit.diagnostics["divergences"] == 0


def test_fit_face_shapes_and_consistency(fit, model):
    assert list(fit.fixef.index) == ["Intercept", "Days"]
    V = fit.vcov.to_numpy()
    np.testing.assert_allclose(V, V.T)
    np.testing.assert_allclose(np.sqrt(np.diag(V)), fit.fixef_se.to_numpy(), rtol=1e-10)
    re, co = fit.ranef["Subject"], fit.coef["Subject"]
    assert re.shape == (18, 2) and list(re.index) == list(model.design.reterms[0].levels)
    np.testing.assert_allclose(co.to_numpy(), re.to_numpy() + fit.fixef.to_numpy(), rtol=1e-12)
    b = np.asarray(fit.idata["posterior"]["b_Subject"])
    np.testing.assert_allclose(re.to_numpy(), b.mean(axis=(0, 1)))
    vc = fit.varcorr
    assert list(vc.columns) == ["grp", "var1", "var2", "vcov", "sdcor"]
    assert list(vc["grp"]) == ["Subject", "Subject", "Subject", "Residual"]
    sig = np.asarray(fit.idata["posterior"]["sigma"])
    assert vc["vcov"].iloc[-1] == pytest.approx((sig**2).mean())
    assert vc["sdcor"].iloc[-1] == pytest.approx(sig.mean()) == pytest.approx(fit.sigma)


def test_idata_groups_and_loglik(fit, model):
    dt = fit.idata
    for g in ("posterior", "log_likelihood", "observed_data", "sample_stats", "posterior_predictive"):
        assert g in dt.children, g
    ll = np.asarray(dt["log_likelihood"]["Reaction"])           # named as the response
    assert ll.shape == (2, 300, 180)
    assert list(dt["posterior"]["Subject"].values) == list(model.design.reterms[0].levels)
    # one draw by hand
    p = dt["posterior"]
    beta = np.asarray(p["beta"])[1, 7]
    b = np.asarray(p["b_Subject"])[1, 7]
    sigma = float(np.asarray(p["sigma"])[1, 7])
    d = model.design
    t = d.reterms[0]
    mu = d.X @ beta + np.einsum("nk,nk->n", b[t.codes], t.Xi)
    np.testing.assert_allclose(ll[1, 7], stats.norm.logpdf(d.y, mu, sigma), rtol=1e-10)
    import arviz as az

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loo = az.loo(dt)
    assert np.isfinite(loo.elpd) and loo.elpd < np.log(np.exp(ll).mean(axis=(0, 1))).sum()


def test_tidy_and_summary(fit):
    # one tidy contract for every fit: tests do not apply to a posterior (NaN), intervals on request
    assert list(fit.tidy().columns) == ["effect", "group", "term", "estimate", "std_error", "statistic", "df",
                                        "p_value"]
    tid = fit.tidy(conf_int=True)
    assert list(tid.columns[-2:]) == ["conf_low", "conf_high"]
    assert tid[["statistic", "df", "p_value"]].isna().all().all()
    assert (tid["conf_low"] < tid["estimate"]).all() and (tid["estimate"] < tid["conf_high"]).all()
    diag = fit.mcmc_diagnostics()
    assert list(diag["term"]) == list(tid["term"]) and (diag["ess_bulk"] > 0).all()
    eti = fit.tidy(conf_int=True, conf_method="eti", conf_level=0.5)
    days = np.asarray(fit.idata["posterior"]["beta"])[..., 1].ravel()
    assert eti["conf_low"].iloc[1] == pytest.approx(np.quantile(days, 0.25))
    text = str(fit.summary())
    assert "R-hat" in text and "ESS bulk" in text and "Subject" in text
    assert "<table" in fit.summary()._repr_html_()


def test_predict_mean_new_levels_and_draws(fit):
    # linear model: the posterior mean prediction is X E[beta] + Z E[b]
    np.testing.assert_allclose(fit.predict().to_numpy(), fit._linear_predictor().to_numpy(), rtol=1e-10)
    new = pd.DataFrame({"Days": [0.0, 5.0, 5.0], "Subject": ["999", "999", "308"]})
    with pytest.raises(DesignError, match="not seen"):
        fit.predict(new)
    pop = fit.predict(new, include_random=False, kind="draws")
    zero = fit.predict(new, allow_new_levels=True, new_levels="zero", kind="draws")
    np.testing.assert_allclose(zero.values[:, :, :2], pop.values[:, :, :2])
    fresh = fit.predict(new, allow_new_levels=True, kind="draws", random_seed=1)
    assert fresh.shape == (2, 300, 3)
    # a fresh level adds the between-subject spread: var = var(beta part) + E[sd_Intercept^2]
    sd = np.asarray(fit.idata["posterior"]["sd_Subject"])[..., 0]
    extra = fresh.values[:, :, 0].var() - pop.values[:, :, 0].var()
    assert extra == pytest.approx((sd**2).mean(), rel=0.3)
    # known level keeps its own effect
    own = fit.predict(new.iloc[[2]], kind="mean")
    assert own.iloc[0] == pytest.approx(fit.coef["Subject"].loc["308"] @ np.array([1.0, 5.0]), rel=1e-10)
    pp = fit.predict(kind="predictive", random_seed=2)
    assert pp.values.std() > fit.predict(kind="draws").values.std()


def test_seed_reproducibility(model, fit):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        again = model.fit(method="nuts", random_seed=11, **RUN)
        other = model.fit(method="nuts", random_seed=12, **RUN)
    a = np.asarray(fit.idata["posterior"]["beta"])
    np.testing.assert_array_equal(a, np.asarray(again.idata["posterior"]["beta"]))
    assert not np.array_equal(a, np.asarray(other.idata["posterior"]["beta"]))
    assert again.settings["collapsed"] and "compile" not in again.timings   # nothing compiled per model


def test_joint_sampler_reuses_its_compiled_model(model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        first = model.fit(method="nuts", collapsed=False, random_seed=11, **RUN)
        again = model.fit(method="nuts", collapsed=False, random_seed=11, **RUN)
    assert not first.settings["collapsed"] and first.sampler == "nutpie"
    np.testing.assert_array_equal(np.asarray(first.idata["posterior"]["beta"]),
                                  np.asarray(again.idata["posterior"]["beta"]))
    assert again.timings["compile"] < 1.0          # the compiled model was reused


def test_bad_run_warns(model):
    with pytest.warns(LowESSWarning, match="bulk ESS"):
        bad = model.fit(method="nuts", draws=15, tune=5, chains=2, random_seed=3, progressbar=False)
    assert bad.diagnostics["min_ess_bulk"] < 200


def test_unknown_sampler_and_missing_jax(model):
    with pytest.raises(DesignError, match="valid samplers"):
        model.fit(method="nuts", sampler="stan")
    import importlib.util

    if importlib.util.find_spec("jax") is None:
        with pytest.raises(DesignError, match="jax"):
            model.fit(method="nuts", sampler="numpyro")
