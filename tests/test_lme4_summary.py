"""The printed summary against lme4's (tests/reference/lme4_extra.json, ``summaries[]``).

lme4's ``AIC BIC logLik deviance df.resid`` line prints -2 logLik in the deviance
column (``summary(fit)$AICtab``), while ``deviance(fit)`` of a GLMM is the sum of the
conditional deviance residuals; the correlation of the fixed effects is printed as a
lower triangle with names shortened by R's ``abbreviate()``. Lines are compared without
the trailing blanks R's ``print`` leaves.

The optimum found here may be slightly better than lme4's default fit (see
tests/test_glmer_parity.py), so numbers are compared to the better of lme4's default and
tight-tolerance fits where glmm_hessian.json has one, to 1e-6 relative otherwise.
"""

from __future__ import annotations

import re
import warnings
from functools import lru_cache

import numpy as np
import pandas as pd
import pytest

import bayesmixed as bm
from bayesmixed.errors import DesignError
from bayesmixed.results.display import aictab_lines, fixef_correlation_text, r_abbreviate, r_format
from conftest import load_reference

SUMMARIES = load_reference("lme4_extra")["summaries"]
TIGHT = {c["id"]: c for c in load_reference("glmm_hessian")["cases"]}
NUMBER = re.compile(r"-?\d+\.\d+")


@lru_cache(maxsize=None)
def _fit(case_id: str):
    case = next(c for c in SUMMARIES if c["id"] == case_id)
    family = "negativebinomial" if "glmer.nb" in case["engine"] else "binomial"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bm.Model(case["formula"].replace("^", "**"), bm.load_dataset(case["dataset"]),
                        family=family).fit()


def _best_criterion(case) -> float:
    ref = TIGHT.get(case["id"])
    return ref["criterion_best"] if ref is not None else case["minus2loglik"]


def _rstrip(lines):
    return [line.rstrip() for line in lines]


def _r_names(fit, case) -> pd.DataFrame:
    corr = fit.summary().correlation
    assert corr.shape == (len(case["fixef_names"]),) * 2
    return pd.DataFrame(corr.to_numpy(), index=case["fixef_names"], columns=case["fixef_names"])


@pytest.mark.parametrize("case", SUMMARIES, ids=lambda c: c["id"])
def test_aictab_formatter_reproduces_lme4s_lines(case):
    tab = case["AICtab"]
    assert tab["deviance"] == pytest.approx(-2 * tab["logLik"], rel=1e-12)
    lines = aictab_lines(tab["AIC"], tab["BIC"], tab["logLik"], tab["deviance"], tab["df.resid"])
    assert lines == _rstrip(case["aic_lines"])


@pytest.mark.parametrize("case", SUMMARIES, ids=lambda c: c["id"])
def test_glmm_summary_prints_lme4s_criteria_line(case):
    fit = _fit(case["id"])
    text = str(fit.summary())
    lines = text.splitlines()
    i = lines.index(_rstrip(case["aic_lines"])[0])
    assert lines[i - 1] == ""                                   # a blank line before, as lme4
    family = next(line for line in case["printed"] if line.startswith(" Family:"))
    mine = next(line for line in lines if line.startswith(" Family:"))
    assert NUMBER.sub("#", mine) == NUMBER.sub("#", family)     # Negative Binomial(2.0492)  ( log )
    # the shape to MASS's 4 decimals (glmer.nb's alternating fit stops at 2.04924, the joint one here
    # at 2.04928, slightly better)
    np.testing.assert_allclose([float(v) for v in NUMBER.findall(mine)],
                               [float(v) for v in NUMBER.findall(family)], atol=1.5e-4)
    assert lines[i + 1] == _rstrip(case["aic_lines"])[1]
    aic, bic, loglik, dev, df = (float(v) for v in lines[i + 1].split())
    best = _best_criterion(case)
    minus2 = -2 * fit.loglik
    assert minus2 <= best + 1e-8 * abs(best)                    # lme4's optimum, or a better one
    assert minus2 == pytest.approx(best, rel=1e-6)
    assert dev == pytest.approx(minus2, abs=0.051)              # the column is -2 logLik ...
    assert fit.deviance == pytest.approx(case["deviance_fun"], rel=1e-4, abs=5e-3)   # ... not deviance()
    assert abs(fit.deviance - case["minus2loglik"]) > 1
    assert int(df) == case["AICtab"]["df.resid"] == fit.df_resid
    tab = case["AICtab"]                                         # the same penalties as lme4's
    assert fit.aic - minus2 == pytest.approx(tab["AIC"] - tab["deviance"], rel=1e-12)
    assert fit.bic - minus2 == pytest.approx(tab["BIC"] - tab["deviance"], rel=1e-12)


