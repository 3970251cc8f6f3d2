"""Collapsed Gaussian sampling: density = the PyMC joint model's marginal, analytic gradient, draws.

The reference marginal is computed from the PyMC model itself: given the
hyperparameters the joint log density is quadratic in (z, beta), so one Newton step
from 0 reaches the mode and the Laplace formula is exact. That checks the fixed-effect
centring, weights, offsets, priors and Jacobians independently of the kernels.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest

import bayesmixed as bm
from bayesmixed.bayes import _collapsed_draws as D
from bayesmixed.bayes import _collapsed_large as L
from bayesmixed.bayes import collapsed as C
from bayesmixed.bayes.build import build_pymc_model


def _sleep():
    return bm.load_dataset("sleepstudy")


def _tiny_crossed():
    rng = np.random.default_rng(3)
    n = 60
    df = pd.DataFrame({"g": rng.integers(0, 7, n).astype(str), "h": rng.integers(0, 4, n).astype(str),
                       "x": rng.normal(size=n), "x2": rng.normal(size=n), "w": rng.uniform(0.5, 2, n),
                       "off": rng.normal(0, 0.3, n)})
    df["y"] = 1 + 0.5 * df["x"] + rng.normal(size=n)
    return df


CASES = {
    "correlated": ("Reaction ~ Days + (Days | Subject)", _sleep, {}, {}),
    "scalar": ("Reaction ~ Days + (1 | Subject)", _sleep, {}, {}),
    "two terms, same group": ("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", _sleep, {}, {}),
    "uncorrelated": ("Reaction ~ Days + (Days || Subject)", _sleep, {}, {}),
    "crossed, weights, offset, k=3, other priors": (
        "y ~ x + (1 + x + x2 | g) + (1 | h)", _tiny_crossed, {"weights": "w", "offset": "off"},
        {"sd_g[Intercept]": ("HalfStudentT", {"nu": 4, "sigma": 2}), "sd_g[x]": ("Gamma", {"alpha": 2, "beta": 1}),
         "sd_g[x2]": ("LogNormal", {"mu": 0, "sigma": 1}), "sd_h": ("Uniform", {"lower": 0, "upper": 5}),
         "sigma": ("HalfCauchy", {"beta": 2}), "lkj_eta": 1.5, "x": ("Normal", {"mu": 0.3, "sigma": 3})}),
    "no intercept, crossed k=2": (
        "y ~ 0 + x + (x | h) + (1 | g)", _tiny_crossed, {},
        {"sd_h": ("InverseGamma", {"alpha": 3, "beta": 2}), "sd_g": ("Exponential", {"lam": 2}),
         "sigma": ("HalfNormal", {"sigma": 3})}),
}


def _model(name):
    formula, data, kw, pri = CASES[name]
    m = bm.Model(formula, data(), **kw)
    return m, m.priors if not pri else bm.bayes.resolve_priors(m.design, pri)


def _point(pm_model, cd, x):
    """PyMC value-variable point with the hyperparameters from x (our order) and effects 0."""
    names = {v.name: v for v in pm_model.value_vars}
    pt = {n: np.zeros(np.shape(pm_model.initial_point()[n])) for n in names}
    groups: dict[str, list[float]] = {}
    for nm, v in zip(cd.names, x):
        groups.setdefault(nm.split("[")[0], []).append(v)
    for base, vals in groups.items():
        vec = [n for n in names if re.fullmatch(re.escape(base) + r"_(log|logodds|interval)__", n)]
        if vec:
            pt[vec[0]] = np.asarray(vals).reshape(pt[vec[0]].shape)
            continue
        for i, v in enumerate(vals):                         # stacked scalar priors: sd_<t>_<i>_log__
            (n,) = [c for c in names if re.fullmatch(re.escape(f"{base}_{i}") + r"_(log|interval)__", c)]
            pt[n] = np.asarray(v)
    return pt


def _pymc_marginal(pm_model, pt):
    """log of the integral of the joint density over (z, beta): exact Laplace (quadratic)."""
    eff = [v for v in pm_model.free_RVs if v.name.startswith(("z_", "Intercept_c", "beta"))]
    vals = [pm_model.rvs_to_values[v] for v in eff]
    logp = pm_model.compile_logp()
    grad = pm_model.compile_dlogp(vars=eff)
    hess = pm_model.compile_d2logp(vars=eff, negate_output=False)
    H = -np.atleast_2d(hess(pt))                         # negated Hessian (positive definite)
    g = np.atleast_1d(grad(pt))
    step = np.linalg.solve(H, g)
    new = dict(pt)
    i = 0
    for v in vals:
        sz = int(np.prod(np.shape(pt[v.name])))
        new[v.name] = pt[v.name] + step[i:i + sz].reshape(np.shape(pt[v.name]))
        i += sz
    sign, logdet = np.linalg.slogdet(H)
    assert sign > 0
    return float(logp(new)) + 0.5 * len(g) * np.log(2 * np.pi) - 0.5 * logdet


def _random_x(cd, rng):
    x = np.empty(cd.ndim)
    for i, nm in enumerate(cd.names):
        x[i] = rng.normal(0, 0.8) if nm.startswith("cpc") else rng.normal(0.5, 0.7)
    return x


@pytest.mark.parametrize("name", list(CASES))
def test_density_equals_pymc_marginal(name):
    m, priors = _model(name)
    cd = C.prepare(m.design, priors)
    pm_model = build_pymc_model(m.design, priors)
    rng = np.random.default_rng(1)
    for _ in range(3):
        x = _random_x(cd, rng)
        ref = _pymc_marginal(pm_model, _point(pm_model, cd, x))
        lp, _ = C.collapsed_logp_and_grad(cd, x)
        assert lp == pytest.approx(ref, rel=1e-8, abs=1e-8), (name, x)


def _fd(f, x, h=1e-4):
    """Richardson-extrapolated central differences (error O(h^4))."""
    out = np.empty(len(x))
    for i in range(len(x)):
        e = np.zeros(len(x))
        e[i] = 1.0
        d1 = (f(x + h * e) - f(x - h * e)) / (2 * h)
        d2 = (f(x + h / 2 * e) - f(x - h / 2 * e)) / h
        out[i] = (4 * d2 - d1) / 3
    return out


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("large", [False, True])
def test_gradient_matches_finite_differences(name, large, monkeypatch):
    if large:                                   # the three-stage LAPACK route for big dense parts
        monkeypatch.setattr(C, "SMALL_DENSE", 0)
    m, priors = _model(name)
    cd = C.prepare(m.design, priors)
    rng = np.random.default_rng(2)
    for _ in range(2):
        x = _random_x(cd, rng)
        lp, g = C.collapsed_logp_and_grad(cd, x)
        fd = _fd(lambda v: C.collapsed_logp_and_grad(cd, v)[0], x)
        np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-6 * np.abs(g).max())


def test_large_route_equals_small_route(monkeypatch):
    m, priors = _model("crossed, weights, offset, k=3, other priors")
    cd = C.prepare(m.design, priors)
    x = _random_x(cd, np.random.default_rng(5))
    a = C.collapsed_logp_and_grad(cd, x)
    monkeypatch.setattr(C, "SMALL_DENSE", 0)
    b = C.collapsed_logp_and_grad(cd, x)
    assert a[0] == pytest.approx(b[0], rel=1e-12)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-9)


def test_scalar_first_term_route_equals_general_route():
    """(1 | g) first, weights: the grouped-table route = the per-level large route = the small route."""
    m = bm.Model("y ~ x + (1 | g) + (x | h)", _tiny_crossed(), weights="w", offset="off")
    cd = C.prepare(m.design, m.priors)
    pat = L.scalar_pattern(cd)
    assert pat is not None and len(pat[0]) > 1
    x = _random_x(cd, np.random.default_rng(6))
    small = C.collapsed_logp_and_grad(cd, x)
    for lp, g in (L.logp_grad_scalar(cd, x, pat), L.logp_grad_general(cd, x)):
        assert lp == pytest.approx(small[0], rel=1e-12)
        np.testing.assert_allclose(g, small[1], rtol=1e-9)


@pytest.mark.parametrize("name", list(CASES))
def test_small_draw_route_equals_draw_kernel(name):
    """Small models draw b and beta through the density kernel (its z argument): same numbers as
    the dedicated draw kernel the large route uses."""
    m, priors = _model(name)
    cd = C.prepare(m.design, priors)
    rng = np.random.default_rng(11)
    X = np.stack([_random_x(cd, rng) for _ in range(6)])
    Zn = rng.standard_normal((6, cd.n_effects))
    hyp_small, eff_small = D._draw_chain_small(cd, X, Zn)
    hyp, eff = D._draw_chain(cd, X, Zn)
    np.testing.assert_allclose(hyp_small, hyp, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(eff_small, eff, rtol=1e-10, atol=1e-12)


def test_unsupported_models_say_why():
    cbpp = bm.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)", bm.load_dataset("cbpp"),
                    family="binomial")
    assert "gaussian" in C.unsupported_reason(cbpp.design, cbpp.priors)
    m = bm.Model("Reaction ~ Days + (1 | Subject)", _sleep())
    pri = bm.bayes.resolve_priors(m.design, {"Days": ("StudentT", {"nu": 3, "mu": 0, "sigma": 10})})
    assert "non-normal" in C.unsupported_reason(m.design, pri)
    with pytest.raises(bm.errors.DesignError, match="collapsed"):
        C.prepare(m.design, pri)


def test_conditional_draws_match_conditional_moments():
    """At a fixed hyperparameter the drawn (b, beta) have the exact conditional mean and covariance."""
    m, priors = _model("two terms, same group")
    cd = C.prepare(m.design, priors)
    x = np.array([3.0, 1.7, 3.2])
    X = np.broadcast_to(x, (1, 20000, 3)).copy()
    out = C.conditional_draws(cd, X, seed=3)
    d = m.design
    sd = np.exp(x[:2])
    sigma = np.exp(x[2])
    Xt, m0, s0, xbar, i0 = C._fixed_part(d, priors)
    A = np.hstack([d.Z.toarray(), Xt])
    G = np.diag(np.concatenate([np.repeat(sd**2, 18), s0**2]))
    V = sigma**2 * np.eye(d.n) + A @ G @ A.T
    r = d.y - Xt @ m0
    mean = G @ A.T @ np.linalg.solve(V, r)
    cov = G - G @ A.T @ np.linalg.solve(V, A @ G)
    b = np.concatenate([out["b_Subject"][0, :, :, 0], out["b_Subject.1"][0, :, :, 0]], axis=1)
    gam = out["beta"][0].copy()
    gam[:, 0] += gam[:, 1] * xbar[0]                        # back to the centred intercept
    draws = np.hstack([b, gam])
    se = np.sqrt(np.diag(cov) / draws.shape[0])
    assert np.all(np.abs(draws.mean(0) - (mean + np.concatenate([np.zeros(36), m0]))) < 4.5 * se)
    np.testing.assert_allclose(np.cov(draws.T), cov, atol=0.05 * np.sqrt(np.outer(np.diag(cov), np.diag(cov))).max())
    np.testing.assert_allclose(out["sd_Subject"][0, 0], [sd[0]])
    assert out["sigma"][0, 0] == pytest.approx(sigma)


RUN = dict(draws=150, tune=200, chains=2, progressbar=False)


@pytest.fixture(scope="module")
def quick():
    m = bm.Model("Reaction ~ Days + (Days | Subject)", _sleep())
    timings = {}
    idata = C.sample_collapsed(m, random_seed=7, timings=timings, **RUN)
    return m, idata, timings


def test_quick_sample_shapes_names(quick):
    m, idata, timings = quick
    post = idata["posterior"]
    assert set(post.data_vars) == {"beta", "sd_Subject", "cor_Subject", "sigma", "b_Subject"}
    assert post["beta"].shape == (2, 150, 2) and list(post["fixef"].values) == ["Intercept", "Days"]
    assert post["sd_Subject"].dims == ("chain", "draw", "Subject__term")
    assert list(post["Subject__cor"].values) == ["Intercept.Days"]
    assert post["b_Subject"].shape == (2, 150, 18, 2)
    assert list(post["Subject"].values) == list(m.design.reterms[0].levels)
    assert np.all(np.abs(post["cor_Subject"].values) < 1) and np.all(post["sigma"].values > 0)
    for g in ("sample_stats", "log_likelihood", "observed_data"):
        assert g in idata.children
    assert "diverging" in idata["sample_stats"]
    assert idata["log_likelihood"]["y"].shape == (2, 150, 180)
    assert set(timings) == {"setup", "sampling", "effects"}
    # pointwise log-likelihood at one draw by hand
    p = idata["posterior"]
    c, d = 1, 17
    eta = m.design.X @ p["beta"].values[c, d] + (p["b_Subject"].values[c, d][m.design.reterms[0].codes]
                                                 * m.design.reterms[0].Xi).sum(1)
    s = p["sigma"].values[c, d]
    ll = -0.5 * np.log(2 * np.pi * s**2) - (m.design.y - eta) ** 2 / (2 * s**2)
    np.testing.assert_allclose(idata["log_likelihood"]["y"].values[c, d], ll, rtol=1e-10)


def test_same_seed_same_draws(quick):
    m, idata, _ = quick
    again = C.sample_collapsed(m, random_seed=7, **RUN)
    for v in ("beta", "sd_Subject", "cor_Subject", "sigma", "b_Subject"):
        np.testing.assert_array_equal(idata["posterior"][v].values, again["posterior"][v].values)
    other = C.sample_collapsed(m, random_seed=8, **RUN)
    assert not np.array_equal(idata["posterior"]["sigma"].values, other["posterior"]["sigma"].values)


def test_corr_matrix_layout(quick):
    m, _, _ = quick
    idata = C.sample_collapsed(m, random_seed=7, corr_matrix=True, **RUN)
    post = idata["posterior"]
    R = post["corr_Subject"].values
    np.testing.assert_allclose(R[..., 0, 1], post["cor_Subject"].values[..., 0])
    np.testing.assert_allclose(R[..., 0, 0], 1.0)


@pytest.mark.slow
def test_collapsed_agrees_with_joint_sampler():
    """Posterior means of every user-facing scalar agree within Monte Carlo error (sleepstudy)."""
    import arviz as az

    m = bm.Model("Reaction ~ Days + (Days | Subject)", _sleep())
    coll = C.sample_collapsed(m, random_seed=1, draws=1000, tune=1000, chains=4, progressbar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        joint = m.fit(method="nuts", collapsed=False, random_seed=1, draws=1000, tune=1000, chains=4,
                      progressbar=False)
    assert int(coll["sample_stats"]["diverging"].sum()) == 0
    pc, pj = coll["posterior"], joint.idata["posterior"]
    pairs = [(pc["beta"].values, pj["beta"].values), (pc["sd_Subject"].values, pj["sd_Subject"].values),
             (pc["cor_Subject"].values[..., 0], pj["cor_Subject"].values[..., 0]),
             (pc["sigma"].values[..., None], pj["sigma"].values[..., None]),
             (pc["b_Subject"].values.reshape(4, 1000, -1), pj["b_Subject"].values.reshape(4, 1000, -1))]
    for a, b in pairs:
        a = a.reshape(a.shape[0], a.shape[1], -1)
        b = b.reshape(b.shape[0], b.shape[1], -1)
        for j in range(a.shape[-1]):
            mc = [float(az.mcse(x[..., j], method="mean")) for x in (a, b)]
            z = (a[..., j].mean() - b[..., j].mean()) / np.hypot(*mc)
            assert abs(z) < 4, (j, z)
            assert a[..., j].std() == pytest.approx(b[..., j].std(), rel=0.12)


def test_posterior_fit_reads_collapsed_idata(quick):
    """With ``corr_matrix=True`` today's PosteriorFit summarises a collapsed posterior as a joint one."""
    from bayesmixed.bayes.sample import PosteriorDraws
    from bayesmixed.results.posterior import PosteriorFit

    m, _, _ = quick
    idata = C.sample_collapsed(m, random_seed=7, corr_matrix=True, **RUN)
    fit = PosteriorFit(PosteriorDraws(design=m.design, idata=idata, priors=m.priors, sampler="nutpie (collapsed)"))
    tid = fit.tidy()
    assert list(tid["term"]) == ["Intercept", "Days", "sd__Intercept", "sd__Days", "cor__Intercept.Days",
                                 "sd__Observation"]
    assert fit.ranef["Subject"].shape == (18, 2)
    assert fit.fixef["Days"] == pytest.approx(10.47, abs=1.5)


def test_fit_collapses_gaussian_models_by_default_and_says_when_it_cannot():
    import warnings as _w

    from bayesmixed.errors import DesignError, SamplingWarning

    m = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy"))
    with _w.catch_warnings():
        _w.simplefilter("ignore", SamplingWarning)
        fit = m.fit(method="nuts", draws=100, tune=150, chains=2, random_seed=5, progressbar=False)
    assert fit.sampler == "nutpie (collapsed)" and fit.settings["collapsed"]
    assert fit.ranef["Subject"].shape == (18, 2) and "cor_Subject" in fit.idata["posterior"]
    g = bm.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)", bm.load_dataset("cbpp"),
                 family="binomial")
    with pytest.raises(DesignError, match="collapsed=True is not available.*gaussian"):
        g.fit(method="nuts", collapsed=True)
    with pytest.raises(DesignError, match="collapsed must be"):
        m.fit(method="nuts", collapsed="yes")
