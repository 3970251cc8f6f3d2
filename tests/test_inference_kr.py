"""Kenward-Roger adjusted covariance and df against pbkrtest / lmerTest (inference_local.json)."""

from __future__ import annotations

import numpy as np
import pytest

import bayesmixed as bm
from bayesmixed.inference.kenward_roger import kenward_roger
from _inference_ref import orthodont_unbalanced, reference, sleep_unbalanced

CASES = {
    "sleepstudy_unbalanced": ("Reaction ~ Days + (Days | Subject)", sleep_unbalanced),
    "orthodont_unbalanced": ("distance ~ age + Sex + (age | Subject)", orthodont_unbalanced),
    "penicillin": ("diameter ~ 1 + (1 | plate) + (1 | sample)", lambda: bm.load_dataset("Penicillin")),
}


@pytest.mark.parametrize("case", list(CASES))
def test_kenward_roger_matches_pbkrtest(case):
    formula, data = CASES[case]
    fit = bm.Model(formula, data()).fit()
    kr = kenward_roger(fit)
    ref = reference()["kenward_roger"][case]
    np.testing.assert_allclose(kr.df.to_numpy(), np.atleast_1d(ref["df"]), rtol=1e-3)
    np.testing.assert_allclose(kr.table["std_error"].to_numpy(), np.atleast_1d(ref["se"]), rtol=1e-3)
    np.testing.assert_allclose(kr.vcov.to_numpy(), np.reshape(ref["vcov_adj"], kr.vcov.shape), rtol=1e-3,
                               atol=1e-6 * np.abs(kr.vcov.to_numpy()).max())
    # the unadjusted vcov is lme4's
    np.testing.assert_allclose(kr.vcov_unadjusted.to_numpy(), np.reshape(ref["vcov"], kr.vcov.shape), rtol=1e-3)
    # on unbalanced data Kenward-Roger and Satterthwaite differ (what makes the test worth having)
    if case != "penicillin":
        assert np.max(np.abs(np.atleast_1d(ref["df"]) - np.atleast_1d(ref["satterthwaite_df"]))) > 0.3


def test_kenward_roger_balanced_equals_satterthwaite_and_ml_refit():
    d = bm.load_dataset("sleepstudy")
    reml = bm.Model("Reaction ~ Days + (Days | Subject)", d).fit()
    kr = kenward_roger(reml)
    np.testing.assert_allclose(kr.df.to_numpy(), reml.satterthwaite["df"].to_numpy(), rtol=1e-3)
    np.testing.assert_allclose(kr.table["std_error"], reml.fixef_se, rtol=1e-6)   # balanced: no inflation
    ml = bm.Model("Reaction ~ Days + (Days | Subject)", d).fit(method="ml")
    np.testing.assert_allclose(kenward_roger(ml).df, kr.df, rtol=1e-5)          # refitted by REML
    L = np.array([[0.0, 1.0]])
    assert kr.ddf(L) == pytest.approx(kr.df["Days"])
    assert kr.ddf(np.eye(2)) > 0


def test_kenward_roger_with_weights_scales_the_residual():
    # constant weights w: the model is the same with sigma^2 / w, so df and the adjusted vcov are unchanged
    d = sleep_unbalanced()
    base = kenward_roger(bm.Model("Reaction ~ Days + (Days | Subject)", d).fit())
    w = kenward_roger(bm.Model("Reaction ~ Days + (Days | Subject)", d, weights=np.full(len(d), 4.0)).fit())
    np.testing.assert_allclose(w.df, base.df, rtol=1e-4)
    np.testing.assert_allclose(w.vcov.to_numpy(), base.vcov.to_numpy(), rtol=1e-4)


def test_woodbury_equals_pbkrtest_dense_algorithm():
    from bayesmixed.inference.kenward_roger import vcov_adjusted

    d = sleep_unbalanced()
    fit = bm.Model("Reaction ~ Days + (Days || Subject)", d, weights=np.linspace(1, 2, len(d))).fit()
    A, P, W = vcov_adjusted(fit)
    B, P2, W2 = vcov_adjusted(fit, dense=True)
    np.testing.assert_allclose(A, B, rtol=1e-10)
    np.testing.assert_allclose(W, W2, rtol=1e-8)
