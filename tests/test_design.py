"""The model description: Z layout, Lambda(theta), theta order and bounds, term order, labels.

lme4's conventions (Bates et al. 2015, JSS Sec. 2.3; ``lme4:::mkReTrms``) are the
reference: Z has level-major columns per term, Lambda = blockdiag_i (I_{l_i} (x) T_i)
with T_i lower triangular and theta its column-major lower triangle, lower bounds 0 on
diagonals and -Inf elsewhere (``getME(fit, "lower")``, stored in the fixtures), and the
terms sorted by decreasing number of levels when the formula's order is not already so.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.linalg as sla
import scipy.sparse as sp

import bayesmixed as bm
from conftest import load_reference

REF = load_reference("lmer")
CASES = {c["id"]: c for c in REF["cases"]}


def _data(case):
    df = bm.load_dataset(case["dataset"]).copy()
    for col, values in (case["extra_columns"] or {}).items():
        df[col] = values
    for col in df.columns:
        if isinstance(df[col].dtype, pd.CategoricalDtype) and df[col].cat.ordered:
            df[col] = df[col].cat.as_unordered()
    return df


@pytest.fixture(scope="module")
def sleep():
    return bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).design


def test_sizes_and_names(sleep):
    assert (sleep.n, sleep.p, sleep.q, sleep.n_theta) == (180, 2, 36, 3)
    assert sleep.fixef_names == ("Intercept", "Days")
    assert sleep.theta_names == ("Subject:Intercept", "Subject:Days.Intercept", "Subject:Days")
    assert sleep.ngroups == {"Subject": 18}
    t = sleep.reterms[0]
    assert (t.name, t.group, t.cnames, t.correlated) == ("Subject", "Subject", ("Intercept", "Days"), True)
    assert t.levels[:3] == ("308", "309", "310")


def test_Z_is_level_major(sleep):
    """Columns 2j, 2j+1 of Z are Subject j's intercept and Days (lme4's layout)."""
    data = bm.load_dataset("sleepstudy")
    Z = sleep.Z.toarray()
    assert isinstance(sleep.Z, sp.csc_array) and Z.shape == (180, 36)
    t = sleep.reterms[0]
    for j, lev in enumerate(t.levels):
        rows = (data["Subject"].astype(str) == lev).to_numpy()
        np.testing.assert_array_equal(Z[:, 2 * j], rows.astype(float))
        np.testing.assert_array_equal(Z[:, 2 * j + 1], np.where(rows, data["Days"], 0.0))
    assert sleep.b_slices == (slice(0, 36),)


def test_Z_of_several_terms_side_by_side():
    design = bm.Model("strength ~ 1 + (1 | batch/cask)", bm.load_dataset("Pastes")).design
    Z = design.Z.toarray()
    assert Z.shape == (60, 30 + 10)
    assert (Z.sum(axis=1) == 2).all()                        # one level of each term per row
    assert design.b_slices == (slice(0, 30), slice(30, 40))
    np.testing.assert_array_equal(Z[:, 30:], design.reterms[1].Zi.toarray())


def test_Lambda_is_blockdiag_of_kron(sleep):
    theta = np.array([0.9, -0.3, 0.4])
    T = np.array([[0.9, 0.0], [-0.3, 0.4]])                  # column-major lower triangle
    np.testing.assert_array_equal(sleep.reterms[0].lambda_block(theta), T)
    np.testing.assert_array_equal(sleep.Lambda(theta).toarray(), np.kron(np.eye(18), T))
    # the relative covariance of one subject's effects is T T' (times sigma^2)
    np.testing.assert_allclose(sleep.reterms[0].covariance(theta, 2.0), 4 * T @ T.T)
    np.testing.assert_allclose(sleep.reterms[0].theta_from_cov(4 * T @ T.T, 2.0), theta)


def test_Lambda_of_mixed_terms():
    d = bm.load_dataset("sleepstudy").copy()
    d["f"] = np.where(d["Days"] < 5, "a", "b")
    design = bm.Model("Reaction ~ Days + (1 | Subject:f) + (Days | Subject)", d).design
    theta = np.array([1.5, 0.9, 0.2, 0.4])
    T2 = np.array([[0.9, 0.0], [0.2, 0.4]])
    expected = sla.block_diag(np.kron(np.eye(36), [[1.5]]), np.kron(np.eye(18), T2))
    np.testing.assert_array_equal(design.Lambda(theta).toarray(), expected)
    assert design.theta_slices == (slice(0, 1), slice(1, 4))


def test_uncorrelated_terms_are_diagonal():
    design = bm.Model("Reaction ~ Days + (Days || Subject)", bm.load_dataset("sleepstudy")).design
    # lme4 expands (Days || Subject) into (1 | Subject) + (0 + Days | Subject)
    assert [(t.name, t.cnames) for t in design.reterms] == [("Subject", ("Intercept",)),
                                                              ("Subject.1", ("Days",))]
    assert list(design.lower) == [0.0, 0.0]


@pytest.mark.parametrize("case_id", [c for c in CASES if c != "insteval_ml"])
def test_theta_start_and_bounds_as_lme4(case_id):
    case = CASES[case_id]
    control = {"check_nobs_vs_nlev": "ignore"} if case_id.startswith("wvxyz") else None
    design = bm.Model(case["formula"], _data(case), weights=case["weights"], offset=case["offset"],
                      control=control).design
    lower = np.array([-np.inf if v is None else v for v in case["lower"]])
    np.testing.assert_array_equal(design.lower, lower)
    # lme4 starts at the identity factors: 1 on diagonals, 0 off them
    np.testing.assert_array_equal(design.theta0, np.where(lower == 0, 1.0, 0.0))
    assert design.n_theta == len(case["theta"])
    assert design.n == case["nobs"]
    assert len(design.fixef_names) == len(case["fixef_names"])


def test_terms_sorted_by_levels_like_mkReTrms():
    pen = bm.load_dataset("Penicillin")
    # sample (6 levels) before plate (24): the count increases, so lme4 reorders
    d = bm.Model("diameter ~ 1 + (1 | sample) + (1 | plate)", pen).design
    assert [t.name for t in d.reterms] == ["plate", "sample"]
    # already non-increasing: kept as written
    d = bm.Model("diameter ~ 1 + (1 | plate) + (1 | sample)", pen).design
    assert [t.name for t in d.reterms] == ["plate", "sample"]


def test_ties_follow_rev_order():
    """lme4 uses rev(order(nlev)): among equal counts the later term comes first."""
    rng = np.random.default_rng(0)
    n = 60
    data = pd.DataFrame({"y": rng.normal(size=n), "a": np.arange(n) % 3, "b": np.arange(n) % 5,
                         "c": (np.arange(n) // 20) % 3})
    d = bm.Model("y ~ 1 + (1 | a) + (1 | b) + (1 | c)", data).design
    # nlev = (3, 5, 3); order(nlev) = (a, c, b); rev = (b, c, a)
    assert [t.name for t in d.reterms] == ["b", "c", "a"]


def test_interaction_levels_follow_R():
    """Levels of g1:g2 run over g1's levels slowest, labelled 'l1:l2', only those present."""
    case = CASES["machines_nested_reml"]
    design = bm.Model(case["formula"], _data(case)).design
    term = next(t for t in design.reterms if t.group == "Worker:Machine")
    assert list(term.levels) == case["ranef"]["Worker:Machine"]["levels"]
    cake = CASES["cake_interaction_reml"]
    design = bm.Model(cake["formula"], _data(cake)).design
    assert list(design.reterms[0].levels) == cake["ranef"]["recipe:replicate"]["levels"]
    # absent combinations are dropped (R's interaction(drop = TRUE) via factor())
    data = pd.DataFrame({"y": [1.0, 2, 3, 4, 5, 6], "g": list("aabbcc"), "h": list("xyxyxx")})
    d = bm.Model("y ~ 1 + (1 | g:h)", data, control={"check_nobs_vs_nlev": "ignore"}).design
    assert d.reterms[0].levels == ("a:x", "a:y", "b:x", "b:y", "c:x")


