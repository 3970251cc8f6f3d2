"""Degenerate designs: one level, as many levels as rows, aliased columns, scales, separation."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

import bayesmixed as bm
from bayesmixed.errors import IdentifiabilityWarning

SS = bm.load_dataset("sleepstudy")


def test_one_level_grouping_factor_refused():
    d = SS.copy()
    d["g"] = "only"
    with pytest.raises(bm.DesignError) as exc:
        bm.Model("Reaction ~ Days + (1 | g)", d)
    msg = str(exc.value)
    assert "grouping factor 'g' has 1 level (only)" in msg
    assert "at least two sampled levels" in msg
    assert "control={'check_nlev_gtr_1': 'ignore'}" in msg


def test_one_level_after_dropping_missing_rows():
    d = SS.copy()
    d["g"] = np.where(d.index < 10, "a", None)
    with pytest.warns(bm.MissingDataWarning), pytest.raises(bm.DesignError, match="has 1 level"):
        bm.Model("Reaction ~ Days + (1 | g)", d)


def test_one_level_can_be_a_warning():
    d = SS.copy()
    d["g"] = "only"
    with pytest.warns(IdentifiabilityWarning, match="grouping factor 'g' has 1 level"):
        m = bm.Model("Reaction ~ Days + (1 | g)", d, control={"check_nlev_gtr_1": "warning"})
    assert m.design.reterms[0].n_levels == 1


def test_as_many_levels_as_observations_refused_for_gaussian():
    d = SS.copy()
    d["obs"] = np.arange(len(d))
    with pytest.raises(bm.DesignError) as exc:
        bm.Model("Reaction ~ Days + (1 | obs)", d)
    msg = str(exc.value)
    assert "grouping factor 'obs' has 180 levels for 180 observations" in msg
    assert "control={'check_nobs_vs_nlev': 'ignore'}" in msg


def test_as_many_levels_allowed_on_request_and_for_other_families():
    d = SS.copy()
    d["obs"] = np.arange(len(d))
    with pytest.warns(IdentifiabilityWarning, match="180 levels for 180 observations"):
        bm.Model("Reaction ~ Days + (1 | obs)", d, control={"check_nobs_vs_nlev": "warning"})
    with warnings.catch_warnings():
        warnings.simplefilter("error", bm.BayesMixedWarning)
        m = bm.Model("Reaction ~ Days + (1 | obs)", d, control={"check_nobs_vs_nlev": "ignore"})
        assert m.design.reterms[0].n_levels == 180
        # observation-level random effects are a standard overdispersion model for counts
        d["y"] = np.round(d["Reaction"])
        assert bm.Model("y ~ Days + (1 | obs)", d, family="poisson").design.q == 180


def test_as_many_random_effects_as_observations():
    d = SS.copy()
    d["pair"] = np.arange(len(d)) // 2           # 90 levels, 2 coefficients each: q = n
    with pytest.raises(bm.DesignError) as exc:
        bm.Model("Reaction ~ Days + (Days | pair)", d)
    msg = str(exc.value)
    assert "number of observations (180) <= number of random effects (180)" in msg
    assert "(1 + Days | pair)" in msg or "(Days | pair)" in msg
    assert "check_nobs_vs_nRE" in msg


def test_control_options_are_checked():
    with pytest.raises(bm.DesignError, match=r"unknown control option\(s\) \['check_foo'\]; valid options"):
        bm.Model("Reaction ~ Days + (1 | Subject)", SS, control={"check_foo": "stop"})
    with pytest.raises(bm.DesignError) as exc:
        bm.Model("Reaction ~ Days + (1 | Subject)", SS, control={"check_scale_x": "shout"})
    assert "control['check_scale_x'] = 'shout' is not valid; choose one of: 'warning', 'stop', 'ignore'" \
        in str(exc.value)


def test_rank_deficient_column_dropped_by_name():
    d = SS.copy()
    d["Days2"] = 2 * d["Days"] + 1
    with pytest.warns(bm.RankDeficiencyWarning) as rec:
        fit = bm.Model("Reaction ~ Days + Days2 + (Days | Subject)", d).fit()
    msg = str(rec[0].message)
    assert "rank deficient so dropping 1 column(s): Days2" in msg
    assert "remove the redundant term" in msg
    ref = bm.Model("Reaction ~ Days + (Days | Subject)", SS).fit()
    assert list(fit.fixef.index) == ["Intercept", "Days"]
    assert fit.design.dropped_columns == ("Days2",)
    assert_allclose(fit.fixef, ref.fixef, rtol=1e-9)
    assert_allclose(fit.reml_criterion, ref.reml_criterion, rtol=1e-12)
    assert "dropping 1 column(s): Days2" in str(fit.summary())


def test_rank_deficiency_can_be_an_error():
    d = SS.copy()
    d["Days2"] = 2 * d["Days"]
    with pytest.raises(bm.DesignError, match="rank deficient: Days2 are linear combinations"):
        bm.Model("Reaction ~ Days + Days2 + (1 | Subject)", d, control={"check_rank_x": "stop.deficient"})


def test_wildly_different_scales_warn_and_fit_correctly():
    d = SS.copy()
    d["Days_us"] = d["Days"] * 86400e6               # days in microseconds: sd ~ 2.5e11
    with pytest.warns(bm.ScaleWarning) as rec:
        fit = bm.Model("Reaction ~ Days_us + (1 | Subject)", d).fit()
    msg = str(rec[0].message)
    assert "very different scales: consider rescaling" in msg and "'Days_us' sd" in msg
    assert "scale(x)" in msg
    # the same model on the rescaled predictor, transformed back
    ref = bm.Model("Reaction ~ Days + (1 | Subject)", SS).fit()
    assert_allclose(fit.fixef["Days_us"] * 86400e6, ref.fixef["Days"], rtol=1e-6)
    assert_allclose(fit.fixef["Intercept"], ref.fixef["Intercept"], rtol=1e-6)
    assert_allclose(fit.fixef_se["Days_us"] * 86400e6, ref.fixef_se["Days"], rtol=1e-5)
    assert_allclose(fit.reml_criterion - 2 * np.log(86400e6), ref.reml_criterion, rtol=1e-8)
    assert_allclose(fit.varcorr["sdcor"], ref.varcorr["sdcor"], rtol=1e-5)


def test_scale_check_compares_columns_and_ignores_dummies():
    d = SS.copy()
    d["tiny"] = d["Days"] * 1e-2
    d["big"] = d["Days"] * 20 + np.sin(np.arange(180))
    with pytest.warns(bm.ScaleWarning, match="'tiny' sd .* 'big' sd"):
        bm.Model("Reaction ~ tiny + big + (1 | Subject)", d)
    d["flag"] = (d["Days"] > 4).astype(float)          # 0/1 columns are not rescaled by lme4 either
    with warnings.catch_warnings():
        warnings.simplefilter("error", bm.ScaleWarning)
        bm.Model("Reaction ~ Days + flag + (1 | Subject)", d)
    with pytest.raises(bm.DesignError, match="consider rescaling"):
        bm.Model("Reaction ~ tiny + big + (1 | Subject)", d, control={"check_scale_x": "stop"})


def test_perfect_separation_in_binomial_model():
    rng = np.random.default_rng(0)
    n = 120
    d = pd.DataFrame({"x": rng.normal(size=n), "g": np.repeat(np.arange(12), 10).astype(str)})
    d["y"] = (d["x"] > 0).astype(int)                   # x separates y completely
    with pytest.warns(bm.SeparationWarning) as rec:
        fit = bm.Model("y ~ x + (1 | g)", d, family="binomial").fit()
    msg = str(next(w.message for w in rec if w.category is bm.SeparationWarning))
    assert "(quasi-)completely separated" in msg and "x are very large" in msg
    assert "method='nuts'" in msg
    assert abs(fit.fixef["x"]) > 15          # the estimate runs off, as glm's does
