"""Formula structure + data -> MixedDesign (lme4's ``lFormula`` / ``mkReTrms``)."""

from __future__ import annotations

import difflib
import re
import warnings
from typing import Any

import numpy as np
import pandas as pd

from bayesmixed.design.fixed import (
    check_scale, drop_aliased, evaluate_expression, fixed_matrix, formula_context, r_power,
)
from bayesmixed.design.random import ReTerm, group_codes
from bayesmixed.design.spec import MixedDesign
from bayesmixed.errors import DesignError, FormulaError, IdentifiabilityWarning, MissingDataWarning
from bayesmixed.families import Family
from bayesmixed.formula.terms import Bar, ParsedFormula

DEFAULT_CONTROL = {
    # lme4's lmerControl / glmerControl names; values "stop" | "warning" | "ignore"
    "check_nlev_gtr_1": "stop",
    "check_nobs_vs_nlev": None,   # None: "stop" for gaussian, "ignore" otherwise (as lme4)
    "check_nobs_vs_nRE": None,    # None: lme4's rule (gaussian: q_i >= n stops; others: q_i > n)
    "check_scale_x": "warning",
    "check_rank_x": "message+drop.cols",
}
_CONTROL_VALUES = {
    "check_nlev_gtr_1": ("stop", "warning", "ignore"),
    "check_nobs_vs_nlev": (None, "stop", "warning", "ignore"),
    "check_nobs_vs_nRE": (None, "stop", "warning", "ignore"),
    "check_scale_x": ("warning", "stop", "ignore"),
    "check_rank_x": ("message+drop.cols", "warn+drop.cols", "silent.drop.cols", "stop.deficient"),
}
NA_ACTIONS = ("omit", "raise")


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


def _close(name: str, columns) -> str:
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
        hints = "; ".join(f"{n!r}{_close(n, data.columns)}" for n in missing)
        cols = ", ".join(map(str, data.columns[:30])) + (" ..." if len(data.columns) > 30 else "")
        raise DesignError(
            f"{what} uses column(s) not in the data: {hints}. "
            f"The data has columns: {cols}. Check the spelling; names with spaces or dots are "
            "written Q(\"my var\") or `my var` in formulas"
        )


def _row_labels(index: pd.Index, bad: np.ndarray, k: int = 5) -> str:
    """Up to ``k`` index labels of the rows flagged in the boolean ``bad``."""
    pos = np.flatnonzero(bad)
    labels = ", ".join(map(repr, index[pos[:k]].tolist()))
    return labels + (f" and {len(pos) - k} more" if len(pos) > k else "")


def _as_float(values, what: str) -> np.ndarray:
    """``values`` as float64, refusing text and categories with an error naming ``what``."""
    dt = getattr(values, "dtype", None)
    if getattr(dt, "kind", "") == "c":
        raise DesignError(f"{what} holds complex numbers (dtype {dt}); use a real-valued column")
    if dt is not None and not pd.api.types.is_numeric_dtype(dt) and not pd.api.types.is_bool_dtype(dt):
        ok = dt == object and pd.api.types.infer_dtype(values, skipna=True) in (
            "integer", "floating", "mixed-integer-float", "boolean", "decimal", "empty")
        if not ok:
            sample = [v for v in np.asarray(values, dtype=object)[:50] if not _is_na(v)][:3]
            raise DesignError(
                f"{what} must be numeric but has dtype {dt} (values such as {sample}); convert it "
                "with pd.to_numeric(...) first"
            )
    return np.asarray(values, dtype=float)


def _check_dtypes(dtypes: dict, group_cols) -> None:
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


def _numbers_from_objects(data: pd.DataFrame, cols, dtypes: dict | None = None) -> pd.DataFrame:
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


def _is_na(v) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):   # lists, arrays: not a missing marker
        return False


def _column_or_array(value, data: pd.DataFrame, what: str):
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


