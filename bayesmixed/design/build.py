"""Formula structure + data -> MixedDesign (lme4's ``lFormula``).

The columns are read by :mod:`bayesmixed.design.columns`, the response by
:mod:`bayesmixed.design.response`, the fixed part by :mod:`bayesmixed.design.fixed`
and the random-effect terms by :mod:`bayesmixed.design.reterms`.
"""

from __future__ import annotations

import difflib
import warnings
from typing import Any

import numpy as np
import pandas as pd

from bayesmixed.design.columns import (
    as_float, as_pandas, check_columns, check_dtypes, check_finite, check_finite_vector,
    column_or_array, numbers_from_objects, row_labels,
)
from bayesmixed.design.fixed import (
    check_scale, drop_aliased, evaluate_expression, fixed_matrix, formula_context,
)
from bayesmixed.design.response import response_values
from bayesmixed.design.reterms import check_levels, random_terms
from bayesmixed.design.sources import as_source
from bayesmixed.design.spec import MixedDesign
from bayesmixed.design.streamed_build import build_streamed_design
from bayesmixed.errors import DesignError, FormulaError, MissingDataWarning
from bayesmixed.families import Family
from bayesmixed.formula.parse import find_call
from bayesmixed.formula.terms import ParsedFormula

DEFAULT_CONTROL = {
    # lme4's lmerControl / glmerControl names; values "stop" | "warning" | "ignore"
    "check_nlev_gtr_1": "stop",
    "check_nobs_vs_nlev": None,   # None: "stop" for lmer models (gaussian, identity), else "ignore"
    "check_nobs_vs_nRE": None,    # None: lme4's rule (lmer: q_i >= n stops; glmer: q_i > n)
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
        Or a polars frame / dict of columns (converted); or out-of-memory data: a
        Parquet path (file, directory, glob), a DuckDB relation, a polars LazyFrame or
        a Dask DataFrame (Gaussian LMMs only; see :mod:`bayesmixed.design.streamed`).
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
    source = as_source(data)
    if source is not None:        # Parquet path, DuckDB relation, polars LazyFrame, Dask DataFrame
        return build_streamed_design(parsed, source, family=family, weights=weights, offset=offset,
                                     na_action=na_action, ctrl=ctrl)
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
    check_dtypes(dtypes, parsed.group_variables)
    data = numbers_from_objects(data, used, dtypes)
    wname, w_in = column_or_array(weights, data, "weights")
    oname, o_in = column_or_array(offset, data, "offset")
    mask = _complete_rows(data, used + [c for c in (wname, oname) if c], (w_in, o_in), na_action)
    rows = np.flatnonzero(mask)
    frame = data.iloc[rows] if not mask.all() else data
    try:
        return _bind(parsed, frame, rows, family, ctrl, (wname, w_in), (oname, o_in))
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


def _complete_rows(data: pd.DataFrame, cols: list[str], arrays, na_action: str) -> np.ndarray:
    """Mask of the rows without a missing value in ``cols`` or the weights/offset ``arrays``.

    lme4's ``na.omit`` (warning with a :class:`MissingDataWarning`), or an error with
    ``na_action="raise"``. One vectorised ``isna`` per column.
    """
    mask = np.ones(len(data), dtype=bool)
    bad_cols = []
    for c in dict.fromkeys(cols):
        na = np.asarray(pd.isna(data[c].array))     # .array: skips building a boolean Series
        if na.any():
            bad_cols.append(f"{c} ({int(na.sum())})")
            mask &= ~na
    for name, arr in zip(("weights", "offset"), arrays):
        if arr is not None and not isinstance(arr, pd.Series):
            na = pd.isna(arr)
            if na.any():
                bad_cols.append(f"{name}= array ({int(na.sum())})")
                mask &= ~na
    if mask.all():
        return mask
    where = (f"missing values in {', '.join(bad_cols)} (count per column; "
             f"row(s) {row_labels(data.index, ~mask)})")
    if na_action == "raise":
        raise DesignError(f"{where}; drop or impute them, or use na_action='omit' to drop those rows")
    if not mask.any():
        raise DesignError(f"every row has {where}: no row is left to fit; impute values or "
                          "remove the variables that are always missing from the formula")
    warnings.warn(
        f"dropped {int((~mask).sum())} of {len(data)} rows with missing values in: "
        f"{', '.join(bad_cols)} (rows kept: {int(mask.sum())}); per-row outputs "
        "(fitted, residuals, predict) are indexed by the kept rows' labels. "
        "Pass na_action='raise' to refuse instead",
        MissingDataWarning, stacklevel=4,
    )
    return mask


def _bind(parsed, frame, rows, family, ctrl, weights, offset) -> MixedDesign:
    """The rest of build_design, on the rows kept."""
    index = frame.index
    y, trials, response_name = response_values(parsed, frame, family)
    n = len(y)
    X, names, spec = fixed_matrix(parsed.fixed_rhs, frame)
    check_finite(X, names, "fixed-effects column", index)
    all_names = names
    rank_rule = ctrl["check_rank_x"]
    X, names, dropped = drop_aliased(X, names, warn=rank_rule in ("message+drop.cols", "warn+drop.cols"))
    if dropped and rank_rule == "stop.deficient":
        raise DesignError(f"fixed-effect model matrix is rank deficient: {', '.join(dropped)} "
                          "are linear combinations of earlier columns; remove them from the formula "
                          "(or leave control['check_rank_x'] at its default to drop them with a warning)")
    if ctrl["check_scale_x"] != "ignore":
        check_scale(X, names, stop=ctrl["check_scale_x"] == "stop")
    prior_w = _prior_weights(weights, rows, index)
    off = _offset(parsed, frame, offset, rows)
    reterms = random_terms(parsed.bars, frame, n, index)
    check_levels(reterms, n, ctrl, family)
    (wname, w_in), (oname, o_in) = weights, offset
    return MixedDesign(
        parsed=parsed, y=y, X=X, fixef_names=names, reterms=reterms,
        weights=np.asarray(prior_w * (trials if trials is not None else 1.0), dtype=float),
        offset=off, family=family, index=index,
        response_name=response_name, fixed_spec=spec, dropped_columns=dropped,
        all_fixef_names=all_names, trials=trials, prior_weights=prior_w,
        has_user_weights=w_in is not None, offset_arg=oname if oname else ("array" if o_in is not None else None),
        rows=rows,
    )


def _prior_weights(weights, rows: np.ndarray, index: pd.Index) -> np.ndarray:
    """The user's weights on the kept rows (ones when none were given), checked."""
    wname, w_in = weights
    if w_in is None:
        return np.ones(len(rows))
    wlabel = f"weights column {wname!r}" if wname else "weights= array"
    w = as_float(w_in.iloc[rows] if isinstance(w_in, pd.Series) else w_in[rows], wlabel)
    bad = ~np.isfinite(w) | (w < 0)
    if bad.any():
        raise DesignError(f"{wlabel} must be finite and non-negative; row(s) "
                          f"{row_labels(index, bad)} have {w[bad][:3].tolist()}. Fix or drop "
                          "those rows (a weight of 0 removes a row's contribution)")
    if not (w > 0).any():
        raise DesignError(f"{wlabel} is zero for every row: nothing to fit; give positive weights "
                          "to the rows that should count")
    return w


def _offset(parsed: ParsedFormula, frame: pd.DataFrame, offset, rows: np.ndarray) -> np.ndarray:
    """``offset=`` plus the formula's ``offset()`` terms on the kept rows, checked."""
    oname, o_in = offset
    index = frame.index
    off = np.zeros(len(rows))
    if o_in is not None:
        olabel = f"offset column {oname!r}" if oname else "offset= array"
        off = off + as_float(o_in.iloc[rows] if isinstance(o_in, pd.Series) else o_in[rows], olabel)
        check_finite_vector(off, olabel, index)
    for expr in parsed.offsets:
        o = as_float(evaluate_expression(expr, frame), f"offset({expr})")
        check_finite_vector(o, f"offset({expr})", index)
        off = off + o
    return off


def _unknown_function_error(exc: BaseException, formula: str) -> FormulaError | None:
    """A FormulaError with a caret under ``name(`` when formulaic hit an unknown name.

    formulaic wraps the NameError (or AttributeError, for ``np.<name>``) of the
    evaluation: the name is read from that exception's ``name`` attribute.
    """
    e, seen, name = exc, 0, None
    while e is not None and seen < 10 and name is None:   # walk __cause__/__context__
        if isinstance(e, (NameError, AttributeError)):
            name = getattr(e, "name", None)
        e, seen = e.__cause__ or e.__context__, seen + 1
    pos = find_call(formula, name) if isinstance(name, str) else None
    if pos is None:
        return None
    from formulaic.transforms import TRANSFORMS

    known = sorted(set(formula_context()) | set(TRANSFORMS))
    hint = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    did = f" (did you mean {', '.join(map(repr, hint))}?)" if hint else ""
    return FormulaError.at(formula, pos, f"unknown function {name!r}{did}: formulas can call "
                           f"{', '.join(known)} and numpy as np.<function>; compute anything else "
                           "as a new column first")