@pytest.mark.parametrize("case", SUMMARIES, ids=lambda c: c["id"])
def test_correlation_formatter_reproduces_lme4s_block(case):
    names = case["fixef_names"]
    corr = pd.DataFrame(case["fixef_corr"], index=names, columns=names)
    assert fixef_correlation_text(corr).splitlines() == _rstrip(case["corr_lines"])


@pytest.mark.parametrize("case", SUMMARIES, ids=lambda c: c["id"])
def test_glmm_summary_correlation_block_matches_lme4(case):
    fit = _fit(case["id"])
    mine = fixef_correlation_text(_r_names(fit, case)).splitlines()
    ref = _rstrip(case["corr_lines"])
    assert mine[0] == ref[0]
    assert [len(line) for line in mine] == [len(line) for line in ref]
    for a, b in zip(mine[1:], ref[1:]):
        assert a.split()[0] == b.split()[0]
        np.testing.assert_allclose([float(v) for v in NUMBER.findall(a)],
                                   [float(v) for v in NUMBER.findall(b)], atol=5e-3)
    np.testing.assert_allclose(fit.summary().correlation.to_numpy(), case["fixef_corr"], atol=5e-3)
    text = str(fit.summary())
    block = text.split("Correlation of Fixed Effects:\n")[1].splitlines()
    assert block[:len(mine)] == fixef_correlation_text(fit.summary().correlation).splitlines()


def test_r_abbreviate_and_format_agree_with_r():
    # R 4.2.2: abbreviate(c(...), 6) and format(c(...))
    names = ["(Intercept)", "I(age ** 2)", "Gender[T.M]", "btype[T.scold]", "livch[T.3+]", "Intercept",
             "a b c d e f g h", "verylongname", "verylongnamf", "treatment[T.b]:time",
             "I(week > 2)[T.True]", "AEIOUaeiouxyz"]
    assert r_abbreviate(names, 6) == ["(Intr)", "I(**2)", "G[T.M]", "bt[T.]", "l[T.3+", "Intrcp", "abcdefgh",
                                      "verylngnm", "vrylngnmf", "t[T.]:", "I(>2)[", "AEIOUx"]
    assert r_abbreviate(names[:3], 11) == ["(Intercept)", "I(age ** 2)", "Gender[T.M]"]
    assert r_format([1234567.8, 1.5]) == ["1234567.8", "      1.5"]
    assert r_format([12345678.9, 2.0]) == ["12345679", "       2"]
    assert r_format([-0.0, 0.25], nsmall=3) == ["0.000", "0.250"]


def test_ml_lmm_criteria_line_is_lme4s():
    ref = load_reference("lmer")
    case = next(c for c in ref["cases"] if c["id"] == "sleepstudy_corr_ml")
    fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit(method="ml")
    lines = str(fit.summary()).splitlines()
    want = aictab_lines(case["aic"], case["bic"], case["loglik"], -2 * case["loglik"], 180 - 6)
    i = lines.index(want[0])
    assert lines[i + 1] == want[1]
    assert "1751.9" in want[1]                          # lme4: 1763.9 1783.1 -876.0 1751.9 174


def _wide_fit(p: int):
    rng = np.random.default_rng(7)
    n, k = 120, 12
    data = pd.DataFrame(rng.normal(size=(n, p - 1)), columns=[f"x{j}" for j in range(1, p)])
    data["g"] = np.repeat([f"g{j}" for j in range(k)], n // k)
    data["y"] = data.sum(axis=1, numeric_only=True) + np.repeat(rng.normal(size=k), n // k) + rng.normal(size=n)
    formula = "y ~ " + " + ".join(f"x{j}" for j in range(1, p)) + " + (1 | g)"
    return bm.Model(formula, data).fit()


def test_correlation_block_options():
    fit = _wide_fit(13)                                  # p = 13 > 12: lme4 leaves the block out
    s = fit.summary()
    text = str(s)
    assert "Correlation of Fixed Effects:" not in text
    assert "Correlation matrix not shown by default, as p = 13 > 12." in text
    assert s.correlation.shape == (13, 13)
    assert np.allclose(np.diag(s.correlation), 1.0)
    lower = str(fit.summary(correlation=True)).split("Correlation of Fixed Effects:\n")[1].splitlines()
    assert lower[0].split() == r_abbreviate(list(fit.fixef.index), 6)[:-1]
    assert len(lower) >= 13 and lower[1].split()[0] == "x1" and len(lower[1].split()) == 2
    full = str(fit.summary(correlation="full")).split("Correlation of Fixed Effects:\n")[1]
    assert full.splitlines()[0].split() == list(fit.fixef.index)
    assert "1.000" in full
    off = str(fit.summary(correlation=False))
    assert "Correlation" not in off and fit.summary(correlation=False).correlation is not None
    small = _wide_fit(3)
    assert "Correlation of Fixed Effects:" in str(small.summary())
    with pytest.raises(DesignError, match="correlation"):
        fit.summary(correlation="lower")