def build_design(
    parsed: ParsedFormula,
    data: Any,
    *,
    family: Family,
    weights=None,
    offset=None,
    na_action: str = "omit",
    control: dict | None = None,
) -> MixedDesign:
    """Bind a parsed formula to data: response, X, random-effects terms, weights, offset.

    Rows with a missing value in any column the model uses are dropped (lme4's
    ``na.omit``) with a :class:`MissingDataWarning`; ``na_action="raise"`` refuses.
    The caller's DataFrame is never modified: columns are only read.

    Parameters
    ----------
    parsed : ParsedFormula
        From :func:`bayesmixed.formula.parse_formula`.
    data : pandas.DataFrame
        Or a polars frame / dict of columns (converted).
    family : Family
        From :func:`bayesmixed.families.get_family`.
    weights, offset : str or array, optional
        Column names or one value per row of ``data``.
    na_action : {"omit", "raise"}
    control : dict, optional
        lme4-style checks (keys of ``DEFAULT_CONTROL``).

    Returns
    -------
    MixedDesign

    Notes
    -----
    lme4: ``lFormula`` (``model.frame`` + ``mkReTrms`` + ``chkRank.drop.cols`` +
    ``checkScaleX`` + ``checkNlevels`` + ``checkZdims``).

    Examples
    --------
    >>> import bayesmixed as bm
    >>> from bayesmixed.families import GAUSSIAN
    >>> from bayesmixed.formula import parse_formula
    >>> d = build_design(parse_formula("Reaction ~ Days + (1 | Subject)"),
    ...                  bm.load_dataset("sleepstudy"), family=GAUSSIAN)
    >>> d.n, d.fixef_names
    (180, ('Intercept', 'Days'))
    """
    ctrl = _resolve_control(control)
    if na_action not in NA_ACTIONS:
        raise DesignError(f"na_action must be 'omit' (drop rows with missing values, as lme4's "
                          f"na.omit) or 'raise' (refuse them); got {na_action!r}")
    data = as_pandas(data)
    if len(data) == 0:
        raise DesignError(f"data has no rows ({len(data.columns)} columns, 0 rows): nothing to fit")
    used = [v for v in sorted(parsed.variables) if v not in formula_context()]
    check_columns(used, data)
    if not data.columns.is_unique:   # data["x"] would be a frame: refuse by name
        dup = sorted({str(c) for c in data.columns[data.columns.duplicated()]} & {str(u) for u in used})
        if dup:
            raise DesignError(f"column name(s) {', '.join(map(repr, dup))} appear more than once in the "
                              "data; rename or drop the duplicates")
    all_dtypes = data.dtypes                       # one Series for all columns: cheaper than data[c]
    dtypes = {c: all_dtypes[c] for c in used}
    _check_dtypes(dtypes, {c for b in parsed.bars for c in b.group_columns})
    data = _numbers_from_objects(data, used, dtypes)
    wname, w_in = _column_or_array(weights, data, "weights")
    oname, o_in = _column_or_array(offset, data, "offset")

    # --- missing values: na.omit over every used column (one vectorised isna per column)
    cols = used + [c for c in (wname, oname) if c]
    mask = np.ones(len(data), dtype=bool)
    bad_cols = []
    for c in dict.fromkeys(cols):
        na = np.asarray(pd.isna(data[c].array))     # .array: skips building a boolean Series
        if na.any():
            bad_cols.append(f"{c} ({int(na.sum())})")
            mask &= ~na
    for name, arr in (("weights", w_in), ("offset", o_in)):
        if arr is not None and not isinstance(arr, pd.Series):
            na = pd.isna(arr)
            if na.any():
                bad_cols.append(f"{name}= array ({int(na.sum())})")
                mask &= ~na
    if not mask.all():
        n_drop = int((~mask).sum())
        where = (f"missing values in {', '.join(bad_cols)} (count per column; "
                 f"row(s) {_row_labels(data.index, ~mask)})")
        if na_action == "raise":
            raise DesignError(f"{where}; drop or impute them, or use na_action='omit' to drop "
                              "those rows")
        if not mask.any():
            raise DesignError(f"every row has {where}: no row is left to fit; impute values or "
                              "remove the variables that are always missing from the formula")
        warnings.warn(
            f"dropped {n_drop} of {len(data)} rows with missing values in: "
            f"{', '.join(bad_cols)} (rows kept: {int(mask.sum())}); per-row outputs "
            "(fitted, residuals, predict) are indexed by the kept rows' labels. "
            "Pass na_action='raise' to refuse instead",
            MissingDataWarning, stacklevel=3,
        )
    rows = np.flatnonzero(mask)
    frame = data.iloc[rows] if not mask.all() else data
    index = frame.index

    try:
        return _bind(parsed, frame, index, rows, family, ctrl, wname, w_in, oname, o_in)
    except DesignError as exc:
        # formulaic's NameError for an unknown function is better shown in the formula
        ferr = _unknown_function_error(exc, parsed.formula)
        if ferr is None:
            raise
        raise ferr from exc


