"""The blocked Cholesky factorization against a dense NumPy reference.

For each design the dense reference forms the whole augmented PLS system
(Bates et al. 2015, JSS eq. 18)

    M = [Lam'Z'WZ Lam + I   Lam'Z'WX   Lam'Z'Wy]
        [     .              X'WX       X'Wy   ]
        [     .               .         y'Wy   ]

factors it with ``numpy.linalg.cholesky`` and reads off log|L_Z|^2, the penalized
residual sum of squares and the PLS solution (beta, u). The blocked system must give
the same numbers at several theta values, on every code path: scalar first term,
vector first term, crossed, nested, a vector term that is not first, and the two
compiled (numba) kernels used for large designs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import bayesmixed as bm
from bayesmixed.likelihood._blocked import BlockedSystem, SparseA21
from bayesmixed.likelihood.pls import ProfiledDeviance


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """One BLAS thread: the dense references are moderate LAPACK calls, and with pytest-xdist
    workers on 2 shared cores OpenBLAS's spinning threads make them 10x slower."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


def dense_reference(design, theta):
    """(ldL2, pwrss, beta, u, LZ LZ') from the dense augmented system."""
    w = design.weights
    Lam = design.Lambda(theta)
    ZL = sp.csc_array(design.Z @ Lam)
    X, y = design.X, design.y - design.offset
    W = sp.diags_array(w)
    q, p = ZL.shape[1], X.shape[1]
    top = (ZL.T @ W @ ZL).toarray() + np.eye(q)
    ZX = np.asarray(ZL.T @ (w[:, None] * X))
    Zy = np.asarray(ZL.T @ (w * y))
    XX, Xy, yy = X.T @ (w[:, None] * X), X.T @ (w * y), float(y @ (w * y))
    M = np.block([[top, ZX, Zy[:, None]], [ZX.T, XX, Xy[:, None]], [Zy[None, :], Xy[None, :], np.array([[yy]])]])
    L = np.linalg.cholesky(M)
    ldL2 = 2 * np.log(np.diag(L)[:q]).sum()
    pwrss = L[-1, -1] ** 2
    sol = np.linalg.solve(M[:-1, :-1], M[:-1, -1])
    return ldL2, pwrss, sol[q:], sol[:q], top


def thetas(design, rng, k=3):
    """theta0, and k random points inside the bounds (off-diagonals of either sign)."""
    out = [design.theta0]
    for _ in range(k):
        t = rng.uniform(0.2, 2.0, design.n_theta)
        free = ~np.isfinite(design.lower)
        t[free] = rng.uniform(-0.8, 0.8, free.sum())
        out.append(t)
    return out


def check_against_dense(design, rng, *, layout=None):
    system = BlockedSystem(design, layout=layout)
    for theta in thetas(design, rng):
        F = system.factor(theta)
        ldL2, pwrss, beta, u, top = dense_reference(design, theta)
        assert F.ldL2 == pytest.approx(ldL2, rel=1e-10)
        assert F.pwrss == pytest.approx(pwrss, rel=1e-9)
        b_hat, u_hat = system.solve_beta_u(F)
        np.testing.assert_allclose(b_hat, beta, rtol=1e-7, atol=1e-9 * np.abs(beta).max())
        np.testing.assert_allclose(u_hat, u, rtol=1e-7, atol=1e-8 * max(np.abs(u).max(), 1))
        if design.q <= 2000:
            LZ = system.dense_LZ(F)
            np.testing.assert_allclose(LZ @ LZ.T, top, atol=1e-9 * np.abs(top).max())
    if layout is not None:
        assert isinstance(system.A21, SparseA21) == (layout == "sparse")
    return system


def sleep_with_factor():
    d = bm.load_dataset("sleepstudy").copy()
    d["f"] = np.where(d["Days"] < 5, "early", "late")
    d["w"] = 1.0 + np.arange(len(d)) % 3
    return d


@pytest.mark.parametrize("formula, dataset, kw", [
    ("Yield ~ 1 + (1 | Batch)", "Dyestuff", {}),                                   # scalar first
    ("Reaction ~ Days + (Days | Subject)", "sleepstudy", {}),                      # vector first
    ("Reaction ~ Days + (Days | Subject)", "sleepw", {"weights": "w"}),            # with weights
    ("Reaction ~ Days + (Days || Subject)", "sleepstudy", {}),                     # two terms, one factor
    ("diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin", {}),               # crossed
    ("strength ~ 1 + (1 | batch/cask)", "Pastes", {}),                             # nested
    ("Reaction ~ Days + (1 | Subject:f) + (Days | Subject)", "sleepw", {}),       # vector term second
    ("Reaction ~ Days + offset(Days) + (1 | Subject)", "sleepstudy", {}),          # offset
])
def test_blocked_equals_dense(formula, dataset, kw):
    data = sleep_with_factor() if dataset == "sleepw" else bm.load_dataset(dataset)
    design = bm.Model(formula, data, **kw).design
    for layout in ("dense", "sparse"):        # BLAS products and the compiled kernels
        check_against_dense(design, np.random.default_rng(1), layout=layout)


def test_vector_term_not_first_really_is_second():
    design = bm.Model("Reaction ~ Days + (1 | Subject:f) + (Days | Subject)", sleep_with_factor()).design
    assert [t.name for t in design.reterms] == ["Subject:f", "Subject"]
    assert [t.n_cols for t in design.reterms] == [1, 2]


