"""The fit face of REML/ML fits (summary, tidy, confint, predict, coef, varcorr, warnings).

Numbers are checked against lme4/lmerTest (``tests/reference/lmer.json``) where R has them,
and against identities of the model (coef = fixef + ranef, Wald = estimate ± z se) otherwise.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import bayesmixed as bm
from bayesmixed.errors import DesignError, RankDeficiencyWarning, SingularFitWarning
from conftest import load_reference

REF = {c["id"]: c for c in load_reference("lmer")["cases"]}
SLEEP = REF["sleepstudy_corr_reml"]


@pytest.fixture(scope="module")
def sleep_data():
    return bm.load_dataset("sleepstudy")


@pytest.fixture(scope="module")
def sleep_fit(sleep_data):
    return bm.Model("Reaction ~ Days + (Days | Subject)", sleep_data).fit()


# ---- summary --------------------------------------------------------------------------------
def test_summary_text_has_the_lme4_pieces(sleep_fit):
    text = str(sleep_fit.summary())
    assert text.startswith("Linear mixed model fit by REML")
    assert f"REML criterion at convergence: {SLEEP['criterion']:.4f}" in text
    assert "Scaled residuals:" in text
    # Random effects: Groups / Name / Variance / Std.Dev. / Corr, with lme4's values
    block = text.split("Random effects:")[1].split("Fixed effects:")[0]
    header = block.strip().splitlines()[0].split()
    assert header == ["Groups", "Name", "Variance", "Std.Dev.", "Corr"]
    subj = next(line for line in block.splitlines() if line.strip().startswith("Subject"))
    assert "612.1" in subj and "24.74" in subj
    days = next(line for line in block.splitlines() if line.strip().startswith("Days"))
    assert days.split()[-1] == "0.07"                              # the correlation, 0.066 in R
    resid = next(line for line in block.splitlines() if line.strip().startswith("Residual"))
    assert "654.9" in resid and "25.59" in resid
    assert "Number of obs: 180, groups:  Subject, 18" in block
    # Fixed effects with Satterthwaite df and Pr(>|t|)
    fixed = text.split("Fixed effects:")[1].split("Correlation of Fixed Effects:")[0]
    assert re.search(r"Estimate\s+Std\. Error\s+df\s+t value\s+Pr\(>\|t\|\)", fixed)
    row = next(line for line in fixed.splitlines() if line.startswith("Days"))
    est, se, df, t = (float(v) for v in row.split()[1:5])
    assert est == pytest.approx(SLEEP["fixef"][1], rel=1e-3)
    assert se == pytest.approx(SLEEP["fixef_se"][1], rel=1e-3)
    assert df == pytest.approx(17, abs=0.01)
    assert t == pytest.approx(SLEEP["satterthwaite"]["t"][1], rel=1e-3)
    assert row.rstrip().endswith("***")
    corr = text.split("Correlation of Fixed Effects:")[1]
    r = SLEEP["vcov"][0][1] / np.sqrt(SLEEP["vcov"][0][0] * SLEEP["vcov"][1][1])
    assert f"{r:.3f}" in corr                                      # -0.138


def test_ml_summary_has_information_criteria(sleep_data):
    fit = bm.Model("Reaction ~ Days + (Days | Subject)", sleep_data).fit(method="ml")
    ref = REF["sleepstudy_corr_ml"]
    text = str(fit.summary())
    assert text.startswith("Linear mixed model fit by maximum likelihood")
    assert "AIC" in text and "BIC" in text and "logLik" in text and "df.resid" in text
    assert f"{ref['aic']:.1f}" in text and f"{ref['loglik']:.1f}" in text
    assert "REML criterion" not in text
    assert fit.df_resid == 180 - 6


def test_html_repr_has_tables(sleep_fit):
    html = sleep_fit._repr_html_()
    assert html.count("<table") == 4        # scaled residuals, random effects, fixed, correlation
    assert "Random effects" in html and "Fixed effects" in html and "Pr(&gt;|t|)" in html
    assert sleep_fit.summary()._repr_html_() == html


# ---- tidy, confint, coef, varcorr ----------------------------------------------------------
def test_tidy_columns_and_satterthwaite(sleep_fit):
    tab = sleep_fit.tidy()
    assert list(tab.columns) == ["effect", "group", "term", "estimate", "std_error", "statistic",
                                 "df", "p_value"]
    fixed = tab[tab["effect"] == "fixed"]
    assert list(fixed["term"]) == ["Intercept", "Days"]
    np.testing.assert_allclose(fixed["estimate"], SLEEP["fixef"], rtol=1e-6)
    np.testing.assert_allclose(fixed["std_error"], SLEEP["fixef_se"], rtol=1e-5)
    np.testing.assert_allclose(fixed["df"], SLEEP["satterthwaite"]["df"], rtol=1e-3)
    np.testing.assert_allclose(fixed["statistic"], SLEEP["satterthwaite"]["t"], rtol=1e-5)
    np.testing.assert_allclose(fixed["p_value"], SLEEP["satterthwaite"]["p"], rtol=1e-3)
    ran = tab[tab["effect"] == "ran_pars"]
    assert list(ran["term"]) == ["sd__Intercept", "sd__Days", "cor__Intercept.Days", "sd__Observation"]
    np.testing.assert_allclose(ran["estimate"], [r["sdcor"] for r in SLEEP["varcorr"]], rtol=1e-4)
    ci = sleep_fit.tidy(conf_int=True)
    crit = stats.t.ppf(0.975, ci["df"].iloc[0])
    assert ci["conf_low"].iloc[0] == pytest.approx(SLEEP["fixef"][0] - crit * SLEEP["fixef_se"][0], rel=1e-5)


def test_confint_is_wald(sleep_fit):
    ci = sleep_fit.confint()
    assert list(ci.columns) == ["2.5 %", "97.5 %"]
    est, se = np.asarray(SLEEP["fixef"]), np.asarray(SLEEP["fixef_se"])
    z = stats.norm.ppf(0.975)
    np.testing.assert_allclose(ci["2.5 %"], est - z * se, rtol=1e-5)
    np.testing.assert_allclose(ci["97.5 %"], est + z * se, rtol=1e-5)
    # lme4's confint(fm, method = "Wald") for the intercept: 238.03, 264.78
    assert ci.loc["Intercept"].round(2).tolist() == [238.03, 264.78]
    ci90 = sleep_fit.confint(level=0.9)
    assert list(ci90.columns) == ["5.0 %", "95.0 %"]
    assert ci90.loc["Days", "95.0 %"] < ci.loc["Days", "97.5 %"]


def test_coef_is_fixef_plus_ranef(sleep_fit):
    co, re_, fe = sleep_fit.coef["Subject"], sleep_fit.ranef["Subject"], sleep_fit.fixef
    assert list(co.columns) == ["Intercept", "Days"]
    np.testing.assert_allclose(co.to_numpy(), re_.to_numpy() + fe.to_numpy()[None, :])
    # lme4: coef(fm)$Subject["308", ] = 253.66, 19.67
    assert co.loc["308"].round(2).tolist() == [253.66, 19.67]


def test_varcorr_frame_like_as_data_frame_varcorr(sleep_fit):
    vc = sleep_fit.varcorr
    assert list(vc.columns) == ["grp", "var1", "var2", "vcov", "sdcor"]
    assert vc["grp"].tolist() == ["Subject", "Subject", "Subject", "Residual"]
    assert vc["var1"].tolist()[:3] == ["Intercept", "Days", "Intercept"]
    assert vc["var2"].iloc[2] == "Days" and vc["var2"].iloc[[0, 1, 3]].isna().all()
    assert pd.isna(vc["var1"].iloc[3])
    np.testing.assert_allclose(vc["vcov"], [r["vcov"] for r in SLEEP["varcorr"]], rtol=1e-4)
    np.testing.assert_allclose(vc["sdcor"], [r["sdcor"] for r in SLEEP["varcorr"]], rtol=1e-4)


# ---- predict ----------------------------------------------------------------------------------
def test_predict_on_newdata(sleep_fit):
    nd = pd.DataFrame({"Days": [0.0, 9.0], "Subject": ["308", "309"]})
    co = sleep_fit.coef["Subject"]
    expected = [co.loc["308", "Intercept"], co.loc["309", "Intercept"] + 9 * co.loc["309", "Days"]]
    np.testing.assert_allclose(sleep_fit.predict(nd), expected, rtol=1e-10)
    fe = sleep_fit.fixef
    np.testing.assert_allclose(sleep_fit.predict(nd, include_random=False),
                               [fe["Intercept"], fe["Intercept"] + 9 * fe["Days"]], rtol=1e-10)
    # population prediction needs no grouping column at all (lme4's re.form = NA)
    np.testing.assert_allclose(sleep_fit.predict(nd[["Days"]], include_random=False),
                               [fe["Intercept"], fe["Intercept"] + 9 * fe["Days"]], rtol=1e-10)
    # on the training data predict() is fitted(): lme4's fitted values
    np.testing.assert_allclose(sleep_fit.predict().to_numpy()[:10], SLEEP["fitted_head"], rtol=1e-6)


def test_predict_new_level_refused_by_name_or_population(sleep_fit):
    nd = pd.DataFrame({"Days": [2.0, 2.0], "Subject": ["308", "not-a-subject"]})
    with pytest.raises(DesignError, match=r"Subject.*not-a-subject.*allow_new_levels=True"):
        sleep_fit.predict(nd)
    got = sleep_fit.predict(nd, allow_new_levels=True)
    fe, co = sleep_fit.fixef, sleep_fit.coef["Subject"]
    assert got.iloc[0] == pytest.approx(co.loc["308", "Intercept"] + 2 * co.loc["308", "Days"])
    assert got.iloc[1] == pytest.approx(fe["Intercept"] + 2 * fe["Days"])   # the population line


# ---- warnings and refusals --------------------------------------------------------------------
def test_singular_fit_warning_on_dyestuff2():
    ref = REF["dyestuff2_reml"]
    with pytest.warns(SingularFitWarning, match="singular"):
        fit = bm.Model("Yield ~ 1 + (1 | Batch)", bm.load_dataset("Dyestuff2")).fit()
    assert fit.is_singular and ref["isSingular"]
    assert fit.theta[0] == pytest.approx(0.0, abs=1e-6)
    assert fit.sigma == pytest.approx(ref["sigma"], rel=1e-6)
    assert "singular" in str(fit.summary())


def test_rank_deficient_X_drops_the_duplicate(sleep_data, sleep_fit):
    data = sleep_data.copy()
    data["Days2"] = data["Days"]
    with pytest.warns(RankDeficiencyWarning, match=r"dropping 1 column.*Days2"):
        model = bm.Model("Reaction ~ Days + Days2 + (Days | Subject)", data)
    assert model.design.dropped_columns == ("Days2",)
    assert model.design.fixef_names == ("Intercept", "Days")
    fit = model.fit()
    assert fit.reml_criterion == pytest.approx(sleep_fit.reml_criterion, rel=1e-10)
    np.testing.assert_allclose(fit.fixef, sleep_fit.fixef, rtol=1e-7)
    np.testing.assert_allclose(fit.theta, sleep_fit.theta, rtol=1e-6)
    assert "Days2" in str(fit.summary())


def test_as_many_levels_as_rows_refused_then_allowed():
    data = bm.load_dataset("wvxyz")
    ref = REF["wvxyz_reml"]
    with pytest.raises(DesignError, match=r"'w'.*10 levels for 10 observations.*check_nobs_vs_nlev"):
        bm.Model("x ~ y + z + (1 | w)", data)
    fit = bm.Model("x ~ y + z + (1 | w)", data, control={"check_nobs_vs_nlev": "ignore"}).fit()
    assert fit.reml_criterion == pytest.approx(ref["criterion"], rel=1e-8)
    np.testing.assert_allclose(fit.fixef, ref["fixef"], rtol=1e-5)


def test_single_level_group_refused():
    data = bm.load_dataset("sleepstudy")
    one = data[data["Subject"] == "308"]
    with pytest.raises(DesignError, match=r"'Subject'.*1 level"):
        bm.Model("Reaction ~ Days + (1 | Subject)", one)


def test_reml_refitted_by_ml_matches_ml_fit(sleep_data):
    """``method="ml"`` is lmer(REML = FALSE): the ML reference numbers."""
    ref = REF["sleepstudy_corr_ml"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = bm.Model("Reaction ~ Days + (Days | Subject)", sleep_data).fit(method="ml")
    assert fit.deviance == pytest.approx(ref["deviance"], rel=1e-8)
    assert fit.reml_criterion is None
    assert fit.sigma == pytest.approx(ref["sigma"], rel=1e-5)


def test_summary_lists_several_groups_like_lme4():
    fit = bm.Model("diameter ~ 1 + (1 | plate) + (1 | sample)", bm.load_dataset("Penicillin")).fit()
    text = str(fit.summary())
    assert "Number of obs: 144, groups:  plate, 24; sample, 6" in text
    ref = REF["penicillin_crossed_reml"]
    row = next(line for line in text.split("Fixed effects:")[1].splitlines() if line.startswith("Intercept"))
    assert float(row.split()[3]) == pytest.approx(ref["satterthwaite"]["df"][0], rel=1e-3)   # 5.487