def _resolve_control(control: dict | None) -> dict:
    if control is not None and not isinstance(control, dict):
        raise DesignError(f"control must be a dict such as {{'check_nobs_vs_nlev': 'ignore'}}, "
                          f"got {type(control).__name__}")
    ctrl = {**DEFAULT_CONTROL, **(control or {})}
    unknown = set(ctrl) - set(DEFAULT_CONTROL)
    if unknown:
        raise DesignError(f"unknown control option(s) {sorted(unknown)}; valid options are: "
                          f"{', '.join(DEFAULT_CONTROL)}")
    for key, allowed in _CONTROL_VALUES.items():
        if ctrl[key] not in allowed:
            raise DesignError(f"control[{key!r}] = {ctrl[key]!r} is not valid; choose one of: "
                              f"{', '.join(repr(a) for a in allowed)}")
    return ctrl


def _bind(parsed, frame, index, rows, family, ctrl, wname, w_in, oname, o_in) -> MixedDesign:
    """The rest of build_design, on the rows kept."""
    # --- response
    y, trials, response_name = _response(parsed, frame, family)
    n = len(y)

    # --- fixed effects
    X, names, spec = fixed_matrix(parsed.fixed_rhs, frame)
    _check_finite(X, names, "fixed-effects column", index)
    all_names = names
    rank_rule = ctrl["check_rank_x"]
    X, names, dropped = drop_aliased(X, names, warn=rank_rule in ("message+drop.cols", "warn+drop.cols"))
    if dropped and rank_rule == "stop.deficient":
        raise DesignError(f"fixed-effect model matrix is rank deficient: {', '.join(dropped)} "
                          "are linear combinations of earlier columns; remove them from the formula "
                          "(or leave control['check_rank_x'] at its default to drop them with a warning)")
    if ctrl["check_scale_x"] != "ignore":
        check_scale(X, names, stop=ctrl["check_scale_x"] == "stop")

    # --- weights and offset
    prior_w = np.ones(n)
    wlabel = f"weights column {wname!r}" if wname else "weights= array"
    if w_in is not None:
        w = _as_float(w_in.iloc[rows] if isinstance(w_in, pd.Series) else w_in[rows], wlabel)
        bad = ~np.isfinite(w) | (w < 0)
        if bad.any():
            raise DesignError(f"{wlabel} must be finite and non-negative; row(s) "
                              f"{_row_labels(index, bad)} have {w[bad][:3].tolist()}. Fix or drop "
                              "those rows (a weight of 0 removes a row's contribution)")
        if not (w > 0).any():
            raise DesignError(f"{wlabel} is zero for every row: nothing to fit; give positive weights "
                              "to the rows that should count")
        prior_w = w
    off = np.zeros(n)
    olabel = f"offset column {oname!r}" if oname else "offset= array"
    if o_in is not None:
        off = off + _as_float(o_in.iloc[rows] if isinstance(o_in, pd.Series) else o_in[rows], olabel)
        _check_finite_vector(off, olabel, index)
    for expr in parsed.offsets:
        raw = evaluate_expression(expr, frame)
        o = _as_float(raw, f"offset({expr})")
        _check_finite_vector(o, f"offset({expr})", index)
        off = off + o
    weights_all = prior_w * (trials if trials is not None else 1.0)

    # --- random effects
    reterms = _reterms(parsed.bars, frame, n, index)
    _check_levels(reterms, n, ctrl, family)

    return MixedDesign(
        parsed=parsed, y=y, X=X, fixef_names=names, reterms=reterms,
        weights=np.asarray(weights_all, dtype=float), offset=off, family=family, index=index,
        response_name=response_name, fixed_spec=spec, dropped_columns=dropped,
        all_fixef_names=all_names, trials=trials, prior_weights=prior_w,
        has_user_weights=w_in is not None, offset_arg=oname if oname else ("array" if o_in is not None else None),
        rows=rows,
    )


