"""Reading data columns for a design: frames, names, dtypes, missing and non-finite values.

Shared by :mod:`bayesmixed.design.build` (fitting data) and
:mod:`bayesmixed.design.newdata` (prediction data).
"""

from __future__ import annotations

import difflib
from typing import Any

import numpy as np
import pandas as pd

from bayesmixed.errors import DesignError


def as_pandas(data: Any, what: str = "data") -> pd.DataFrame:
    """Accept pandas, polars (or anything with ``to_pandas``) or a dict of columns.

    The result may share memory with ``data``: callers never write into it.

    Examples
    --------
    >>> as_pandas({"y": [1.0, 2.0], "g": ["a", "b"]}).shape
    (2, 2)
    """
    if isinstance(data, pd.DataFrame):
        return data
    if hasattr(data, "to_pandas"):
        try:
            out = data.to_pandas()
        except Exception as exc:  # polars needs pyarrow for some dtypes
            raise DesignError(f"could not convert {type(data).__name__} to a pandas DataFrame: {exc}; "
                              "convert it yourself with .to_pandas()") from exc
        if isinstance(out, pd.DataFrame):
            return out
    if isinstance(data, dict):
        try:
            return pd.DataFrame(data)
        except ValueError as exc:
            raise DesignError(f"could not make a DataFrame from the dict of columns: {exc}") from exc
    raise DesignError(f"{what} must be a pandas DataFrame (or a polars frame, or a dict of columns), "
                      f"got {type(data).__name__}; wrap it with pd.DataFrame(...) and name the columns")


def close_matches(name: str, columns) -> str:
    """A `` (did you mean ...?)`` hint with the columns close to ``name``, or ``""``.

    Examples
    --------
    >>> close_matches("days", ["Days", "Reaction"])
    " (did you mean 'Days'?)"
    """
    m = difflib.get_close_matches(str(name), [str(c) for c in columns], n=3, cutoff=0.6)
    if not m:  # case slips ("days" for "Days") score low with difflib: try them too
        low = {str(c).lower(): str(c) for c in columns}
        m = [low[str(name).lower()]] if str(name).lower() in low else []
    return f" (did you mean {', '.join(repr(x) for x in m)}?)" if m else ""


def check_columns(names, data: pd.DataFrame, what: str = "formula") -> None:
    """Raise a :class:`DesignError` naming the ``names`` not in ``data`` and close matches.

    Examples
    --------
    >>> import pandas as pd
    >>> check_columns(["Days"], pd.DataFrame({"Days": [1]}))   # nothing missing: no error
    """
    missing = [n for n in names if n not in data.columns]
    if missing:
        hints = "; ".join(f"{n!r}{close_matches(n, data.columns)}" for n in missing)
        cols = ", ".join(map(str, data.columns[:30])) + (" ..." if len(data.columns) > 30 else "")
        raise DesignError(
            f"{what} uses column(s) not in the data: {hints}. "
            f"The data has columns: {cols}. Check the spelling; names with spaces or dots are "
            "written Q(\"my var\") or `my var` in formulas"
        )


def row_labels(index: pd.Index, bad: np.ndarray, k: int = 5) -> str:
    """Up to ``k`` index labels of the rows flagged in the boolean ``bad``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> row_labels(pd.Index([10, 11, 12]), np.array([True, False, True]))
    '10, 12'
    """
    pos = np.flatnonzero(bad)
    labels = ", ".join(map(repr, index[pos[:k]].tolist()))
    return labels + (f" and {len(pos) - k} more" if len(pos) > k else "")


def as_float(values, what: str) -> np.ndarray:
    """``values`` as float64, refusing text and categories with an error naming ``what``.

    Examples
    --------
    >>> as_float([True, False], "flag").tolist()
    [1.0, 0.0]
    """
    dt = getattr(values, "dtype", None)
    if getattr(dt, "kind", "") == "c":
        raise DesignError(f"{what} holds complex numbers (dtype {dt}); use a real-valued column")
    if dt is not None and not pd.api.types.is_numeric_dtype(dt) and not pd.api.types.is_bool_dtype(dt):
        ok = dt == object and pd.api.types.infer_dtype(values, skipna=True) in (
            "integer", "floating", "mixed-integer-float", "boolean", "decimal", "empty")
        if not ok:
            sample = [v for v in np.asarray(values, dtype=object)[:50] if not is_na(v)][:3]
            raise DesignError(
                f"{what} must be numeric but has dtype {dt} (values such as {sample}); convert it "
                "with pd.to_numeric(...) first"
            )
    return np.asarray(values, dtype=float)


