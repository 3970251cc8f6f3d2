"""The compiled PyMC model: log density at a point by hand, names/coords, priors table, MAP == REML."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import bayesmixed as bm
from bayesmixed.bayes import build_pymc_model, resolve_priors
from bayesmixed.errors import DesignError

pytest.importorskip("pymc")


def _evaluator(pmm, outs):
    import pytensor

    return pytensor.function(pmm.value_vars, pmm.replace_rvs_by_values(outs), mode="CVM",
                             on_unused_input="ignore")


@pytest.fixture(scope="module")
def sleep():
    return bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy"))


@pytest.fixture(scope="module")
def cbpp():
    return bm.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)", bm.load_dataset("cbpp"),
                    family="binomial")


def test_gaussian_logp_at_a_point_equals_hand_computation(sleep):
    d = sleep.design
    pmm = build_pymc_model(d, sleep.priors)
    assert [v.name for v in pmm.value_vars] == ["Intercept_c", "beta_slopes", "sd_Subject_log__",
                                                "cpc_Subject_logodds__", "z_Subject", "sigma_log__"]
    rng = np.random.default_rng(3)
    z = rng.standard_normal((18, 2))
    point = [np.array(300.0), np.array(9.5), np.log([24.0, 6.0]), np.array([0.2]), z, np.array(np.log(26.0))]
    y_logp = pmm.logp(vars=[pmm["y"]], jacobian=False)
    f = _evaluator(pmm, [y_logp, pmm["sd_Subject"], pmm["cor_Subject"], pmm["b_Subject"], pmm["beta"]])
    lp, sd, corr, b, beta = f(*point)
    np.testing.assert_allclose(sd, [24.0, 6.0])
    r = 2 / (1 + np.exp(-0.2)) - 1                     # the partial correlation, 2 * u - 1
    np.testing.assert_allclose(corr, [r], rtol=1e-12)              # one entry per pair: Intercept:Days
    corr = np.array([[1, r], [r, 1]])
    # hand computation: Lambda-free, straight from the model's definition
    cov = np.diag(sd) @ corr @ np.diag(sd)
    L = np.linalg.cholesky(cov)
    b_hand = z @ L.T
    np.testing.assert_allclose(b, b_hand, rtol=1e-10)
    xbar = d.X[:, 1].mean()
    np.testing.assert_allclose(beta, [300.0 - 9.5 * xbar, 9.5], rtol=1e-12)
    t = d.reterms[0]
    mu = d.X @ beta + np.einsum("nk,nk->n", b_hand[t.codes], t.Xi)
    np.testing.assert_allclose(lp, stats.norm.logpdf(d.y, mu, 26.0).sum(), rtol=1e-10)
    # prior terms that have a closed form here
    pr = sleep.priors
    terms = pmm.logp(vars=[pmm["Intercept_c"], pmm["beta_slopes"], pmm["z_Subject"], pmm["sigma"]],
                     jacobian=False, sum=False)
    g = _evaluator(pmm, terms)
    a_lp, s_lp, z_lp, sig_lp = [float(np.sum(v)) for v in g(*point)]
    assert a_lp == pytest.approx(stats.norm.logpdf(300.0, pr.fixef["Intercept"].args["mu"],
                                                   pr.fixef["Intercept"].args["sigma"]), rel=1e-12)
    assert s_lp == pytest.approx(stats.norm.logpdf(9.5, 0, 2.5 * d.y.std(ddof=1) / d.X[:, 1].std(ddof=1)),
                                 rel=1e-12)
    assert z_lp == pytest.approx(stats.norm.logpdf(z).sum(), rel=1e-12)
    assert sig_lp == pytest.approx(stats.expon.logpdf(26.0, scale=d.y.std(ddof=1)), rel=1e-12)


def test_binomial_logp_at_a_point_equals_hand_computation(cbpp):
    d = cbpp.design
    pmm = build_pymc_model(d, cbpp.priors)
    rng = np.random.default_rng(5)
    z = rng.standard_normal((15, 1))
    slopes = np.array([-1.0, -1.1, -1.6])
    point = [np.array(-1.9), slopes, np.array([np.log(0.7)]), z]
    assert [v.name for v in pmm.value_vars] == ["Intercept_c", "beta_slopes", "sd_herd_log__", "z_herd"]
    f = _evaluator(pmm, [pmm.logp(vars=[pmm["y"]], jacobian=False)])
    (lp,) = f(*point)
    xbar = d.X[:, 1:].mean(axis=0)
    beta = np.concatenate([[-1.9 - xbar @ slopes], slopes])
    eta = d.X @ beta + 0.7 * z[d.reterms[0].codes, 0]
    succ = np.round(d.y * d.trials)
    np.testing.assert_allclose(lp, stats.binom.logpmf(succ, d.trials, 1 / (1 + np.exp(-eta))).sum(), rtol=1e-10)


def test_coords_match_likelihood_fit_names(sleep):
    pmm = build_pymc_model(sleep.design)
    fit = sleep.fit()
    assert list(pmm.coords["fixef"]) == list(fit.fixef.index) == ["Intercept", "Days"]
    re = fit.ranef["Subject"]
    assert list(pmm.coords["Subject"]) == list(re.index)
    assert list(pmm.coords["Subject__term"]) == list(re.columns)
    assert pmm.named_vars_to_dims["b_Subject"] == ("Subject", "Subject__term")


def test_shared_grouping_factor_shares_level_coord():
    m = bm.Model("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", bm.load_dataset("sleepstudy"))
    pmm = build_pymc_model(m.design)
    dims = [pmm.named_vars_to_dims[f"b_{t.name}"] for t in m.design.reterms]
    assert dims[0][0] == dims[1][0] == "Subject" and dims[0][1] != dims[1][1]
    assert "cor_Subject" not in pmm.named_vars and len(pmm.coords["Subject"]) == 18


def test_uncorrelated_bars_have_no_lkj():
    m = bm.Model("Reaction ~ Days + (Days || Subject)", bm.load_dataset("sleepstudy"))
    pmm = build_pymc_model(m.design)
    names = {v.name for v in pmm.free_RVs}
    assert not any(n.startswith("cpc_") for n in names)
    assert "lkj_eta" not in " ".join(m.priors.names)


def test_priors_table_defaults(sleep):
    tab = sleep.priors.to_frame()
    assert list(tab.columns) == ["parameter", "distribution", "args", "note"]
    assert list(tab["parameter"]) == ["Intercept", "Days", "sd_Subject[Intercept]", "sd_Subject[Days]",
                                      "lkj_eta_Subject", "sigma"]
    pr = sleep.priors
    y = sleep.design.y
    assert pr.fixef["Intercept"].args["mu"] == pytest.approx(y.mean())
    days = sleep.design.X[:, 1]
    assert pr.fixef["Days"].args["sigma"] == pytest.approx(2.5 * y.std(ddof=1) / days.std(ddof=1))
    assert pr.sd["Subject"]["Days"].args["sigma"] == pytest.approx(y.std(ddof=1) / days.std(ddof=1))
    assert pr.lkj_eta["Subject"] == 2.0
    assert pr.aux["sigma"].args["lam"] == pytest.approx(1 / y.std(ddof=1))
    assert "Priors:" in repr(pr)


def test_prior_overrides_and_validation(sleep):
    pr = resolve_priors(sleep.design, {"Days": ("Normal", {"mu": 0, "sigma": 10}), "lkj_eta": 4,
                                       "sd_Subject[Days]": ("Exponential", {"lam": 0.5}),
                                       "sigma": ("HalfStudentT", {"nu": 3, "sigma": 20})})
    assert str(pr.fixef["Days"]) == "Normal(mu=0, sigma=10)"
    assert pr.lkj_eta["Subject"] == 4.0
    assert pr.sd["Subject"]["Days"].distribution == "Exponential"
    assert pr.sd["Subject"]["Intercept"].distribution == "HalfNormal"
    with pytest.raises(DesignError, match="valid names for this model are: Intercept, Days"):
        resolve_priors(sleep.design, {"days": ("Normal", {"mu": 0, "sigma": 1})})
    with pytest.raises(DesignError, match="positive"):
        resolve_priors(sleep.design, {"sigma": ("Normal", {"mu": 0, "sigma": 1})})
    with pytest.raises(DesignError, match="unknown distribution"):
        resolve_priors(sleep.design, {"Days": ("Normall", {"mu": 0})})
    with pytest.raises(DesignError, match="takes"):
        resolve_priors(sleep.design, {"Days": ("Normal", {"loc": 0})})
    with pytest.raises(DesignError, match="positive number"):
        resolve_priors(sleep.design, {"lkj_eta": -1})
    # overrides reach the compiled model, also with different sd distributions in one LKJ term
    m = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy"),
                 priors={"sd_Subject[Days]": ("Exponential", {"lam": 0.5})})
    pmm = build_pymc_model(m.design, m.priors)
    assert pmm["sd_Subject_1"].owner.op.__class__.__name__.startswith("Exponential")


def test_glmm_priors_on_link_scale(cbpp):
    pr = cbpp.priors
    assert pr.sd["herd"]["Intercept"].args["sigma"] == 1.0
    assert "sigma" not in pr.aux
    p = np.average(cbpp.design.y, weights=cbpp.design.weights)
    assert pr.fixef["Intercept"].args["mu"] == pytest.approx(np.log(p / (1 - p)))


@pytest.mark.parametrize("formula,data", [
    ("Reaction ~ Days + (Days | Subject)", "sleepstudy"),
    ("diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin"),
])
def test_map_equals_reml(formula, data):
    m = bm.Model(formula, bm.load_dataset(data))
    mp, r = m.fit(method="map"), m.fit(method="reml")
    assert mp.reml_criterion == pytest.approx(r.reml_criterion, abs=1e-6)
    np.testing.assert_allclose(mp.fixef.to_numpy(), r.fixef.to_numpy(), rtol=1e-3)
    np.testing.assert_allclose(mp.varcorr["sdcor"].to_numpy(), r.varcorr["sdcor"].to_numpy(), rtol=1e-3)
    g = list(r.ranef)[0]
    np.testing.assert_allclose(mp.ranef[g].to_numpy(), r.ranef[g].to_numpy(), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(mp.fixef_se.to_numpy(), r.fixef_se.to_numpy(), rtol=1e-3)


def test_map_refuses_glmm(cbpp):
    with pytest.raises(DesignError, match="gaussian"):
        cbpp.fit(method="map")


def test_to_bambi_formula_family_and_refusal(sleep, cbpp):
    pytest.importorskip("bambi")
    with pytest.raises(DesignError, match="allow_uncorrelated"):
        sleep.to_bambi()
    m = bm.Model("Reaction ~ Days + (1 | Subject)", bm.load_dataset("sleepstudy"))
    b = m.to_bambi()
    assert str(b.formula.main).replace(" ", "") == "Reaction~Days+(1|Subject)"
    assert b.family.name == "gaussian"
    bb = cbpp.to_bambi()
    assert bb.family.name == "binomial"
    assert str(bb.formula.main).startswith("p(bm_successes__, bm_trials__)")
    assert (bb.data["bm_trials__"] == cbpp.data["size"]).all()
    assert (bb.data["bm_successes__"] == cbpp.data["incidence"]).all()


def test_lkj_construction_k2_density_and_k3_marginals():
    import pymc as pm

    from bayesmixed.bayes.build import lkj_cholesky_corr

    # k = 2: the partial correlation is the correlation, (r + 1)/2 ~ Beta(eta, eta): p(r) ~ (1 - r^2)^(eta - 1)
    with pm.Model() as m2:
        lkj_cholesky_corr("c", 2, 3.0)
    u = 0.3
    f = _evaluator(m2, [m2.logp(jacobian=False)])
    (lp,) = f(np.array([np.log(u / (1 - u))]))
    assert lp == pytest.approx(stats.beta.logpdf(u, 3.0, 3.0), rel=1e-12)
    # k = 3, eta = 2: every LKJ marginal is (r + 1)/2 ~ Beta(eta - 1 + k/2), so E[r^2] = 1/(2*2.5 + 1)
    with pm.Model():
        L = lkj_cholesky_corr("c", 3, 2.0)
        corr = L @ L.T
    draws = pm.draw(corr, draws=6000, random_seed=4)
    r2 = np.array([(draws[:, i, j] ** 2).mean() for i, j in [(1, 0), (2, 0), (2, 1)]])
    np.testing.assert_allclose(r2, 1 / 6, atol=0.012)
    np.testing.assert_allclose(draws[:, [0, 1, 2], [0, 1, 2]], 1.0, rtol=1e-12)