def simulated_crossed(n_g1=400, n_g2=100, per=30, slope=False, seed=3):
    """A crossed design big enough for the compiled kernels (A21 work well above 300k)."""
    rng = np.random.default_rng(seed)
    g1 = np.repeat(np.arange(n_g1), per)
    g2 = rng.integers(0, n_g2, g1.size)
    x = rng.normal(size=g1.size)
    b1 = rng.normal(scale=0.8, size=n_g1)
    b2 = rng.normal(scale=0.5, size=n_g2)
    s1 = rng.normal(scale=0.3, size=n_g1)
    y = 1 + 0.5 * x + b1[g1] + b2[g2] + (s1[g1] * x if slope else 0) + rng.normal(size=g1.size)
    return pd.DataFrame({"y": y, "x": x, "g1": pd.Categorical(g1.astype(str)),
                         "g2": pd.Categorical(g2.astype(str))})


def test_compiled_scalar_kernel_equals_dense():
    design = bm.Model("y ~ x + (1 | g1) + (1 | g2)", simulated_crossed()).design
    check_against_dense(design, np.random.default_rng(2), layout="sparse")


def test_compiled_vector_kernel_equals_dense():
    design = bm.Model("y ~ x + (1 + x | g1) + (1 | g2)", simulated_crossed(slope=True)).design
    assert design.reterms[0].n_cols == 2
    check_against_dense(design, np.random.default_rng(4), layout="sparse")


def test_compiled_and_numpy_paths_agree():
    """The same system with a dense A21 (BLAS) and a sparse one (the compiled kernel)."""
    design = bm.Model("y ~ x + (1 + x | g1) + (1 | g2)", simulated_crossed(300, 60, 6, slope=True)).design
    small = BlockedSystem(design, layout="dense")
    big = BlockedSystem(design, layout="sparse")
    assert not isinstance(small.A21, SparseA21) and isinstance(big.A21, SparseA21)
    for theta in thetas(design, np.random.default_rng(5)):
        Fs, Fb = small.factor(theta), big.factor(theta)
        np.testing.assert_allclose(Fb.L22, Fs.L22, rtol=1e-10, atol=1e-12)
        assert Fb.ldL2 == pytest.approx(Fs.ldL2, rel=1e-12)


def test_profiled_deviance_equals_dense_marginal_likelihood():
    """-2 log L(theta) profiled over beta and sigma from the dense n x n marginal covariance."""
    data = sleep_with_factor()
    design = bm.Model("Reaction ~ Days + (Days | Subject)", data, weights="w").design
    n, p = design.n, design.p
    for theta in thetas(design, np.random.default_rng(6)):
        ZL = (design.Z @ design.Lambda(theta)).toarray()
        V0 = ZL @ ZL.T + np.diag(1 / design.weights)          # Var(y) / sigma^2
        Vi = np.linalg.inv(V0)
        X, y = design.X, design.y
        XtViX = X.T @ Vi @ X
        beta = np.linalg.solve(XtViX, X.T @ Vi @ y)
        r = y - X @ beta
        rss = r @ Vi @ r
        logdetV0 = np.linalg.slogdet(V0)[1]
        ml = logdetV0 + n * (1 + np.log(2 * np.pi * rss / n))
        reml = logdetV0 + np.linalg.slogdet(XtViX)[1] + (n - p) * (1 + np.log(2 * np.pi * rss / (n - p)))
        assert ProfiledDeviance(design, reml=False)(theta) == pytest.approx(ml, rel=1e-10)
        assert ProfiledDeviance(design, reml=True)(theta) == pytest.approx(reml, rel=1e-10)


@pytest.mark.slow
def test_insteval_system_uses_compiled_kernel_and_matches_lme4():
    from conftest import load_reference

    case = next(c for c in load_reference("lmer")["cases"] if c["id"] == "insteval_ml")
    design = bm.Model(case["formula"], bm.load_dataset("InstEval")).design
    dev = ProfiledDeviance(design, reml=False)
    assert isinstance(dev.system.A21, SparseA21)
    for theta, expected in zip(case["theta_eval"], case["criterion_eval"]):
        assert dev(np.asarray(theta)) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("formula, dataset", [
    ("Reaction ~ Days + (Days | Subject)", "sleepstudy"),                 # one vector term
    ("diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin"),          # crossed
])
def test_reweighted_z_only_factor_equals_the_full_one(formula, dataset):
    """PIRLS's use: reweight with working weights; the Z-only factor is the Z block of the full one."""
    design = bm.Model(formula, bm.load_dataset(dataset)).design
    rng = np.random.default_rng(7)
    w, z = rng.uniform(0.2, 3.0, design.n), rng.normal(size=design.n)
    theta = thetas(design, rng, 1)[1]
    system = BlockedSystem(design)
    system.reweight(w, z)
    full = system.factor(theta)
    system.reweight(w, None)
    zf = system.factor(theta, z_only=True)
    assert zf.ldL2 == pytest.approx(full.ldL2, rel=1e-12)
    b = rng.normal(size=(design.q, 2))
    np.testing.assert_allclose(zf.solve_L(b), full.solve_L(b), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(zf.solve_Lt(b), full.solve_Lt(b), rtol=1e-10, atol=1e-12)
    ZL = (design.Z @ design.Lambda(theta)).toarray()
    M = ZL.T @ (w[:, None] * ZL) + np.eye(design.q)
    np.testing.assert_allclose(M @ zf.solve_Lt(zf.solve_L(b)), b, atol=1e-9)
    with pytest.raises(ValueError):
        zf.pwrss
