"""Thread choice per operation (pure logic, no timing) and the threaded Schur kernel."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from bayesmixed import _threads
from bayesmixed._threads import MIN_PARALLEL_FLOPS, choose_threads
from bayesmixed.likelihood._kernels import schur_scalar_upper


@pytest.mark.parametrize(
    ("flops", "cores", "others", "cap", "expected"),
    [
        (1e5, 8, 0, None, 1),            # small: one thread whatever the machine
        (1e10, 1, 0, None, 1),           # one core
        (1e10, 2, 0, None, 2),           # idle machine: every core
        (1e10, 4, 1, None, 3),           # one core busy elsewhere
        (1e10, 2, 2, None, 1),           # two busy processes on two cores: never spin against them
        (1e10, 2, 7, None, 1),           # overloaded
        (1e10, 8, 0, 3, 3),              # capped
    ],
)
def test_choose_threads(flops, cores, others, cap, expected) -> None:
    assert choose_threads(flops, cores, others, cap) == expected


def test_choose_threads_threshold() -> None:
    assert choose_threads(MIN_PARALLEL_FLOPS * 0.99, 4, 0) == 1
    assert choose_threads(MIN_PARALLEL_FLOPS, 4, 0) == 4
    assert choose_threads(1e6, 4, 0, min_flops=1e5) == 4


def test_threads_for_reads_the_run_queue(monkeypatch) -> None:
    monkeypatch.setattr(_threads, "current_blas_threads", lambda: 2)    # the user allows 2
    monkeypatch.setattr(_threads, "available_cores", lambda: 2)
    monkeypatch.setattr(_threads, "_read_others", lambda: 2)
    monkeypatch.setattr(_threads, "_RUNNING", {"t": -1.0, "others": 0})
    assert _threads.threads_for(1e10) == 1
    monkeypatch.setattr(_threads, "_read_others", lambda: 0)
    monkeypatch.setattr(_threads, "_RUNNING", {"t": -1.0, "others": 0})
    assert _threads.threads_for(1e10) == 2
    assert _threads.threads_for(1.0) == 1


def test_other_runnable_is_cached(monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(_threads, "_read_others", lambda: calls.append(1) or 3)
    monkeypatch.setattr(_threads, "_RUNNING", {"t": -1.0, "others": 0})
    assert _threads.other_runnable() == 3
    assert _threads.other_runnable() == 3
    assert len(calls) == 1


def test_read_others_is_a_count() -> None:
    assert _threads._read_others() >= 0


def test_blas_limit_restores() -> None:
    before = [i["num_threads"] for i in _threads.controller().info() if i["user_api"] == "blas"]
    with _threads.single_blas_thread():
        inside = [i["num_threads"] for i in _threads.controller().info() if i["user_api"] == "blas"]
        assert all(n == 1 for n in inside)
    after = [i["num_threads"] for i in _threads.controller().info() if i["user_api"] == "blas"]
    assert after == before


@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_schur_kernel_threads_give_identical_results(n_threads) -> None:
    rng = np.random.default_rng(3)
    m, q1, q_rest = 40, 60, 35
    A = sp.random(m, q1, density=0.2, random_state=4, format="csc")
    A.sort_indices()
    B = rng.normal(size=(m, m))
    A22 = B @ B.T + m * np.eye(m)
    d, scale = rng.uniform(0.1, 1.0, q1), rng.uniform(0.5, 2.0, m)
    args = (A22, A.indptr.astype(np.int64), A.indices.astype(np.int64), A.data, d, scale, q_rest)
    U = schur_scalar_upper(*args, n_threads=n_threads)
    ref = (A22 - (A.toarray() * d) @ A.toarray().T) * np.outer(scale, scale)
    ref[np.arange(q_rest), np.arange(q_rest)] += 1.0
    np.testing.assert_allclose(np.triu(U), np.triu(ref), rtol=1e-12, atol=1e-12)
    assert np.array_equal(np.triu(U), np.triu(schur_scalar_upper(*args, n_threads=1)))


def test_module_examples() -> None:
    import doctest

    res = doctest.testmod(_threads, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert res.failed == 0 and res.attempted > 0


def test_user_setting_caps_the_choice(monkeypatch) -> None:
    from threadpoolctl import threadpool_limits

    monkeypatch.setattr(_threads, "available_cores", lambda: 4)
    monkeypatch.setattr(_threads, "_read_others", lambda: 0)
    monkeypatch.setattr(_threads, "_RUNNING", {"t": -1.0, "others": 0})
    with threadpool_limits(limits=1, user_api="blas"):
        with _threads.single_blas_thread():
            assert _threads.threads_for(1e10) == 1
        assert _threads.threads_for(1e10) == 1
    with _threads.single_blas_thread():
        assert _threads.thread_cap() >= 1


def test_kernel_pool_is_per_process(monkeypatch) -> None:
    from bayesmixed.likelihood import _kernels

    first = _kernels._pool()
    assert _kernels._pool() is first
    monkeypatch.setitem(_kernels._POOL, "pid", -1)        # as a forked child sees it
    assert _kernels._pool() is not first


def test_blocked_factor_with_kernel_threads_is_identical(monkeypatch) -> None:
    import bayesmixed as bm
    from bayesmixed.likelihood import _blocked

    design = bm.Model("diameter ~ 1 + (1 | plate) + (1 | sample)", bm.load_dataset("Penicillin")).design
    system = _blocked.BlockedSystem(design, layout="sparse")
    theta = np.array([1.5, 3.2])
    one = system.factor(theta).L22
    monkeypatch.setattr(_blocked, "threads_for", lambda flops, min_flops=0: 2)
    assert np.array_equal(system.factor(theta).L22, one)
