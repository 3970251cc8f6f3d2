"""Families carry their behaviour: every member against scipy.stats or a closed form."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import stats

from bayesmixed.errors import DesignError
from bayesmixed.families import (FAMILIES, GAUSSIAN, Binomial, Family, Gamma, Gaussian, NegativeBinomial,
                                 Poisson, get_family)
from bayesmixed.links import LINKS, get_link

ALL = [(name, link) for name, (_, links) in FAMILIES.items() for link in links]
K = 2.5                                  # negative-binomial size used throughout


def _fam(name, link=None):
    return get_family(name, link, shape=K if name == "negativebinomial" else None)


def _data(name, link, n=40, seed=0):
    """(y, eta, mu, wt) inside the family's support, eta inside the link's domain."""
    rng = np.random.default_rng(seed)
    fam = _fam(name, link)
    mu = {"gaussian": rng.uniform(0.5, 3.0, n), "binomial": rng.uniform(0.1, 0.9, n),
          "poisson": rng.uniform(0.5, 6.0, n), "negativebinomial": rng.uniform(0.5, 6.0, n),
          "gamma": rng.uniform(0.5, 3.0, n)}[name]
    y = {"gaussian": mu + rng.normal(size=n), "binomial": rng.integers(0, 2, n).astype(float),
         "poisson": rng.poisson(mu).astype(float), "negativebinomial": rng.poisson(mu).astype(float),
         "gamma": rng.gamma(2.0, mu / 2.0)}[name]
    eta = fam.link.linkfun(mu)
    return y, eta, fam.link.linkinv(eta), rng.uniform(0.5, 2.0, n)


# ---- construction, identity, pickling ------------------------------------------------------
def test_get_family_returns_the_subclass_with_codes_matching_the_kernels():
    from bayesmixed.likelihood.pirls import _FAMILY_CODES, _LINK_CODES

    classes = {"gaussian": Gaussian, "binomial": Binomial, "poisson": Poisson,
               "negativebinomial": NegativeBinomial, "gamma": Gamma}
    for name, link in ALL:
        fam = _fam(name, link)
        assert type(fam) is classes[name] and isinstance(fam, Family)
        assert fam.name == name and fam.link.name == link and fam.canonical == FAMILIES[name][0]
        assert fam.code == _FAMILY_CODES[name] and fam.link.code == _LINK_CODES[link]
    assert {lk.code for lk in LINKS.values()} == set(range(len(LINKS)))


@pytest.mark.parametrize("name,link", ALL)
def test_pickle_round_trip_equality_and_hash(name, link):
    fam = _fam(name, link)
    back = pickle.loads(pickle.dumps(fam))
    assert back == fam and hash(back) == hash(fam) and type(back) is type(fam)
    assert back.link is fam.link and back.link is get_link(link)
    assert back is not fam and pickle.loads(pickle.dumps(fam.link)) is fam.link


def test_equality_frozen_and_with_shape():
    assert get_family("gaussian") == GAUSSIAN and get_family("normal") == GAUSSIAN
    assert get_family("binomial") != get_family("binomial", "probit")
    assert get_family("poisson") != get_family("negativebinomial")
    nb = get_family("nb")
    assert nb.shape is None and nb.with_shape(3).shape == 3.0 and type(nb.with_shape(3)) is NegativeBinomial
    assert nb.with_shape(3) == get_family("negativebinomial", shape=3.0)
    with pytest.raises(AttributeError):
        nb.shape = 2.0
    with pytest.raises(ValueError, match="shape is not set"):
        nb.variance(np.ones(2))
    fam = get_family("binomial")
    assert get_family(fam) is fam and get_family(fam, "probit").link.name == "probit"


def test_get_family_errors_list_the_choices():
    with pytest.raises(DesignError, match="unknown family 'tweedie'; valid families are: gaussian, binomial"):
        get_family("tweedie")
    with pytest.raises(DesignError, match="link 'log' is not available for family 'binomial'; valid links "
                                          "are: logit, probit, cloglog"):
        get_family("binomial", link="log")
    with pytest.raises(DesignError, match="family must be a string"):
        get_family(3)


def test_descriptive_members():
    assert GAUSSIAN.is_gaussian_identity and not get_family("gaussian", "log").is_gaussian_identity
    assert not get_family("poisson").is_gaussian_identity
    assert [n for n in FAMILIES if get_family(n).has_dispersion] == ["gaussian", "gamma"]
    assert {n: get_family(n).extra_params for n in FAMILIES} == {
        "gaussian": ("sigma",), "binomial": (), "poisson": (), "gamma": ("shape",),
        "negativebinomial": ("alpha",)}
    assert get_family("gamma").dispersion_name == "shape" and get_family("poisson").dispersion_name is None
    canon = {(n, lk) for n, lk in ALL if _fam(n, lk).is_canonical}
    assert canon == {("gaussian", "identity"), ("binomial", "logit"), ("poisson", "log"), ("gamma", "inverse")}


def test_check_response_messages():
    with pytest.raises(DesignError, match=r"binomial response 'y' must be 0/1 \(or proportions with "
                                          r"weights=trials\); found values such as \[2.0\]"):
        get_family("binomial").check_response(np.array([0.0, 2.0, 1.0]), "y")
    with pytest.raises(DesignError, match=r"poisson response 'c' must be non-negative whole counts; found "
                                          r"values such as \[-1.0, 0.5\]"):
        get_family("poisson").check_response(np.array([-1.0, 0.5, 2.0]), "c")
    with pytest.raises(DesignError, match="negativebinomial response"):
        get_family("nb").check_response(np.array([1.5]), "c")
    with pytest.raises(DesignError, match=r"gamma response 'y' must be positive; found values such as \[0.0\]"):
        get_family("gamma").check_response(np.array([0.0, 1.0]), "y")
    GAUSSIAN.check_response(np.array([-5.0, 1e9]), "y")
    get_family("binomial").check_response(np.array([0.0, 0.25, 1.0]), "y")


# ---- GLM pieces -----------------------------------------------------------------------------
def _num_deriv(f, x, h=1e-6):
    return (f(x + h) - f(x - h)) / (2 * h)


@pytest.mark.parametrize("name,link", ALL)
def test_links_and_variance_derivatives(name, link):
    y, eta, mu, wt = _data(name, link)
    fam = _fam(name, link)
    lk = fam.link
    assert_allclose(lk.linkfun(lk.linkinv(eta)), eta, rtol=1e-8, atol=1e-10)
    assert_allclose(lk.mu_eta(eta), _num_deriv(lk.linkinv, eta), rtol=1e-6, atol=1e-9)
    assert_allclose(lk.mu_eta2(eta), _num_deriv(lk.mu_eta, eta), rtol=1e-5, atol=1e-8)
    assert_allclose(fam.dvariance(mu), _num_deriv(fam.variance, mu), rtol=1e-6, atol=1e-9)
    V = {"gaussian": np.ones_like(mu), "binomial": mu * (1 - mu), "poisson": mu,
         "negativebinomial": mu + mu**2 / K, "gamma": mu**2}[name]
    assert_allclose(fam.variance(mu), V)


@pytest.mark.parametrize("name,link", ALL)
def test_irls_weights_working_response_and_start(name, link):
    y, eta, mu, wt = _data(name, link)
    fam = _fam(name, link)
    me = fam.link.mu_eta(eta)
    assert_allclose(fam.irls_weights(eta, mu, wt), wt * me**2 / fam.variance(mu))
    assert_allclose(fam.working_response(y, eta, mu), eta + (y - mu) / me)
    start = {"gaussian": y, "binomial": (wt * y + 0.5) / (wt + 1), "poisson": y + 0.1,
             "negativebinomial": y + 0.1, "gamma": np.where(y > 0, y, 0.1)}[name]
    assert_allclose(fam.mu_start(y, wt), start)


@pytest.mark.parametrize("name,link", ALL)
def test_newton_weights_are_the_observed_information(name, link):
    y, eta, mu, wt = _data(name, link)
    fam = _fam(name, link)
    fisher = fam.irls_weights(eta, mu, wt)
    got = fam.newton_weights(y, eta, mu, wt)
    if fam.is_canonical:
        assert_allclose(got, fisher)
    # second derivative in eta of half the deviance, by central differences
    def half_dev(e):
        return 0.5 * fam.dev_resids(y, fam.link.linkinv(e), wt)
    h = 1e-4
    obs = (half_dev(eta + h) - 2 * half_dev(eta) + half_dev(eta - h)) / h**2
    use = obs > 1e-3 * fisher
    assert_allclose(got[use], obs[use], rtol=1e-4, atol=1e-6)
    assert_allclose(got[~use], fisher[~use])


def test_aic_is_minus_twice_the_summed_logpdf():
    rng = np.random.default_rng(1)
    mu = rng.uniform(0.5, 4.0, 30)
    y = rng.poisson(mu).astype(float)
    wt = np.ones(30)
    for name in ("poisson", "negativebinomial"):
        fam = _fam(name)
        assert_allclose(fam.aic(y, wt, mu, wt, 0.0), -2 * fam.logpdf(y, mu).sum())
    n = rng.integers(1, 9, 30).astype(float)
    p = rng.uniform(0.1, 0.9, 30)
    yb = rng.binomial(n.astype(int), p) / n
    fam = get_family("binomial")
    assert_allclose(fam.aic(yb, n, p, n, 0.0), -2 * fam.logpdf(yb, p, trials=n.astype(int)).sum())
    yg = rng.gamma(3.0, mu / 3.0)
    fam = get_family("gamma")
    dev = fam.dev_resids(yg, mu, wt).sum()
    shape = 1 / (dev / 30)
    assert_allclose(fam.aic(yg, wt, mu, wt, dev), -2 * fam.logpdf(yg, mu, dispersion=shape).sum() + 2)
    yn = mu + rng.normal(size=30)
    dev = GAUSSIAN.dev_resids(yn, mu, wt).sum()
    assert_allclose(GAUSSIAN.aic(yn, wt, mu, wt, dev),
                    -2 * GAUSSIAN.logpdf(yn, mu, dispersion=np.sqrt(dev / 30)).sum() + 2)


# ---- densities --------------------------------------------------------------------------------
@pytest.mark.parametrize("link", ["identity", "log", "inverse"])
def test_gaussian_logpdf(link):
    y, eta, mu, wt = _data("gaussian", link)
    fam = get_family("gaussian", link)
    assert_allclose(fam.logpdf(y, mu, dispersion=1.7), stats.norm.logpdf(y, mu, 1.7))
    assert_allclose(fam.logpdf(y, mu, wt=wt, dispersion=1.7), stats.norm.logpdf(y, mu, 1.7 / np.sqrt(wt)))


@pytest.mark.parametrize("link", ["logit", "probit", "cloglog"])
def test_binomial_logpdf_bernoulli_and_trials(link):
    rng = np.random.default_rng(2)
    fam = get_family("binomial", link)
    eta = rng.normal(size=50)
    mu = fam.link.linkinv(eta)
    y01 = rng.integers(0, 2, 50).astype(float)
    assert_allclose(fam.logpdf(y01, mu), stats.bernoulli.logpmf(y01, mu))
    assert_allclose(fam.logpdf(y01, mu, eta=eta), stats.bernoulli.logpmf(y01, mu), rtol=1e-12)
    n = rng.integers(0, 12, 50)
    s = rng.binomial(n, mu)
    y = s / np.where(n > 0, n, 1)
    ref = stats.binom.logpmf(s, n, mu)
    assert_allclose(fam.logpdf(y, mu, trials=n), ref)
    assert_allclose(fam.logpdf(y, mu, trials=n, eta=eta), ref, rtol=1e-12)
    assert_allclose(fam.logpdf(y, mu, wt=np.full(50, 2.0), trials=n), 2 * ref)
    # the eta form stays finite where mu is clipped
    assert np.isfinite(get_family("binomial").logpdf(np.array([0.0]), np.array([1.0]), eta=np.array([40.0])))


def test_count_and_gamma_logpdf():
    rng = np.random.default_rng(3)
    mu = rng.uniform(0.2, 8.0, 60)
    y = rng.poisson(mu).astype(float)
    assert_allclose(get_family("poisson").logpdf(y, mu), stats.poisson.logpmf(y, mu))
    assert_allclose(get_family("poisson").logpdf(y, mu, wt=np.full(60, 3.0)), 3 * stats.poisson.logpmf(y, mu))
    nb = get_family("nb", shape=K)
    ref = stats.nbinom.logpmf(y, K, K / (K + mu))
    assert_allclose(nb.logpdf(y, mu), ref)
    assert_allclose(nb.logpdf(y, mu, dispersion=0.7), stats.nbinom.logpmf(y, 0.7, 0.7 / (0.7 + mu)))
    # NB(mu, k) has mean mu and variance mu + mu^2/k: check against scipy's moments
    m, v = stats.nbinom.stats(K, K / (K + mu))
    assert_allclose(m, mu) and assert_allclose(v, nb.variance(mu))
    yg = rng.gamma(2.0, mu / 2.0)
    assert_allclose(get_family("gamma", "log").logpdf(yg, mu, dispersion=2.0),
                    stats.gamma.logpdf(yg, a=2.0, scale=mu / 2.0))


def test_logpdf_broadcasts_over_draws():
    mu = np.full((2, 3, 4), 2.0)
    sigma = np.arange(1.0, 7.0).reshape(2, 3)[..., None]
    out = GAUSSIAN.logpdf(np.zeros(4), mu, dispersion=sigma)
    assert out.shape == (2, 3, 4)
    assert_allclose(out[1, 2], stats.norm.logpdf(0.0, 2.0, 6.0))


# ---- simulation -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(FAMILIES))
def test_simulate_moments(name):
    rng = np.random.default_rng(4)
    fam = _fam(name)
    mu = {"binomial": np.array([0.2, 0.7]), "gaussian": np.array([-1.0, 3.0])}.get(name, np.array([0.8, 4.0]))
    draws = 40000
    disp = {"gaussian": 1.5, "gamma": 2.0}.get(name)
    trials = np.array([5, 9]) if name == "binomial" else None
    sims = fam.simulate(np.broadcast_to(mu, (draws, 2)), rng, trials=trials, dispersion=disp)
    assert sims.shape == (draws, 2) and sims.dtype == float
    var = fam.variance(mu) / {"binomial": trials, "gamma": 2.0}.get(name, 1.0)
    if name == "gaussian":
        var = var * 1.5**2
    se = np.sqrt(var / draws)
    assert np.all(np.abs(sims.mean(axis=0) - mu) < 5 * se)
    assert_allclose(sims.var(axis=0), var, rtol=0.06)
    if name == "binomial":
        assert np.allclose(sims * trials, np.round(sims * trials))
        assert set(np.unique(fam.simulate(np.full(100, 0.5), rng))) <= {0.0, 1.0}


def test_simulate_gaussian_weights_scale_the_sd():
    rng = np.random.default_rng(5)
    sims = GAUSSIAN.simulate(np.zeros((20000, 2)), rng, dispersion=2.0, wt=np.array([1.0, 4.0]))
    assert_allclose(sims.std(axis=0), [2.0, 1.0], rtol=0.03)


# ---- Bayesian-engine members ------------------------------------------------------------------
def test_observed_values_priors_and_bambi_names():
    y = np.array([0.0, 0.5, 1.0])
    assert get_family("binomial").observed_values(np.array([0.0, 1.0])).dtype == np.int64
    assert get_family("binomial").observed_values(y, trials=np.array([2, 4, 3])).tolist() == [0, 2, 3]
    assert get_family("poisson").observed_values(np.array([3.0])).dtype == np.int64
    assert GAUSSIAN.observed_values(y) is y
    w, off = np.ones(3), np.zeros(3)
    yc = np.array([1.0, 2.0, 6.0])
    assert GAUSSIAN.prior_location(yc, w, off + 1) == pytest.approx(2.0)
    assert get_family("gaussian", "log").prior_location(yc, w, off) == 0.0
    assert get_family("poisson").prior_location(yc, w, off) == pytest.approx(np.log(3.0))
    assert get_family("poisson", "sqrt").prior_location(yc, w, off) == 0.0
    assert get_family("gamma").prior_location(yc, w, off) == 0.0
    assert get_family("binomial").prior_location(y, w, off) == pytest.approx(0.0)
    assert get_family("binomial", "probit").prior_location(np.ones(3), w, off) == pytest.approx(
        stats.norm.ppf(0.99))
    assert GAUSSIAN.aux_priors(4.0) == {"sigma": ("Exponential", {"lam": 0.25}, "rate 1/sd(y)")}
    assert list(get_family("nb").aux_priors(1.0)) == ["alpha"] and get_family("poisson").aux_priors(1.0) == {}
    assert get_family("binomial").bambi_family(True) == "binomial"
    assert get_family("binomial").bambi_family(False) == "bernoulli"
    assert get_family("nb").bambi_family(False) == "negativebinomial"


@pytest.mark.parametrize("name,link", ALL)
def test_pymc_logp_matches_logpdf(name, link):
    pytest.importorskip("pymc")
    import pytensor.tensor as pt

    y, eta, mu, wt = _data(name, link)
    fam = _fam(name, link)
    params = {"gaussian": {"sigma": 1.3}, "negativebinomial": {"alpha": K}, "gamma": {"shape": 2.0}}.get(name)
    disp = None if params is None else next(iter(params.values()))
    trials = np.arange(1, y.size + 1) if name == "binomial" else None
    yy = (np.round(y * trials) / trials) if trials is not None else y
    weights = wt if fam.pymc_weights and name == "gaussian" else None
    lp = fam.pymc_logp(fam.observed_values(yy, trials), eta=pt.as_tensor(eta), trials=trials, weights=weights,
                       params=params).eval()
    ref = fam.logpdf(yy, mu, wt=weights, trials=trials, dispersion=disp)
    assert_allclose(lp, ref, rtol=1e-7, atol=1e-9)
    # PyTensor's probit inverse is accurate to ~1e-8
    assert_allclose(fam.link.tensor_linkinv(pt.as_tensor(eta)).eval(), mu, rtol=1e-7)


def test_pymc_weights_refused_where_unsupported():
    with pytest.raises(DesignError, match="prior weights are supported by method='nuts' for gaussian and "
                                          "binomial models only, not 'poisson'"):
        get_family("poisson").pymc_logp(np.zeros(2), mu=np.ones(2), weights=np.ones(2))


# ---- the PyMC model and pointwise log-likelihood are unchanged (numbers recorded before the move) ----
def _models():
    import bayesmixed as bm

    ss = bm.load_dataset("sleepstudy")
    gt = bm.load_dataset("grouseticks").assign(h=lambda d: np.log(d.HEIGHT) / 6)
    cb = bm.load_dataset("cbpp")
    co = bm.load_dataset("Contraception").assign(y=lambda d: (d.use == "Y").astype(float))
    return {
        "gaussian": lambda: bm.Model("Reaction ~ Days + (Days | Subject)", ss),
        "gaussian_w": lambda: bm.Model("Reaction ~ Days + (1 | Subject)",
                                       ss.assign(w=np.linspace(0.5, 2.0, len(ss))), weights="w"),
        "binomial_cbind": lambda: bm.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)", cb,
                                           family="binomial"),
        "binomial_probit": lambda: bm.Model("y ~ age + (1 | district)", co, family="binomial", link="probit"),
        "poisson_offset": lambda: bm.Model("TICKS ~ YEAR + (1 | BROOD) + offset(h)", gt, family="poisson"),
        "nb": lambda: bm.Model("TICKS ~ YEAR + (1 | BROOD)", gt, family="negativebinomial"),
        "gamma": lambda: bm.Model("Reaction ~ Days + (1 | Subject)", ss, family="gamma", link="log"),
    }


# model -> (value variables, logp at the initial point, logp at the initial point + 0.05 N(0, 1) noise)
RECORDED = {
    "gaussian": (["Intercept_c", "beta_slopes", "sd_Subject_log__", "cpc_Subject_logodds__", "z_Subject",
                  "sigma_log__"], -1027.7150458435117, -1027.367831043335),
    "gaussian_w": (["Intercept_c", "beta_slopes", "sd_Subject_log__", "z_Subject", "sigma_log__"],
                   -1006.385520656752, -1008.4051417576004),
    "binomial_cbind": (["Intercept_c", "beta_slopes", "sd_herd_log__", "z_herd"],
                       -143.74709798793162, -144.18217137045107),
    "binomial_probit": (["Intercept_c", "beta_slopes", "sd_district_log__", "z_district"],
                        -1352.7885289847368, -1356.4042848983668),
    "poisson_offset": (["Intercept_c", "beta_slopes", "sd_BROOD_log__", "z_BROOD"],
                       -5472.30867607777, -5548.131272981009),
    "nb": (["Intercept_c", "beta_slopes", "sd_BROOD_log__", "z_BROOD", "alpha_log__"],
           -1296.4174367940773, -1299.6409514761149),
    "gamma": (["Intercept_c", "beta_slopes", "sd_Subject_log__", "z_Subject", "shape_log__"],
              -1226.6625980268977, -1220.8476486084867),
}


@pytest.mark.parametrize("key", list(RECORDED))
def test_pymc_model_log_density_unchanged_and_loglik_matches_it(key):
    pytest.importorskip("pymc")
    import pytensor

    from bayesmixed.bayes import build_pymc_model
    from bayesmixed.bayes.loglik import pointwise_loglik

    m = _models()[key]()
    pmm = build_pymc_model(m.design, m.priors)
    names, lp_ip, lp_pt = RECORDED[key]
    assert [v.name for v in pmm.value_vars] == names
    ip = pmm.initial_point()
    rng = np.random.default_rng(0)
    pt = {k: v + 0.05 * rng.standard_normal(np.shape(v)) for k, v in ip.items()}
    f = pmm.compile_logp()
    assert_allclose([f(ip), f(pt)], [lp_ip, lp_pt], rtol=1e-10)
    # the NumPy pointwise log-likelihood (LOO's) equals the PyMC likelihood term by term
    d = m.design
    outs = ["beta"] + [f"b_{t.name}" for t in d.reterms] + list(d.family.extra_params)
    y_term = pmm.logp(vars=[pmm["y"]], sum=False, jacobian=False)[0]
    fn = pytensor.function(pmm.value_vars, pmm.replace_rvs_by_values([y_term] + [pmm[o] for o in outs]),
                           on_unused_input="ignore")
    y_lp, *vals = fn(*[pt[v.name] for v in pmm.value_vars])
    post = {o: np.asarray(v)[None, None] for o, v in zip(outs, vals)}
    # PyTensor's inverse probit is accurate to ~1e-8 (scipy's ndtr to machine precision)
    rtol = 1e-7 if d.family.link.name == "probit" else 1e-9
    assert_allclose(pointwise_loglik(d, post)[0, 0], y_lp, rtol=rtol, atol=1e-10)
