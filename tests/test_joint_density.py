"""The compiled joint GLMM density equals the PyMC model's log density and gradient (issue 10, item 3)."""

import warnings

import numpy as np
import pandas as pd
import pytest

import bayesmixed as bm
from bayesmixed.bayes.joint import joint_logp_and_grad, prepare_joint, to_pymc_point, unsupported_reason

FAMILY_LINKS = [("binomial", "logit"), ("binomial", "probit"), ("binomial", "cloglog"), ("poisson", "log"),
                ("poisson", "identity"), ("poisson", "sqrt"), ("negativebinomial", "log"), ("gamma", "log"),
                ("gamma", "inverse"), ("gamma", "identity"), ("gaussian", "log"), ("gaussian", "inverse")]
SHAPES = {"scalar": "(1 | g)", "correlated": "(x | g)", "diag": "(x || g)", "crossed": "(1 | g) + (x | h)",
          "nested": "(1 | g/h)", "wide": "(x + x2 | g) + (1 | h)"}


def _data(family: str, seed: int = 0, n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    d = pd.DataFrame({"g": rng.integers(0, 6, n).astype(str), "h": rng.integers(0, 4, n).astype(str),
                      "x": rng.uniform(-1, 1, n), "x2": rng.normal(size=n), "e": rng.uniform(0.5, 2, n),
                      "f": rng.choice(["a", "b", "c"], n)})
    mu = np.exp(1.0 + 0.3 * d["x"])
    if family == "binomial":
        d["size"] = rng.integers(1, 9, n)
        d["y"] = rng.binomial(d["size"], 0.4)
        d["bin"] = rng.integers(0, 2, n)
    elif family in ("poisson", "negativebinomial"):
        d["y"] = rng.poisson(mu)
    elif family == "gamma":
        d["y"] = rng.gamma(2.0, mu / 2.0)
    else:
        d["y"] = mu + rng.normal(size=n) * 0.3
    return d


def _model(family, link, shape="correlated", *, offset=False, weights=False, bernoulli=False, seed=0):
    d = _data(family, seed)
    lhs = "y" if family != "binomial" else ("bin" if bernoulli else "cbind(y, size - y)")
    kw = {}
    if offset:
        kw["offset"] = np.log(d["e"].to_numpy()) * 0.2
    if weights:
        kw["weights"] = np.random.default_rng(seed + 1).integers(1, 4, len(d)).astype(float)
    return bm.Model(f"{lhs} ~ x + f + {SHAPES[shape]}", d, family=family, link=link, **kw)


def _point(jd, family, link, seed):
    """A random unconstrained point with the mean inside the family's support."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=jd.ndim) * 0.4
    if link in ("identity", "sqrt", "inverse"):
        x[[i for i, n in enumerate(jd.names) if n.startswith("z_")]] *= 0.3
        x[0] = 3.0
    return x


def _check(model, family, link, seed=0):
    jd = prepare_joint(model.design, model.priors)
    pm_model = model.pymc_model
    names = list(pm_model.initial_point())
    x = _point(jd, family, link, seed)
    lp, g = joint_logp_and_grad(jd, x)
    pt = to_pymc_point(jd, x, names)
    assert sorted(pt) == sorted(names)
    ref = float(pm_model.compile_logp()(pt))
    assert np.isfinite(ref)
    assert lp == pytest.approx(ref, rel=1e-8)
    gref = pm_model.compile_dlogp()(pt)
    gp = to_pymc_point(jd, g, names)
    ours = np.concatenate([np.ravel(gp[v.name]) for v in pm_model.value_vars])
    np.testing.assert_allclose(ours, gref, rtol=1e-8, atol=1e-8 * np.max(np.abs(gref)))
    return jd, x, g


@pytest.mark.parametrize("family,link", FAMILY_LINKS)
def test_every_family_and_link(family, link):
    m = _model(family, link, "crossed", offset=True)
    assert unsupported_reason(m.design, m.priors) is None
    _check(m, family, link)


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("family,link", [("binomial", "logit"),
                                         pytest.param("negativebinomial", "log", marks=pytest.mark.slow)])
def test_every_term_shape(family, link, shape):
    _check(_model(family, link, shape), family, link, seed=3)


@pytest.mark.parametrize("family,link", [("binomial", "logit"), ("binomial", "probit"), ("gaussian", "log")])
def test_prior_weights(family, link):
    _check(_model(family, link, "scalar", weights=True, offset=True), family, link, seed=5)


@pytest.mark.parametrize("link", ["logit", "cloglog"])
def test_bernoulli(link):
    _check(_model("binomial", link, "correlated", bernoulli=True), "binomial", link, seed=7)


def test_user_priors_stacked_sds():
    d = _data("poisson")
    m = bm.Model("y ~ x + (x | g)", d, family="poisson",
                 priors={"sd_g[x]": ("Exponential", {"lam": 2.0}), "lkj_eta": 3.0, "Intercept": ("Normal", {
                     "mu": 1.0, "sigma": 0.5})})
    _check(m, "poisson", "log", seed=2)


@pytest.mark.parametrize("family,link", [("negativebinomial", "log"), ("gamma", "inverse"),
                                         ("binomial", "probit")])
def test_gradient_finite_differences(family, link):
    jd = prepare_joint(_model(family, link, "wide").design)
    x = _point(jd, family, link, 11)
    _, g = joint_logp_and_grad(jd, x)
    h = 1e-6
    for i in np.random.default_rng(0).choice(jd.ndim, 8, replace=False).tolist() + [jd.ndim - 1]:
        e = np.zeros(jd.ndim)
        e[i] = h
        fd = (joint_logp_and_grad(jd, x + e)[0] - joint_logp_and_grad(jd, x - e)[0]) / (2 * h)
        assert fd == pytest.approx(g[i], rel=1e-5, abs=1e-5)


def test_cbpp_layout():
    m = bm.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)", bm.load_dataset("cbpp"),
                 family="binomial")
    _check(m, "binomial", "logit")


# ---- sampling through the compiled density ---------------------------------------------
def _cbpp():
    return bm.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)", bm.load_dataset("cbpp"),
                    family="binomial")


def test_default_fit_uses_the_compiled_density():
    m = _cbpp()
    run = dict(draws=150, tune=200, chains=2, progressbar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = m.fit(method="nuts", random_seed=5, **run)
        again = m.fit(method="nuts", random_seed=5, **run)
        other = m.fit(method="nuts", random_seed=6, **run)
    assert "compile" not in fit.timings and "setup" in fit.timings
    post = fit.idata["posterior"]
    assert set(post.data_vars) == {"beta", "b_herd", "sd_herd"}
    assert post["beta"].shape == (2, 150, 4) and post["b_herd"].shape == (2, 150, 15, 1)
    assert list(post["fixef"].values) == list(m.design.fixef_names)
    assert {"log_likelihood", "observed_data", "sample_stats"} <= set(fit.idata.children)
    a = np.asarray(post["beta"])
    np.testing.assert_array_equal(a, np.asarray(again.idata["posterior"]["beta"]))
    assert not np.array_equal(a, np.asarray(other.idata["posterior"]["beta"]))


def test_correlated_term_and_family_parameter_names():
    d = _data("negativebinomial")
    m = bm.Model("y ~ x + (x | g)", d, family="negativebinomial")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = m.fit(method="nuts", draws=100, tune=150, chains=2, random_seed=1, progressbar=False)
    post = fit.idata["posterior"]
    assert set(post.data_vars) == {"beta", "b_g", "sd_g", "cor_g", "alpha"}
    assert list(post["g__pair"].values) == ["Intercept:x"]
    assert float(np.abs(post["cor_g"]).max()) <= 1.0 and float(post["alpha"].min()) > 0
    assert "compile" not in fit.timings


def test_cbpp_agrees_with_the_pymc_path():
    m = _cbpp()
    run = dict(draws=1000, tune=1000, chains=4, progressbar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = m.fit(method="nuts", random_seed=2, **run)
        ref = m.fit(method="nuts", random_seed=3, backend="numba", **run)
    assert "compile" in ref.timings and "compile" not in ours.timings
    for v in ("beta", "sd_herd"):
        a, b = ours.idata["posterior"][v], ref.idata["posterior"][v]
        ma, mb = a.mean(("chain", "draw")).values, b.mean(("chain", "draw")).values
        se = np.sqrt(a.var(("chain", "draw")).values / 800 + b.var(("chain", "draw")).values / 800)
        assert np.all(np.abs(ma - mb) < 5 * se), (v, ma, mb, se)
        np.testing.assert_allclose(a.std(("chain", "draw")).values, b.std(("chain", "draw")).values, rtol=0.15)
