"""Formula structure + data -> MixedDesign (lme4's ``lFormula`` / ``mkReTrms``)."""

from __future__ import annotations

import difflib
import warnings
from typing import Any

import numpy as np
import pandas as pd

from bayesmixed.design.fixed import (
    check_scale, drop_aliased, evaluate_expression, fixed_matrix, formula_context,
)
from bayesmixed.design.random import ReTerm, group_codes
from bayesmixed.design.spec import MixedDesign
from bayesmixed.errors import DesignError, MissingDataWarning
from bayesmixed.families import Family
from bayesmixed.formula.terms import Bar, ParsedFormula

DEFAULT_CONTROL = {
    # lme4's lmerControl / glmerControl names; values "stop" | "warning" | "ignore"
    "check_nlev_gtr_1": "stop",
    "check_nobs_vs_nlev": None,   # None: "stop" for gaussian, "ignore" otherwise (as lme4)
    "check_scale_x": "warning",
    "check_rank_x": "message+drop.cols",
}


def as_pandas(data: Any) -> pd.DataFrame:
    """Accept pandas, polars (or anything with ``to_pandas``) or a dict of columns."""
    if isinstance(data, pd.DataFrame):
        return data
    if hasattr(data, "to_pandas"):
        return data.to_pandas()
    if isinstance(data, dict):
        return pd.DataFrame(data)
    raise DesignError(f"data must be a pandas DataFrame (or polars / dict), got {type(data).__name__}")


def _close(name: str, columns) -> str:
    m = difflib.get_close_matches(name, [str(c) for c in columns], n=3, cutoff=0.6)
    return f" (did you mean {', '.join(repr(x) for x in m)}?)" if m else ""


def check_columns(names, data: pd.DataFrame, what: str = "formula") -> None:
    missing = [n for n in names if n not in data.columns]
    if missing:
        hints = "; ".join(f"{n!r}{_close(n, data.columns)}" for n in missing)
        raise DesignError(
            f"{what} uses column(s) not in the data: {hints}. "
            f"The data has columns: {', '.join(map(str, data.columns))}"
        )


