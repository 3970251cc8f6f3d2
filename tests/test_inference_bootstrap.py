"""Parametric bootstrap (lme4's bootMer): replicates, failures, and the same draws in every mode."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayesmixed as bm
from bayesmixed.inference.bootstrap import FitSpec, boot_confint, bootstrap, norm_inter


def _values(bt: pd.DataFrame) -> np.ndarray:
    return bt.drop(columns="status").to_numpy()


@pytest.fixture(scope="module")
def dyestuff():
    return bm.Model("Yield ~ 1 + (1 | Batch)", bm.load_dataset("Dyestuff")).fit()


@pytest.fixture(scope="module")
def sleep():
    return bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()


def test_bootstrap_frame_and_seed(dyestuff):
    bt = bootstrap(dyestuff, 25, seed=11)
    assert list(bt.columns) == ["Intercept", "sd_(Intercept)|Batch", "sigma", "status"]
    assert len(bt) == 25 and set(bt["status"]) <= {"ok", "warning", "failed"}
    assert bt.attrs["n_failed"] == (bt["status"] == "failed").sum()
    assert bt.attrs["t0"]["sigma"] == pytest.approx(dyestuff.sigma)
    np.testing.assert_array_equal(_values(bt), _values(bootstrap(dyestuff, 25, seed=11)))
    assert not np.allclose(_values(bt), _values(bootstrap(dyestuff, 25, seed=12)))
    # replicate i depends on SeedSequence(seed).spawn(nsim)[i] only: a prefix of a longer run
    np.testing.assert_array_equal(_values(bt)[:10], _values(bootstrap(dyestuff, 10, seed=11)))


def test_simulation_matches_the_model(sleep):
    # the marginal covariance of simulated responses is Z (sigma^2 Lambda Lambda') Z' + sigma^2 I
    spec = FitSpec.from_fit(sleep)
    rng = np.random.default_rng(0)
    ys = np.array([spec.simulate(rng) for _ in range(1000)])
    d = sleep.design
    np.testing.assert_allclose(ys.mean(0), d.X @ spec.beta, atol=4 * 40 / np.sqrt(1000))
    vc = sleep.varcorr["vcov"].to_numpy()
    var_day0 = vc[0] + vc[3]                          # rows with Days == 0
    assert np.var(ys[:, d.X[:, 1] == 0]) == pytest.approx(var_day0, rel=0.1)


def test_failed_refits_are_counted(dyestuff, monkeypatch):
    calls = {"n": 0}
    real = FitSpec.refit

    def flaky(self, y):
        calls["n"] += 1
        if calls["n"] % 3 == 0:
            raise np.linalg.LinAlgError("boom")
        return real(self, y)

    monkeypatch.setattr(FitSpec, "refit", flaky)
    bt = bootstrap(dyestuff, 9, seed=1)
    assert bt.attrs["n_failed"] == 3
    assert bt.loc[bt["status"] == "failed"].drop(columns="status").isna().all().all()
    ci = boot_confint(dyestuff, replicates=bt)
    assert ci.attrs["n_failed"] == 3 and ci.notna().all().all()


def test_glmm_bootstrap():
    fit = bm.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)", bm.load_dataset("cbpp"),
                   family="binomial").fit()
    bt = bootstrap(fit, 6, seed=3)
    assert list(bt.columns)[:4] == list(fit.fixef.index) and "sd_(Intercept)|herd" in bt.columns
    assert "sigma" not in bt.columns
    assert np.all(np.abs(bt["Intercept"] - fit.fixef["Intercept"]) < 1.5)


def test_boot_confint_rows_and_percentiles(dyestuff):
    bt = bootstrap(dyestuff, 30, seed=2)
    ci = boot_confint(dyestuff, replicates=bt, level=0.9)
    assert list(ci.index) == ["sd_(Intercept)|Batch", "sigma", "Intercept"]
    assert list(ci.columns) == ["5 %", "95 %"]
    np.testing.assert_allclose(ci.loc["sigma"], norm_inter(bt["sigma"].to_numpy(), np.array([0.05, 0.95])))


@pytest.mark.slow
def test_bootstrap_distribution(sleep):
    bt = bootstrap(sleep, 300, seed=2024)
    ok = bt[bt["status"] != "failed"]
    assert bt.attrs["n_failed"] == 0
    se = sleep.fixef_se
    for name in ["Intercept", "Days"]:
        assert abs(ok[name].mean() - sleep.fixef[name]) < 4 * se[name] / np.sqrt(len(ok))
        assert ok[name].std() == pytest.approx(se[name], rel=0.15)
    assert ok["sigma"].mean() == pytest.approx(sleep.sigma, rel=0.03)


@pytest.mark.slow
def test_same_replicates_sequential_joblib_dask(sleep):
    distributed = pytest.importorskip("dask.distributed")
    pytest.importorskip("joblib")
    seq = bootstrap(sleep, 12, seed=5)
    job = bootstrap(sleep, 12, seed=5, n_jobs=2)
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        dsk = bootstrap(sleep, 12, seed=5, client=client)
    for other in (job, dsk):
        np.testing.assert_allclose(_values(other), _values(seq), rtol=1e-10, atol=1e-12)
        assert list(other["status"]) == list(seq["status"])
