"""Data sets shipped inside bayesmixed (no network access, ever).

Each data set is a gzip CSV in ``datasets/data/`` next to a JSON sidecar holding its
description, its source (``"lme4::sleepstudy"``...) and, for every factor column, the
levels in R's order, so that ``load_dataset`` rebuilds the same factors R has
(``VerbAgg["mode"]`` has levels ``["want", "do"]``, not alphabetical). The files are
written by ``tests/reference/export_datasets.R``.

Examples
--------
>>> from bayesmixed.datasets import load_dataset
>>> load_dataset("sleepstudy").shape
(180, 3)
"""

from __future__ import annotations

import difflib
import json
from functools import lru_cache
from importlib import resources

import numpy as np
import pandas as pd

from bayesmixed.errors import DesignError

__all__ = ["load_dataset", "list_datasets", "describe_dataset"]

_SUFFIX = ".csv.gz"


def _data_dir():
    return resources.files(__package__).joinpath("data")


@lru_cache(maxsize=1)
def _names() -> tuple[str, ...]:
    names = [
        entry.name[: -len(_SUFFIX)]
        for entry in _data_dir().iterdir()
        if entry.name.endswith(_SUFFIX)
    ]
    return tuple(sorted(names, key=str.lower))


def _resolve(name: str) -> str:
    """Return the canonical spelling of ``name`` or raise ``DesignError``."""
    if not isinstance(name, str):
        raise DesignError(f"data set name must be a string, got {type(name).__name__}")
    names = _names()
    if name in names:
        return name
    folded = [n for n in names if n.lower() == name.lower()]
    if len(folded) == 1:
        return folded[0]
    lower_map = {n.lower(): n for n in names}
    close = difflib.get_close_matches(name.lower(), list(lower_map), n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(lower_map[c]) for c in close)}?" if close else ""
    raise DesignError(
        f"no data set named {name!r}.{hint} Available: {', '.join(names)}."
    )


@lru_cache(maxsize=None)
def _sidecar(name: str) -> dict:
    text = _data_dir().joinpath(name + ".json").read_text(encoding="utf-8")
    return json.loads(text)


@lru_cache(maxsize=8)
def _read(name: str) -> pd.DataFrame:
    meta = _sidecar(name)
    ordered = set(meta.get("ordered") or [])
    dtype: dict[str, object] = {}
    for col, levels in (meta.get("categorical") or {}).items():
        dtype[col] = pd.CategoricalDtype([str(lev) for lev in levels], ordered=col in ordered)
    for col, kind in (meta.get("dtypes") or {}).items():
        if kind == "float":
            dtype[col] = np.float64
        elif kind == "str":
            dtype[col] = str
    with _data_dir().joinpath(name + _SUFFIX).open("rb") as fh:
        frame = pd.read_csv(
            fh,
            compression="gzip",
            dtype=dtype,
            keep_default_na=False,
            na_values=[""],
        )
    return frame


def load_dataset(name: str) -> pd.DataFrame:
    """Load one of the data sets shipped with bayesmixed.

    Parameters
    ----------
    name : str
        Data set name as in R (``"sleepstudy"``, ``"Dyestuff"``, ``"cbpp"``...); a
        case-insensitive match is accepted when unambiguous. See :func:`list_datasets`.

    Returns
    -------
    pandas.DataFrame
        A new frame on every call (changing it does not change later loads). Column
        names are R's; R factors become ``pd.Categorical`` with R's level order
        (``ordered=True`` for R's ordered factors); numbers are ``float64`` or ``int64``.

    Raises
    ------
    DesignError
        If no data set has that name; the message lists close matches and all names.

    Examples
    --------
    >>> from bayesmixed.datasets import load_dataset
    >>> load_dataset("sleepstudy").shape
    (180, 3)
    >>> list(load_dataset("VerbAgg")["mode"].cat.categories)
    ['want', 'do']
    """
    return _read(_resolve(name)).copy(deep=True)


def list_datasets() -> pd.DataFrame:
    """List the shipped data sets.

    Returns
    -------
    pandas.DataFrame
        One row per data set with columns ``name``, ``rows``, ``columns`` (number of
        columns), ``source`` (e.g. ``"lme4::sleepstudy"``) and ``title``.

    Examples
    --------
    >>> from bayesmixed.datasets import list_datasets
    >>> table = list_datasets()
    >>> int(table.set_index("name").loc["InstEval", "rows"])
    73421
    """
    records = []
    for name in _names():
        meta = _sidecar(name)
        records.append(
            {
                "name": name,
                "rows": int(meta["rows"]),
                "columns": len(meta["columns"]),
                "source": meta["source"],
                "title": meta.get("title", ""),
            }
        )
    return pd.DataFrame.from_records(
        records, columns=["name", "rows", "columns", "source", "title"]
    )


def describe_dataset(name: str) -> str:
    """Return the short description of a shipped data set.

    Parameters
    ----------
    name : str
        Data set name, as for :func:`load_dataset`.

    Returns
    -------
    str
        A few lines: origin, number of rows and the meaning of every column.

    Examples
    --------
    >>> from bayesmixed.datasets import describe_dataset
    >>> "Reaction" in describe_dataset("sleepstudy")
    True
    """
    return _sidecar(_resolve(name))["doc"]