def _column_or_array(value, data: pd.DataFrame, what: str):
    if value is None:
        return None, None
    if isinstance(value, str):
        check_columns([value], data, what=f"{what}=")
        return value, data[value]
    arr = np.asarray(value)
    if arr.shape != (len(data),):
        raise DesignError(f"{what} has length {arr.shape} but the data has {len(data)} rows")
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
    The caller's DataFrame is never modified.
    """
    ctrl = {**DEFAULT_CONTROL, **(control or {})}
    unknown = set(ctrl) - set(DEFAULT_CONTROL)
    if unknown:
        raise DesignError(f"unknown control option(s) {sorted(unknown)}; valid: {sorted(DEFAULT_CONTROL)}")
    data = as_pandas(data)
    if len(data) == 0:
        raise DesignError("data has no rows")
    used = [v for v in sorted(parsed.variables) if v not in formula_context()]
    check_columns(used, data)
    wname, w_in = _column_or_array(weights, data, "weights")
    oname, o_in = _column_or_array(offset, data, "offset")

    # --- missing values: na.omit over every used column
    cols = used + [c for c in (wname, oname) if c]
    mask = np.ones(len(data), dtype=bool)
    bad_cols = []
    for c in dict.fromkeys(cols):
        na = data[c].isna().to_numpy()
        if na.any():
            bad_cols.append(f"{c} ({int(na.sum())})")
            mask &= ~na
    for name, arr in (("weights", w_in), ("offset", o_in)):
        if arr is not None and not isinstance(arr, pd.Series):
            na = pd.isna(arr)
            if na.any():
                bad_cols.append(f"{name} ({int(na.sum())})")
                mask &= ~na
    if not mask.all():
        n_drop = int((~mask).sum())
        if na_action == "raise":
            raise DesignError(
                f"missing values in {', '.join(bad_cols)}; drop or impute them, "
                "or use na_action='omit' to drop those rows"
            )
        if na_action != "omit":
            raise DesignError(f"na_action must be 'omit' or 'raise', got {na_action!r}")
        warnings.warn(
            f"dropped {n_drop} of {len(data)} rows with missing values in: "
            f"{', '.join(bad_cols)} (rows kept: {int(mask.sum())})",
            MissingDataWarning, stacklevel=3,
        )
        if not mask.any():
            raise DesignError("no rows left after dropping missing values")
    rows = np.flatnonzero(mask)
    frame = data.iloc[rows] if not mask.all() else data
    index = frame.index

    # --- response
    y, trials, response_name = _response(parsed, frame, family)
    n = len(y)

    # --- fixed effects
    X, names, spec = fixed_matrix(parsed.fixed_rhs, frame)
    _check_finite(X, names, "fixed-effects column")
    all_names = names
    X, names, dropped = drop_aliased(X, names)
    if ctrl["check_scale_x"] == "warning":
        check_scale(X, names)

    # --- weights and offset
    prior_w = np.ones(n)
    if w_in is not None:
        w = np.asarray(w_in, dtype=float)[rows] if not isinstance(w_in, pd.Series) \
            else w_in.to_numpy(dtype=float)[rows]
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise DesignError(f"weights{' ' + repr(wname) if wname else ''} must be finite and non-negative")
        prior_w = w
    off = np.zeros(n)
    if o_in is not None:
        off = off + (np.asarray(o_in, dtype=float)[rows] if not isinstance(o_in, pd.Series)
                     else o_in.to_numpy(dtype=float)[rows])
    for expr in parsed.offsets:
        off = off + np.asarray(evaluate_expression(expr, frame), dtype=float)
    if not np.all(np.isfinite(off)):
        raise DesignError("offset has non-finite values")
    weights_all = prior_w * (trials if trials is not None else 1.0)

    # --- random effects
    reterms = _reterms(parsed.bars, frame, n)
    _check_levels(reterms, n, ctrl, family)

    return MixedDesign(
        parsed=parsed, y=y, X=X, fixef_names=names, reterms=reterms,
        weights=np.asarray(weights_all, dtype=float), offset=off, family=family, index=index,
        response_name=response_name, fixed_spec=spec, dropped_columns=dropped,
        all_fixef_names=all_names, trials=trials, prior_weights=prior_w,
        has_user_weights=w_in is not None,
    )


def _check_finite(M: np.ndarray, names, what: str) -> None:
    bad = ~np.isfinite(M).all(axis=0)
    if bad.any():
        raise DesignError(
            f"non-finite values (inf or NaN) in {what}(s): "
            f"{', '.join(str(names[j]) for j in np.flatnonzero(bad))}"
        )


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
            raise DesignError(f"cbind(successes, failures) responses need family='binomial', not {family.name!r}")
        parts = _split_cbind(resp)
        if len(parts) != 2:
            raise DesignError(f"cbind() takes two columns (successes, failures), got {len(parts)} in {resp!r}")
        s, f = (np.asarray(evaluate_expression(p, frame), dtype=float) for p in parts)
        for name, v in zip(parts, (s, f)):
            if not np.all(np.isfinite(v)) or np.any(v < 0):
                raise DesignError(f"cbind() argument {name!r} must be finite non-negative counts")
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
                raise DesignError(f"binomial response {resp!r} has more than two levels: {cats}")
        elif pd.api.types.is_bool_dtype(raw.dtype):
            y = raw.to_numpy(dtype=float)
        else:
            vals = sorted(pd.unique(raw.astype(str)))
            if len(vals) > 2:
                raise DesignError(f"binomial response {resp!r} has more than two values: {vals[:5]}")
            y = (raw.astype(str).to_numpy() == vals[-1]).astype(float) if len(vals) == 2 \
                else np.zeros(len(raw))
        return y, None, resp
    if raw is not None:
        if not pd.api.types.is_numeric_dtype(raw.dtype):
            raise DesignError(
                f"response column {resp!r} is not numeric (dtype {raw.dtype}); "
                "convert it, or use family='binomial' for a two-level factor"
            )
        y = raw.to_numpy(dtype=float)
    else:
        y = np.asarray(evaluate_expression(resp, frame), dtype=float)
    if not np.all(np.isfinite(y)):
        raise DesignError(f"response {resp!r} has non-finite values (inf); remove those rows")
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
            raise DesignError(f"{name} response {resp!r} must be non-negative whole counts; found {bad.tolist()}")
    if name == "gamma" and np.any(y <= 0):
        raise DesignError(f"gamma response {resp!r} must be positive; found {y[y <= 0][:3].tolist()}")


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
        mm = model_matrix(e, frame, context=formula_context(), na_action="ignore", output="pandas")
    except Exception as exc:
        raise DesignError(f"could not build the random-effects matrix for '({expr} | ...)': {exc}") from exc
    return mm.to_numpy(dtype=float), tuple(str(c) for c in mm.columns), mm.model_spec


def _reterms(bars: tuple[Bar, ...], frame: pd.DataFrame, n: int) -> tuple[ReTerm, ...]:
    built = []
    for bar in bars:
        Xi, cnames, spec = _term_matrix(bar.expr, frame)
        if Xi.shape[1] == 0:
            raise DesignError(f"random-effects term {bar} has no columns")
        _check_finite(Xi, cnames, f"random-effects column of {bar}")
        codes, levels = group_codes([frame[c] for c in bar.group_columns])
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


def _check_levels(reterms, n: int, ctrl: dict, family: Family) -> None:
    nobs_rule = ctrl["check_nobs_vs_nlev"]
    if nobs_rule is None:
        nobs_rule = "stop" if family.name == "gaussian" else "ignore"
    for t in reterms:
        if t.n_levels < 2 and ctrl["check_nlev_gtr_1"] != "ignore":
            msg = (f"grouping factor {t.group!r} has {t.n_levels} level: a random effect needs at "
                   "least two sampled levels; drop the term, or pass "
                   "control={'check_nlev_gtr_1': 'ignore'} to fit anyway")
            if ctrl["check_nlev_gtr_1"] == "stop":
                raise DesignError(msg)
            warnings.warn(msg, stacklevel=4)
        if t.n_levels >= n and nobs_rule != "ignore":
            msg = (f"grouping factor {t.group!r} has {t.n_levels} levels for {n} observations: "
                   "the random-effects variance cannot be separated from the residual variance "
                   "(lme4 refuses this too). Remove the term, or pass "
                   "control={'check_nobs_vs_nlev': 'ignore'} to fit anyway")
            if nobs_rule == "stop":
                raise DesignError(msg)
            warnings.warn(msg, stacklevel=4)
