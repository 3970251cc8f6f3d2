"""The scalar Schur kernel's plan: pre-summed classes of first-term columns (equal A11: equal
weights) and nearly dense columns through BLAS."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayesmixed as bm
from bayesmixed.likelihood._blocked import BlockedSystem
from bayesmixed.likelihood._kernels import schur_plan, schur_scalar_upper_v
from bayesmixed.likelihood.pls import ProfiledDeviance


def balanced(n_g: int = 400, n_h: int = 30, per: int = 40, seed: int = 5) -> pd.DataFrame:
    """Every level of g has `per` rows (one class of A11), h drawn at random."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_g), per)
    h, x = rng.integers(0, n_h, g.size), rng.normal(size=g.size)
    y = 1 + 0.3 * x + 0.5 * rng.normal(size=n_g)[g] + 0.4 * rng.normal(size=n_h)[h] + rng.normal(size=g.size)
    return pd.DataFrame({"y": y, "x": x, "g": pd.Categorical(g), "h": pd.Categorical(h)})


def system(df: pd.DataFrame) -> BlockedSystem:
    return BlockedSystem(bm.Model("y ~ x + (1 | g) + (1 | h)", df).design, layout="sparse")


def plan(s: BlockedSystem, **kw):
    A = s.A21
    return schur_plan(s.A11[:, 0, 0], A.indptr, A.indices, A.data, s.m, **kw)


def test_classes_and_dense_columns_chosen_only_when_they_pay():
    s = system(balanced())                              # one class of A11; ~25 of 33 rows per column
    p = plan(s, dense_frac=2.0)
    assert p is not None and p.G.shape[0] == 1 and (p.cls == 0).all() and p.dense.size == 0
    assert plan(s, dense_frac=2.0, budget_bytes=0) is None
    p = plan(s)                                         # every column is nearly dense: BLAS
    assert (p.cls == -2).all() and p.G.shape[0] == 0 and p.B.shape == (s.m, s.q1)
    s.A11[:, 0, 0] = np.arange(s.l1)                    # every class one column: none pays
    assert plan(s, dense_frac=2.0) is None


def mixed() -> pd.DataFrame:
    """Levels of g with 5 to 200 rows (classes of equal counts, a few nearly dense columns)."""
    rng = np.random.default_rng(9)
    per = np.concatenate([np.full(300, 6), np.full(200, 10), rng.integers(40, 200, 20)])
    g = np.repeat(np.arange(per.size), per)
    h, x = rng.integers(0, 150, g.size), rng.normal(size=g.size)
    y = 0.5 * rng.normal(size=per.size)[g] + 0.4 * rng.normal(size=150)[h] + x + rng.normal(size=g.size)
    return pd.DataFrame({"y": y, "x": x, "g": pd.Categorical(g), "h": pd.Categorical(h)})


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("v", [False, True])
@pytest.mark.parametrize("kw", [{"dense_frac": 2.0, "min_ratio": 0.01}, {"budget_bytes": 0}, {"min_ratio": 0.01}])
def test_planned_kernel_equals_the_scattered_one(n_threads, v, kw):
    s = system(mixed())
    A = s.A21
    p = plan(s, **kw)
    assert p is not None
    d = np.linspace(0.1, 0.9, s.q1)[np.unique(s.A11[:, 0, 0], return_inverse=True)[1]]   # equal in a class
    d2 = d**2 if v else None
    scale = np.linspace(0.5, 1.5, s.m)
    args = (s.A22, A.indptr, A.indices, A.data, d, scale, s.q_rest, d2, s.p + 1 if v else 0)
    U0, V0 = schur_scalar_upper_v(*args, n_threads=1)
    U1, V1 = schur_scalar_upper_v(*args, n_threads=n_threads, presum=p)
    np.testing.assert_allclose(np.triu(U1), np.triu(U0), rtol=1e-12, atol=1e-10 * np.abs(np.triu(U0)).max())
    assert V0.shape == V1.shape
    if v:
        np.testing.assert_allclose(np.triu(V1), np.triu(V0), rtol=1e-12, atol=1e-10 * np.abs(np.triu(V0)).max())


def test_lmm_criterion_unchanged_and_glmm_reweighting_turns_it_off():
    df = balanced()
    design = bm.Model("y ~ x + (1 | g) + (1 | h)", df).design
    dev = ProfiledDeviance(design, reml=False)
    dev.system = BlockedSystem(design, layout="sparse")
    theta = np.array([0.8, 0.6])
    with_presum = dev(theta)
    assert dev.system._presum_plan is not None
    dev.system._presum_ok = False
    assert with_presum == pytest.approx(dev(theta), rel=1e-13)
    s = BlockedSystem(design, layout="sparse")
    s.reweight(np.ones(design.n), design.y)            # what PIRLS does
    s.factor(theta)
    assert s._presum(s.A21) is None
