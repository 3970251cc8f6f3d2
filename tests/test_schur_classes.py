"""The class-grouped Schur product: the kernel's sums in another order (to 1e-12), used only where it pays."""

import numpy as np
import pytest
import scipy.sparse as sp

from bayesmixed.likelihood import _kernels, _schur_cache, _schur_classes
from bayesmixed.likelihood._schur_classes import ClassPlan


def _system(seed=0, m=60, q1=3000, n_dense=8):
    rng = np.random.default_rng(seed)
    A = sp.csc_array(sp.hstack([rng.normal(size=(m, n_dense)),
                                sp.random(m, q1 - n_dense, density=0.08, random_state=seed + 1)], format="csc"))
    A.sort_indices()
    n = rng.integers(1, 6, q1).astype(float)
    A22 = (A @ A.T).toarray() + np.eye(m)
    return A22, A.indptr.astype(np.int64), A.indices.astype(np.int64), A.data, n


@pytest.mark.parametrize("t2", [0.0, 0.3, 4.0])
def test_plan_matches_the_kernel(t2) -> None:
    A22, indptr, indices, data, n = _system()
    plan = ClassPlan.build(A22, indptr, indices, data, n, min_work=0, class_min_ratio=0.1)
    assert plan.n_heavy == 8 and plan.n_classes == 5
    d = t2 / (t2 * n + 1)
    m = A22.shape[0]
    ref = _kernels.schur_scalar_upper(A22, indptr, indices, data, d, np.ones(m), 0)
    iu = np.triu_indices(m)
    np.testing.assert_allclose(plan.unscaled(d)[iu], ref[iu], rtol=1e-12, atol=1e-12 * np.abs(ref).max())


def test_plan_budget_and_thresholds() -> None:
    A22, indptr, indices, data, n = _system()
    m = A22.shape[0]
    packed = 8 * m * (m + 1) // 2
    assert ClassPlan.build(A22, indptr, indices, data, n, min_work=1e12) is None
    assert ClassPlan.build(A22, indptr, indices, data, n, min_work=0, class_min_ratio=0.1,
                           class_bytes=2 * packed).n_classes == 2
    assert ClassPlan.build(A22, indptr, indices, data, n, min_work=0, class_min_ratio=1e6).n_classes == 0


def test_unequal_weights_in_a_class_fall_back() -> None:
    A22, indptr, indices, data, n = _system()
    plan = ClassPlan.build(A22, indptr, indices, data, n, min_work=0, class_min_ratio=0.1)
    d = 0.3 / (0.3 * n + 1)
    d[np.flatnonzero(n == n[plan.class_cols[0]])[-1]] *= 1.5
    assert plan.unscaled(d) is None
    cache = _schur_cache.SchurCache()
    m = A22.shape[0]
    U, _ = cache.upper(A22, indptr, indices, data, d, np.ones(m), 0, n_key=n)
    assert np.array_equal(np.triu(U), np.triu(_kernels.schur_scalar_upper(A22, indptr, indices, data, d,
                                                                           np.ones(m), 0)))


def test_blocked_system_with_a_plan_matches_the_kernel(monkeypatch) -> None:
    import bayesmixed as bm
    from bayesmixed.likelihood._blocked import BlockedSystem

    import duckdb

    rel = duckdb.from_df(bm.load_dataset("InstEval")[["y", "service", "s", "d"]])
    m = bm.Model("y ~ service + (1 | s) + (1 | d)", rel)              # out of memory: cross-products
    a, b = (BlockedSystem.from_crossproducts(m.design, layout="sparse") for _ in range(2))
    theta = np.array([0.4, 0.6])
    Fb = b.factor(theta)
    monkeypatch.setattr(_schur_classes, "MIN_WORK", 0.0)
    monkeypatch.setattr(_schur_classes, "CLASS_MIN_RATIO", 0.05)
    monkeypatch.setattr(_schur_classes, "CLASS_BYTES", 1 << 26)
    Fa = a.factor(theta)
    plan = a._schur_cache._plans[2]
    assert plan is not None and plan.n_classes > 0
    np.testing.assert_allclose(Fa.L22, Fb.L22, rtol=1e-10, atol=1e-10 * np.abs(Fb.L22).max())
    assert abs(Fa.ldL2 - Fb.ldL2) < 1e-9 * abs(Fb.ldL2)


