"""Warnings users can filter as a group (BayesMixedWarning) and errors under one base."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import bayesmixed as bm
from bayesmixed import errors

SS = bm.load_dataset("sleepstudy")

WARNINGS = ["SingularFitWarning", "ConvergenceWarning", "RankDeficiencyWarning", "ScaleWarning",
            "MissingDataWarning", "SamplingWarning", "DivergenceWarning", "RhatWarning",
            "LowESSWarning", "TreeDepthWarning", "SeparationWarning"]
ERRORS = ["FormulaError", "DesignError", "FitError", "SamplingError"]


@pytest.mark.parametrize("name", WARNINGS)
def test_every_warning_is_a_bayesmixed_warning_exported_at_top_level(name):
    cls = getattr(bm, name)
    assert issubclass(cls, bm.BayesMixedWarning) and issubclass(cls, UserWarning)
    assert name in bm.__all__


@pytest.mark.parametrize("name", ERRORS)
def test_every_error_is_a_bayesmixed_error(name):
    cls = getattr(bm, name)
    assert issubclass(cls, bm.BayesMixedError)
    assert name in bm.__all__


def test_every_class_in_errors_module_is_under_a_base():
    for name in dir(errors):
        obj = getattr(errors, name)
        if isinstance(obj, type) and obj.__module__ == errors.__name__:
            assert issubclass(obj, (bm.BayesMixedError, bm.BayesMixedWarning)), name


def test_sampler_diagnostics_share_a_base():
    for cls in (bm.DivergenceWarning, bm.RhatWarning, bm.LowESSWarning, bm.TreeDepthWarning):
        assert issubclass(cls, bm.SamplingWarning)
    assert issubclass(errors.IdentifiabilityWarning, bm.BayesMixedWarning)


def test_input_errors_are_value_errors_and_fit_errors_runtime_errors():
    assert issubclass(bm.FormulaError, ValueError) and issubclass(bm.DesignError, ValueError)
    assert issubclass(bm.FitError, RuntimeError) and issubclass(bm.SamplingError, bm.FitError)
    err = bm.SamplingError("interrupted after 10 draws", partial={"draws": 10})
    assert err.partial == {"draws": 10} and "interrupted" in str(err)


def test_filter_the_whole_family_to_errors():
    d = SS.copy()
    d.loc[0, "Reaction"] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error", bm.BayesMixedWarning)
        with pytest.raises(bm.MissingDataWarning, match="dropped 1 of 180 rows"):
            bm.Model("Reaction ~ Days + (1 | Subject)", d)


def test_ignore_one_class_keeps_the_others():
    d = SS.copy()
    d.loc[0, "Reaction"] = np.nan
    d["Days2"] = 2 * d["Days"]
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", bm.RankDeficiencyWarning)
        bm.Model("Reaction ~ Days + Days2 + (1 | Subject)", d)
    kinds = [w.category for w in rec]
    assert bm.MissingDataWarning in kinds and bm.RankDeficiencyWarning not in kinds


def test_warnings_point_at_the_callers_line():
    d = SS.copy()
    d["Days2"] = 2 * d["Days"]
    d.loc[0, "Reaction"] = np.nan
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        bm.Model("Reaction ~ Days + Days2 + (1 | Subject)", d)
    assert {w.filename for w in rec} == {__file__}


def test_singular_fit_warning_is_filterable():
    d = SS.copy()
    rng = np.random.default_rng(1)
    d["g"] = rng.integers(0, 6, len(d)).astype(str)      # a factor unrelated to the response
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        bm.Model("Reaction ~ Days + (1 | g)", d).fit()
    singular = [w for w in rec if issubclass(w.category, bm.SingularFitWarning)]
    assert singular and "singular" in str(singular[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", bm.BayesMixedWarning)
        bm.Model("Reaction ~ Days + (1 | g)", d).fit()
