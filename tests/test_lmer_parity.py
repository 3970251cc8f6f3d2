"""Parity with lme4: every ``lmer`` case of ``tests/reference/lmer.json``, number by number.

The reference numbers come from ``tests/reference/make_reference.R`` (lme4 1.1-31 with
tight nloptwrap tolerances, lmerTest for Satterthwaite, nlme for the ``random=`` fits).
Tolerances:

* profiled criterion at lme4's own theta values: relative 1e-8 (independent of any optimizer);
* criterion at the optimum: equal to lme4's or better, to 1e-6 relative;
* fixed effects, their SEs and vcov, variance components, sigma: relative 1e-4;
* conditional modes and conditional sds: absolute 1e-3 times the term's sd;
* Satterthwaite df: relative 1e-3 (a finite-difference Hessian on both sides).

Names are mapped, never changed in the engine: lme4 prints ``(Intercept)``, ``recipeB``,
``I(Days^2)`` where formulaic says ``Intercept``, ``recipe[T.B]``, ``I(Days ** 2)``, and
lme4 calls the nested term of ``(1 | batch/cask)`` ``cask:batch`` (levels ``"a:A"``)
where bayesmixed keeps the formula's order, ``batch:cask`` (levels ``"A:a"``).
"""

from __future__ import annotations

import re
import warnings
from functools import lru_cache

import numpy as np
import pandas as pd
import pytest

import bayesmixed as bm
from bayesmixed.errors import ConvergenceWarning, SingularFitWarning
from bayesmixed.likelihood.pls import ProfiledDeviance
from conftest import load_reference

REF = load_reference("lmer")
CASES = {c["id"]: c for c in REF["cases"]}
# InstEval (73k rows, q = 4128) takes ~10 s to fit plus its Satterthwaite and condVar pieces
SLOW = {"insteval_ml"}
# one observation per level of w: only sigma^2 + sigma_w^2 is identified (see the case notes),
# so theta, sigma, varcorr, ranef and anything built on them depend on the optimizer's path
RIDGE = {"wvxyz_reml"}
# control options matching the lme4 call's check.* = "ignore" for the ten-row example
CONTROL = {"wvxyz_reml": {"check_nobs_vs_nlev": "ignore"}}


def _params(ids):
    return [pytest.param(i, marks=pytest.mark.slow) if i in SLOW else i for i in ids]


ALL = _params(CASES)
IDENTIFIED = _params([i for i in CASES if i not in RIDGE])


# ---- name mapping -------------------------------------------------------------------------
def r_name(name: str) -> str:
    """formulaic's column name -> R's (``Intercept`` -> ``(Intercept)``, ``a[T.b]`` -> ``ab``)."""
    if name == "Intercept":
        return "(Intercept)"
    name = re.sub(r"\[(?:T\.)?([^\]]*)\]", r"\1", name)
    return name.replace(" ** ", "^")


def r_group(ours: str, r_groups) -> tuple[str, bool]:
    """Our term/group name -> lme4's, and whether interaction parts are reversed."""
    if ours in r_groups:
        return ours, False
    base, dot, suffix = ours.partition(".")
    rev = ":".join(reversed(base.split(":"))) + (dot + suffix)
    assert rev in r_groups, f"no lme4 group for {ours!r} among {list(r_groups)}"
    return rev, True


def r_level(level: str, reversed_parts: bool) -> str:
    return ":".join(reversed(level.split(":"))) if reversed_parts else level


# ---- building and fitting -------------------------------------------------------------------
def case_data(case: dict) -> pd.DataFrame:
    """The data set as the R script fitted it (data_note conversions applied on a copy)."""
    df = bm.load_dataset(case["dataset"]).copy()
    for col, values in (case["extra_columns"] or {}).items():
        df[col] = values
    # nlme's groupedData factors are ordered; the R script made them unordered (treatment
    # contrasts, level order kept), and cake's temperature likewise
    for col in df.columns:
        if isinstance(df[col].dtype, pd.CategoricalDtype) and df[col].cat.ordered:
            df[col] = df[col].cat.as_unordered()
    return df


def build(case: dict) -> bm.Model:
    return bm.Model(case["formula"], case_data(case), weights=case["weights"], offset=case["offset"],
                    control=CONTROL.get(case["id"]))