_MISSING_NAME = re.compile(r"name '([^']+)' is not defined|has no attribute '([^']+)'")


def _unknown_function_error(exc: BaseException, formula: str) -> FormulaError | None:
    """A FormulaError with a caret under ``name(`` when formulaic hit an unknown name."""
    text, e, seen = [], exc, 0
    while e is not None and seen < 10:     # walk __cause__/__context__: formulaic wraps NameError
        text.append(str(e))
        e, seen = e.__cause__ or e.__context__, seen + 1
    m = _MISSING_NAME.search(" ".join(text))
    if not m:
        return None
    name = m.group(1) or m.group(2)
    call = re.search(rf"(?<![\w]){re.escape(name)}\s*\(", formula)
    if call is None:
        return None
    from formulaic.transforms import TRANSFORMS

    from bayesmixed.formula.parse import _error

    known = sorted(set(formula_context()) | set(TRANSFORMS))
    hint = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    did = f" (did you mean {', '.join(map(repr, hint))}?)" if hint else ""
    return _error(f"unknown function {name!r}{did}: formulas can call {', '.join(known)} and "
                  "numpy as np.<function>; compute anything else as a new column first",
                  formula, call.start())


def _check_finite(M: np.ndarray, names, what: str, index: pd.Index | None = None) -> None:
    bad = ~np.isfinite(M).all(axis=0)
    if bad.any():
        rows = ~np.isfinite(M).all(axis=1)
        where = f" at row(s) {_row_labels(index, rows)}" if index is not None else ""
        raise DesignError(
            f"non-finite values (inf or NaN) in {what}(s): "
            f"{', '.join(str(names[j]) for j in np.flatnonzero(bad))}{where}; e.g. log(0) gives "
            "-inf. Fix or drop those rows before fitting"
        )


def _check_finite_vector(v: np.ndarray, what: str, index: pd.Index) -> None:
    bad = ~np.isfinite(v)
    if bad.any():
        raise DesignError(f"{what} has non-finite values {v[bad][:3].tolist()} at row(s) "
                          f"{_row_labels(index, bad)}; fix or drop those rows")


def _split_cbind(resp: str) -> list[str]:
    inner = resp.strip()[len("cbind("):-1]
    parts, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch in "([{"
        depth -= ch in ")]}"
        cur += ch
    parts.append(cur)
    return [p.strip() for p in parts]


