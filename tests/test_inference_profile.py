"""Profile-likelihood intervals against lme4's ``confint(fit)`` (tests/reference/inference_local.json)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import bayesmixed as bm
from bayesmixed.inference.profile import profile, profile_confint
from bayesmixed.inference.spline import BackSpline, linear_inverse
from bayesmixed.inference.varpar import VarParMap, psd_cholesky
from _inference_ref import lme4_name, reference

CASES = {
    "Dyestuff": ("Yield ~ 1 + (1 | Batch)", "Dyestuff", "reml"),
    "Penicillin": ("diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin", "reml"),
    "sleepstudy": ("Reaction ~ Days + (Days | Subject)", "sleepstudy", "reml"),
    "sleepstudy_ml": ("Reaction ~ Days + (Days | Subject)", "sleepstudy", "ml"),
    "sleepstudy_uncor": ("Reaction ~ Days + (Days || Subject)", "sleepstudy", "reml"),
    "orthodont_interaction": ("distance ~ age * Sex + (age | Subject)", "Orthodont", "reml"),
}
SLOW = {"sleepstudy", "sleepstudy_ml", "sleepstudy_uncor", "orthodont_interaction"}   # 5-10 s each


@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.slow) if c in SLOW else c for c in CASES])
def test_profile_confint_matches_lme4(case):
    formula, data, method = CASES[case]
    fit = bm.Model(formula, bm.load_dataset(data)).fit(method=method)
    ci = profile_confint(fit)
    ref = reference()["profile"][case]
    assert [lme4_name(r) for r in ci.index] == ref["rows"]
    np.testing.assert_allclose(ci.iloc[:, 0], ref["lower"], rtol=1e-4)
    np.testing.assert_allclose(ci.iloc[:, 1], ref["upper"], rtol=1e-4)
    assert list(ci.columns) == ["2.5 %", "97.5 %"]


@pytest.mark.slow
def test_profile_3x3_covariance_matches_lme4():
    # correlations of a 3 x 3 term meet the positive-definiteness wall: restarts keep BOBYQA on the profile
    d = bm.load_dataset("sleepstudy").assign(D2=lambda x: (x["Days"] - 4.5) ** 2 / 10)
    fit = bm.Model("Reaction ~ Days + (Days + D2 | Subject)", d).fit()
    ci = profile_confint(fit, parm="theta_")
    ref = reference()["profile"]["sleepstudy_3x3"]
    assert [lme4_name(r) for r in ci.index] == ref["rows"]
    np.testing.assert_allclose(ci.iloc[:, 0], ref["lower"], rtol=1e-3)
    np.testing.assert_allclose(ci.iloc[:, 1], ref["upper"], rtol=1e-3)


def test_profile_parm_level_and_reuse():
    fit = bm.Model("Yield ~ 1 + (1 | Batch)", bm.load_dataset("Dyestuff")).fit()
    pr = profile(fit, parm="theta_")
    assert list(pr) == ["sd_(Intercept)|Batch", "sigma"]
    for tab in pr.values():
        assert np.all(np.diff(tab["value"]) > 0) and np.all(np.diff(tab["zeta"]) > 0)
    ci95 = profile_confint(fit, profiles=pr)
    ci80 = profile_confint(fit, level=0.8, profiles=pr)
    assert list(ci80.columns) == ["10 %", "90 %"]
    assert np.all(ci80.iloc[:, 0] > ci95.iloc[:, 0]) and np.all(ci80.iloc[:, 1] < ci95.iloc[:, 1])
    with pytest.raises(bm.errors.DesignError, match="unknown parameter"):
        profile(fit, parm=["nope"])


def test_singular_fit_lower_end_is_zero():
    # Dyestuff2: the REML batch variance is 0; lme4 reports 0 as the lower end
    with pytest.warns(bm.errors.SingularFitWarning):
        fit = bm.Model("Yield ~ 1 + (1 | Batch)", bm.load_dataset("Dyestuff2")).fit()
    ci = profile_confint(fit, parm=["sd_(Intercept)|Batch"])
    assert ci.iloc[0, 0] == 0.0 and ci.iloc[0, 1] > 0


def test_backspline_matches_r():
    # R: backSpline(interpSpline(x, z)) and predict(), see the numbers printed by splines 4.2.2
    x = np.arange(-2, 2.51, 0.5)
    z = x + 0.1 * x**3 - 0.05 * x**2
    got = BackSpline(x, z)([-1.96, -0.7, 0, 0.3, 1.96, 2.9])
    want = [-1.504761904762, -0.650590927656, 0.0, 0.301735486555, 1.649581797642, 2.130434782609]
    np.testing.assert_allclose(got, want, atol=1e-11)
    got = BackSpline([0, 0.3, 0.9, 1.5, 2.8], [-2.5, -1.2, 0, 1.1, 2.2])([-1.96, -0.5, 0.5, 1.96])
    np.testing.assert_allclose(got, [0.124615384615, 0.601961277137, 1.178787244767, 2.406891097395], atol=1e-11)
    assert np.isnan(BackSpline(x, z)([10.0])[0])
    with pytest.raises(ValueError):
        BackSpline([0, 1, 2, 3], [0, 2, 1, 3])
    np.testing.assert_allclose(linear_inverse([0, 1, 2], [-1, 0, 3], [-0.5]), [0.5])


def test_varpar_roundtrip_and_psd():
    fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
    vp = VarParMap(fit.design)
    pars = vp.from_theta(fit.theta, fit.sigma)
    np.testing.assert_allclose(vp.to_theta(pars), fit.theta, rtol=1e-10)
    vc = fit.varcorr
    np.testing.assert_allclose(pars, vc["sdcor"].to_numpy()[[0, 2, 1, 3]], rtol=1e-10)
    np.testing.assert_allclose(vp.to_theta([10.0, 1.0, 2.0, 5.0]), [2.0, 0.4, 0.0], atol=1e-12)
    assert psd_cholesky(np.array([[1.0, 0.0], [0.0, -1.0]])) is None


@pytest.mark.slow
def test_glmer_profile_confint_matches_lme4():
    fit = bm.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)", bm.load_dataset("cbpp"),
                   family="binomial").fit()
    ci = profile_confint(fit)
    ref = reference()["profile"]["cbpp_glmer"]
    assert list(ci.index) == ["sd_(Intercept)|herd", "Intercept", "period[T.2]", "period[T.3]", "period[T.4]"]
    assert len(ref["rows"]) == len(ci) and ref["rows"][0] == ci.index[0]
    # the Laplace criterion is optimised to ~1e-8 on both sides: ends agree to ~5e-5
    np.testing.assert_allclose(ci.iloc[:, 0], ref["lower"], rtol=1e-3)
    np.testing.assert_allclose(ci.iloc[:, 1], ref["upper"], rtol=1e-3)


def test_glmm_with_scale_is_refused():
    d = bm.load_dataset("cbpp").assign(y=lambda x: x["incidence"] + 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = bm.Model("y ~ period + (1 | herd)", d, family="gamma").fit()
    with pytest.raises(bm.errors.DesignError, match="scale parameter"):
        profile_confint(fit)