def test_module_examples() -> None:
    import doctest

    res = doctest.testmod(_schur_classes, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert res.failed == 0 and res.attempted > 0


@pytest.mark.skipif(not hasattr(_kernels, "schur_scalar_upper_v"), reason="no gradient kernel in this tree")
def test_plan_with_the_gradient_product() -> None:
    A22, indptr, indices, data, n = _system(seed=3)
    m, tail = A22.shape[0], 4
    A = sp.csc_array((data, indices, indptr), shape=(m, n.size)).toarray()
    A[m - tail:] = np.random.default_rng(5).normal(size=(tail, n.size))   # every column ends in the tail rows
    A = sp.csc_array(A)
    A22 = (A @ A.T).toarray() + np.eye(m)
    indptr, indices, data = A.indptr.astype(np.int64), A.indices.astype(np.int64), A.data
    plan = ClassPlan.build(A22, indptr, indices, data, n, min_work=0, class_min_ratio=0.1)
    d = 0.3 / (0.3 * n + 1)
    d2 = d * d / (0.3 * n + 1)
    P, V = plan.unscaled(d, 1, d2, tail)
    P0, V0 = _kernels.schur_scalar_upper_v(A22, indptr, indices, data, d, np.ones(m), 0, d2, tail)
    iu, iv = np.triu_indices(m), np.triu_indices(m - tail)
    np.testing.assert_allclose(P[iu], P0[iu], rtol=1e-12, atol=1e-12 * np.abs(P0[iu]).max())
    np.testing.assert_allclose(V[iv], V0[iv], rtol=1e-12, atol=1e-12 * np.abs(V0[iv]).max())
    cache = _schur_cache.SchurCache()
    for scale in (np.ones(m), np.full(m, 0.5)):
        U, V1 = cache.upper(A22, indptr, indices, data, d, scale, 10, d2, tail, 1, n)
        U0, _ = _kernels.schur_scalar_upper_v(A22, indptr, indices, data, d, scale, 10, d2, tail)
        np.testing.assert_allclose(U[iu], U0[iu], rtol=1e-12, atol=1e-12 * np.abs(U0[iu]).max())
        np.testing.assert_allclose(V1[iv], V0[iv], rtol=1e-12, atol=1e-12 * np.abs(V0[iv]).max())
    assert cache.hits == 1


@pytest.mark.parametrize("n_threads", [1, 2, 3])
@pytest.mark.parametrize("tile_bytes", [8 * 60 * 16, 8 * 60 * 23, 1 << 21])
def test_rest_kernel_identical_to_the_kernel(monkeypatch, n_threads, tile_bytes) -> None:
    monkeypatch.setattr(_schur_classes, "TILE_BYTES", tile_bytes)
    A22, indptr, indices, data, n = _system(seed=2)
    m = A22.shape[0]
    d = 0.7 / (0.7 * n + 1)
    U = _schur_classes.rest_upper(A22, indptr, indices, data, d, n_threads)
    ref = _kernels.schur_scalar_upper(A22, indptr, indices, data, d, np.ones(m), 0)
    assert np.array_equal(np.triu(U), np.triu(ref))


def test_reweighted_systems_keep_the_kernel(monkeypatch) -> None:
    import bayesmixed as bm
    from bayesmixed.likelihood._blocked import BlockedSystem

    monkeypatch.setattr(_schur_classes, "MIN_WORK", 0.0)
    m = bm.Model("y ~ service + (1 | s) + (1 | d)", bm.load_dataset("InstEval").iloc[:20000])
    system = BlockedSystem(m.design, layout="sparse")                  # the LMM's fixed weights: planned
    system.factor(np.array([0.4, 0.6]))
    assert system._schur_cache._plans is not None
    system.reweight(np.ones(m.design.n), m.design.y)                   # PIRLS: the direct kernel
    system.factor(np.array([0.4, 0.6]))
    assert system._schur_cache.entries == [] or all(e[0] is not system.A22 for e in system._schur_cache.entries)


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("tile_bytes", [8 * 60 * 16, 1 << 21])
def test_rest_kernel_with_the_gradient_product(monkeypatch, n_threads, tile_bytes) -> None:
    monkeypatch.setattr(_schur_classes, "TILE_BYTES", tile_bytes)
    A22, indptr, indices, data, n = _system(seed=4)
    m, tail = A22.shape[0], 3
    A = sp.csc_array((data, indices, indptr), shape=(m, n.size)).toarray()
    A[m - tail:] = np.random.default_rng(6).normal(size=(tail, n.size))   # every column ends in the tail rows
    A = sp.csc_array(A)
    indptr, indices, data = A.indptr.astype(np.int64), A.indices.astype(np.int64), A.data
    d = 0.7 / (0.7 * n + 1)
    d2 = d * d
    U, V = _schur_classes.rest_upper(A22, indptr, indices, data, d, n_threads, d2, tail)
    ref = _kernels.schur_scalar_upper(A22, indptr, indices, data, d, np.ones(m), 0)
    assert np.array_equal(np.triu(U), np.triu(ref))
    Av = A.toarray()[: m - tail]
    Vd = (Av * d2) @ Av.T
    np.testing.assert_allclose(np.triu(V), np.triu(Vd), rtol=1e-12, atol=1e-12 * np.abs(Vd).max())
    if hasattr(_kernels, "schur_scalar_upper_v"):
        U0, V0 = _kernels.schur_scalar_upper_v(A22, indptr, indices, data, d, np.ones(m), 0, d2, tail)
        assert np.array_equal(np.triu(V), np.triu(V0)) and np.array_equal(np.triu(U), np.triu(U0))
        assert not np.tril(V, -1).any() and np.array_equal(V, V0)       # V's lower triangle zero, as the kernel's
