"""Pre-summed classes of first-term columns in the scalar Schur kernel (equal A11: equal weights)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayesmixed as bm
from bayesmixed.likelihood._blocked import BlockedSystem
from bayesmixed.likelihood._kernels import presum_build, presum_classes, schur_scalar_upper_v, schur_tile
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


def test_classes_chosen_only_when_they_pay():
    s = system(balanced())
    A = s.A21
    plan = presum_classes(s.A11[:, 0, 0], A.indptr, s.m)
    assert plan is not None and plan[2] == 1 and (plan[0] == 0).all()
    assert presum_classes(s.A11[:, 0, 0], A.indptr, s.m, budget_bytes=0) is None
    assert presum_classes(np.arange(s.l1, dtype=float), A.indptr, s.m) is None   # every class one column


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("v", [False, True])
def test_presummed_kernel_equals_the_scattered_one(n_threads, v):
    s = system(balanced())
    A = s.A21
    cls, rep, n_cls = presum_classes(s.A11[:, 0, 0], A.indptr, s.m)
    G = presum_build(np.zeros((n_cls, s.m, s.m)), A.indptr, A.indices, A.data, cls, schur_tile(s.m))
    d = np.full(s.q1, 0.37)
    d2 = np.full(s.q1, 0.11) if v else None
    scale = np.linspace(0.5, 1.5, s.m)
    args = (s.A22, A.indptr, A.indices, A.data, d, scale, s.q_rest, d2, s.p + 1 if v else 0)
    U0, V0 = schur_scalar_upper_v(*args, n_threads=1)
    U1, V1 = schur_scalar_upper_v(*args, n_threads=n_threads, presum=(cls, rep, G))
    np.testing.assert_allclose(np.triu(U1), np.triu(U0), rtol=1e-12, atol=1e-10 * np.abs(U0).max())
    assert V0.shape == V1.shape
    if v:
        np.testing.assert_allclose(np.triu(V1), np.triu(V0), rtol=1e-12, atol=1e-10 * np.abs(V0).max())


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
