"""lme4's ``||`` with factors, glmmTMB's ``diag()``, and boolean terms named as factors.

Reference numbers (nlme's Machines, REML): lme4 1.1-31 ``score ~ Machine + (Machine || Worker)``
and ``(Machine | Worker)`` 208.3112; glmmTMB 1.1.5 ``diag(Machine | Worker)`` 212.2344 and
``(1 | Worker) + diag(0 + Machine | Worker)`` 211.9396 (issue 12).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import bayesmixed as bm
from bayesmixed.errors import BayesMixedWarning, DoubleBarFactorWarning

MACHINES = bm.load_dataset("Machines")
SS = bm.load_dataset("sleepstudy")

REML = [
    ("score ~ Machine + (Machine || Worker)", 208.3112),
    ("score ~ Machine + (Machine | Worker)", 208.3112),
    ("score ~ Machine + diag(Machine | Worker)", 212.2344),
    ("score ~ Machine + (1 | Worker) + diag(0 + Machine | Worker)", 211.9396),
]


def _fit(formula, data=MACHINES):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BayesMixedWarning)
        return bm.Model(formula, data).fit()


@pytest.mark.parametrize("formula, criterion", REML, ids=[f for f, _ in REML])
def test_machines_reml_criterion(formula, criterion):
    assert _fit(formula).reml_criterion == pytest.approx(criterion, abs=1e-4)


def test_double_bar_with_a_factor_is_lme4s_expansion():
    with pytest.warns(DoubleBarFactorWarning):
        d = bm.Model("score ~ Machine + (Machine || Worker)", MACHINES).design
    assert [(t.name, t.cnames, t.correlated, t.n_theta) for t in d.reterms] == [
        ("Worker", ("Intercept",), False, 1),
        ("Worker.1", ("Machine[A]", "Machine[B]", "Machine[C]"), True, 6),
    ]


def test_diag_terms_are_diagonal_over_lme4s_columns():
    d = bm.Model("score ~ Machine + diag(Machine | Worker)", MACHINES).design
    (t,) = d.reterms
    assert t.cnames == ("Intercept", "Machine[T.B]", "Machine[T.C]")
    assert not t.correlated and t.n_theta == 3
    assert d.theta_names == ("Worker:Intercept", "Worker:Machine[T.B]", "Worker:Machine[T.C]")
    d = bm.Model("score ~ Machine + (1 | Worker) + diag(0 + Machine | Worker)", MACHINES).design
    assert [(t.cnames, t.correlated) for t in d.reterms] == [
        (("Intercept",), False), (("Machine[A]", "Machine[B]", "Machine[C]"), False)]


def test_warning_says_columns_stay_correlated_and_how_to_decorrelate():
    with pytest.warns(DoubleBarFactorWarning) as rec:
        bm.Model("score ~ Machine + (Machine || Worker)", MACHINES)
    (w,) = [r for r in rec if r.category is DoubleBarFactorWarning]
    msg = str(w.message)
    assert "'||' does not make the columns of 'Machine' independent" in msg
    assert "(0 + Machine | Worker)" in msg and "stay correlated" in msg
    assert "3 columns (Machine[A], Machine[B], Machine[C])" in msg
    assert "(1 | Worker) + diag(0 + Machine | Worker)" in msg
    assert issubclass(DoubleBarFactorWarning, UserWarning)
    assert w.filename == __file__                # points at the user's line


def test_double_bar_with_numbers_still_splits_into_scalar_terms():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DoubleBarFactorWarning)
        d = bm.Model("Reaction ~ Days + (Days || Subject)", SS).design
    assert [(t.cnames, t.n_theta) for t in d.reterms] == [(("Intercept",), 1), (("Days",), 1)]
    same = bm.Model("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", SS).fit()
    fit = _fit("Reaction ~ Days + (Days || Subject)", SS)
    assert fit.reml_criterion == pytest.approx(same.reml_criterion, abs=1e-8)


def test_boolean_terms_are_named_as_factor_contrasts():
    d = SS.assign(late=SS["Days"] > 4)
    m = bm.Model("Reaction ~ I(Days > 2) + late + (1 | Subject)", d)
    assert m.design.fixef_names == ("Intercept", "I(Days > 2)[T.True]", "late[T.True]")
    assert m.design.X[:, 1].tolist() == (SS["Days"] > 2).astype(float).tolist()
    fit = _fit("Reaction ~ I(Days > 2) + (1 | Subject)", d)
    assert list(fit.fixef.index) == ["Intercept", "I(Days > 2)[T.True]"]
    new = pd.DataFrame({"Days": [0, 9], "Subject": ["308", "308"]})
    pred = fit.predict(new, include_random=False)
    b = fit.fixef
    assert np.allclose(np.asarray(pred), [b.iloc[0], b.iloc[0] + b.iloc[1]])
    # as R: without the intercept a logical gives both levels
    assert bm.Model("Reaction ~ 0 + late + (1 | Subject)", d).design.fixef_names == (
        "late[False]", "late[True]")


def test_boolean_random_slope_is_named_as_a_contrast():
    d = SS.assign(late=SS["Days"] > 4)
    t = bm.Model("Reaction ~ late + (late | Subject)", d).design.reterms[0]
    assert t.cnames == ("Intercept", "late[T.True]")
