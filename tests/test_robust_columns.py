"""Unknown columns anywhere in a model are named, with close matches from the data."""

from __future__ import annotations

import numpy as np
import pytest

import bayesmixed as bm

SS = bm.load_dataset("sleepstudy")


@pytest.mark.parametrize("formula, missing, suggestion", [
    ("Reaction ~ Dayz + (Days | Subject)", "Dayz", "Days"),            # fixed part
    ("Reaction ~ Days + (Dys | Subject)", "Dys", "Days"),              # random-effects expression
    ("Reaction ~ Days + (Days | Subjct)", "Subjct", "Subject"),        # grouping factor
    ("Reactio ~ Days + (Days | Subject)", "Reactio", "Reaction"),      # response
    ("log(Reactin) ~ Days + (1 | Subject)", "Reactin", "Reaction"),    # inside a transform
    ("Reaction ~ Days + offset(Dayss) + (1 | Subject)", "Dayss", "Days"),  # offset() term
    ("Reaction ~ days + (1 | Subject)", "days", "Days"),               # case slip
    ("Reaction ~ Days + (1 | Subject:Dayz)", "Dayz", "Days"),          # interaction grouping factor
])
def test_unknown_column_named_with_close_match(formula, missing, suggestion):
    with pytest.raises(bm.DesignError) as exc:
        bm.Model(formula, SS)
    msg = str(exc.value)
    assert "column(s) not in the data" in msg
    assert f"'{missing}' (did you mean '{suggestion}'?)" in msg
    assert "The data has columns: Reaction, Days, Subject" in msg


def test_several_unknown_columns_all_named():
    with pytest.raises(bm.DesignError) as exc:
        bm.Model("Reactio ~ Dayz + (1 | Subjekt)", SS)
    msg = str(exc.value)
    for name in ("'Reactio'", "'Dayz'", "'Subjekt'"):
        assert name in msg


def test_no_close_match_gives_no_guess():
    with pytest.raises(bm.DesignError) as exc:
        bm.Model("Reaction ~ zzz + (1 | Subject)", SS)
    assert "'zzz'." in str(exc.value) and "did you mean" not in str(exc.value)


def test_unknown_weights_column():
    with pytest.raises(bm.DesignError) as exc:
        bm.Model("Reaction ~ Days + (1 | Subject)", SS, weights="Dayss")
    assert "weights= uses column(s) not in the data: 'Dayss' (did you mean 'Days'?)" in str(exc.value)


def test_unknown_offset_column():
    with pytest.raises(bm.DesignError) as exc:
        bm.Model("Reaction ~ Days + (1 | Subject)", SS, offset="wt")
    assert "offset= uses column(s) not in the data: 'wt'" in str(exc.value)


def test_unknown_cbind_column():
    cbpp = bm.load_dataset("cbpp")
    with pytest.raises(bm.DesignError) as exc:
        bm.Model("cbind(incidense, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial")
    assert "'incidense' (did you mean 'incidence'?)" in str(exc.value)


def test_unknown_column_names_quoting_hint():
    d = SS.rename(columns={"Days": "my days"})
    with pytest.raises(bm.DesignError) as exc:
        bm.Model("Reaction ~ my_days + (1 | Subject)", d)
    msg = str(exc.value)
    assert "'my_days' (did you mean 'my days'?)" in msg
    assert 'Q("my var")' in msg and "`my var`" in msg


def test_weights_array_of_wrong_length():
    with pytest.raises(bm.DesignError) as exc:
        bm.Model("Reaction ~ Days + (1 | Subject)", SS, weights=np.ones(10))
    assert "weights= has shape (10,) but the data has 180 rows" in str(exc.value)


def test_duplicated_column_names_refused_by_name():
    d = SS.copy()
    d.insert(2, "Dup", 1.0)
    d.columns = ["Reaction", "Days", "Days", "Subject"]
    with pytest.raises(bm.DesignError, match="column name\\(s\\) 'Days' appear more than once"):
        bm.Model("Reaction ~ Days + (1 | Subject)", d)
