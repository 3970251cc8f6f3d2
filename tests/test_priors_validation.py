"""Priors are checked when the model is built (issue 11).

The ``bm.Model(...)`` tests below need ``Model.__init__`` to call
``bayesmixed.bayes.priors.validate_priors(self.design, self._priors_override)``
(wired by the integrator after the results refactor); until then only the tests of
``validate_priors`` itself pass. They are kept together so that the wiring is checked
by the same cases.
"""

from __future__ import annotations

import pytest

import bayesmixed as bm
from bayesmixed.bayes.priors import validate_priors

F = "Reaction ~ Days + (Days | Subject)"


@pytest.fixture(scope="module")
def sleep():
    return bm.load_dataset("sleepstudy")


@pytest.fixture(scope="module")
def design(sleep):
    return bm.Model(F, sleep).design


BAD = [
    ({"sd_Subjects": ("HalfNormal", {"sigma": 2})}, r"unknown prior name\(s\) \['sd_Subjects'\] "
                                                     r"\(did you mean 'sd_Subject'"),
    ({"days": ("Normal", {"mu": 0, "sigma": 1})}, r"did you mean 'Days'\?"),
    ({"sd_Subject": ("Normal", {"mu": 0, "sigma": 2})}, r"'sd_Subject' is a Normal.*positive values"),
    ({"sigma": ("StudentT", {"nu": 3, "mu": 0, "sigma": 2})}, r"'sigma' is a StudentT.*HalfStudentT"),
    ({"sd_Subject[Days]": ("Uniform", {"lower": -1, "upper": 5})}, r"negative"),
    ({"Days": ("Normal", {"mu": 0, "sigma": -1})}, r"sigma=-1 must be > 0"),
    ({"Days": ("Normal", {"mu": 0, "sigma": "wide"})}, r"must be a finite number"),
    ({"Days": ("Normal", {"mu": float("nan")})}, r"must be a finite number"),
    ({"sigma": ("Exponential", {})}, r"Exponential needs \['lam'\]"),
    ({"sigma": ("Gamma", {"alpha": 0, "beta": 1})}, r"alpha=0 must be > 0"),
    ({"Days": ("Uniform", {"lower": 2, "upper": 1})}, r"lower < upper"),
    ({"Days": ("Normall", {"mu": 0})}, r"unknown distribution"),
    ({"lkj_eta": 0}, r"positive number"),
    (["Days"], r"priors= must be a dict"),
]


@pytest.mark.parametrize("overrides, message", BAD)
def test_validate_priors_refuses(design, overrides, message):
    with pytest.raises(bm.DesignError, match=message):
        validate_priors(design, overrides)


def test_validate_priors_accepts_and_resolves(design):
    pr = validate_priors(design, {"sd_Subject": ("Exponential", {"lam": 0.1}), "Days": ("StudentT", {"nu": 3}),
                                  "sigma": ("Uniform", {"lower": 0, "upper": 100}), "lkj_eta": 3})
    assert pr.sd["Subject"]["Days"].distribution == "Exponential"
    assert str(pr.fixef["Days"]) == "StudentT(nu=3)"
    assert pr.lkj_eta["Subject"] == 3.0
    assert validate_priors(design, None).names == validate_priors(design, {}).names


# ---- through bm.Model(...): pass once Model.__init__ calls validate_priors ---------------------------

@pytest.mark.parametrize("overrides, message", BAD[:-1])
def test_model_refuses_bad_priors_when_built(sleep, overrides, message):
    with pytest.raises(bm.DesignError, match=message):
        bm.Model(F, sleep, priors=overrides)


def test_model_with_good_priors_builds(sleep):
    m = bm.Model(F, sleep, priors={"sd_Subject": ("HalfNormal", {"sigma": 2})})
    assert m.priors.sd["Subject"]["Intercept"].args == {"sigma": 2}
