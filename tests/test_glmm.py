"""GLMM engine pieces and the GlmmFit face: blocked factor vs dense algebra, AGQ, responses,
predictions (conditional and marginal), tables, anova, warnings."""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from scipy import integrate, stats

import bayesmixed as bm
from bayesmixed.errors import DesignError, SeparationWarning, SingularFitWarning
from bayesmixed.likelihood.agq import gh_rule
from bayesmixed.likelihood._blocked import BlockedSystem
from bayesmixed.likelihood.pirls import LaplaceDeviance
from conftest import load_reference

REF = {c["id"]: c for c in load_reference("glmer")["cases"]}
CB = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


def _quiet_fit(model, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(**kw)


@lru_cache(maxsize=None)
def cbpp_fit():
    return _quiet_fit(bm.Model(CB, bm.load_dataset("cbpp"), family="binomial"))


def _toy_design(seed=0, n=300):
    """Crossed design with a correlated slope on the first factor and a scalar second factor."""
    rng = np.random.default_rng(seed)
    d = pd.DataFrame({"x": rng.normal(size=n), "g1": rng.integers(0, 12, n).astype(str),
                      "g2": rng.integers(0, 7, n).astype(str)})
    d["y"] = rng.poisson(np.exp(0.3 + 0.2 * d["x"]))
    return bm.Model("y ~ x + (x | g1) + (1 | g2)", d, family="poisson").design


# ---- the blocked factor against dense linear algebra --------------------------------------

@pytest.mark.parametrize("seed", [0, 1])
def test_blocked_factor_equals_dense(seed):
    design = _toy_design(seed)
    rng = np.random.default_rng(seed + 10)
    theta = np.array([0.8, -0.3, 0.5, 1.3])
    w = rng.uniform(0.2, 3.0, design.n)
    system = BlockedSystem(design)
    system.reweight(w, design.y)
    F = system.factor(theta)
    ZL = (design.Z @ design.Lambda(theta)).toarray()
    M = ZL.T @ (w[:, None] * ZL) + np.eye(design.q)
    assert F.ldL2 == pytest.approx(np.linalg.slogdet(M)[1], rel=1e-12)
    b = rng.normal(size=design.q)
    x = F.solve_Lt(F.solve_L(b))
    assert_allclose(M @ x, b, atol=1e-10)
    # the two triangular halves are transposes of one L
    L = np.linalg.inv(F.solve_L(np.eye(design.q)))
    assert_allclose(L @ L.T, M, atol=1e-10)
    assert_allclose(np.triu(L, 1), 0, atol=1e-10)


def test_laplace_equals_direct_formula():
    """aic + |u|^2 + log det(L'Z'WZL + I) with the mode found by brute-force minimisation."""
    from scipy.optimize import minimize

    design = _toy_design(3, n=150)
    dev = LaplaceDeviance(design)
    theta, beta = np.array([0.6, 0.2, 0.4, 0.7]), np.array([0.25, 0.15])
    ZL = (design.Z @ design.Lambda(theta)).toarray()
    y = design.y
    eta0 = design.X @ beta

    def pdev(u):
        mu = np.exp(eta0 + ZL @ u)
        return 2 * np.sum(stats.poisson.logpmf(y, y) - stats.poisson.logpmf(y, mu)) + u @ u

    u = minimize(pdev, np.zeros(design.q), method="BFGS", options={"gtol": 1e-10}).x
    mu = np.exp(eta0 + ZL @ u)
    M = ZL.T @ (mu[:, None] * ZL) + np.eye(design.q)
    direct = -2 * stats.poisson.logpmf(y, mu).sum() + u @ u + np.linalg.slogdet(M)[1]
    assert dev(np.concatenate([theta, beta])) == pytest.approx(direct, rel=1e-8)
    st = dev.pirls(theta, beta)
    assert_allclose(st.u, u, atol=1e-5)


@pytest.mark.parametrize("family,link", [("binomial", "logit"), ("binomial", "probit"), ("binomial", "cloglog"),
                                         ("poisson", "log"), ("negativebinomial", "log")])
def test_compiled_criterion_equals_the_state_path(family, link):
    """One scalar term: the criterion without a state (compiled modes and Laplace pieces) is
    aic + |u|^2 + log det of the PIRLS state's factor, and leaves the same modes behind."""
    rng = np.random.default_rng(7)
    d = pd.DataFrame({"x": rng.normal(size=200), "g": rng.integers(0, 15, 200).astype(str)})
    d["y"] = rng.binomial(1, 0.4, 200) if family == "binomial" else rng.poisson(2.0, 200)
    fam = bm.families.get_family(family, link)
    if family == "negativebinomial":
        fam = fam.with_shape(3.0)
    design = bm.Model("y ~ x + (1 | g)", d, family=fam).design
    pars = np.array([0.7, 0.1, 0.3]) if family == "binomial" else np.array([0.4, 0.5, 0.1])
    dev = LaplaceDeviance(design, family=fam)
    first = dev(pars)                                   # the state path (keeps aic's constant)
    assert dev._laplace_const[0] is dev.family          # later calls take the compiled path
    for p in (pars, pars + [0.05, -0.1, 0.02]):
        dev._u_start = np.zeros(design.q)
        value = dev(p)                                  # the compiled value path
        u_value = dev._u_start.copy()
        dev._u_start = np.zeros(design.q)
        st = dev.pirls(p[:1], p[1:])
        assert value == pytest.approx(dev.laplace(st), rel=1e-12, abs=1e-10)
        assert_allclose(u_value, st.u, atol=1e-9)
    assert first == pytest.approx(dev(pars), rel=1e-12)


def test_agq_with_one_node_is_laplace_without_the_saturated_term():
    case = REF["cbpp_logit_agq1"]
    dev = LaplaceDeviance(bm.Model(CB, bm.load_dataset("cbpp"), family="binomial").design)
    pars = np.asarray(case["par_eval"][1])
    lap = dev(pars)
    st = dev.pirls(pars[:1], pars[1:])
    sat = dev.aic(st.mu, st.dev_resid) - st.dev_resid.sum()
    assert dev.agq(pars, 1) == pytest.approx(lap - sat, rel=1e-12)
    # more nodes converge: 25 and 15 agree far better than 1 and 3
    assert abs(dev.agq(pars, 25) - dev.agq(pars, 15)) < 1e-6 < abs(dev.agq(pars, 3) - dev.agq(pars, 1))


def test_gh_rule_integrates_normal_moments():
    z, w = gh_rule(10)
    assert [float(w @ z**k) for k in (0, 2, 4, 6)] == pytest.approx([1, 1, 3, 15], rel=1e-12)


# ---- responses ------------------------------------------------------------------------------

def test_bool_and_factor_binary_responses_agree():
    case = REF["contraception_int"]
    data = bm.load_dataset("Contraception")
    data = data.assign(use_bool=data["use"] == "Y", use01=(data["use"] == "Y").astype(float))
    rhs = case["formula"].split("~", 1)[1]
    fits = [_quiet_fit(bm.Model(f"{lhs} ~{rhs}", data, family="binomial")) for lhs in ("use_bool", "use01")]
    for f in fits:
        assert f.objective == pytest.approx(case["criterion"], rel=1e-5)
    assert_allclose(fits[0].fixef.to_numpy(), fits[1].fixef.to_numpy(), atol=1e-8)


def test_offset_argument_equals_offset_term():
    case = REF["grouseticks_poisson_offset"]
    data = bm.load_dataset("grouseticks")
    fit = _quiet_fit(bm.Model("TICKS ~ YEAR + (1 | BROOD)", data, family="poisson",
                              offset=np.log(data["HEIGHT"].to_numpy() / 100)))
    assert fit.objective == pytest.approx(case["criterion"], rel=1e-5)
    assert_allclose(fit.fixef.to_numpy(), case["fixef"], atol=1e-3)


# ---- predictions ------------------------------------------------------------------------------

def test_conditional_predictions():
    fit = cbpp_fit()
    data = bm.load_dataset("cbpp")
    assert_allclose(fit.predict(data.head(10)).to_numpy(), REF["cbpp_logit_agq1"]["fitted_head"], rtol=2e-3)
    eta = fit.predict(type="link").to_numpy()
    assert_allclose(fit.predict().to_numpy(), 1 / (1 + np.exp(-eta)))
    pop = fit.predict(data, include_random=False, type="link").to_numpy()
    assert_allclose(pop, fit.design.X @ fit.fixef.to_numpy())
    new = data.head(3).assign(herd=["99", "99", "99"])
    with pytest.raises(DesignError):
        fit.predict(new)
    assert_allclose(fit.predict(new, allow_new_levels=True, type="link").to_numpy(), pop[:3])


def test_marginal_predictions_integrate_the_random_intercept():
    fit = cbpp_fit()
    sd = float(fit.varcorr["sdcor"].iloc[0])
    data = bm.load_dataset("cbpp").head(4)
    eta = fit.predict(data, include_random=False, type="link").to_numpy()
    marg = fit.predict(data, marginal=True).to_numpy()
    for e, m in zip(eta, marg):
        exact = integrate.quad(lambda b: stats.norm.pdf(b, 0, sd) / (1 + np.exp(-(e + b))), -12, 12)[0]
        assert m == pytest.approx(exact, rel=1e-9)
    # population-averaged probabilities are pulled towards 1/2 relative to b = 0
    assert np.all(marg > 1 / (1 + np.exp(-eta)))


def test_marginal_predictions_with_two_terms_match_monte_carlo():
    data = bm.load_dataset("cbpp")
    fit = _quiet_fit(bm.Model("cbind(incidence, size - incidence) ~ 1 + (1 | herd) + (1 | period)", data,
                              family="binomial"))
    sds = fit.varcorr["sdcor"].to_numpy()
    eta = float(fit.fixef.iloc[0])
    rng = np.random.default_rng(1)
    b = rng.normal(size=(400_000, 2)) * sds
    mc = np.mean(1 / (1 + np.exp(-(eta + b.sum(1)))))
    assert fit.predict(data.head(1), marginal=True).iloc[0] == pytest.approx(mc, abs=2e-3)


# ---- tables -------------------------------------------------------------------------------------

def test_tidy_z_tests_and_summary_text():
    fit = cbpp_fit()
    tab = fit.tidy()
    fx = tab[tab["effect"] == "fixed"].set_index("term")
    assert_allclose(fx["statistic"], fx["estimate"] / fx["std_error"])
    assert_allclose(fx["p_value"], 2 * stats.norm.sf(np.abs(fx["statistic"])))
    rp = tab[tab["effect"] == "ran_pars"]
    assert rp["term"].tolist() == ["sd__Intercept"]
    assert rp["estimate"].iloc[0] == pytest.approx(fit.varcorr["sdcor"].iloc[0])
    text = str(fit.summary())
    assert "Laplace Approximation" in text and "Family: binomial  ( logit )" in text
    assert "z value" in text and "Pr(>|z|)" in text and "Number of obs: 56, groups:  herd, 15" in text
    assert f"{fit.aic:8.1f}" in text
    agq = _quiet_fit(bm.Model(CB, bm.load_dataset("cbpp"), family="binomial"), method="agq", nAGQ=9)
    assert "nAGQ = 9" in str(agq.summary())
    assert agq.method == "agq" and agq.nAGQ == 9


def test_conditional_variances_and_idata():
    fit = cbpp_fit()
    d = fit.design
    ZL = (d.Z @ d.Lambda(fit.theta)).toarray()
    w = fit._state.weights
    M = ZL.T @ (w[:, None] * ZL) + np.eye(d.q)
    Lam = d.Lambda(fit.theta).toarray()
    cv = np.diag(Lam @ np.linalg.inv(M) @ Lam.T)
    assert_allclose(fit.ranef_condsd["herd"].to_numpy().ravel(), np.sqrt(cv), rtol=1e-10)
    idata = fit.idata
    assert list(idata.posterior["beta"].coords["fixef"].values) == list(fit.fixef.index)
    assert idata.posterior["b_herd"].shape[-2:] == (15, 1)
    assert float(idata.posterior["beta"].mean()) == pytest.approx(float(fit.fixef.mean()), abs=0.05)


def test_anova_across_glmm_fits():
    data = bm.load_dataset("cbpp")
    f0 = _quiet_fit(bm.Model("cbind(incidence, size - incidence) ~ 1 + (1 | herd)", data, family="binomial"))
    f1 = cbpp_fit()
    tab = bm.anova(f0, f1)
    assert tab["npar"].tolist() == [2, 5]
    assert tab["Chisq"].iloc[1] == pytest.approx(2 * (f1.loglik - f0.loglik))
    assert tab["Df"].iloc[1] == 3
    assert tab["Pr(>Chisq)"].iloc[1] == pytest.approx(stats.chi2.sf(tab["Chisq"].iloc[1], 3))
    assert tab["AIC"].tolist() == pytest.approx([f0.aic, f1.aic])


# ---- warnings ----------------------------------------------------------------------------------

def test_singular_fit_warns_and_flags():
    rng = np.random.default_rng(4)
    d = pd.DataFrame({"x": rng.normal(size=200), "g": np.repeat(np.arange(20), 10).astype(str)})
    d["y"] = (rng.uniform(size=200) < 1 / (1 + np.exp(-0.5 * d["x"]))).astype(float)
    with pytest.warns(SingularFitWarning, match="simpler random-effects structure"):
        fit = bm.Model("y ~ x + (1 | g)", d, family="binomial").fit()
    assert fit.is_singular and fit.theta[0] < 1e-4
    assert "boundary (singular) fit" in str(fit.summary())


def test_separation_warns():
    rng = np.random.default_rng(5)
    d = pd.DataFrame({"x": rng.normal(size=120), "g": np.repeat(np.arange(12), 10).astype(str)})
    d["y"] = (d["x"] > 0).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SingularFitWarning)
        warnings.simplefilter("ignore", bm.errors.ConvergenceWarning)
        with pytest.warns(SeparationWarning, match="separated"):
            bm.Model("y ~ x + (1 | g)", d, family="binomial").fit()


