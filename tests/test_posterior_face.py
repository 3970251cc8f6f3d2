"""The rest of the face for posterior fits: r2(), confint(), loo(), waic(), bm.compare(method=)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import bayesmixed as bm
from bayesmixed.errors import DesignError, SamplingWarning
from bayesmixed.results.posterior_stats import LooWarning, loo_with_labels, waic

pytest.importorskip("nutpie")
RUN = dict(draws=200, tune=200, chains=2, progressbar=False)


@pytest.fixture(scope="module")
def data():
    return bm.load_dataset("sleepstudy")


def _nuts(formula, data, seed=3):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        return bm.Model(formula, data).fit(method="nuts", random_seed=seed, **RUN)


@pytest.fixture(scope="module")
def slope(data):
    return _nuts("Reaction ~ Days + (Days | Subject)", data)


@pytest.fixture(scope="module")
def intercept(data):
    return _nuts("Reaction ~ Days + (1 | Subject)", data)


@pytest.fixture(scope="module")
def reml(data):
    return bm.Model("Reaction ~ Days + (Days | Subject)", data).fit()


# ---- R² ------------------------------------------------------------------------------------------
def test_nakagawa_r2_near_the_reml_fits(slope, reml):
    post, ref = slope.r2(kind="nakagawa"), reml.r2()
    assert set(post) == {"marginal", "conditional"}
    # posterior means of the variance components sit above the REML estimates (skewed posteriors)
    assert post["marginal"] == pytest.approx(ref["marginal"], abs=0.07)
    assert post["conditional"] == pytest.approx(ref["conditional"], abs=0.04)


def test_nakagawa_r2_on_one_draw_by_hand(slope):
    d = slope.design
    p = slope.posterior
    beta, sd = np.asarray(p["beta"])[0, 5], np.asarray(p["sd_Subject"])[0, 5]
    r, sigma = float(np.asarray(p["cor_Subject"])[0, 5, 0]), float(np.asarray(p["sigma"])[0, 5])
    C = np.array([[sd[0] ** 2, r * sd[0] * sd[1]], [r * sd[0] * sd[1], sd[1] ** 2]])
    var_f = np.var(d.X @ beta, ddof=1)
    Xi = d.reterms[0].Xi
    var_r = np.mean(np.einsum("ij,jk,ik->i", Xi, C, Xi))
    tot = var_f + var_r + sigma**2
    draws = slope.r2(kind="nakagawa", draws=True)
    assert draws.shape == (400, 2)
    assert draws["marginal"].iloc[5] == pytest.approx(var_f / tot, rel=1e-10)
    assert draws["conditional"].iloc[5] == pytest.approx((var_f + var_r) / tot, rel=1e-10)


def test_bayes_r2_gelman_et_al(slope):
    r2 = slope.r2()
    assert 0 < r2["marginal"] < r2["conditional"] < 1
    draws = slope.r2(draws=True)
    assert list(draws.columns) == ["marginal", "conditional"] and len(draws) == 400
    assert draws["conditional"].mean() == pytest.approx(r2["conditional"])
    # one draw by hand: var(mu) / (var(mu) + var(y - mu)) with mu the conditional mean
    mu = slope.predict(kind="draws").values.reshape(400, -1)[9]
    y = slope.design.y
    assert draws["conditional"].iloc[9] == pytest.approx(np.var(mu) / (np.var(mu) + np.var(y - mu)), rel=1e-10)
    with pytest.raises(DesignError, match="kind"):
        slope.r2(kind="adjusted")


# ---- confint -------------------------------------------------------------------------------------
def test_confint_eti_and_hdi(slope):
    eti = slope.confint()
    assert list(eti.columns) == ["2.5 %", "97.5 %"]
    assert list(eti.index) == ["Intercept", "Days", "sd_Intercept|Subject", "sd_Days|Subject",
                               "cor_Intercept.Days|Subject", "sigma"]
    days = np.asarray(slope.posterior["beta"])[..., 1].ravel()
    np.testing.assert_allclose(eti.loc["Days"].to_numpy(), np.quantile(days, [0.025, 0.975]))
    hdi = slope.confint(prob=0.9, kind="hdi")
    assert list(hdi.columns) == ["5.0 %", "95.0 %"]
    width = (hdi.iloc[:, 1] - hdi.iloc[:, 0]).to_numpy()
    eti90 = slope.confint(prob=0.9)
    assert (width <= (eti90.iloc[:, 1] - eti90.iloc[:, 0]).to_numpy() + 1e-9).all()   # HDI is the shortest
    with pytest.raises(DesignError, match="kind"):
        slope.confint(kind="wald")
    with pytest.raises(DesignError, match="prob"):
        slope.confint(prob=95)


# ---- LOO and WAIC ----------------------------------------------------------------------------------
def test_loo_and_waic_agree(slope):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LooWarning)
        loo, w = slope.loo(), slope.waic()
    assert np.isfinite(loo.elpd) and np.isfinite(w.elpd)
    assert w.elpd == pytest.approx(loo.elpd, abs=5)
    assert w.waic == pytest.approx(-2 * w.elpd)
    assert list(w.elpd_i.index) == list(slope.design.index)
    assert "elpd_waic" in repr(w)


def test_loo_warnings_come_from_us_only(slope):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        slope.loo()
    assert all(issubclass(w.category, LooWarning) for w in rec), [str(w.message) for w in rec]
    assert all(w.filename == __file__ for w in rec)


def _idata_with_outlier(n=20, S=400):
    rng = np.random.default_rng(0)
    ll = -1.0 + 0.01 * rng.standard_normal((2, S // 2, n))
    ll[..., 7] = -3 * np.abs(rng.standard_cauchy((2, S // 2)))        # one observation, heavy-tailed weights
    return xr.DataTree.from_dict({"posterior": xr.Dataset({"mu": (("chain", "draw"), rng.normal(size=(2, S // 2)))}),
                                  "log_likelihood": xr.Dataset({"y": (("chain", "draw", "obs"), ll)})}), ll


def test_pareto_k_warning_names_the_rows():
    dt, _ = _idata_with_outlier()
    labels = pd.Index([f"row{i}" for i in range(20)])
    with pytest.warns(LooWarning, match=r"rows row7\b") as rec:
        res = loo_with_labels(dt, labels)
    assert "Pareto k" in str(rec[0].message)
    assert float(np.asarray(res.pareto_k)[7]) > res.good_k


def test_waic_warning_names_the_rows():
    _, ll = _idata_with_outlier()
    with pytest.warns(LooWarning, match=r"1 observation\(s\): rows row7\b"):
        waic(ll, [f"row{i}" for i in range(20)])


# ---- compare --------------------------------------------------------------------------------------
def test_compare_with_stacking_weights(slope, intercept, reml):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LooWarning)
        tab = bm.compare({"slope": slope, "intercept": intercept}, method="stacking")
        bma = bm.compare({"slope": slope, "intercept": intercept}, method="pseudo-BMA")
    assert tab.index[0] == "slope"
    assert tab["weight"].sum() == pytest.approx(1.0) and tab.loc["slope", "weight"] > 0.5
    assert bma["weight"].sum() == pytest.approx(1.0)
    with pytest.raises(DesignError, match="method"):
        bm.compare({"slope": slope, "intercept": intercept}, method="aic")
    with pytest.raises(DesignError, match="not a posterior fit"):
        bm.compare({"slope": slope, "reml": reml})