def _response(parsed: ParsedFormula, frame: pd.DataFrame, family: Family):
    resp = parsed.response
    if not resp:
        raise DesignError("the formula has no response: write 'y ~ ...'")
    trials = None
    if resp.replace(" ", "").startswith("cbind("):
        if family.name != "binomial":
            raise DesignError(f"cbind(successes, failures) responses need family='binomial', not "
                              f"{family.name!r}; pass family='binomial'")
        parts = _split_cbind(resp)
        if len(parts) != 2:
            raise DesignError(f"cbind() takes two columns (successes, failures), got {len(parts)} in "
                              f"{resp!r}; write cbind(successes, trials - successes)")
        s, f = (_as_float(evaluate_expression(p, frame), f"cbind() argument {p!r}") for p in parts)
        for name, v in zip(parts, (s, f)):
            bad = ~np.isfinite(v) | (v < 0)
            if bad.any():
                raise DesignError(f"cbind() argument {name!r} must be finite non-negative counts; row(s) "
                                  f"{_row_labels(frame.index, bad)} have {v[bad][:3].tolist()}")
        trials = s + f
        with np.errstate(invalid="ignore", divide="ignore"):
            y = np.where(trials > 0, s / np.where(trials > 0, trials, 1), 0.0)
        return y, trials, resp
    raw = frame[resp] if resp in frame.columns else None
    if raw is not None and family.name == "binomial" and not pd.api.types.is_numeric_dtype(raw.dtype) \
            or raw is not None and pd.api.types.is_bool_dtype(raw.dtype):
        # factor response: first level is failure, every other level success (as glm)
        if isinstance(raw.dtype, pd.CategoricalDtype):
            cats = list(raw.cat.categories)
            y = (raw.cat.codes.to_numpy() > 0).astype(float)
            if len(raw.cat.remove_unused_categories().cat.categories) > 2:
                raise DesignError(f"binomial response {resp!r} has more than two levels: {cats}; "
                                  "make it 0/1 or use cbind(successes, failures)")
        elif pd.api.types.is_bool_dtype(raw.dtype):
            y = raw.to_numpy(dtype=float)
        else:
            vals = sorted(pd.unique(raw.astype(str)))
            if len(vals) > 2:
                raise DesignError(f"binomial response {resp!r} has more than two values: {vals[:5]}; "
                                  "make it 0/1 or use cbind(successes, failures)")
            y = (raw.astype(str).to_numpy() == vals[-1]).astype(float) if len(vals) == 2 \
                else np.zeros(len(raw))
        return y, None, resp
    if raw is not None:
        if not pd.api.types.is_numeric_dtype(raw.dtype):
            raise DesignError(
                f"response column {resp!r} is not numeric (dtype {raw.dtype}); "
                "convert it with pd.to_numeric(...), or use family='binomial' for a two-level factor"
            )
        y = raw.to_numpy(dtype=float)
    else:
        y = _as_float(evaluate_expression(resp, frame), f"response {resp!r}")
    bad = ~np.isfinite(y)
    if bad.any():
        raise DesignError(f"response {resp!r} has non-finite values {y[bad][:3].tolist()} at row(s) "
                          f"{_row_labels(frame.index, bad)}; remove or fix those rows")
    _check_support(y, resp, family)
    return y, None, resp


def _check_support(y: np.ndarray, resp: str, family: Family) -> None:
    name = family.name
    if name == "binomial" and (np.any(y < 0) or np.any(y > 1)):
        bad = y[(y < 0) | (y > 1)][:3]
        raise DesignError(
            f"binomial response {resp!r} must be 0/1, boolean, proportions with weights=trials, "
            f"or cbind(successes, failures); found values such as {bad.tolist()}"
        )
    if name in ("poisson", "negativebinomial"):
        if np.any(y < 0) or np.any(y != np.round(y)):
            bad = y[(y < 0) | (y != np.round(y))][:3]
            raise DesignError(f"{name} response {resp!r} must be non-negative whole counts; found "
                              f"{bad.tolist()}; for continuous responses use family='gaussian' or 'gamma'")
    if name == "gamma" and np.any(y <= 0):
        raise DesignError(f"gamma response {resp!r} must be positive; found {y[y <= 0][:3].tolist()}; "
                          "shift the response or use family='gaussian'")


def _term_matrix(expr: str, frame: pd.DataFrame):
    """Model matrix of a bar's left side; fast paths for ``1``, ``x``, ``0 + x``."""
    e = " ".join(expr.split())
    n = len(frame)
    if e == "1":
        return np.ones((n, 1)), ("Intercept",), None
    parts = [p.strip() for p in e.split("+")]
    no_int = parts[0] in ("0", "-1")
    body = parts[1:] if no_int or parts[0] == "1" else parts
    if all(b in frame.columns and pd.api.types.is_numeric_dtype(frame[b].dtype)
           and not pd.api.types.is_bool_dtype(frame[b].dtype) for b in body) and body:
        cols = [frame[b].to_numpy(dtype=float) for b in body]
        names = tuple(body)
        if not no_int:
            cols.insert(0, np.ones(n))
            names = ("Intercept", *names)
        return np.column_stack(cols), names, None
    from formulaic import model_matrix

    try:
        with np.errstate(divide="ignore", invalid="ignore"):  # inf/NaN are reported by column later
            mm = model_matrix(r_power(e), frame, context=formula_context(), na_action="ignore",
                              output="pandas")
    except Exception as exc:
        raise DesignError(f"could not build the random-effects matrix for '({expr} | ...)': {exc}") from exc
    return mm.to_numpy(dtype=float), tuple(str(c) for c in mm.columns), mm.model_spec