@lru_cache(maxsize=None)
def fitted(case_id: str):
    case = CASES[case_id]
    model = build(case)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = model.fit(method="reml" if case["REML"] else "ml")
    return model, fit, tuple(w.category for w in caught)


def rel_close(actual, expected, rtol, atol=0.0):
    np.testing.assert_allclose(np.asarray(actual, dtype=float), np.asarray(expected, dtype=float),
                               rtol=rtol, atol=atol)


# ---- the objective, independent of the optimizer ----------------------------------------------
@pytest.mark.parametrize("case_id", ALL)
def test_criterion_at_fixed_theta(case_id):
    case = CASES[case_id]
    model = build(case)
    assert list(model.design.lower) == [-np.inf if v is None else v for v in case["lower"]]
    dev = ProfiledDeviance(model.design, reml=case["REML"])
    for theta, expected in zip(case["theta_eval"] + [case["theta"]],
                               case["criterion_eval"] + [case["criterion"]]):
        assert dev(np.asarray(theta)) == pytest.approx(expected, rel=1e-8)


@pytest.mark.parametrize("case_id", ALL)
def test_optimum_equal_or_better(case_id):
    case = CASES[case_id]
    _, fit, caught = fitted(case_id)
    ref = case["criterion"]
    assert fit.objective <= ref + 1e-6 * abs(ref)
    assert fit.objective >= ref - 1e-6 * abs(ref)      # not better by more than rounding either
    if case["REML"]:
        assert fit.reml_criterion == pytest.approx(ref, rel=1e-8)
    else:
        assert fit.reml_criterion is None
        assert fit.deviance == pytest.approx(case["deviance"], rel=1e-8)
    assert fit.loglik == pytest.approx(case["loglik"], rel=1e-8)
    assert fit.n_params == case["df_loglik"]
    assert fit.aic == pytest.approx(case["aic"], rel=1e-8)
    assert fit.bic == pytest.approx(case["bic"], rel=1e-8)
    assert fit.nobs == case["nobs"]
    # lme4 warned of nothing but singularity in any case: neither do we
    assert ConvergenceWarning not in caught


@pytest.mark.parametrize("case_id", ALL)
def test_fixed_effects(case_id):
    case = CASES[case_id]
    _, fit, _ = fitted(case_id)
    assert [r_name(n) for n in fit.fixef.index] == case["fixef_names"]
    rel_close(fit.fixef, case["fixef"], rtol=1e-4, atol=1e-8 * np.max(np.abs(case["fixef"])))
    rel_close(fit.fixef_se, case["fixef_se"], rtol=1e-4)
    V = np.asarray(case["vcov"])
    rel_close(fit.vcov.to_numpy(), V, rtol=1e-4, atol=1e-6 * np.max(np.abs(np.diag(V))))
    assert list(fit.vcov.index) == list(fit.fixef.index) == list(fit.vcov.columns)


@pytest.mark.parametrize("case_id", IDENTIFIED)
def test_variance_components(case_id):
    case = CASES[case_id]
    model, fit, caught = fitted(case_id)
    assert fit.sigma == pytest.approx(case["sigma"], rel=1e-4)
    vc = fit.varcorr
    assert list(vc.columns) == ["grp", "var1", "var2", "vcov", "sdcor"]
    ref = pd.DataFrame(case["varcorr"])
    assert len(vc) == len(ref)
    r_groups = set(ref["grp"])
    sigma2 = case["sigma"] ** 2
    for (_, ours), (_, theirs) in zip(vc.iterrows(), ref.iterrows()):
        is_cor = not pd.isna(theirs["var2"])
        if ours["grp"] == "Residual":
            assert theirs["grp"] == "Residual" and pd.isna(ours["var1"])
        else:
            assert r_group(ours["grp"], r_groups)[0] == theirs["grp"]
            assert r_name(ours["var1"]) == theirs["var1"]
            assert (pd.isna(ours["var2"]) and pd.isna(theirs["var2"])) or r_name(ours["var2"]) == theirs["var2"]
        # variances near zero (singular fits) compare on the residual-variance scale and
        # covariances near zero on the scale of sd_i * sd_j (a correlation to 1e-4)
        atol = 1e-4 * theirs["vcov"] / theirs["sdcor"] if is_cor else 1e-7 * sigma2
        assert ours["vcov"] == pytest.approx(theirs["vcov"], rel=1e-4, abs=atol)
        assert ours["sdcor"] == pytest.approx(theirs["sdcor"], rel=1e-4 if not is_cor else 0,
                                              abs=1e-4 if is_cor else 1e-6 * case["sigma"])
    rel_close(fit.theta, case["theta"], rtol=1e-3, atol=1e-4)
    assert fit.is_singular == case["isSingular"]
    assert (SingularFitWarning in caught) == case["isSingular"]
    ng = fit.ngroups
    groups = set(case["ngroups"])
    assert {r_group(g, groups)[0]: n for g, n in ng.items()} == case["ngroups"]
    # lme4's theta order is the order of the terms: check through the theta labels
    assert len(model.design.theta_names) == len(case["theta"])


