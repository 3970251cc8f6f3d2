"""Row order and index labels do not change the fit (hypothesis over permutations of sleepstudy)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

import bayesmixed as bm

SS = bm.load_dataset("sleepstudy")
F = "Reaction ~ Days + (Days | Subject)"
REF = bm.Model(F, SS).fit()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(perm=st.permutations(range(len(SS))),
       labels=st.sampled_from(["keep", "shuffle", "strings", "constant"]))
def test_permuted_rows_and_relabelled_index_give_the_same_fit(perm, labels):
    d = SS.iloc[list(perm)].copy()
    if labels == "shuffle":
        d.index = np.random.default_rng(len(perm)).permutation(len(d)) * 3
    elif labels == "strings":
        d.index = [f"r{i}" for i in d.index]
    elif labels == "constant":
        d.index = np.zeros(len(d), dtype=int)               # every label the same
    fit = bm.Model(F, d).fit()
    assert_allclose(fit.fixef.to_numpy(), REF.fixef.to_numpy(), rtol=0, atol=1e-6)
    assert_allclose(fit.theta, REF.theta, rtol=0, atol=1e-6)
    assert_allclose(fit.reml_criterion, REF.reml_criterion, rtol=1e-10)
    # per-row outputs follow the user's rows: same order and labels as d
    pd.testing.assert_index_equal(fit.fitted().index, d.index)
    assert_allclose(fit.fitted().to_numpy(), REF.fitted().to_numpy()[list(perm)], atol=1e-5)
    # ranef rows are levels in the factor's order, whatever the row order
    assert list(fit.ranef["Subject"].index) == list(REF.ranef["Subject"].index)
    assert_allclose(fit.ranef["Subject"].to_numpy(), REF.ranef["Subject"].to_numpy(), atol=1e-5)


def test_fitted_align_back_to_user_index():
    d = SS.sample(frac=1.0, random_state=3)
    fit = bm.Model(F, d).fit()
    back = fit.fitted().loc[SS.index]
    assert_allclose(back.to_numpy(), REF.fitted().to_numpy(), atol=1e-5)