def _reterms(bars: tuple[Bar, ...], frame: pd.DataFrame, n: int,
             index: pd.Index | None = None) -> tuple[ReTerm, ...]:
    built = []
    for bar in bars:
        Xi, cnames, spec = _term_matrix(bar.expr, frame)
        if Xi.shape[1] == 0:
            raise DesignError(f"random-effects term {bar} has no columns; write (1 | {bar.group}) "
                              "for a random intercept")
        _check_finite(Xi, cnames, f"random-effects column of {bar}", index)
        codes, levels = group_codes([_group_column(frame[c]) for c in bar.group_columns])
        built.append((bar, Xi, cnames, spec, codes, levels))
    # lme4 (mkReTrms): if the number of levels ever increases, order by rev(order(nlev))
    nl = [len(b[5]) for b in built]
    order = list(range(len(built)))
    if any(b > a for a, b in zip(nl, nl[1:])):
        order = list(reversed(np.argsort(nl, kind="stable").tolist()))
    seen: dict[str, int] = {}
    terms = []
    for i in order:
        bar, Xi, cnames, spec, codes, levels = built[i]
        k = seen.get(bar.group, 0)
        seen[bar.group] = k + 1
        name = bar.group if k == 0 else f"{bar.group}.{k}"
        correlated = bar.correlated and Xi.shape[1] > 1
        terms.append(ReTerm(name=name, group=bar.group, levels=levels, cnames=cnames, codes=codes,
                            Xi=Xi, correlated=correlated, expr=bar.expr, Xi_spec=spec))
    return tuple(terms)


def _group_column(s: pd.Series) -> pd.Series:
    """Object columns mixing types (1, "2") cannot be sorted: read them as text, as R's factor()."""
    if s.dtype == object and pd.api.types.infer_dtype(s, skipna=True).startswith("mixed"):
        return s.map(lambda v: v if _is_na(v) else str(v))
    return s


def _check_levels(reterms, n: int, ctrl: dict, family: Family) -> None:
    """lme4's checkNlevels and checkZdims: refuse (or warn about) unidentifiable terms."""
    gaussian = family.name == "gaussian"
    nlev_rule = ctrl["check_nobs_vs_nlev"] or ("stop" if gaussian else "ignore")
    nre_rule = ctrl["check_nobs_vs_nRE"] or "stop"

    def act(rule: str, msg: str) -> None:
        if rule == "stop":
            raise DesignError(msg)
        if rule == "warning":
            warnings.warn(msg, IdentifiabilityWarning, stacklevel=6)

    for t in reterms:
        if t.n_levels < 2 and ctrl["check_nlev_gtr_1"] != "ignore":
            act(ctrl["check_nlev_gtr_1"],
                f"grouping factor {t.group!r} has {t.n_levels} level ({', '.join(t.levels)}): a random "
                "effect needs at least two sampled levels (lme4: 'grouping factors must have > 1 "
                "sampled level'); drop the term or make it a fixed effect, or pass "
                "control={'check_nlev_gtr_1': 'ignore'} to fit anyway")
        if t.n_levels >= n and nlev_rule != "ignore":
            act(nlev_rule,
                f"grouping factor {t.group!r} has {t.n_levels} levels for {n} observations: the "
                "random-effects variance cannot be separated from the residual variance (lme4 "
                "refuses this too). Remove the term, or pass control={'check_nobs_vs_nlev': 'ignore'} "
                "to fit anyway")
        # as many random effects as rows: lmer refuses q_i >= n, glmer q_i > n
        too_many = t.q >= n if gaussian else t.q > n
        if too_many and t.n_levels < n and nre_rule != "ignore":
            act(nre_rule,
                f"number of observations ({n}) <= number of random effects ({t.q}) for term "
                f"({t.expr} | {t.group}): its variance parameters and the residual variance are "
                "probably unidentifiable. Simplify the term (e.g. (1 | "
                f"{t.group})), or pass control={{'check_nobs_vs_nRE': 'ignore'}} to fit anyway")
