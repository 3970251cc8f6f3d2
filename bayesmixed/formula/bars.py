"""Random-effect bars: lme4's ``findbars``/``nobars`` and the ``||`` and ``/`` expansions.

The string scanning lives in :mod:`bayesmixed.formula.parse`; this module holds the
expansion rules (pure functions on already-validated pieces) and two thin
lme4-named conveniences, :func:`find_bars` and :func:`strip_bars`.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

from bayesmixed.formula.terms import Bar, ParsedFormula


def nest_groups(pieces: Sequence[str]) -> tuple[str, ...]:
    """Expand a nested grouping ``a/b/c`` into ``("a", "a:b", "a:b:c")``.

    Parameters
    ----------
    pieces : sequence of str
        The ``/``-separated parts, each a column name or an interaction ``"a:b"``.

    Notes
    -----
    lme4/reformulas: ``expandSlash``, which names the inner factor ``b:a``; here the
    outer factor comes first (``a:b``), matching how the nesting is written.

    Examples
    --------
    >>> nest_groups(["a", "b", "c"])
    ('a', 'a:b', 'a:b:c')
    """
    out: list[str] = []
    for piece in pieces:
        out.append(f"{out[-1]}:{piece}" if out else piece)
    return tuple(out)


def expand_products(factors: Sequence[str]) -> list[str]:
    """Term labels of ``f1 * f2 * ...``: main effects, then interactions by order.

    R's ordering: ``a*b*c`` -> ``a, b, c, a:b, a:c, b:c, a:b:c``. A single factor
    is returned unchanged.
    """
    if len(factors) <= 1:
        return list(factors)
    out: list[str] = []
    for k in range(1, len(factors) + 1):
        for combo in combinations(factors, k):
            label = ":".join(combo)
            if label not in out:
                out.append(label)
    return out


def expand_double_verts(intercept: bool, terms: Sequence[str]) -> list[str]:
    """Right-hand sides of the independent terms that ``(expr || g)`` stands for.

    Notes
    -----
    lme4: ``expandDoubleVerts``: ``(1 + x + z || g)`` is
    ``(1 | g) + (0 + x | g) + (0 + z | g)``.

    Examples
    --------
    >>> expand_double_verts(True, ["x", "z"])
    ['1', '0 + x', '0 + z']
    """
    return (["1"] if intercept else []) + [f"0 + {t}" for t in terms]


def expand_bar(
    exprs: Sequence[str], groups: Sequence[str], *, correlated: bool
) -> tuple[Bar, ...]:
    """One :class:`Bar` per (expr, group), terms outer and groups inner, as lme4."""
    return tuple(Bar(e, g, correlated) for e in exprs for g in groups)


def find_bars(formula: str) -> tuple[Bar, ...]:
    """The expanded random-effect terms of ``formula`` (lme4's ``findbars``).

    Examples
    --------
    >>> find_bars("y ~ x + (1 | a/b)")
    (Bar(expr='1', group='a', correlated=True), Bar(expr='1', group='a:b', correlated=True))
    """
    from bayesmixed.formula.parse import parse_formula

    return parse_formula(formula).bars


def strip_bars(formula: str | ParsedFormula) -> str:
    """``formula`` without its random-effect terms (lme4's ``nobars``); offsets kept.

    Examples
    --------
    >>> strip_bars("y ~ x + (1 | g) + offset(log(t))")
    'y ~ x + offset(log(t))'
    """
    from bayesmixed.formula.parse import parse_formula

    p = parse_formula(formula) if isinstance(formula, str) else formula
    rhs = " + ".join([p.fixed_rhs, *(f"offset({o})" for o in p.offsets)])
    return f"{p.response} ~ {rhs}" if p.response is not None else rhs
