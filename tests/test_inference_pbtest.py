"""Parametric-bootstrap LRT against pbkrtest's PBmodcomp (inference_local.json)."""

from __future__ import annotations

import numpy as np
import pytest

import bayesmixed as bm
from bayesmixed.inference.pbtest import pb_test
from _inference_ref import reference, sleep_unbalanced

CASES = {
    "orthodont_interaction": ("distance ~ age * Sex + (1 | Subject)", "distance ~ age + Sex + (1 | Subject)",
                              lambda: bm.load_dataset("Orthodont")),
    "sleep_unb_days2": ("Reaction ~ Days + I(Days ** 2) + (1 | Subject)", "Reaction ~ Days + (1 | Subject)",
                        sleep_unbalanced),
}


def _fits(case, method="reml"):
    big, small, data = CASES[case]
    d = data()
    return bm.Model(small, d).fit(method=method), bm.Model(big, d).fit(method=method)


@pytest.mark.parametrize("case", list(CASES))
def test_pb_statistic_and_structure(case):
    m0, m1 = _fits(case)                       # REML fits: refitted by ML as pbkrtest does
    res = pb_test(m1, m0, nsim=15, seed=3)     # either order
    ref = reference()["pbmodcomp"][case]
    assert res.loc["LRT", "stat"] == pytest.approx(ref["stat"], rel=1e-6)
    assert res.loc["LRT", "df"] == ref["df"]
    assert res.loc["LRT", "p_value"] == pytest.approx(ref["p_chisq"], rel=1e-5)
    a = res.attrs
    assert a["nsim"] == 15 and len(a["ref"]) == 15 and a["n_failed"] == 0
    assert res.loc["PBtest", "p_value"] == pytest.approx((1 + a["n_extreme"]) / (1 + a["npos"]))
    again = pb_test(m0, m1, nsim=15, seed=3)
    np.testing.assert_array_equal(again.attrs["ref"], a["ref"])


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_pb_pvalue_within_monte_carlo_error(case):
    m0, m1 = _fits(case, method="ml")
    ref = reference()["pbmodcomp"][case]
    n = ref["nsim"]
    res = pb_test(m0, m1, nsim=n, seed=7)
    p, q = res.loc["PBtest", "p_value"], ref["p_pb"]
    se = np.sqrt(2 * q * (1 - q) / n)          # two independent Monte Carlo estimates
    assert abs(p - q) < 4 * se
    r = res.attrs["ref"]
    assert abs(r.mean() - ref["ref_mean"]) < 4 * np.sqrt(2) * ref["ref_sd"] / np.sqrt(n)


def test_pb_glmm_and_mismatched_rows():
    d = bm.load_dataset("cbpp")
    m0 = bm.Model("cbind(incidence, size - incidence) ~ 1 + (1 | herd)", d, family="binomial").fit()
    m1 = bm.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)", d, family="binomial").fit()
    res = pb_test(m0, m1, nsim=4, seed=1)
    assert res.loc["LRT", "stat"] == pytest.approx(2 * (m1.loglik - m0.loglik))
    assert res.loc["LRT", "df"] == 3 and np.all(np.isfinite(res.attrs["ref"]))
    other = bm.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)", d.iloc[:40],
                     family="binomial").fit()
    with pytest.raises(bm.errors.DesignError, match="different rows"):
        pb_test(m0, other, nsim=2, seed=1)
