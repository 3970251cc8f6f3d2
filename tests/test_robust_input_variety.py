"""Input variety: categories, integer-coded groups, indexes, nullable/pyarrow dtypes, polars, quoting."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

import bayesmixed as bm
from conftest import load_reference

SS = bm.load_dataset("sleepstudy")
F = "Reaction ~ Days + (Days | Subject)"
REF = bm.Model(F, SS).fit()
LME4 = next(c for c in load_reference("lmer")["cases"] if c["id"] == "sleepstudy_corr_reml")


def _same_fit(fit, ref=REF, tol=1e-8):
    assert_allclose(fit.fixef.to_numpy(), ref.fixef.to_numpy(), rtol=tol)
    assert_allclose(fit.theta, ref.theta, rtol=1e-6, atol=1e-8)
    assert_allclose(fit.objective, ref.objective, rtol=1e-12)


def test_reference_fit_is_lme4s():
    assert_allclose(REF.fixef.to_numpy(), LME4["fixef"], rtol=1e-6)
    assert_allclose(REF.reml_criterion, LME4["criterion"], rtol=1e-9)


def test_categorical_with_unused_levels_drops_them():
    d = SS.copy()
    d["Subject"] = d["Subject"].cat.add_categories(["999", "000"])
    m = bm.Model(F, d)
    assert m.design.reterms[0].n_levels == 18
    assert "999" not in m.design.reterms[0].levels
    fit = m.fit()
    _same_fit(fit)
    assert list(fit.ranef["Subject"].index) == list(REF.ranef["Subject"].index)


def test_integer_coded_grouping_factor_is_categorical():
    d = SS.copy()
    d["Subject"] = d["Subject"].astype(int)
    m = bm.Model(F, d)
    t = m.design.reterms[0]
    assert t.n_levels == 18 and t.levels[:3] == ("308", "309", "310")
    _same_fit(m.fit())


def test_float_coded_grouping_factor_labels_like_r():
    d = SS.copy()
    d["Subject"] = d["Subject"].astype(int).astype(float)
    assert bm.Model(F, d).design.reterms[0].levels[:2] == ("308", "309")


@pytest.mark.parametrize("index", [
    pd.RangeIndex(1000, 1180),
    pd.Index(np.arange(180)[::-1] * 7),
    pd.Index(np.repeat(np.arange(90), 2)),                                   # non-unique
    pd.Index([f"obs-{i}" for i in range(180)]),
    pd.MultiIndex.from_arrays([np.repeat(np.arange(18), 10), np.tile(np.arange(10), 18)]),
], ids=["range", "permuted-int", "non-unique", "strings", "multi"])
def test_index_does_not_matter_and_labels_are_kept(index):
    d = SS.copy()
    d.index = index
    fit = bm.Model(F, d).fit()
    _same_fit(fit)
    for s in (fit.fitted(), fit.residuals(), fit.predict()):
        pd.testing.assert_index_equal(s.index, index)
    assert_allclose(fit.fitted().to_numpy(), REF.fitted().to_numpy(), rtol=1e-8)


def test_pandas_nullable_dtypes():
    d = SS.copy()
    d["Reaction"] = d["Reaction"].astype("Float64")
    d["Days"] = d["Days"].astype("Int64")
    d["Subject"] = d["Subject"].astype(str).astype("string")
    _same_fit(bm.Model(F, d).fit())
    d["late"] = (SS["Days"] > 4).astype("boolean")
    m = bm.Model("Reaction ~ late + (1 | Subject)", d)
    assert m.design.fixef_names == ("Intercept", "late[T.True]")   # a boolean is a factor (R: lateTRUE)
    assert m.design.X[:, 1].sum() == 90


def test_pyarrow_dtypes():
    d = SS.copy()
    d["Reaction"] = d["Reaction"].astype("float64[pyarrow]")
    d["Days"] = d["Days"].astype("int64[pyarrow]")
    d["Subject"] = d["Subject"].astype(str).astype("string[pyarrow]")
    _same_fit(bm.Model(F, d).fit())


def test_polars_frame_is_converted():
    pl = pytest.importorskip("polars")
    frame = pl.from_pandas(SS)
    fit = bm.Model(F, frame).fit()
    _same_fit(fit)
    assert fit.design.reterms[0].levels[:2] == ("308", "309")


def test_dict_of_columns():
    data = {c: SS[c].to_numpy() for c in SS.columns}
    _same_fit(bm.Model(F, data).fit())


def test_names_needing_quotes():
    d = SS.rename(columns={"Days": "days since start", "Reaction": "re.action"})
    q = bm.Model('Q("re.action") ~ Q("days since start") + (Q("days since start") | Subject)', d)
    b = bm.Model("`re.action` ~ `days since start` + (`days since start` | Subject)", d)
    assert b.design.fixef_names == ("Intercept", "days since start")
    assert b.design.reterms[0].cnames == ("Intercept", "days since start")
    fq, fb = q.fit(), b.fit()
    _same_fit(fq)
    _same_fit(fb)
    nd = pd.DataFrame({"days since start": [2.0], "Subject": ["308"]})
    assert_allclose(fb.predict(nd).iloc[0], REF.predict(pd.DataFrame({"Days": [2.0], "Subject": ["308"]})).iloc[0])


def test_dotted_names_without_quotes():
    d = SS.rename(columns={"Reaction": "re.action"})
    # formulaic reads a.b as a name when the column exists, as R does
    fit = bm.Model("re.action ~ Days + (Days | Subject)", d).fit()
    _same_fit(fit)


def test_string_grouping_factor_and_bool_predictor():
    d = SS.copy()
    d["Subject"] = "s" + d["Subject"].astype(str)
    d["late"] = d["Days"] > 4
    m = bm.Model("Reaction ~ late + (1 | Subject)", d)
    assert m.design.fixef_names == ("Intercept", "late[T.True]")   # a boolean is a factor (R: lateTRUE)
    assert m.design.reterms[0].levels[0] == "s308"
