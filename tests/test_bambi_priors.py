"""to_bambi() carries the model's priors; bambi's p(successes, trials) response is accepted (issue 11)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import bayesmixed as bm
from bayesmixed.formula.parse import parse_formula

bmb = pytest.importorskip("bambi")


def _close(a, b) -> bool:
    return np.allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float))


@pytest.fixture(scope="module")
def sleep():
    return bm.load_dataset("sleepstudy")


@pytest.fixture(scope="module")
def cbpp():
    return bm.load_dataset("cbpp")


def _quiet_to_bambi(m, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return m.to_bambi(**kw)


def test_user_and_default_priors_reach_bambi(sleep):
    m = bm.Model("Reaction ~ Days + (Days || Subject)", sleep,
                 priors={"sd_Subject": ("HalfNormal", {"sigma": 2}), "sd_Subject.1": ("HalfNormal", {"sigma": 2}),
                         "Days": ("StudentT", {"nu": 3, "mu": 1, "sigma": 5})})
    with warnings.catch_warnings():
        warnings.simplefilter("error", bm.BayesMixedWarning)       # every prior is carried
        b = _quiet_to_bambi(m)
    comp = b.parameters["mu"]
    ours = m.priors
    icpt = comp.intercept_term.prior
    assert icpt.name == "Normal"
    assert _close(icpt.args["mu"], ours.fixef["Intercept"].args["mu"])
    assert _close(icpt.args["sigma"], ours.fixef["Intercept"].args["sigma"])
    days = comp.common_terms["Days"].prior
    assert days.name == "StudentT" and _close(days.args["nu"], 3) and _close(days.args["sigma"], 5)
    for term in ("1|Subject", "Days|Subject"):           # the HalfNormal(2) that became HalfNormal(261)
        hyper = comp.group_specific_terms[term].prior.args["sigma"]
        assert hyper.name == "HalfNormal" and _close(hyper.args["sigma"], 2.0)
    sigma = b.marginal_parameters["sigma"].prior
    assert sigma.name == ours.aux["sigma"].distribution == "Exponential"
    assert _close(sigma.args["lam"], ours.aux["sigma"].args["lam"])


def test_factor_terms_get_vector_priors(cbpp):
    m = bm.Model("p(incidence, size) ~ period + (1 | herd)", cbpp, family="binomial",
                 priors={"period[T.3]": ("Normal", {"mu": 1, "sigma": 3}),
                         "sd_herd": ("Exponential", {"lam": 2})})
    b = _quiet_to_bambi(m)
    comp = b.parameters["p"]
    period = comp.common_terms["period"].prior
    want = [m.priors.fixef[f"period[T.{k}]"] for k in (2, 3, 4)]
    assert _close(period.args["mu"], [p.args["mu"] for p in want])
    assert _close(period.args["sigma"], [p.args["sigma"] for p in want])
    assert _close(period.args["mu"], [0, 1, 0])
    hyper = comp.group_specific_terms["1|herd"].prior.args["sigma"]
    assert hyper.name == "Exponential" and _close(hyper.args["lam"], 2)


def test_negative_binomial_alpha_and_lkj_warning(sleep):
    g = bm.load_dataset("grouseticks")
    m = bm.Model("TICKS ~ YEAR + (1 | BROOD)", g, family="negative_binomial",
                 priors={"alpha": ("Gamma", {"alpha": 2, "beta": 0.5})})
    alpha = _quiet_to_bambi(m).marginal_parameters["alpha"].prior
    assert alpha.name == "Gamma" and _close(alpha.args["alpha"], 2) and _close(alpha.args["beta"], 0.5)
    corr = bm.Model("Reaction ~ Days + (Days | Subject)", sleep)
    with pytest.warns(bm.BayesMixedWarning, match="cannot carry these priors.*lkj_eta_Subject"):
        _quiet_to_bambi(corr, allow_uncorrelated=True)


def test_bambi_priors_given_to_to_bambi_win(sleep):
    m = bm.Model("Reaction ~ Days + (1 | Subject)", sleep)
    b = _quiet_to_bambi(m, priors={"Days": bmb.Prior("Normal", mu=0, sigma=1)})
    assert _close(b.parameters["mu"].common_terms["Days"].prior.args["sigma"], 1)
    assert _close(b.parameters["mu"].intercept_term.prior.args["sigma"],
                  m.priors.fixef["Intercept"].args["sigma"])


# ---- bambi's p(successes, trials) response -------------------------------------------------------

def test_p_response_is_cbind(cbpp):
    p = parse_formula("p(incidence, size) ~ period + (1 | herd)")
    assert p.response == "cbind(incidence, size - incidence)"
    assert p.response_variables == {"incidence", "size"}
    assert parse_formula("p(a + b, 10) ~ x").response == "cbind(a + b, 10 - (a + b))"
    a = bm.Model("p(incidence, size) ~ period + (1 | herd)", cbpp, family="binomial").fit()
    b = bm.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial").fit()
    np.testing.assert_allclose(a.fixef.to_numpy(), b.fixef.to_numpy(), rtol=0, atol=0)
    assert a.design.response_name == "cbind(incidence, size - incidence)"


@pytest.mark.parametrize("formula, got", [("p(incidence) ~ 1", 1), ("p(a, b, c) ~ 1", 3)])
def test_p_response_with_wrong_arguments_says_how_to_write_it(formula, got):
    with pytest.raises(bm.FormulaError, match=rf"p\(\) takes two arguments, p\(successes, trials\), got {got}"):
        parse_formula(formula)


def test_other_responses_are_untouched():
    assert parse_formula("np.log(y) ~ x").response == "np.log(y)"
    assert parse_formula("p(a, n) + 1 ~ x").response == "p(a, n) + 1"
