"""The Schur-product cache: the direct kernel's numbers (bit for bit), reused only for the same weights."""

import numpy as np
import pytest
import scipy.sparse as sp

from bayesmixed.likelihood import _kernels, _schur_cache


def _args(m, q1, q_rest, density, seed):
    rng = np.random.default_rng(seed)
    A = sp.random(m, q1, density=density, random_state=seed + 1, format="csc")
    A.sort_indices()
    B = rng.normal(size=(m, m))
    A22 = B @ B.T + m * np.eye(m)
    d, scale = rng.uniform(0.1, 1.0, q1), rng.uniform(0.5, 2.0, m)
    return A22, A.indptr.astype(np.int64), A.indices.astype(np.int64), A.data, d, scale, q_rest


def test_cache_reuses_only_same_weights_and_arrays() -> None:
    A22, indptr, indices, data, d, scale, q_rest = _args(m=50, q1=90, q_rest=40, density=0.1, seed=7)
    cache = _schur_cache.SchurCache()

    def ref(d_, s_, data_=data):
        return np.triu(_kernels.schur_scalar_upper(A22, indptr, indices, data_, d_, s_, q_rest))

    s2 = scale * 1.5
    for dd, ss in [(d, scale), (d, s2), (d * 0.5, scale), (d.copy(), s2), (d * 0.5, s2), (d * 0.25, s2),
                   (d * 0.5, scale)]:
        U, V = cache.upper(A22, indptr, indices, data, dd, ss, q_rest)
        assert V is None and np.array_equal(np.triu(U), ref(dd, ss))
    assert cache.hits == 4 and len(cache.entries) == _schur_cache.CACHE_ENTRIES
    data2 = data * 2.0                                    # a reweighted system: new arrays, no reuse
    U, _ = cache.upper(A22, indptr, indices, data2, d, scale, q_rest)
    assert np.array_equal(np.triu(U), ref(d, scale, data2))
    assert cache.hits == 4 and len(cache.entries) == 1


def test_large_targets_are_not_cached(monkeypatch) -> None:
    monkeypatch.setattr(_schur_cache, "CACHE_BYTES", 1000)
    args = _args(m=30, q1=40, q_rest=20, density=0.2, seed=2)
    cache = _schur_cache.SchurCache()
    for _ in range(2):
        U, _ = cache.upper(*args)
        assert np.array_equal(np.triu(U), np.triu(_kernels.schur_scalar_upper(*args)))
    assert cache.hits == 0 and not cache.entries


@pytest.mark.skipif(not hasattr(_kernels, "schur_scalar_upper_v"), reason="no gradient kernel in this tree")
def test_cache_with_gradient_product() -> None:
    A22, indptr, indices, data, d, scale, q_rest = _args(m=40, q1=70, q_rest=30, density=0.15, seed=4)
    cache = _schur_cache.SchurCache()
    for ss in (scale, scale * 0.7):
        U, V = cache.upper(A22, indptr, indices, data, d, ss, q_rest, d * d, 3)
        U0, V0 = _kernels.schur_scalar_upper_v(A22, indptr, indices, data, d, ss, q_rest, d * d, 3)
        assert np.array_equal(np.triu(U), np.triu(U0)) and np.array_equal(np.triu(V), np.triu(V0))
    assert cache.hits == 1


def test_blocked_system_reuses_the_product_for_the_same_first_theta() -> None:
    import bayesmixed as bm
    from bayesmixed.likelihood._blocked import BlockedSystem

    import duckdb

    rel = duckdb.from_df(bm.load_dataset("InstEval").iloc[:5000][["y", "service", "s", "d"]])
    m = bm.Model("y ~ service + (1 | s) + (1 | d)", rel)              # out of memory: cross-products
    a, b = (BlockedSystem.from_crossproducts(m.design, layout="sparse") for _ in range(2))
    for theta in ([0.5, 0.3], [0.5, 0.7], [0.6, 0.7], [0.5, 0.3]):
        Fa = a.factor(np.array(theta))
        b.__dict__.pop("_schur_cache", None)                 # b: always the direct kernel
        assert np.array_equal(Fa.L22, b.factor(np.array(theta)).L22)
    assert a._schur_cache.hits == 2


def test_module_examples() -> None:
    import doctest

    res = doctest.testmod(_schur_cache, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert res.failed == 0 and res.attempted > 0
