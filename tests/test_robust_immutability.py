"""The user's DataFrame is never modified: values, dtypes, index, column order."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import bayesmixed as bm

SS = bm.load_dataset("sleepstudy")


def _frames():
    base = SS.copy()
    base["x"] = np.sin(np.arange(180.0))
    base["w"] = 1.0 + (np.arange(180) % 3)
    yield "numpy", base
    d = base.copy()
    d["Subject"] = d["Subject"].cat.add_categories(["unused"])   # categorical with an unused level
    d.index = np.repeat(np.arange(90), 2)[::-1]                  # non-unique, non-default index
    d.loc[d.index[7], "Reaction"] = np.nan
    yield "categorical", d
    d = base.copy()
    d["Reaction"] = d["Reaction"].astype("Float64")
    d["Days"] = d["Days"].astype("Int64")
    d["Subject"] = d["Subject"].astype(str).astype("string")
    d["flag"] = (d["Days"] > 4).astype("boolean")
    d.loc[3, "Reaction"] = pd.NA
    d.loc[5, "flag"] = pd.NA
    yield "nullable", d
    d = base.copy()
    d["Reaction"] = d["Reaction"].astype("float64[pyarrow]")
    d["Days"] = d["Days"].astype("int64[pyarrow]")
    d["Subject"] = d["Subject"].astype(str).astype("string[pyarrow]")
    d.loc[4, "Days"] = None
    d.index = [f"row{i}" for i in range(180)]
    yield "pyarrow", d


@pytest.mark.parametrize("name, data", list(_frames()), ids=lambda v: v if isinstance(v, str) else "")
def test_model_fit_predict_summary_leave_data_alone(name, data):
    before = data.copy(deep=True)
    cols, dtypes, index = list(data.columns), data.dtypes.copy(), data.index.copy()
    formula = "Reaction ~ Days + x + (Days | Subject)" + (" + flag" if "flag" in data else "")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.BayesMixedWarning)
        model = bm.Model(formula, data, weights="w")
        fit = model.fit()
        fit.predict(data, allow_new_levels=True)
        fit.predict(data, include_random=False)
        str(fit.summary())
        fit.summary()._repr_html_()
        fit.tidy()
        fit.fitted(), fit.residuals(), fit.ranef, fit.coef, fit.varcorr
        bm.Model("Reaction ~ scale(Days) + I(x ** 2) + (1 | Subject)", data).fit().predict(data)
    pd.testing.assert_frame_equal(data, before, check_exact=True)
    assert list(data.columns) == cols
    pd.testing.assert_series_equal(data.dtypes, dtypes)
    pd.testing.assert_index_equal(data.index, index, exact=True)
    assert fit.nobs == before[["Reaction", "Days", "x", "Subject", "w"]
                              + (["flag"] if "flag" in data else [])].dropna().shape[0]


def test_failed_model_leaves_data_alone():
    d = SS.copy()
    d.loc[2, "Reaction"] = np.inf
    d.loc[3, "Days"] = np.nan
    before = d.copy(deep=True)
    with pytest.warns(bm.MissingDataWarning), pytest.raises(bm.DesignError):
        bm.Model("Reaction ~ Days + (1 | Subject)", d)
    pd.testing.assert_frame_equal(d, before, check_exact=True)


def test_design_arrays_do_not_alias_the_data():
    d = SS.copy()
    before = d.copy(deep=True)
    m = bm.Model("Reaction ~ Days + (Days | Subject)", d)
    for arr in (m.design.y, m.design.X, m.design.reterms[0].Xi):
        try:             # views of the user's columns are read-only (pandas copy-on-write)
            arr[:] = 0.0
        except ValueError as exc:
            assert "read-only" in str(exc)
    pd.testing.assert_frame_equal(d, before, check_exact=True)


def test_newdata_left_alone():
    fit = bm.Model("Reaction ~ Days + (1 | Subject)", SS).fit()
    nd = pd.DataFrame({"Days": pd.array([1, None], dtype="Int64"),
                       "Subject": pd.Categorical(["308", "new"], categories=["new", "308", "x"])},
                      index=["a", "b"])
    before = nd.copy(deep=True)
    out = fit.predict(nd, allow_new_levels=True)
    assert list(out.index) == ["a", "b"] and np.isnan(out["b"])
    pd.testing.assert_frame_equal(nd, before, check_exact=True)


def test_glmm_leaves_arrow_backed_data_alone():
    cbpp = bm.load_dataset("cbpp").copy()
    cbpp["incidence"] = cbpp["incidence"].astype("int64[pyarrow]")
    cbpp["herd"] = cbpp["herd"].astype(str).astype("string[pyarrow]")
    cbpp.loc[0, "size"] = np.nan
    before = cbpp.copy(deep=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.BayesMixedWarning)
        fit = bm.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp,
                       family="binomial").fit()
        fit.predict(cbpp.iloc[1:])
        str(fit.summary())
    assert fit.nobs == 55
    pd.testing.assert_frame_equal(cbpp, before, check_exact=True)
