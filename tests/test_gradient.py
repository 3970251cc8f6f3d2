"""Analytic gradient of the profiled criterion (scalar terms) and the L-BFGS-B path of large fits."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import bayesmixed as bm
from bayesmixed.likelihood._blocked import BlockedSystem
from bayesmixed.likelihood import subsample
from bayesmixed.likelihood.gradient import (
    GRADIENT_MIN_Q, ProfiledGradient, fd_hessian, gradient_applies, gradient_hessian, minimize_profiled,
)
from bayesmixed.likelihood.lmm import optimize_lmm
from bayesmixed.likelihood.numderiv import deriv12
from bayesmixed.likelihood.optimize import minimize_newton
from bayesmixed.likelihood.pls import ProfiledDeviance


def crossed(n: int, ng: int, nh: int, seed: int = 3, weights: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g, h, x = rng.integers(0, ng, n), rng.integers(0, nh, n), rng.normal(size=n)
    y = 1 + 0.5 * x + 0.6 * rng.normal(size=ng)[g] + 0.4 * rng.normal(size=nh)[h] + rng.normal(size=n)
    df = pd.DataFrame({"y": y, "x": x, "g": pd.Categorical(g), "h": pd.Categorical(h)})
    if weights:
        df["w"] = rng.uniform(0.5, 2.0, n)
    return df


def central(dev, theta, rel=1e-5):
    out = np.empty_like(theta)
    for i in range(theta.size):
        e = np.zeros_like(theta)
        e[i] = rel * max(theta[i], 0.1)
        out[i] = (dev(theta + e) - dev(theta - e)) / (2 * e[i])
    return out


CASES = [
    ("diameter ~ 1 + (1 | plate) + (1 | sample)", bm.load_dataset("Penicillin"), None),
    ("strength ~ 1 + (1 | batch) + (1 | batch:cask)", bm.load_dataset("Pastes"), None),
    ("Yield ~ 1 + (1 | Batch)", bm.load_dataset("Dyestuff"), None),
    ("y ~ x + (1 | g) + (1 | h)", crossed(3000, 300, 40, weights=True), "w"),
]


@pytest.mark.parametrize("formula, data, weights", CASES)
@pytest.mark.parametrize("reml", [False, True])
@pytest.mark.parametrize("layout", ["dense", "sparse"])
def test_gradient_matches_central_differences(formula, data, weights, reml, layout):
    design = bm.Model(formula, data, weights=weights).design
    dev = ProfiledDeviance(design, reml=reml)
    dev.system = BlockedSystem(design, layout=layout)
    G = ProfiledGradient(dev)
    for theta in (design.theta0 * np.linspace(0.6, 1.4, design.n_theta), np.full(design.n_theta, 0.3)):
        f, g = G(theta)
        assert f == dev(theta)
        fd = central(dev, theta)
        np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-6 * max(1.0, np.abs(fd).max()))


def test_gradient_is_zero_in_a_component_at_zero():
    design = bm.Model("diameter ~ 1 + (1 | plate) + (1 | sample)", bm.load_dataset("Penicillin")).design
    dev = ProfiledDeviance(design, reml=False)
    _, g = ProfiledGradient(dev)(np.array([1.2, 0.0]))
    assert g[1] == 0.0 and g[0] != 0.0


def test_gradient_hessian_agrees_with_deriv12():
    design = bm.Model("diameter ~ 1 + (1 | plate) + (1 | sample)", bm.load_dataset("Penicillin")).design
    dev = ProfiledDeviance(design, reml=True)
    theta = np.array([1.5, 3.2])
    g, H = gradient_hessian(ProfiledGradient(dev), theta)
    g2, H2 = deriv12(dev, theta)
    np.testing.assert_allclose(g, g2, rtol=1e-6)
    np.testing.assert_allclose(H, H2, rtol=1e-3)


def test_only_large_all_scalar_models_take_the_gradient_path():
    assert not gradient_applies(bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).design)
    big = bm.Model("y ~ x + (1 | g) + (1 | h)", crossed(6000, GRADIENT_MIN_Q, 60)).design
    assert gradient_applies(big)


@pytest.mark.parametrize("reml", [False, True])
def test_lbfgsb_fit_is_as_good_as_bobyqa_on_a_crossed_design(reml):
    """The gradient path's optimum: criterion <= BOBYQA's (to 1e-6), same estimates, fewer evaluations."""
    design = bm.Model("y ~ x + (1 | g) + (1 | h)", crossed(20000, 1500, 80)).design
    assert gradient_applies(design)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                  # no convergence or singular warnings
        fast = optimize_lmm(design, reml=reml)
    slow = optimize_lmm(design, reml=reml, optimizer_options={"xtol_abs": 1e-6})   # lme4's BOBYQA
    assert fast.opt.status == "success" and slow.opt.status != "success"   # L-BFGS-B, then NLopt's
    assert fast.objective <= slow.objective + 1e-6
    assert abs(fast.objective - slow.objective) < 1e-6
    np.testing.assert_allclose(fast.theta, slow.theta, rtol=1e-4)
    np.testing.assert_allclose(fast.beta, slow.beta, rtol=1e-6)
    assert fast.opt.n_evals < slow.opt.n_evals
    assert fast.conv_messages == ()


def _check_against_bobyqa(seed, n, n_g, n_h, reml):
    """``y ~ x + (1 | g) + (1 | h)`` with no variance in h: the fast path's optimum is at least as
    good as BOBYQA's and agrees on singularity."""
    rng = np.random.default_rng(seed)
    g, h, x = rng.integers(0, n_g, n), rng.integers(0, n_h, n), rng.normal(size=n)
    y = 1 + 0.5 * x + 0.3 * rng.normal(size=n_g)[g] + rng.normal(size=n)
    df = pd.DataFrame({"y": y, "x": x, "g": pd.Categorical(g), "h": pd.Categorical(h)})
    design = bm.Model("y ~ x + (1 | g) + (1 | h)", df).design
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast = optimize_lmm(design, reml=reml)
        slow = optimize_lmm(design, reml=reml, optimizer_options={"xtol_abs": 1e-6})
    assert fast.objective <= slow.objective + 1e-6
    assert fast.is_singular == slow.is_singular