def check_dtypes(dtypes: dict, group_cols) -> None:
    """Refuse complex numbers anywhere, and dates/durations/periods outside grouping factors."""
    for c, dt in dtypes.items():
        if isinstance(dt, np.dtype) and dt.kind in "fiub":
            continue                    # the common case: plain numpy numbers
        kind = getattr(dt, "kind", "O")
        if kind == "c":
            raise DesignError(f"column {c!r} holds complex numbers (dtype {dt}); use its real part or "
                              "modulus as a new column")
        timelike = kind in "mM" or isinstance(dt, (pd.PeriodDtype, pd.IntervalDtype)) \
            or str(dt).startswith(("timestamp", "duration", "date"))   # pyarrow spellings
        if timelike and c not in group_cols:
            raise DesignError(
                f"column {c!r} has dtype {dt}, which a model cannot use as a number; convert it first, "
                f"e.g. (d[{c!r}] - d[{c!r}].min()).dt.days for dates or d[{c!r}].dt.days for durations"
            )


_NUMBER_KINDS = ("integer", "floating", "mixed-integer-float", "decimal")


def numbers_from_objects(data: pd.DataFrame, cols, dtypes: dict | None = None) -> pd.DataFrame:
    """Object columns holding only numbers (e.g. after a concat with None) read as float, as R would.

    Returns ``data`` itself when no such column is used, else a new frame (the caller's
    frame is never written to). ``dtypes`` (column -> dtype) saves looking columns up.
    """
    conv = {}
    for c in cols:
        if dtypes is not None and dtypes[c] != object:
            continue
        s = data[c]
        if s.dtype == object and pd.api.types.infer_dtype(s, skipna=True) in _NUMBER_KINDS:
            conv[c] = pd.to_numeric(s, errors="coerce").astype(float)
    return data.assign(**conv) if conv else data


def is_na(v) -> bool:
    """True for a scalar missing marker (None, NaN, pd.NA, NaT); False for anything else."""
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):   # lists, arrays: not a missing marker
        return False


def column_or_array(value, data: pd.DataFrame, what: str):
    """``weights=``/``offset=`` as (column name or None, values): a column name or one value per row."""
    if value is None:
        return None, None
    if isinstance(value, str):
        check_columns([value], data, what=f"{what}=")
        return value, data[value]
    if isinstance(value, pd.Series):
        value = value.to_numpy()
    arr = np.asarray(value)
    if arr.ndim != 1 or arr.shape[0] != len(data):
        raise DesignError(f"{what}= has shape {arr.shape} but the data has {len(data)} rows; "
                          f"give one value per row, or the name of a column")
    return None, arr


def check_finite(M: np.ndarray, names, what: str, index: pd.Index | None = None) -> None:
    """Raise a :class:`DesignError` naming the columns (and rows) of ``M`` with inf or NaN."""
    bad = ~np.isfinite(M).all(axis=0)
    if bad.any():
        rows = ~np.isfinite(M).all(axis=1)
        where = f" at row(s) {row_labels(index, rows)}" if index is not None else ""
        raise DesignError(
            f"non-finite values (inf or NaN) in {what}(s): "
            f"{', '.join(str(names[j]) for j in np.flatnonzero(bad))}{where}; e.g. log(0) gives "
            "-inf. Fix or drop those rows before fitting"
        )


def check_finite_vector(v: np.ndarray, what: str, index: pd.Index) -> None:
    """Raise a :class:`DesignError` naming the rows where ``v`` is inf or NaN."""
    bad = ~np.isfinite(v)
    if bad.any():
        raise DesignError(f"{what} has non-finite values {v[bad][:3].tolist()} at row(s) "
                          f"{row_labels(index, bad)}; fix or drop those rows")
