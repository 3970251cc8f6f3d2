"""Infinite values, text in numeric roles, empty frames, out-of-support responses, bad weights."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayesmixed as bm

SS = bm.load_dataset("sleepstudy")
F1 = "Reaction ~ Days + (1 | Subject)"


def _raises(match_words, *args, **kwargs):
    with pytest.raises(bm.DesignError) as exc:
        bm.Model(*args, **kwargs)
    msg = str(exc.value)
    for w in match_words:
        assert w in msg, msg
    return msg


def test_infinite_response():
    d = SS.copy()
    d.loc[3, "Reaction"] = np.inf
    _raises(["response 'Reaction' has non-finite values [inf] at row(s) 3", "remove or fix"], F1, d)


def test_infinite_predictor_and_slope():
    d = SS.copy()
    d.loc[4, "Days"] = -np.inf
    _raises(["non-finite values (inf or NaN) in fixed-effects column(s): Days at row(s) 4"], F1, d)
    _raises(["random-effects column of (Days | Subject)", "Days at row(s) 4"],
            "Reaction ~ 1 + (Days | Subject)", d)


def test_transform_making_infinity_names_the_column():
    _raises(["fixed-effects column(s): log(Days)", "log(0) gives -inf"],
            "Reaction ~ log(Days) + (1 | Subject)", SS)


def test_text_response():
    d = SS.copy()
    d["Reaction"] = d["Reaction"].astype(str)
    _raises(["response column 'Reaction' is not numeric (dtype", "pd.to_numeric"], F1, d)


@pytest.mark.parametrize("role", ["weights", "offset"])
def test_text_weights_and_offset(role):
    d = SS.copy()
    d["w"] = "1.0"
    _raises([f"{role} column 'w' must be numeric but has dtype", "'1.0'", "pd.to_numeric"],
            F1, d, **{role: "w"})


def test_text_array_weights():
    _raises(["weights= array must be numeric"], F1, SS, weights=np.array(["1"] * 180))


def test_text_in_cbind():
    cbpp = bm.load_dataset("cbpp").copy()
    cbpp["incidence"] = cbpp["incidence"].astype(str)
    _raises(["cbind() argument 'incidence' must be numeric"],
            "cbind(incidence, size) ~ period + (1 | herd)", cbpp, family="binomial")


def test_object_column_of_numbers_is_accepted_as_weights():
    d = SS.copy()
    d["w"] = pd.Series([1.0, 2] * 90, dtype=object)
    m = bm.Model(F1, d, weights="w")
    assert m.design.prior_weights[:4].tolist() == [1.0, 2.0, 1.0, 2.0]


def test_empty_frame():
    _raises(["data has no rows (3 columns, 0 rows): nothing to fit"], F1, SS.iloc[:0])


def test_not_a_frame():
    _raises(["data must be a pandas DataFrame", "got ndarray", "pd.DataFrame("], F1, SS.to_numpy())


@pytest.mark.parametrize("family, words", [
    ("binomial", ["binomial response 'Reaction' must be 0/1", "cbind(successes, failures)", "249.56"]),
    ("poisson", ["poisson response 'Reaction' must be non-negative whole counts", "249.56"]),
])
def test_response_outside_support(family, words):
    _raises(words, F1, SS, family=family)


def test_negative_counts_and_nonpositive_gamma():
    d = SS.copy()
    d["y"] = np.round(d["Reaction"]) - 300
    _raises(["poisson response 'y' must be non-negative whole counts", "-50.0"],
            "y ~ Days + (1 | Subject)", d, family="poisson")
    _raises(["gamma response 'y' must be positive", "shift the response"],
            "y ~ Days + (1 | Subject)", d, family="gamma")
    cbpp = bm.load_dataset("cbpp")
    _raises(["cbind() argument 'incidence - size' must be finite non-negative counts"],
            "cbind(incidence - size, size) ~ period + (1 | herd)", cbpp, family="binomial")


def test_binomial_factor_with_three_levels():
    d = SS.copy()
    d["y"] = np.array(["a", "b", "c"] * 60)
    _raises(["binomial response 'y' has more than two values", "cbind"],
            "y ~ Days + (1 | Subject)", d, family="binomial")


@pytest.mark.parametrize("bad", [-1.0, np.inf])
def test_bad_weights_column(bad):
    d = SS.copy()
    d["w"] = 1.0
    d.loc[5, "w"] = bad
    _raises([f"weights column 'w' must be finite and non-negative; row(s) 5 have [{bad}]",
             "Fix or drop those rows"], F1, d, weights="w")


def test_bad_weights_array():
    w = np.ones(180)
    w[0] = -2
    _raises(["weights= array must be finite and non-negative; row(s) 0 have [-2.0]"], F1, SS, weights=w)


def test_infinite_offset():
    d = SS.copy()
    d["o"] = 0.0
    d.loc[9, "o"] = np.inf
    _raises(["offset column 'o' has non-finite values [inf] at row(s) 9"], F1, d, offset="o")
    _raises(["offset(o) has non-finite values [inf] at row(s) 9"],
            "Reaction ~ Days + offset(o) + (1 | Subject)", d)


def test_all_zero_weights():
    _raises(["weights= array is zero for every row: nothing to fit"], F1, SS, weights=np.zeros(180))


def test_zero_weights_drop_rows_contribution_as_lme4():
    w = np.ones(180)
    w[:10] = 0.0
    fit = bm.Model(F1, SS, weights=w).fit()
    # lme4: fixef(lmer(Reaction ~ Days + (1|Subject), sleepstudy, weights = w)), w[1:10] = 0
    np.testing.assert_allclose(fit.fixef.to_numpy(), [251.829366, 9.802732], rtol=1e-6)
    assert fit.nobs == 180


def test_object_column_of_numbers_is_a_numeric_predictor():
    d = SS.copy()
    d["Days"] = d["Days"].astype(object)
    m = bm.Model("Reaction ~ Days + (Days | Subject)", d)
    assert m.design.fixef_names == ("Intercept", "Days")
    assert m.design.reterms[0].cnames == ("Intercept", "Days")
    fit = m.fit()
    ref = bm.Model("Reaction ~ Days + (Days | Subject)", SS).fit()
    np.testing.assert_allclose(fit.fixef, ref.fixef, rtol=1e-12)
    nd = pd.DataFrame({"Days": pd.Series([1.0, 2.0], dtype=object), "Subject": ["308", "309"]})
    np.testing.assert_allclose(fit.predict(nd), ref.predict(nd.astype({"Days": float})), rtol=1e-12)


def test_newdata_not_a_frame():
    fit = bm.Model(F1, SS).fit()
    with pytest.raises(bm.DesignError, match="newdata must be a pandas DataFrame .* got ndarray"):
        fit.predict(np.zeros((2, 2)))


def _exotic() -> pd.DataFrame:
    d = SS.copy()
    d["when"] = pd.Timestamp("2020-01-01") + pd.to_timedelta(d["Days"], unit="D")
    d["dur"] = pd.to_timedelta(d["Days"], unit="D")
    d["cx"] = d["Days"] + 1j
    d["mixed"] = pd.Series([1, "2", "n/a"] * 60, dtype=object)
    return d


@pytest.mark.parametrize("col, words", [
    ("when", ["column 'when' has dtype datetime64", "cannot use as a number", ".dt.days"]),
    ("dur", ["column 'dur' has dtype timedelta64", ".dt.days"]),
    ("cx", ["column 'cx' holds complex numbers"]),
])
def test_dates_durations_and_complex_numbers_in_numeric_roles(col, words):
    d = _exotic()
    _raises(words, f"Reaction ~ {col} + (1 | Subject)", d)
    _raises(words, f"{col} ~ Days + (1 | Subject)", d)


def test_complex_weights():
    _raises(["weights column 'cx' holds complex numbers"], F1, _exotic(), weights="cx")


def test_dates_and_mixed_objects_as_grouping_factors_are_levels():
    d = _exotic()
    assert bm.Model("Reaction ~ Days + (1 | when)", d).design.reterms[0].n_levels == 10
    t = bm.Model("Reaction ~ Days + (1 | mixed)", d).design.reterms[0]
    assert t.levels == ("1", "2", "n/a")
