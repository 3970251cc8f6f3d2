"""Random-effect bars: finding ``(expr | g)`` / ``diag(expr | g)`` terms and expanding them.

lme4's ``findbars`` with its ``||`` (``expandDoubleVerts``) and ``/``
(``expandSlash``) rules, and glmmTMB's ``diag()`` covariance structure. The
functions here work on the token stream of :mod:`bayesmixed.formula.tokens`;
:func:`bayesmixed.formula.parse.parse_formula` drives them.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

from bayesmixed.errors import FormulaError
from bayesmixed.formula.terms import Bar
from bayesmixed.formula.tokens import (
    VERTS,
    Token,
    canon,
    drops_intercept,
    join_terms,
    split_terms,
)

# the scanning functions below serve parse.py; these are the expansion rules
__all__ = ["expand_bar", "expand_double_verts", "expand_products", "nest_groups"]


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

    Examples
    --------
    >>> expand_products(["a", "b"])
    ['a', 'b', 'a:b']
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
    """Right-hand sides of the separate terms that ``(expr || g)`` stands for.

    Notes
    -----
    lme4: ``expandDoubleVerts``: ``(1 + x + z || g)`` is
    ``(1 | g) + (0 + x | g) + (0 + z | g)``. Each of those terms keeps its own
    columns correlated: a factor ``f`` in ``(f || g)`` gives ``(0 + f | g)``, one
    term with a full covariance matrix over the levels of ``f`` (use
    ``diag(0 + f | g)`` for independent ones).

    Examples
    --------
    >>> expand_double_verts(True, ["x", "z"])
    ['1', '0 + x', '0 + z']
    """
    return (["1"] if intercept else []) + [f"0 + {t}" for t in terms]


def expand_bar(
    exprs: Sequence[str], groups: Sequence[str], *, correlated: bool = True, split: bool = False
) -> tuple[Bar, ...]:
    """One :class:`Bar` per (expr, group), terms outer and groups inner, as lme4.

    Examples
    --------
    >>> [str(b) for b in expand_bar(["1", "0 + x"], ["a", "a:b"], split=True)]
    ['(1 || a)', '(1 || a:b)', '(0 + x || a)', '(0 + x || a:b)']
    """
    return tuple(Bar(e, g, correlated, split) for e in exprs for g in groups)


def is_diag_call(toks: list[Token], k: int) -> bool:
    """``toks[k]`` is the ``(`` of a ``diag(...)`` call (glmmTMB's diagonal covariance)."""
    return (toks[k].text == "(" and toks[k].call and k > 0 and toks[k - 1].kind == "name"
            and toks[k - 1].text == "diag" and (k < 2 or toks[k - 2].text != "."))


def bar_parens(src: str, toks: list[Token], *, top_level_ok: bool = False) -> list[int]:
    """Indices of the ``(`` that open ``(expr | group)`` and ``diag(expr | group)`` terms.

    A ``|`` counts only when every bracket around it is a plain (non-call)
    parenthesis, or it sits directly in a ``diag(...)`` call: ``I(a | b)`` and
    ``f((a | b))`` are left to the fixed-part parser. Misplaced bars are refused.
    """
    bars: list[int] = []
    for tk in toks:
        if tk.text not in VERTS:
            continue
        p = tk.parent
        if p == -1:
            if top_level_ok:
                continue
            raise FormulaError.at(
                src, tk.start,
                f"'{tk.text}' outside parentheses; write random effects as "
                f"'(expr {tk.text} group)', e.g. 'y ~ x + (1 + x {tk.text} g)'"
            )
        a = toks[p].parent if is_diag_call(toks, p) else p
        while a != -1 and toks[a].text == "(" and not toks[a].call:
            a = toks[a].parent
        if a == -1 and (not bars or bars[-1] != p):
            bars.append(p)
    seen = set(bars)
    for p in bars:
        a = toks[p].parent
        while a != -1:
            if a in seen:
                raise FormulaError.at(
                    src, toks[p].start,
                    "random-effect term inside another random-effect term; write "
                    "them side by side: '(1 | g) + (1 | h)'"
                )
            a = toks[a].parent
    return sorted(seen)


def _groups(
    src: str, toks: list[Token], lo: int, hi: int, container: int, end_pos: int, head: str
) -> tuple[str, ...]:
    """Grouping factors of ``toks[lo:hi]`` (after the bar), ``/`` nesting expanded."""
    if lo >= hi:
        raise FormulaError.at(
            src, end_pos,
            f"no grouping factor after '{head[-2:].strip()}'; write '({head} group)'"
        )
    pieces: list[list[str]] = [[]]
    i, want_name = lo, True
    while i < hi:
        tk = toks[i]
        if want_name and tk.kind == "name":
            name = tk.text
            i += 1
            while (
                i + 1 < hi and toks[i].text == "." and toks[i + 1].kind == "name"
            ):  # R-style dotted column names: "Subject.id"
                name += "." + toks[i + 1].text
                i += 2
            pieces[-1].append(name)
            want_name = False
            continue
        if not want_name and tk.text in (":", "/"):
            if tk.text == "/":
                pieces.append([])
            want_name = True
            i += 1
            continue
        if not want_name and tk.text in ("+", "-") and tk.parent == container:
            alts = [
                canon(toks, f, s) for _, f, s, _ in split_terms(src, toks, lo, hi, container)
            ]
            suggestion = " + ".join(f"({head} {a})" for a in alts)
            raise FormulaError.at(
                src, tk.start,
                "the grouping factor must be a factor or an interaction, not a sum; "
                f"write one term per factor: '{suggestion}'"
            )
        if tk.kind == "bq" or (tk.text == "(" and i > lo and toks[i - 1].text == "Q"):
            at = toks[i - 1].start if tk.kind != "bq" else tk.start
            raise FormulaError.at(
                src, at,
                "a grouping factor cannot be quoted: rename the column to a plain name (letters, "
                "digits, '_', '.'), e.g. data.rename(columns={'my group': 'my_group'})"
            )
        raise FormulaError.at(
            src, tk.start,
            "the grouping factor must be a column name or an interaction such as "
            f"'a:b' (nested: 'a/b'), not '{tk.text}'"
        )
    if want_name:
        last = toks[hi - 1]
        raise FormulaError.at(
            src, last.start,
            f"nothing after '{last.text}' in the grouping factor"
        )
    return nest_groups([":".join(p) for p in pieces])


def bars_from(
    src: str,
    toks: list[Token],
    lo: int,
    verts: list[int],
    hi: int,
    container: int,
    end_pos: int,
) -> tuple[Bar, ...]:
    """Expanded bars of ``expr | group`` spanning ``toks[lo:hi]``, bar at ``verts[0]``.

    ``container`` is the index of the enclosing ``(`` (-1 for nlme's ``random=``);
    when it opens a ``diag(...)`` call the bars are diagonal (``correlated=False``).
    ``||`` gives lme4's separate terms, each marked ``split``.
    """
    if len(verts) > 1:
        raise FormulaError.at(
            src, toks[verts[1]].start,
            "only one '|' per random-effect term; write '(expr | g1) + (expr | g2)'"
        )
    v = verts[0]
    bar = toks[v].text
    diag = container != -1 and is_diag_call(toks, container)
    if diag and bar == "||":
        raise FormulaError.at(
            src, toks[v].start,
            "diag() takes one '|': write 'diag(expr | group)' "
            "(its columns are already independent)"
        )
    terms = split_terms(src, toks, lo, v, container)
    if not terms:
        raise FormulaError.at(
            src, toks[v].start,
            f"nothing before '{bar}'; write '(1 {bar} group)' for a random intercept"
        )
    labelled = [(s, canon(toks, f, e)) for s, f, e, _ in terms]
    expr = join_terms(labelled)
    groups = _groups(src, toks, v + 1, hi, container, end_pos, f"{expr} {bar}")
    if bar == "|":
        exprs = [expr]
        if all(drops_intercept(s, t) for s, t in labelled):
            exprs = []
    else:  # lme4's expandDoubleVerts
        intercept, labels = True, []
        for (sign, text), (_, f, e, sign_tok) in zip(labelled, terms):
            if drops_intercept(sign, text):
                intercept = False
            elif sign == "-":
                raise FormulaError.at(
                    src, toks[sign_tok].start,
                    "cannot remove terms inside '||'; list only the terms you want"
                )
            elif text != "1":
                labels += [
                    x for x in expand_products(_factors(toks, f, e, container)) if x not in labels
                ]
        exprs = expand_double_verts(intercept, labels)
    if not exprs:
        raise FormulaError.at(
            src, toks[lo].start,
            f"'({expr} {bar} ...)' has no random effects; write '(1 {bar} group)' for "
            "a random intercept"
        )
    return expand_bar(exprs, groups, correlated=not diag, split=bar == "||")


def _factors(toks: list[Token], first: int, stop: int, container: int) -> list[str]:
    """``a * b:c`` -> ``["a", "b:c"]``; the whole term when it is not a clean product."""
    cuts = [i for i in range(first, stop) if toks[i].parent == container and toks[i].text == "*"]
    bounds = [first - 1, *cuts, stop]
    if any(b - a < 2 for a, b in zip(bounds, bounds[1:])):
        return [canon(toks, first, stop)]
    return [canon(toks, a + 1, b) for a, b in zip(bounds, bounds[1:])]


def is_bar_term(toks: list[Token], first: int, stop: int, bars: set[int]) -> int:
    """Index of the bar paren if ``toks[first:stop]`` is ``(e | g)`` or ``diag(e | g)``.

    Extra parentheses around the term are allowed: ``((1 | g))``.
    """
    k, last = first, stop - 1
    while k < last:
        if toks[k].text == "(" and not toks[k].call and toks[k].match == last:
            if k in bars:
                return k
            k, last = k + 1, last - 1
        elif k + 1 in bars and toks[k + 1].match == last and is_diag_call(toks, k + 1):
            return k + 1
        else:
            return -1
    return -1
