"""The inference functions as the fit's methods: confint(method=), bootstrap, tidy/summary(ddf=), anova(method="pb")."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayesmixed as bm
from bayesmixed.errors import DesignError
from bayesmixed.inference import boot_confint, bootstrap, kenward_roger, pb_test, profile_confint


@pytest.fixture(scope="module")
def dyestuff():
    return bm.Model("Yield ~ 1 + (1 | Batch)", bm.load_dataset("Dyestuff")).fit()


@pytest.fixture(scope="module")
def unbalanced():
    d = bm.load_dataset("sleepstudy")
    d = d[np.arange(len(d)) % 7 != 3]
    return bm.Model("Reaction ~ Days + (Days | Subject)", d).fit()


def test_confint_methods_are_the_inference_functions(dyestuff):
    pd.testing.assert_frame_equal(dyestuff.confint(method="profile"), profile_confint(dyestuff))
    pd.testing.assert_frame_equal(dyestuff.confint(method="boot", nsim=8, seed=4),
                                  boot_confint(dyestuff, nsim=8, seed=4))
    pd.testing.assert_frame_equal(dyestuff.bootstrap(6, seed=2), bootstrap(dyestuff, 6, seed=2))
    wald = dyestuff.confint()
    assert list(wald.index) == ["Intercept"]
    with pytest.raises(DesignError, match="'wald', 'profile' or 'boot'"):
        dyestuff.confint(method="likelihood")


def test_kenward_roger_in_tidy_and_summary(unbalanced):
    kr = kenward_roger(unbalanced)
    tid = unbalanced.tidy(ddf="Kenward-Roger", conf_int=True)
    fixed = tid[tid["effect"] == "fixed"].set_index("term")
    np.testing.assert_allclose(fixed["df"], kr.df.to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(fixed["std_error"], np.sqrt(np.diag(kr.vcov.to_numpy())), rtol=1e-12)
    sat = unbalanced.tidy().set_index("term")
    assert not np.allclose(sat.loc[fixed.index, "df"], fixed["df"])      # unbalanced: the methods differ
    text = str(unbalanced.summary(ddf="kenward-roger"))
    assert "t-tests use Kenward-Roger's method" in text
    assert "t-tests use Satterthwaite's method" in str(unbalanced.summary())
    with pytest.raises(DesignError, match="Kenward-Roger"):
        unbalanced.tidy(ddf="Welch")


def test_anova_pb_is_pbmodcomp():
    d = bm.load_dataset("sleepstudy")
    m0 = bm.Model("Reaction ~ 1 + (1 | Subject)", d).fit(method="ml")
    m1 = bm.Model("Reaction ~ Days + (1 | Subject)", d).fit(method="ml")
    got = bm.anova(m0, m1, method="pb", nsim=10, seed=1)
    pd.testing.assert_frame_equal(got, pb_test(m0, m1, nsim=10, seed=1))
    with pytest.raises(DesignError, match="exactly two"):
        bm.anova(m0, m1, m1, method="pb", nsim=10)