@pytest.mark.parametrize("seed, reml", [(0, False), (0, True), (2, False)])
def test_boundary_optimum_is_checked_by_bobyqa(seed, reml):
    """A zero-variance-like term: the gradient vanishes at theta_i = 0, so L-BFGS-B alone can stop
    there at a stationary point that is no minimum (seed 0: the optimum is 0.029); BOBYQA continues."""
    _check_against_bobyqa(seed, 20000, 1500, 60, reml)


def test_out_of_core_design_takes_the_same_gradient_path():
    """A design from cross-products (no rows) fits by the same path to the same optimum."""
    duckdb = pytest.importorskip("duckdb")
    from bayesmixed.design.sources import as_source

    df = crossed(30000, 1200, 50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = bm.Model("y ~ x + (1 | g) + (1 | h)", df).fit(method="ml")
        b = bm.Model("y ~ x + (1 | g) + (1 | h)", as_source(duckdb.from_df(df), chunk_rows=7000)).fit(method="ml")
    assert a.opt.status == b.opt.status == "success"
    assert b.objective == pytest.approx(a.objective, abs=1e-6)
    np.testing.assert_allclose(b.theta, a.theta, rtol=1e-6)


# ---- the start from a subsample and Newton's method (large in-memory designs, issue 13) ----------
def test_subsample_design_keeps_whole_rows_of_chosen_levels():
    df = crossed(30000, 2000, 300)
    df["k"] = pd.Categorical(np.arange(30000) % 5)
    design = bm.Model("y ~ x + (1 | g) + (1 | h) + (1 | k)", df).design
    sub = subsample.subsample_design(design, rows=6000, rest_q=100)
    assert sub is not None and sub.n < 10000
    assert [t.name for t in sub.reterms] == [t.name for t in design.reterms]
    assert sub.reterms[2].n_levels == 5                       # a small term is kept whole
    assert sub.reterms[1].n_levels < 150
    rows = np.flatnonzero(np.isin(np.asarray(design.index), np.asarray(sub.index)))
    for t, ts in zip(design.reterms, sub.reterms):            # same levels row by row, recoded
        np.testing.assert_array_equal(np.asarray(t.levels, dtype=object)[t.codes[rows]],
                                      np.asarray(ts.levels, dtype=object)[ts.codes])
        assert np.bincount(ts.codes).min() > 0
    np.testing.assert_array_equal(sub.y, design.y[rows])
    np.testing.assert_array_equal(sub.X, design.X[rows])


@pytest.fixture
def small_subsample(monkeypatch):
    """Let a test-sized design take the subsample start (the thresholds are for millions of rows)."""
    monkeypatch.setattr(subsample, "MIN_ROWS", 10_000)
    monkeypatch.setattr(subsample, "SUB_ROWS", 8_000)
    monkeypatch.setattr(subsample, "SUB_REST_Q", 100)


@pytest.mark.parametrize("reml", [False, True])
def test_newton_from_a_subsample_start_reaches_bobyqas_optimum(small_subsample, reml):
    design = bm.Model("y ~ x + (1 | g) + (1 | h)", crossed(40000, 2500, 400)).design
    assert gradient_applies(design) and subsample.worth_subsampling(design)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                  # no convergence or singular warnings
        fast = optimize_lmm(design, reml=reml)
    slow = optimize_lmm(design, reml=reml, optimizer_options={"xtol_abs": 1e-6})   # lme4's BOBYQA
    assert fast.opt.status == "success"
    assert fast.objective <= slow.objective + 1e-6
    assert abs(fast.objective - slow.objective) < 1e-6
    np.testing.assert_allclose(fast.theta, slow.theta, rtol=1e-4)
    np.testing.assert_allclose(fast.beta, slow.beta, rtol=1e-6)
    assert fast.opt.n_evals <= 9 and fast.conv_messages == ()


def test_the_check_uses_newtons_hessian_near_the_optimum(small_subsample):
    design = bm.Model("y ~ x + (1 | g) + (1 | h)", crossed(40000, 2500, 400)).design
    dev = ProfiledDeviance(design, reml=False)
    fg = ProfiledGradient(dev)
    res = minimize_profiled(dev, fg, design.theta0, design.lower)
    n = fg.n_grads
    g, H = gradient_hessian(fg, res.x)                  # Newton's last Hessian: no evaluation
    assert fg.n_grads == n
    g2, H2 = gradient_hessian(ProfiledGradient(dev), res.x)
    np.testing.assert_allclose(g, g2, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(H, H2, rtol=1e-3)


@pytest.mark.parametrize("seed", [0, 2])
def test_boundary_optimum_with_a_subsample_start(small_subsample, seed):
    """No variance in h: the subsample's optimum (or Newton's) is at the bound, so the fit
    continues by L-BFGS-B and BOBYQA (``_lbfgsb_bobyqa``) and agrees with BOBYQA."""
    _check_against_bobyqa(seed, 40000, 2500, 400, False)


def test_newton_gives_up_where_the_hessian_is_not_positive_definite():
    fg = lambda x: (float(-(x[0] - 1.0) ** 2), np.array([-2.0 * (x[0] - 1.0)]))   # a maximum
    res, hessians = minimize_newton(fg, np.array([0.5]), np.zeros(1), fd_hessian)
    assert res is None and len(hessians) == 1


def test_lbfgsb_ending_at_a_corner_past_a_better_point_continues():
    """L-BFGS-B's second step can land on theta = 0, where the gradient vanishes (the criterion is
    even), and stop there with "success" while the best point seen is elsewhere: BOBYQA continues."""
    rng = np.random.default_rng(0)
    n, ng, nh = 25000, 2000, 90
    g, h, x = rng.integers(0, ng, n), rng.integers(0, nh, n), rng.normal(size=n)
    y = 1 + 0.5 * x + 0.05 * rng.normal(size=ng)[g] + 0.3 * rng.normal(size=nh)[h] + rng.normal(size=n)
    design = bm.Model("y ~ x + (1 | g) + (1 | h)", pd.DataFrame({"y": y, "x": x, "g": g, "h": h})).design
    assert gradient_applies(design) and not subsample.worth_subsampling(design)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast = optimize_lmm(design, reml=False)
        slow = optimize_lmm(design, reml=False, optimizer_options={"xtol_abs": 1e-6})
    assert "BOBYQA" in fast.opt.status
    assert fast.objective <= slow.objective + 1e-6
    np.testing.assert_allclose(fast.theta, slow.theta, atol=1e-4)
    assert fast.conv_messages == ()


def test_a_users_start_is_kept(small_subsample):
    design = bm.Model("y ~ x + (1 | g) + (1 | h)", crossed(40000, 2500, 400)).design
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        own = optimize_lmm(design, reml=False, start=np.array([0.5, 0.5]))
        default = optimize_lmm(design, reml=False)
    assert "Newton" not in own.opt.status and own.opt.n_evals > default.opt.n_evals   # L-BFGS-B from the start
    assert abs(own.objective - default.objective) < 1e-6
