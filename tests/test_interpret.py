"""predictions / comparisons / slopes against hand computations, for likelihood and posterior fits."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import bayesmixed as bm
from bayesmixed.errors import DesignError, SamplingWarning


@pytest.fixture(scope="module")
def sleep():
    return bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()


@pytest.fixture(scope="module")
def contra():
    data = bm.load_dataset("Contraception")
    return bm.Model("use ~ age + urban + (1 | district)", data, family="binomial").fit()


def test_slope_of_a_linear_term_is_its_coefficient(sleep):
    s = sleep.slopes("Days", by=True)
    assert s["estimate"].iloc[0] == pytest.approx(sleep.fixef["Days"], rel=1e-8)
    assert s["std_error"].iloc[0] == pytest.approx(sleep.fixef_se["Days"], rel=1e-6)
    # per row: the population slope without random effects, each subject's own slope with them
    rows = sleep.slopes("Days", include_random=False)
    assert len(rows) == sleep.nobs
    np.testing.assert_allclose(rows["estimate"], sleep.fixef["Days"], rtol=1e-8)
    own = sleep.slopes("Days")
    subject = bm.load_dataset("sleepstudy")["Subject"].astype(str).to_numpy()
    np.testing.assert_allclose(own["estimate"], sleep.coef["Subject"]["Days"].loc[subject], rtol=1e-7)


def test_predictions_without_random_effects_are_x_beta(sleep):
    p = sleep.predictions({"Days": [0, 9]}, include_random=False)
    X = np.array([[1.0, 0.0], [1.0, 9.0]])
    np.testing.assert_allclose(p["estimate"], X @ sleep.fixef.to_numpy(), rtol=1e-10)
    se = np.sqrt(np.einsum("ij,jk,ik->i", X, sleep.vcov.to_numpy(), X))
    np.testing.assert_allclose(p["std_error"], se, rtol=1e-6)
    z = stats.norm.ppf(0.975)
    np.testing.assert_allclose(p["conf_high"] - p["estimate"], z * se, rtol=1e-6)


def test_predictions_by_group_average_the_rows(sleep):
    by = sleep.predictions(by="Subject")
    per_row = sleep.predictions()
    data = bm.load_dataset("sleepstudy")
    hand = per_row["estimate"].groupby(data["Subject"].astype(str).to_numpy()).mean()
    got = by.set_index(by["Subject"].astype(str))["estimate"]
    np.testing.assert_allclose(got.loc[hand.index], hand, rtol=1e-10)
    np.testing.assert_allclose(per_row["estimate"], sleep.fitted().to_numpy(), rtol=1e-10)


def test_binary_comparison_on_the_link_scale_is_the_coefficient(contra):
    c = contra.comparisons("urban", by=True, scale="link")
    assert c["contrast"].iloc[0] == "Y - N"
    assert c["estimate"].iloc[0] == pytest.approx(contra.fixef["urban[T.Y]"], rel=1e-8)
    assert c["std_error"].iloc[0] == pytest.approx(contra.fixef_se["urban[T.Y]"], rel=1e-5)


def test_response_scale_comparison_is_the_average_of_row_differences(contra):
    data = bm.load_dataset("Contraception")
    cats = data["urban"].cat.categories
    hi = contra.predict(data.assign(urban=pd.Categorical(["Y"] * len(data), categories=cats)))
    lo = contra.predict(data.assign(urban=pd.Categorical(["N"] * len(data), categories=cats)))
    c = contra.comparisons("urban", by=True)
    assert c["estimate"].iloc[0] == pytest.approx(float((hi - lo).mean()), rel=1e-10)
    assert 0 < c["std_error"].iloc[0] < c["estimate"].iloc[0]


def test_comparison_of_a_numeric_variable_is_plus_one_unit(contra):
    data = bm.load_dataset("Contraception")
    c = contra.comparisons("age", by=True)
    hand = (contra.predict(data.assign(age=data["age"] + 1)) - contra.predict(data)).mean()
    assert c["contrast"].iloc[0] == "+1"
    assert c["estimate"].iloc[0] == pytest.approx(float(hand), rel=1e-10)


def test_datagrid_crosses_named_values_and_fixes_the_rest(contra):
    g = bm.datagrid(contra, urban=["N", "Y"], age=[-5.0, 5.0])
    assert len(g) == 4 and set(g.columns) == {"age", "urban", "district"}
    assert g["district"].nunique() == 1


def test_bad_arguments_name_what_is_wrong(sleep):
    with pytest.raises(DesignError, match="scale"):
        sleep.predictions(scale="probability")
    with pytest.raises(DesignError, match="'Dayz'"):
        sleep.slopes("Dayz")
    with pytest.raises(DesignError, match="categorical"):
        sleep.slopes("Subject")
    with pytest.raises(DesignError, match="by="):
        sleep.predictions(by="nope")
    with pytest.raises(DesignError, match="datagrid"):
        bm.datagrid(sleep, Reaction=[1.0])


@pytest.fixture(scope="module")
def posterior():
    model = bm.Model("Reaction ~ Days + (1 | Subject)", bm.load_dataset("sleepstudy"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        return model.fit(method="nuts", draws=200, tune=200, chains=2, random_seed=3, progressbar=False)


def test_posterior_slope_draws_are_the_coefficient_draws(posterior):
    s = posterior.slopes("Days", by=True, conf_level=0.9)
    beta = np.asarray(posterior.idata.posterior["beta"].sel(fixef="Days")).ravel()
    assert s["estimate"].iloc[0] == pytest.approx(beta.mean(), rel=1e-8)
    assert s["std_error"].iloc[0] == pytest.approx(beta.std(ddof=1), rel=1e-6)
    assert s["conf_low"].iloc[0] == pytest.approx(np.quantile(beta, 0.05), rel=1e-6)
    assert "p_value" not in s.columns


def test_posterior_predictions_are_means_of_draws(posterior):
    p = posterior.predictions({"Days": [0.0, 9.0]}, include_random=False)
    beta = np.asarray(posterior.idata.posterior["beta"]).reshape(-1, 2)
    draws = beta @ np.array([[1.0, 1.0], [0.0, 9.0]])
    np.testing.assert_allclose(p["estimate"], draws.mean(axis=0), rtol=1e-8)