def _sd_scale(case: dict) -> dict[tuple[str, str], float]:
    """(lme4 group factor, R column) -> that random effect's sd, to scale ranef tolerances."""
    out = {}
    for r in case["varcorr"]:
        if r["grp"] != "Residual" and r["var2"] is None:
            out[(re.sub(r"\.\d+$", "", r["grp"]), r["var1"])] = r["sdcor"]
    return out


@pytest.mark.parametrize("case_id", IDENTIFIED)
def test_conditional_modes_and_sds(case_id):
    case = CASES[case_id]
    _, fit, _ = fitted(case_id)
    scale = _sd_scale(case)
    ours_modes, ours_sds = fit.ranef, fit.ranef_condsd
    assert len(ours_modes) == len(case["ranef"])
    for group, modes in ours_modes.items():
        r_grp, rev = r_group(group, set(case["ranef"]))
        ref = case["ranef"][r_grp]
        assert len(modes) == ref["n_levels"]
        assert [r_name(c) for c in modes.columns] == ref["columns"]
        idx = [r_level(str(lev), rev) for lev in modes.index]
        mine = modes.set_axis(idx).loc[ref["levels"]].to_numpy()
        mine_sd = ours_sds[group].set_axis(idx).loc[ref["levels"]].to_numpy()
        tol = np.array([1e-3 * scale[(r_grp, c)] for c in ref["columns"]]) + 1e-6 * case["sigma"]
        assert np.all(np.abs(mine - np.asarray(ref["values"])) <= tol)
        assert np.all(np.abs(mine_sd - np.asarray(ref["condsd"])) <= tol)


@pytest.mark.parametrize("case_id", IDENTIFIED)
def test_fitted_and_residuals(case_id):
    case = CASES[case_id]
    _, fit, _ = fitted(case_id)
    k = len(case["fitted_head"])
    scale = np.std(fit.design.y)
    rel_close(fit.fitted().to_numpy()[:k], case["fitted_head"], rtol=1e-5, atol=1e-5 * scale)
    rel_close(fit.residuals().to_numpy()[:k], case["resid_head"], rtol=1e-4, atol=1e-5 * scale)


@pytest.mark.parametrize("case_id", IDENTIFIED)
def test_satterthwaite(case_id):
    case = CASES[case_id]
    _, fit, _ = fitted(case_id)
    sat = fit.satterthwaite
    ref = case["satterthwaite"]
    rel_close(sat["df"], ref["df"], rtol=1e-3)
    rel_close(sat["t_value"], ref["t"], rtol=1e-4)
    # p-values: relative where they are not tiny, absolute below that
    rel_close(sat["p_value"], ref["p"], rtol=2e-3, atol=1e-12)
    tidy = fit.tidy(effects=("fixed",))
    rel_close(tidy["df"], ref["df"], rtol=1e-3)


def test_ridge_case_what_is_identified():
    """wvxyz: one row per w level. lme4 and we agree on what the data identify."""
    case = CASES["wvxyz_reml"]
    _, fit, _ = fitted("wvxyz_reml")
    total = pd.DataFrame(case["varcorr"])["vcov"].sum()       # sigma_w^2 + sigma^2
    ours_total = fit.varcorr["vcov"].sum()
    assert ours_total == pytest.approx(total, rel=1e-4)
    # fixed-effects predictions are identified even though the split of the variance is not
    np.testing.assert_allclose(fit.predict(include_random=False).to_numpy(),
                               fit.design.X @ np.asarray(case["fixef"]), rtol=1e-6)


