"""The scalar Schur product of systems with fixed weights (LMMs): the class plan of
``_schur_classes`` (pre-summed classes of first-term columns with equal A11, nearly dense
columns through BLAS) and the product cache; a reweighted system (PIRLS) uses the direct kernel."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayesmixed as bm
from bayesmixed.likelihood import _schur_classes
from bayesmixed.likelihood._blocked import BlockedSystem
from bayesmixed.likelihood._kernels import schur_scalar_upper_v
from bayesmixed.likelihood._schur_classes import ClassPlan
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
    return ClassPlan.build(s.A22, A.indptr, A.indices, A.data, s.A11.ravel(), **kw)


def test_classes_and_dense_columns_chosen_only_when_they_pay(monkeypatch):
    s = system(balanced())                              # one class of A11; ~25 of 33 rows per column
    monkeypatch.setattr(_schur_classes, "HEAVY_FRACTION", 2.0)
    p = plan(s, min_work=0)
    assert p is not None and p.n_classes == 1 and p.n_heavy == 0 and p.rest[0][-1] == 0
    assert plan(s, min_work=0, class_bytes=0) is None
    monkeypatch.setattr(_schur_classes, "HEAVY_FRACTION", 0.3)
    p = plan(s, min_work=0)                             # every column is nearly dense: BLAS
    assert p.n_heavy == s.q1 and p.n_classes == 0 and p.heavy_B.shape == (s.m, s.q1)
    s.A11[:, 0, 0] = np.arange(s.l1)                    # every class one column: none pays
    monkeypatch.setattr(_schur_classes, "HEAVY_FRACTION", 2.0)
    assert plan(s, min_work=0) is None


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
@pytest.mark.parametrize("kw", [{"class_min_ratio": 0.01}, {"class_bytes": 0}, {"class_min_ratio": 100.0}])
def test_planned_product_equals_the_scattered_one(n_threads, v, kw):
    s = system(mixed())
    A = s.A21
    p = plan(s, min_work=0, **kw)
    assert p is not None
    d = np.linspace(0.1, 0.9, s.q1)[np.unique(s.A11[:, 0, 0], return_inverse=True)[1]]   # equal in a class
    d2 = d**2 if v else None
    tail = s.p + 1 if v else 0
    args = (s.A22, A.indptr, A.indices, A.data, d, np.ones(s.m), 0, d2, tail)
    U0, V0 = schur_scalar_upper_v(*args, n_threads=1)
    out = p.unscaled(d, n_threads, d2, tail)
    U1, V1 = out if v else (out, None)
    np.testing.assert_allclose(np.triu(U1), np.triu(U0), rtol=1e-12, atol=1e-10 * np.abs(np.triu(U0)).max())
    if v:
        assert V0.shape == V1.shape
        np.testing.assert_allclose(np.triu(V1), np.triu(V0), rtol=1e-12, atol=1e-10 * np.abs(np.triu(V0)).max())


def test_lmm_criterion_unchanged_and_glmm_reweighting_turns_it_off(monkeypatch):
    df = balanced()
    design = bm.Model("y ~ x + (1 | g) + (1 | h)", df).design
    dev = ProfiledDeviance(design, reml=False)
    dev.system = BlockedSystem(design, layout="sparse")
    theta = np.array([0.8, 0.6])
    monkeypatch.setattr(_schur_classes, "MIN_WORK", 0)
    with_plan = dev(theta)
    assert dev.system._schur_cache._plans[2] is not None
    dev.system._presum_ok = False
    assert with_plan == pytest.approx(dev(theta), rel=1e-13)
    s = BlockedSystem(design, layout="sparse")
    s.reweight(np.ones(design.n), design.y)            # what PIRLS does
    s.factor(theta)
    assert "_schur_cache" not in s.__dict__
