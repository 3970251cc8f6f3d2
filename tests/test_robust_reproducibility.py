"""Likelihood fits are deterministic: the same model twice gives bit-identical results."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayesmixed as bm

SS = bm.load_dataset("sleepstudy")


def _snapshot(fit) -> dict:
    return {
        "fixef": fit.fixef.to_numpy().copy(), "theta": np.asarray(fit.theta).copy(),
        "objective": fit.objective, "vcov": fit.vcov.to_numpy().copy(),
        "ranef": {g: r.to_numpy().copy() for g, r in fit.ranef.items()},
        "fitted": fit.fitted().to_numpy().copy(), "varcorr": fit.varcorr["sdcor"].to_numpy().copy(),
    }


def _assert_bitwise(a: dict, b: dict) -> None:
    for k in a:
        if isinstance(a[k], dict):
            for g in a[k]:
                assert np.array_equal(a[k][g], b[k][g]), k
        else:
            assert np.array_equal(np.asarray(a[k]), np.asarray(b[k])), k


@pytest.mark.parametrize("formula, method", [
    ("Reaction ~ Days + (Days | Subject)", "reml"),
    ("Reaction ~ Days + (Days || Subject)", "ml"),
])
def test_lmm_fit_is_bitwise_deterministic(formula, method):
    first = _snapshot(bm.Model(formula, SS).fit(method=method))
    bm.Model("Reaction ~ 1 + (1 | Subject)", SS).fit()        # other work in between: no shared state
    second = _snapshot(bm.Model(formula, SS.copy()).fit(method=method))
    _assert_bitwise(first, second)


def test_refitting_the_same_model_object():
    m = bm.Model("Reaction ~ Days + (Days | Subject)", SS)
    _assert_bitwise(_snapshot(m.fit()), _snapshot(m.fit()))


def test_design_is_deterministic():
    a = bm.Model("Reaction ~ Days + I(Days ** 2) + (Days | Subject)", SS).design
    b = bm.Model("Reaction ~ Days + I(Days ** 2) + (Days | Subject)", SS).design
    assert np.array_equal(a.X, b.X) and np.array_equal(a.y, b.y)
    assert (a.Z != b.Z).nnz == 0
    assert a.fixef_names == b.fixef_names and a.reterms[0].levels == b.reterms[0].levels


def test_glmm_fit_is_bitwise_deterministic():
    cbpp = bm.load_dataset("cbpp")
    f = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    try:
        a = bm.Model(f, cbpp, family="binomial").fit()
    except ImportError as exc:  # pragma: no cover - engine not there yet
        pytest.xfail(f"GLMM engine not importable: {exc}")
    b = bm.Model(f, cbpp, family="binomial").fit()
    assert np.array_equal(a.fixef.to_numpy(), b.fixef.to_numpy())
    assert np.array_equal(np.asarray(a.theta), np.asarray(b.theta))
    assert a.objective == b.objective
