"""Tests of the data sets shipped in bayesmixed/datasets (numbers checked against R)."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from bayesmixed.datasets import describe_dataset, list_datasets, load_dataset
from bayesmixed.errors import BayesMixedError, DesignError

# name -> (rows, columns) as R reports them (dim() of the data frame)
EXPECTED_SHAPES = {
    "sleepstudy": (180, 3),
    "Dyestuff": (30, 2),
    "Dyestuff2": (30, 2),
    "Penicillin": (144, 3),
    "Pastes": (60, 4),
    "cake": (270, 5),
    "InstEval": (73421, 7),
    "cbpp": (56, 4),
    "grouseticks": (403, 7),
    "VerbAgg": (7584, 9),
    "Machines": (54, 3),
    "Orthodont": (108, 4),
    "Oats": (72, 4),
    "Contraception": (1934, 6),
    "Exam": (4059, 10),
    "wvxyz": (10, 5),
    "radon": (919, 4),
    "Salamanders": (644, 9),
}


@pytest.mark.parametrize("name", sorted(EXPECTED_SHAPES))
def test_every_dataset_loads_with_r_shape(name):
    frame = load_dataset(name)
    assert isinstance(frame, pd.DataFrame)
    assert frame.shape == EXPECTED_SHAPES[name]


def test_list_datasets_matches_files():
    table = list_datasets()
    assert list(table.columns) == ["name", "rows", "columns", "source", "title"]
    assert set(table["name"]) == set(EXPECTED_SHAPES)
    by_name = table.set_index("name")
    for name, (rows, cols) in EXPECTED_SHAPES.items():
        assert by_name.loc[name, "rows"] == rows
        assert by_name.loc[name, "columns"] == cols
    assert by_name.loc["sleepstudy", "source"] == "lme4::sleepstudy"
    assert by_name.loc["Machines", "source"] == "nlme::Machines"
    assert by_name.loc["Contraception", "source"] == "mlmRev::Contraception"


def test_column_names_are_rs():
    assert list(load_dataset("sleepstudy").columns) == ["Reaction", "Days", "Subject"]
    assert list(load_dataset("cbpp").columns) == ["herd", "incidence", "size", "period"]
    assert list(load_dataset("wvxyz").columns) == ["v", "w", "x", "y", "z"]
    assert list(load_dataset("VerbAgg").columns) == [
        "Anger", "Gender", "item", "resp", "id", "btype", "situ", "mode", "r2",
    ]


def test_level_order_follows_r():
    verb = load_dataset("VerbAgg")
    assert list(verb["mode"].cat.categories) == ["want", "do"]
    assert list(verb["r2"].cat.categories) == ["N", "Y"]
    assert list(verb["btype"].cat.categories) == ["curse", "scold", "shout"]
    assert verb["resp"].cat.ordered
    assert list(verb["resp"].cat.categories) == ["no", "perhaps", "yes"]
    assert not verb["mode"].cat.ordered
    inst = load_dataset("InstEval")
    # R's order, not alphabetical/numeric: dept levels start "15", "5", "10"
    assert list(inst["dept"].cat.categories[:3]) == ["15", "5", "10"]
    assert len(inst["s"].cat.categories) == 2972
    assert len(inst["d"].cat.categories) == 1128
    assert inst["studage"].cat.ordered
    sleep = load_dataset("sleepstudy")
    assert len(sleep["Subject"].cat.categories) == 18
    assert sleep["Subject"].cat.categories[0] == "308"
    machines = load_dataset("Machines")
    assert list(machines["Worker"].cat.categories) == ["6", "2", "4", "1", "3", "5"]
    assert machines["Worker"].cat.ordered  # nlme's groupedData orders it
    ortho = load_dataset("Orthodont")
    assert list(ortho["Sex"].cat.categories) == ["Male", "Female"]
    cake = load_dataset("cake")
    assert cake["temperature"].cat.ordered
    assert list(cake["temperature"].cat.categories) == ["175", "185", "195", "205", "215", "225"]
    contra = load_dataset("Contraception")
    assert list(contra["livch"].cat.categories) == ["0", "1", "2", "3+"]
    exam = load_dataset("Exam")
    assert list(exam["schgend"].cat.categories) == ["mixed", "boys", "girls"]


def test_values_match_r():
    sleep = load_dataset("sleepstudy")
    assert sleep["Reaction"].iloc[0] == 249.56
    assert sleep["Reaction"].iloc[1] == 258.7047
    assert sleep["Days"].tolist()[:10] == list(range(10))
    assert sleep["Reaction"].sum() == pytest.approx(53731.4205, abs=1e-8)
    cbpp = load_dataset("cbpp")
    assert cbpp["incidence"].sum() == 99
    assert cbpp["size"].sum() == 842
    inst = load_dataset("InstEval")
    assert inst["y"].sum() == 235369
    assert inst["y"].isin([1, 2, 3, 4, 5]).all()
    wv = load_dataset("wvxyz")
    assert wv["w"].tolist() == [366, 383, 332, 331, 311, 352, 356, 351, 399, 357]
    assert wv["x"].tolist() == [8, 1, 4, 10, 8, 10, 3, 1, 1, 2]
    verb = load_dataset("VerbAgg")
    assert (verb["r2"] == "Y").sum() == 3611
    for name in EXPECTED_SHAPES:
        assert not load_dataset(name).isna().any().any(), name


def test_radon_is_gelman_hill_data():
    radon = load_dataset("radon")
    assert list(radon.columns) == ["floor", "county", "log_radon", "log_uranium"]
    assert radon.shape == (919, 4)
    assert len(radon["county"].cat.categories) == 85
    assert radon["county"].cat.categories[0] == "AITKIN"
    assert (radon["county"] == "HENNEPIN").sum() == 105
    assert int(radon["floor"].sum()) == 153
    assert set(radon["floor"].unique()) == {0, 1}
    # R: mean(radon$log_radon), mean(radon$log_uranium) (rstanarm 2.21.3)
    assert radon["log_radon"].mean() == pytest.approx(1.2647792371410602, rel=1e-13)
    assert radon["log_uranium"].mean() == pytest.approx(-0.13170915377327266, rel=1e-12)
    # log_uranium is a county-level covariate: one value per county
    assert (radon.groupby("county", observed=True)["log_uranium"].nunique() == 1).all()
    by_name = list_datasets().set_index("name")
    assert by_name.loc["radon", "source"] == "rstanarm::radon"
    assert "Gelman & Hill" in describe_dataset("radon")


def test_salamanders_is_glmmtmb_data():
    sal = load_dataset("Salamanders")
    assert list(sal.columns) == [
        "site", "mined", "cover", "sample", "DOP", "Wtemp", "DOY", "spp", "count",
    ]
    assert list(sal["spp"].cat.categories) == ["GP", "PR", "DM", "EC-A", "EC-L", "DES-L", "DF"]
    assert list(sal["mined"].cat.categories) == ["yes", "no"]
    assert sal["site"].cat.ordered
    assert len(sal["site"].cat.categories) == 23
    assert int(sal["count"].sum()) == 852


def test_unknown_name_suggests_close_matches():
    with pytest.raises(DesignError) as info:
        load_dataset("sleepstdy")
    message = str(info.value)
    assert "sleepstudy" in message
    assert "Did you mean" in message
    assert isinstance(info.value, BayesMixedError)
    assert isinstance(info.value, ValueError)
    with pytest.raises(DesignError, match="Available: .*InstEval"):
        load_dataset("no-such-data")


def test_case_insensitive_name():
    assert load_dataset("dyestuff").shape == (30, 2)
    assert load_dataset("instEVAL").shape == (73421, 7)


def test_loads_are_independent():
    first = load_dataset("sleepstudy")
    first.loc[0, "Reaction"] = -1.0
    first["extra"] = 1
    second = load_dataset("sleepstudy")
    assert second.loc[0, "Reaction"] == 249.56
    assert "extra" not in second.columns
    assert first is not second


def test_describe_dataset():
    text = describe_dataset("VerbAgg")
    assert "7584" in text
    assert "want" in text
    for name in EXPECTED_SHAPES:
        doc = describe_dataset(name)
        assert 2 <= len(doc.splitlines()) <= 8


def test_loading_is_fast():
    from bayesmixed import datasets

    datasets._read.cache_clear()
    start = time.perf_counter()
    load_dataset("InstEval")
    assert time.perf_counter() - start < 0.3