def test_every_shipped_lmm_dataset_is_covered():
    covered = {c["dataset"] for c in REF["cases"]}
    assert {"sleepstudy", "Dyestuff", "Dyestuff2", "Penicillin", "Pastes", "cake", "Machines",
            "InstEval", "Orthodont", "wvxyz"} <= covered


# ---- anova and R² ---------------------------------------------------------------------------
def test_anova_table():
    ref = REF["anova"]
    data = bm.load_dataset(ref["dataset"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        fits = [bm.Model(row["formula"], data).fit(method="reml" if ref["REML_fits"] else "ml")
                for row in ref["table"]]
    tab = bm.anova(*fits)
    assert list(tab.columns[:8]) == ref["r_columns"]
    assert len(tab) == len(ref["table"])
    for (_, ours), theirs in zip(tab.iterrows(), ref["table"]):
        assert ours["formula"] == theirs["formula"]
        assert ours["npar"] == theirs["npar"]
        for col in ("AIC", "BIC", "logLik", "deviance"):
            assert ours[col] == pytest.approx(theirs[col], rel=1e-7)
        if theirs["Chisq"] is None:
            assert np.isnan(ours["Chisq"]) and np.isnan(ours["Df"]) and np.isnan(ours["Pr(>Chisq)"])
        else:
            assert ours["Chisq"] == pytest.approx(theirs["Chisq"], rel=1e-4, abs=1e-6)
            assert ours["Df"] == theirs["Df"]
            assert ours["Pr(>Chisq)"] == pytest.approx(theirs["Pr(>Chisq)"], rel=1e-4)


@pytest.mark.parametrize("r2case", REF["r2"]["cases"], ids=lambda c: c["id"])
def test_r2_nakagawa(r2case):
    _, fit, _ = fitted(r2case["id"])
    r2 = fit.r2()
    assert r2["marginal"] == pytest.approx(r2case["marginal"], rel=1e-4)
    assert r2["conditional"] == pytest.approx(r2case["conditional"], rel=1e-4)


# ---- nlme's random= -------------------------------------------------------------------------
# on the flat ridge of w/v the Hessian of the criterion is singular: a warning is right there
@pytest.mark.filterwarnings("ignore::bayesmixed.errors.ConvergenceWarning")
@pytest.mark.parametrize("key", ["wvxyz_w", "wvxyz_w_v"])
def test_nlme_random_argument(key):
    """``random="~1 | w/v"`` fits the model nlme's ``lme`` fits.

    What is compared: the REML log-likelihood, the fixed effects, their standard errors
    and the level-0 (fixed) fitted values. Not compared: the random-effect sds, sigma,
    the conditional modes and the level-1/2 fitted values. With one observation per w
    (and per w/v) only the total variance is identified; the REML surface is flat along
    the ridge sigma^2 + sigma_w^2 (+ sigma_v^2) = const, so nlme (nlminb on log-sds) and
    BOBYQA stop at different points of it (nlme splits w/v into equal halves). BIC is not
    compared either: nlme's BIC for REML fits uses log(n - p), lme4's (and ours) log(n).
    """
    ref = REF["nlme"][key]
    data = bm.load_dataset(ref["dataset"])
    model = bm.Model(ref["formula"], data, random=ref["random"],
                     control={"check_nobs_vs_nlev": "ignore"})
    assert model.design.n_theta == len(ref["re_sd"])
    fit = model.fit(method="reml")
    assert fit.loglik == pytest.approx(ref["loglik"], rel=1e-7)
    assert fit.n_params == ref["df_loglik"]
    assert fit.aic == pytest.approx(ref["aic"], rel=1e-7)
    rel_close(fit.fixef, ref["fixef"], rtol=1e-5)
    rel_close(fit.fixef_se, ref["fixef_se"], rtol=1e-4)
    rel_close(fit.predict(include_random=False), ref["fitted"]["fixed"], rtol=1e-6)
    # identified: the total variance (nlme's printed variances are rounded to 7 digits)
    total = sum(r["variance"] for r in ref["varcorr_table"] if r["variance"] is not None)
    assert fit.varcorr["vcov"].sum() == pytest.approx(total, rel=1e-5)