def test_nested_slash_expands_to_the_interaction():
    design = bm.Model("strength ~ 1 + (1 | batch/cask)", bm.load_dataset("Pastes")).design
    assert [t.group for t in design.reterms] == ["batch:cask", "batch"]
    # the same model written out
    explicit = bm.Model("strength ~ 1 + (1 | batch) + (1 | batch:cask)", bm.load_dataset("Pastes")).design
    assert [t.group for t in explicit.reterms] == ["batch:cask", "batch"]
    np.testing.assert_array_equal(design.Z.toarray(), explicit.Z.toarray())
    assert design.reterms[0].levels[:3] == ("A:a", "A:b", "A:c")


def test_factor_inside_the_bar():
    design = bm.Model("score ~ Machine + (0 + Machine | Worker)", _data(CASES["machines_factor_slopes_reml"])).design
    t = design.reterms[0]
    assert t.n_cols == 3 and t.n_theta == 6
    assert t.Xi.sum(axis=1).tolist() == [1.0] * design.n           # one indicator per row
    assert t.levels == ("6", "2", "4", "1", "3", "5")               # the factor's own level order


def test_numeric_grouping_levels_print_like_R():
    design = bm.Model("x ~ y + z + (1 | w)", bm.load_dataset("wvxyz"),
                      control={"check_nobs_vs_nlev": "ignore"}).design
    assert design.reterms[0].levels == tuple(CASES["wvxyz_reml"]["ranef"]["w"]["levels"])


def test_weights_and_offset_are_carried():
    data = bm.load_dataset("sleepstudy").copy()
    data["w"] = 1.0 + np.arange(180) % 3
    d = bm.Model("Reaction ~ Days + offset(Days) + (1 | Subject)", data, weights="w").design
    np.testing.assert_array_equal(d.weights, data["w"].to_numpy())
    np.testing.assert_array_equal(d.offset, data["Days"].to_numpy())
    d2 = bm.Model("Reaction ~ Days + (1 | Subject)", data, offset="Days").design
    np.testing.assert_array_equal(d2.offset, d.offset)


def test_r_power_inside_calls():
    """R's ^ inside I() is arithmetic (Days squared), not Python's xor."""
    d = bm.Model("Reaction ~ Days + I(Days^2) + (1 | Subject)", bm.load_dataset("sleepstudy")).design
    np.testing.assert_array_equal(d.X[:, 2], d.X[:, 1] ** 2)
