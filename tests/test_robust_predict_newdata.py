"""predict(newdata): unseen levels, missing columns, unseen categories and missing values by name."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

import bayesmixed as bm

SS = bm.load_dataset("sleepstudy")
FIT = bm.Model("Reaction ~ Days + (Days | Subject)", SS).fit()
D2 = SS.assign(phase=pd.Categorical(np.where(SS["Days"] < 2, "baseline",
                                             np.where(SS["Days"] < 6, "early", "late"))))
FIT2 = bm.Model("Reaction ~ phase + Days + (1 | Subject)", D2).fit()


def test_predict_on_training_data_equals_fitted():
    assert_allclose(FIT.predict(SS).to_numpy(), FIT.fitted().to_numpy(), rtol=1e-12)


def test_unseen_levels_refused_by_name():
    nd = pd.DataFrame({"Days": [1.0, 2.0, 3.0], "Subject": ["308", "999", "abc"]})
    with pytest.raises(bm.DesignError) as exc:
        FIT.predict(nd)
    msg = str(exc.value)
    assert "newdata has level(s) of 'Subject' not seen in the fit: '999', 'abc'" in msg
    assert "allow_new_levels=True" in msg


def test_allow_new_levels_predicts_population_for_them():
    nd = pd.DataFrame({"Days": [1.0, 2.0, 3.0], "Subject": ["308", "999", "abc"]}, index=[10, 11, 12])
    out = FIT.predict(nd, allow_new_levels=True)
    pop = FIT.predict(nd, include_random=False)
    assert list(out.index) == [10, 11, 12]
    assert_allclose(out.loc[[11, 12]], pop.loc[[11, 12]], rtol=1e-12)
    b = FIT.ranef["Subject"].loc["308"]
    assert_allclose(out.loc[10], pop.loc[10] + b["Intercept"] + 1.0 * b["Days"], rtol=1e-12)


def test_missing_columns_named():
    with pytest.raises(bm.DesignError) as exc:
        FIT.predict(pd.DataFrame({"Subject": ["308"], "Dayz": [1.0]}))
    msg = str(exc.value)
    assert "newdata lacks column(s) the model uses: 'Days' (did you mean 'Dayz'?)" in msg
    assert "newdata has columns: Subject, Dayz" in msg


def test_grouping_column_missing_hint_and_population_predictions():
    nd = pd.DataFrame({"Days": [0.0, 5.0]})
    with pytest.raises(bm.DesignError, match=r"lacks column\(s\) the model uses: 'Subject'.*"
                                             r"include_random=False"):
        FIT.predict(nd)
    out = FIT.predict(nd, include_random=False)
    assert_allclose(out.to_numpy(), FIT.fixef["Intercept"] + FIT.fixef["Days"] * np.array([0.0, 5.0]))


def test_categorical_level_not_seen_in_training_named():
    nd = pd.DataFrame({"phase": ["early", "recovery"], "Days": [3.0, 12.0], "Subject": ["308", "308"]})
    with pytest.raises(bm.DesignError) as exc:
        FIT2.predict(nd)
    msg = str(exc.value)
    assert "newdata column 'phase' (in the fixed effects) has level(s) not seen in the fitted data: " \
           "'recovery'" in msg
    assert "'baseline', 'early', 'late'" in msg


def test_categorical_newdata_as_plain_strings_matches_training():
    nd = pd.DataFrame({"phase": ["late", "baseline"], "Days": [7.0, 0.0], "Subject": ["309", "309"]})
    out = FIT2.predict(nd)
    fe, b = FIT2.fixef, FIT2.ranef["Subject"].loc["309", "Intercept"]
    assert_allclose(out.iloc[0], fe["Intercept"] + fe["phase[T.late]"] + 7 * fe["Days"] + b)
    assert_allclose(out.iloc[1], fe["Intercept"] + b)


def test_random_slope_factor_level_unseen():
    d = SS.assign(half=np.where(SS["Days"] < 5, "a", "b"))
    fit = bm.Model("Reaction ~ Days + (half | Subject)", d).fit()
    nd = pd.DataFrame({"Days": [1.0], "half": ["c"], "Subject": ["308"]})
    with pytest.raises(bm.DesignError, match=r"newdata column 'half' \(in the random-effects term "
                                             r"\(half \| Subject\)\) has level\(s\) not seen .* 'c'"):
        fit.predict(nd)


def test_missing_grouping_value_refused_or_population():
    nd = pd.DataFrame({"Days": [1.0, 2.0], "Subject": ["308", None]}, index=["a", "b"])
    with pytest.raises(bm.DesignError) as exc:
        FIT.predict(nd)
    assert "missing values in grouping factor 'Subject' at row(s) 'b'" in str(exc.value)
    out = FIT.predict(nd, allow_new_levels=True)
    assert_allclose(out["b"], FIT.predict(nd, include_random=False)["b"])


def test_missing_predictor_gives_nan_not_reference_level():
    nd = pd.DataFrame({"phase": pd.Categorical(["late", None], categories=["baseline", "early", "late"]),
                       "Days": [7.0, 7.0], "Subject": ["308", "308"]})
    out = FIT2.predict(nd)
    assert np.isfinite(out.iloc[0]) and np.isnan(out.iloc[1])
    out = FIT.predict(pd.DataFrame({"Days": [np.nan, 1.0], "Subject": ["308", "308"]}))
    assert np.isnan(out.iloc[0]) and np.isfinite(out.iloc[1])


def test_text_in_numeric_newdata_column():
    with pytest.raises(bm.DesignError) as exc:
        FIT.predict(pd.DataFrame({"Days": ["one"], "Subject": ["308"]}))
    assert "newdata column 'Days' must be numeric as in the fitted data" in str(exc.value)
    assert "pd.to_numeric" in str(exc.value)


def test_integer_coded_newdata_groups_match_string_levels():
    out = FIT.predict(pd.DataFrame({"Days": [1.0], "Subject": [308]}))
    ref = FIT.predict(pd.DataFrame({"Days": [1.0], "Subject": ["308"]}))
    assert_allclose(out.to_numpy(), ref.to_numpy(), rtol=1e-15)


def test_empty_newdata():
    out = FIT.predict(SS.iloc[:0])
    assert len(out) == 0


def test_offset_argument_is_used_on_newdata():
    d = SS.assign(o=np.linspace(-5, 5, len(SS)))
    fit = bm.Model("Reaction ~ Days + (1 | Subject)", d, offset="o").fit()
    assert_allclose(fit.predict(d).to_numpy(), fit.fitted().to_numpy(), rtol=1e-12)
    nd = pd.DataFrame({"Days": [1.0, 1.0], "Subject": ["308", "308"], "o": [0.0, 10.0]})
    out = fit.predict(nd)
    assert_allclose(out.iloc[1] - out.iloc[0], 10.0, rtol=1e-12)
    with pytest.raises(bm.DesignError, match="newdata lacks the offset column 'o'"):
        fit.predict(nd.drop(columns="o"))


def test_offset_array_cannot_predict_new_rows():
    fit = bm.Model("Reaction ~ Days + (1 | Subject)", SS, offset=np.zeros(len(SS))).fit()
    with pytest.raises(bm.DesignError, match="offset was given as an array .* pass offset='column'"):
        fit.predict(SS.iloc[:3])


def test_newdata_categorical_with_extra_unused_categories():
    nd = pd.DataFrame({"phase": pd.Categorical(["late", "baseline"],
                                               categories=["recovery", "late", "baseline", "early"]),
                       "Days": [7.0, 0.0], "Subject": ["309", "309"]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")                 # no pandas/formulaic recoding warnings either
        out = FIT2.predict(nd)
    ref = FIT2.predict(nd.astype({"phase": str}))
    assert_allclose(out.to_numpy(), ref.to_numpy(), rtol=1e-14)


def test_new_matrices_report_row_labels_of_each_group():
    from bayesmixed.design.newdata import new_matrices

    nd = pd.DataFrame({"Days": [1.0, 2.0, 3.0], "Subject": ["308", "999", None]}, index=[0, 0, 0])
    out = new_matrices(FIT.design, nd, allow_new_levels=True)
    assert out.codes[0].tolist() == [0, -1, -1]
    assert out.labels[0].tolist() == ["308", "999", ""]