def test_gaussian_log_link_matches_glmer():
    """glmer(y ~ x + (1|g), family=gaussian(link="log")) on this data (written to CSV with 17
    digits and fitted with lme4 1.1-31): -2 logLik 506.76029832, fixef 0.98359639 0.39669333,
    sdcor g 0.1983879, sigma 0.53610571, se 0.06329916 0.00850091."""
    rng = np.random.default_rng(2)
    n = 300
    d = pd.DataFrame({"x": rng.normal(size=n), "g": np.repeat(np.arange(30), 10).astype(str)})
    b = rng.normal(0, 0.3, 30)
    d["y"] = np.exp(1 + 0.4 * d.x + b[np.repeat(np.arange(30), 10)]) + rng.normal(0, 0.5, n)
    fit = _quiet_fit(bm.Model("y ~ x + (1 | g)", d, family="gaussian", link="log"))
    assert -2 * fit.loglik <= 506.76029832 + 1e-6
    assert -2 * fit.loglik == pytest.approx(506.76029832, rel=1e-6)
    assert_allclose(fit.fixef.to_numpy(), [0.98359639, 0.39669333], atol=1e-4)
    assert fit.varcorr["grp"].tolist() == ["g", "Residual"]
    assert_allclose(fit.varcorr["sdcor"].to_numpy(), [0.1983879, 0.53610571], rtol=1e-3)
    assert_allclose(fit.fixef_se.to_numpy(), [0.06329916, 0.00850091], rtol=2e-2)
