"""Random-effect bars bound to data: per-term matrices, grouping codes, lme4's checks."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from bayesmixed.design.columns import check_finite, is_na
from bayesmixed.design.fixed import model_matrix_of
from bayesmixed.design.random import ReTerm, group_codes
from bayesmixed.errors import DesignError, DoubleBarFactorWarning, IdentifiabilityWarning
from bayesmixed.families import Family
from bayesmixed.formula.terms import Bar

# warnings issued here point at the user's call: this module <- build._bind <- build_design
# <- Model.__init__ <- user code
_USER_LEVEL = 5


def term_matrix(expr: str, frame: pd.DataFrame):
    """``(Xi, column names, formulaic spec or None)`` of a bar's left side ``expr``.

    Fast paths for ``1``, ``x``, ``0 + x`` with numeric columns; formulaic otherwise.

    Examples
    --------
    >>> import pandas as pd
    >>> Xi, names, spec = term_matrix("0 + f", pd.DataFrame({"f": ["a", "b", "a"]}))
    >>> names, Xi.tolist()
    (('f[a]', 'f[b]'), [[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    """
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
    try:
        mm = model_matrix_of(e, frame)
    except Exception as exc:
        raise DesignError(f"could not build the random-effects matrix for '({expr} | ...)': {exc}") from exc
    return mm.to_numpy(dtype=float), tuple(str(c) for c in mm.columns), mm.model_spec


def random_terms(bars: tuple[Bar, ...], frame: pd.DataFrame, n: int,
                 index: pd.Index | None = None) -> tuple[ReTerm, ...]:
    """The :class:`ReTerm` of each bar on ``frame``, in lme4's order (``mkReTrms``).

    Terms are ordered by decreasing number of levels when the number of levels
    ever increases along the formula; repeated grouping factors are named
    ``g``, ``g.1``, ... A ``diag()`` bar gives an uncorrelated term; a term that
    lme4's ``||`` split off keeps its columns correlated, with a
    :class:`DoubleBarFactorWarning` when it has more than one (a factor).
    """
    built = []
    for bar in bars:
        Xi, cnames, spec = term_matrix(bar.expr, frame)
        if Xi.shape[1] == 0:
            raise DesignError(f"random-effects term {bar} has no columns; write (1 | {bar.group}) "
                              "for a random intercept")
        check_finite(Xi, cnames, f"random-effects column of {bar}", index)
        codes, levels = group_codes([_group_column(frame[c]) for c in bar.group_columns])
        if bar.split and Xi.shape[1] > 1:
            _warn_split_factor(bar, cnames)
        built.append((bar, Xi, cnames, spec, codes, levels))
    return order_terms(built)


def order_terms(built: list[tuple]) -> tuple[ReTerm, ...]:
    """:class:`ReTerm` objects in lme4's order (``mkReTrms``) with lme4's names.

    ``built`` holds one ``(bar, Xi, cnames, spec, codes, levels)`` per bar, in formula
    order. Terms are ordered by decreasing number of levels when the number of levels
    ever increases along the formula; repeated grouping factors are named ``g``,
    ``g.1``, ...
    """
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
        return s.map(lambda v: v if is_na(v) else str(v))
    return s


def check_levels(reterms, n: int, ctrl: dict, family: Family) -> None:
    """lme4's checkNlevels and checkZdims: refuse (or warn about) unidentifiable terms."""
    gaussian = family.is_gaussian_identity     # lmer's rules; glmer's for every other model
    nlev_rule = ctrl["check_nobs_vs_nlev"] or ("stop" if gaussian else "ignore")
    nre_rule = ctrl["check_nobs_vs_nRE"] or "stop"

    def act(rule: str, msg: str) -> None:
        if rule == "stop":
            raise DesignError(msg)
        if rule == "warning":
            warnings.warn(msg, IdentifiabilityWarning, stacklevel=_USER_LEVEL + 1)

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


def _warn_split_factor(bar: Bar, cnames: tuple[str, ...]) -> None:
    """lme4's ``||`` leaves a factor's columns correlated: say so, and how to decorrelate them."""
    expr = bar.expr[4:] if bar.expr.startswith("0 + ") else bar.expr
    g = bar.group
    warnings.warn(
        f"'||' does not make the columns of {expr!r} independent: as lme4 (expandDoubleVerts), "
        f"(... + {expr} || {g}) gives the term (0 + {expr} | {g}), whose {len(cnames)} columns "
        f"({', '.join(cnames)}) stay correlated (a full {len(cnames)} x {len(cnames)} covariance "
        f"matrix). For one independent variance per level write (1 | {g}) + diag(0 + {expr} | {g})",
        DoubleBarFactorWarning, stacklevel=_USER_LEVEL + 1,
    )
