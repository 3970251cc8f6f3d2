"""The response of a model on its data rows: numbers, ``cbind(successes, failures)``, factors."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayesmixed.design.columns import as_float, row_labels
from bayesmixed.design.fixed import evaluate_expression
from bayesmixed.errors import DesignError
from bayesmixed.families import Family
from bayesmixed.formula.terms import ParsedFormula


def response_values(parsed: ParsedFormula, frame: pd.DataFrame, family: Family):
    """``(y, trials, name)`` of the response of ``parsed`` on ``frame``.

    ``trials`` is None except for ``cbind(successes, failures)``, where ``y`` is the
    proportion of successes (as glm). A two-level factor or boolean response of a
    family that takes trials (binomial) reads its first level as failure.

    Examples
    --------
    >>> import pandas as pd
    >>> from bayesmixed.families import get_family
    >>> from bayesmixed.formula import parse_formula
    >>> d = pd.DataFrame({"s": [1.0, 3.0], "f": [3.0, 1.0]})
    >>> y, trials, name = response_values(parse_formula("cbind(s, f) ~ 1"), d, get_family("binomial"))
    >>> y.tolist(), trials.tolist(), name
    ([0.25, 0.75], [4.0, 4.0], 'cbind(s, f)')
    """
    resp = parsed.response
    if not resp:
        raise DesignError("the formula has no response: write 'y ~ ...'")
    if resp.replace(" ", "").startswith("cbind("):
        return _cbind_response(resp, frame, family)
    raw = frame[resp] if resp in frame.columns else None
    if raw is not None and (family.uses_trials and not pd.api.types.is_numeric_dtype(raw.dtype)
                            or pd.api.types.is_bool_dtype(raw.dtype)):
        return _factor_response(resp, raw), None, resp
    if raw is not None:
        if not pd.api.types.is_numeric_dtype(raw.dtype):
            raise DesignError(
                f"response column {resp!r} is not numeric (dtype {raw.dtype}); "
                "convert it with pd.to_numeric(...), or use family='binomial' for a two-level factor"
            )
        y = raw.to_numpy(dtype=float)
    else:
        y = as_float(evaluate_expression(resp, frame), f"response {resp!r}")
    bad = ~np.isfinite(y)
    if bad.any():
        raise DesignError(f"response {resp!r} has non-finite values {y[bad][:3].tolist()} at row(s) "
                          f"{row_labels(frame.index, bad)}; remove or fix those rows")
    _check_support(y, resp, family)
    return y, None, resp


def _check_support(y: np.ndarray, resp: str, family: Family) -> None:
    """The family's support check, with how to fix the response."""
    try:
        family.check_response(y, resp)
    except DesignError as exc:
        if family.uses_trials:
            fix = "give 0/1, booleans, proportions with weights=trials, or cbind(successes, failures)"
        else:
            fix = ("shift the response (or transform it), or choose a family whose support fits it: "
                   "family='gaussian' takes any real number, 'gamma' positive values, 'poisson' and "
                   "'negativebinomial' whole counts")
        raise DesignError(f"{exc}; {fix}") from None


def split_cbind(resp: str) -> list[str]:
    """The arguments of ``cbind(...)``, split at top-level commas.

    Examples
    --------
    >>> split_cbind("cbind(incidence, size - f(a, b))")
    ['incidence', 'size - f(a, b)']
    """
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


def _cbind_response(resp: str, frame: pd.DataFrame, family: Family):
    if not family.uses_trials:
        raise DesignError(f"cbind(successes, failures) responses need family='binomial', not "
                          f"{family.name!r}; pass family='binomial'")
    parts = split_cbind(resp)
    if len(parts) != 2:
        raise DesignError(f"cbind() takes two columns (successes, failures), got {len(parts)} in "
                          f"{resp!r}; write cbind(successes, trials - successes)")
    s, f = (as_float(evaluate_expression(p, frame), f"cbind() argument {p!r}") for p in parts)
    for name, v in zip(parts, (s, f)):
        bad = ~np.isfinite(v) | (v < 0)
        if bad.any():
            raise DesignError(f"cbind() argument {name!r} must be finite non-negative counts; row(s) "
                              f"{row_labels(frame.index, bad)} have {v[bad][:3].tolist()}")
    trials = s + f
    with np.errstate(invalid="ignore", divide="ignore"):
        y = np.where(trials > 0, s / np.where(trials > 0, trials, 1), 0.0)
    return y, trials, resp


def _factor_response(resp: str, raw: pd.Series) -> np.ndarray:
    """Factor response: first level is failure, every other level success (as glm)."""
    if isinstance(raw.dtype, pd.CategoricalDtype):
        cats = list(raw.cat.categories)
        if len(raw.cat.remove_unused_categories().cat.categories) > 2:
            raise DesignError(f"binomial response {resp!r} has more than two levels: {cats}; "
                              "make it 0/1 or use cbind(successes, failures)")
        return (raw.cat.codes.to_numpy() > 0).astype(float)
    if pd.api.types.is_bool_dtype(raw.dtype):
        return raw.to_numpy(dtype=float)
    vals = sorted(pd.unique(raw.astype(str)))
    if len(vals) > 2:
        raise DesignError(f"binomial response {resp!r} has more than two values: {vals[:5]}; "
                          "make it 0/1 or use cbind(successes, failures)")
    if len(vals) < 2:
        return np.zeros(len(raw))
    return (raw.astype(str).to_numpy() == vals[-1]).astype(float)
