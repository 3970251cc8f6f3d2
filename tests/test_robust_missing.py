"""Missing values: rows dropped like lme4's na.omit, counted and named; every output agrees."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

import bayesmixed as bm

SS = bm.load_dataset("sleepstudy")
F = "Reaction ~ Days + (Days | Subject)"


def _with_na() -> pd.DataFrame:
    d = SS.copy()
    d.index = [f"r{i}" for i in range(len(d))]          # user labels, not positions
    d.loc["r3", "Reaction"] = np.nan
    d.loc["r10", "Subject"] = np.nan                    # grouping factor
    d.loc["r20", "Days"] = np.nan
    d.loc["r21", ["Days", "Reaction"]] = np.nan         # one row, two columns
    return d


def test_rows_dropped_with_warning_naming_count_and_columns():
    with pytest.warns(bm.MissingDataWarning) as rec:
        m = bm.Model(F, _with_na())
    msg = str(rec[0].message)
    assert "dropped 4 of 180 rows with missing values in: Days (2), Reaction (2), Subject (1)" in msg
    assert "rows kept: 176" in msg
    assert "na_action='raise'" in msg
    assert m.design.n == 176
    assert list(m.design.index[:4]) == ["r0", "r1", "r2", "r4"]


def test_na_action_raise_refuses_naming_columns_and_rows():
    with pytest.raises(bm.DesignError) as exc:
        bm.Model(F, _with_na(), na_action="raise")
    msg = str(exc.value)
    assert "missing values in Days (2), Reaction (2), Subject (1)" in msg
    assert "'r3', 'r10', 'r20', 'r21'" in msg
    assert "na_action='omit'" in msg


def test_fit_equals_fit_on_complete_rows_and_outputs_use_kept_labels():
    d = _with_na()
    with pytest.warns(bm.MissingDataWarning):
        fit = bm.Model(F, d).fit()
    kept = d.dropna()
    ref = bm.Model(F, kept).fit()
    assert fit.nobs == ref.nobs == 176
    assert_allclose(fit.fixef, ref.fixef, rtol=0, atol=0)
    assert_allclose(fit.theta, ref.theta, rtol=0, atol=0)
    for series in (fit.fitted(), fit.residuals(), fit.predict(), fit.predict(type="link")):
        assert len(series) == fit.nobs
        pd.testing.assert_index_equal(series.index, kept.index)
    # residuals line up with the user's rows by label
    resid = kept["Reaction"] - fit.fitted()
    assert_allclose(fit.residuals(), resid.loc[fit.residuals().index], atol=1e-9)


def test_missing_weights_and_offset_columns_counted():
    d = SS.copy()
    d["w"] = 1.0
    d["o"] = 0.0
    d.loc[[1, 2], "w"] = np.nan
    d.loc[5, "o"] = np.nan
    with pytest.warns(bm.MissingDataWarning, match=r"dropped 3 of 180 rows .* w \(2\), o \(1\)|"
                      r"dropped 3 of 180 rows .* o \(1\).* w \(2\)"):
        m = bm.Model("Reaction ~ Days + (1 | Subject)", d, weights="w", offset="o")
    assert m.design.n == 177 and 5 not in m.design.index


def test_missing_in_weights_array():
    w = np.ones(180)
    w[7] = np.nan
    with pytest.warns(bm.MissingDataWarning, match=r"weights= array \(1\)"):
        m = bm.Model("Reaction ~ Days + (1 | Subject)", SS, weights=w)
    assert m.design.n == 179 and 7 not in m.design.index


def test_nullable_and_pyarrow_missing_markers_are_missing():
    d = SS.copy()
    d["Reaction"] = d["Reaction"].astype("Float64")
    d["Subject"] = d["Subject"].astype(str).astype("string[pyarrow]")
    d.loc[0, "Reaction"] = pd.NA
    d.loc[1, "Subject"] = None
    with pytest.warns(bm.MissingDataWarning, match="dropped 2 of 180"):
        assert bm.Model(F, d).design.n == 178


def test_every_row_missing():
    d = SS.copy()
    d["x"] = np.nan
    with pytest.raises(bm.DesignError) as exc:
        bm.Model("Reaction ~ x + (1 | Subject)", d)
    assert "every row has missing values in x (180)" in str(exc.value)
    assert "no row is left to fit" in str(exc.value)


def test_unknown_na_action():
    with pytest.raises(bm.DesignError) as exc:
        bm.Model(F, SS, na_action="drop")
    assert "na_action must be 'omit'" in str(exc.value) and "'raise'" in str(exc.value)
    assert "got 'drop'" in str(exc.value)


def test_unused_columns_with_missing_values_are_ignored():
    d = SS.copy()
    d["notes"] = None
    with warnings.catch_warnings():
        warnings.simplefilter("error", bm.MissingDataWarning)
        assert bm.Model(F, d).design.n == 180


def test_glmm_outputs_follow_kept_rows():
    cbpp = bm.load_dataset("cbpp").copy()
    cbpp.index = [f"h{i}" for i in range(len(cbpp))]
    cbpp.loc["h2", "incidence"] = np.nan
    cbpp.loc["h5", "herd"] = np.nan
    f = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    with pytest.warns(bm.MissingDataWarning, match="dropped 2 of 56 rows"):
        fit = bm.Model(f, cbpp, family="binomial").fit()
    kept = cbpp.drop(index=["h2", "h5"])
    ref = bm.Model(f, kept, family="binomial").fit()
    assert fit.nobs == 54
    assert_allclose(fit.fixef, ref.fixef, rtol=1e-10)
    for series in (fit.fitted(), fit.predict(type="link")):
        pd.testing.assert_index_equal(series.index, kept.index)


def test_design_rows_are_positions_of_kept_rows_even_with_duplicate_labels():
    d = _with_na()
    d.index = np.zeros(len(d), dtype=int)                # every label the same
    with pytest.warns(bm.MissingDataWarning):
        m = bm.Model(F, d)
    assert m.design.rows.tolist() == [i for i in range(180) if i not in (3, 10, 20, 21)]
    np.testing.assert_array_equal(m.design.y, d["Reaction"].to_numpy()[m.design.rows])
