"""Formula strings -> :class:`ParsedFormula`: lme4 bars, offsets, nlme ``random=``.

The scanner (:mod:`bayesmixed.formula.tokens`) feeds a splitter of the top-level
``+``/``-`` sum, the way lme4's ``findbars`` and ``nobars`` walk the right-hand
side; :mod:`bayesmixed.formula.bars` expands the random-effect terms. No regular
expressions, no data: a typical formula parses in tens of microseconds.

Canonical text (what :func:`format_formula` writes and :func:`parse_formula` returns)
-------------------------------------------------------------------------------------
* ``response`` and each fixed term keep the user's text (stripped); fixed terms
  are joined with ``" + "`` / ``" - "``; ``"1"`` when no fixed term remains.
* ``Bar.expr`` is the same join, with runs of whitespace inside a term collapsed to
  one space; ``Bar.group`` has no spaces (``"a:b"``).
* ``(e || g)`` is expanded as lme4's ``expandDoubleVerts`` to ``Bar("1", g)`` and
  ``Bar("0 + t", g)`` per term ``t``, each marked ``split``. Each such bar is written
  back as ``(1 || g)`` / ``(0 + t || g)`` (``str(Bar)``), which expands to exactly
  that one bar again; ``diag(e | g)`` is written back as itself. So
  ``parse_formula(format_formula(p))`` equals ``p`` apart from ``formula``.
"""

from __future__ import annotations

from bayesmixed.errors import FormulaError
from bayesmixed.formula.bars import bar_parens, bars_from, is_bar_term
from bayesmixed.formula.terms import Bar, ParsedFormula
from bayesmixed.formula.tokens import (
    VERTS,
    Token,
    join_terms,
    scan_variables,
    split_terms,
    text_of,
    tokenize,
)

__all__ = ["find_bars", "find_call", "format_formula", "parse_formula", "strip_bars"]


def _is_offset(toks: list[Token], first: int, stop: int) -> bool:
    """``toks[first:stop]`` is exactly ``offset(...)``."""
    return (
        toks[first].kind == "name"
        and toks[first].text == "offset"
        and stop - first >= 3
        and toks[first + 1].text == "("
        and toks[first + 1].match == stop - 1
    )


def _parse_random(random: object, variables: set[str]) -> tuple[Bar, ...]:
    """nlme-style ``random="~ expr | g1/g2"`` (tilde optional) -> bars."""
    if not isinstance(random, str):
        raise FormulaError(
            f"random= must be a string like '~ 1 | g', got {type(random).__name__}"
        )
    if not random.strip():
        raise FormulaError("random= is empty; write it like '~ 1 | g' or '~ x | g1/g2'")
    toks = tokenize(random)
    lo = 1 if toks[0].text == "~" else 0
    for tk in toks[lo:]:
        if tk.text == "~" and tk.parent == -1:
            raise FormulaError.at(
                random, tk.start,
                "random= takes one leading '~': write '~ expr | group'"
            )
    parens = bar_parens(random, toks, top_level_ok=True)
    if parens:
        raise FormulaError.at(
            random, toks[parens[0]].start,
            "random= takes '~ expr | group' without parentheses; put "
            "'(expr | group)' terms in the formula instead"
        )
    verts = [i for i, tk in enumerate(toks) if tk.parent == -1 and tk.text in VERTS]
    if not verts:
        raise FormulaError.at(
            random, len(random.rstrip()),
            "random= needs '|' and a grouping factor: write '~ 1 | group'"
        )
    scan_variables(toks, variables)
    return bars_from(random, toks, lo, verts, len(toks), -1, len(random.rstrip()))


def parse_formula(formula: str, random: str | None = None) -> ParsedFormula:
    """Split an lme4 formula into response, fixed part, random-effect bars and offsets.

    Parameters
    ----------
    formula : str
        ``"response ~ fixed + (expr | group) + ..."``. Bars may use ``||``
        (lme4's separate terms), ``/`` (nesting) and ``:`` (interaction groups);
        ``diag(expr | group)`` is glmmTMB's diagonal covariance over the columns
        of ``expr``.
    random : str, optional
        nlme-style random part such as ``"~1 | w/v"`` or ``"x | g"``; then
        ``formula`` itself must not contain bars.

    Returns
    -------
    ParsedFormula
        ``bars`` expanded (``||`` and ``/``); ``offsets`` pulled out of the fixed
        part; ``variables`` the bare column names used anywhere, with those of the
        response and of the fixed part also apart.

    Raises
    ------
    FormulaError
        With the formula and a caret under the offending position.

    Notes
    -----
    lme4/reformulas: ``findbars``, ``nobars``, ``expandDoubleVerts``,
    ``expandSlash``. Unlike lme4, ``(a/b)`` names the inner factor ``a:b``.

    Examples
    --------
    >>> p = parse_formula("Reaction ~ Days + (Days || Subject)")
    >>> p.fixed_rhs, [str(b) for b in p.bars]
    ('Days', ['(1 || Subject)', '(0 + Days || Subject)'])
    >>> [str(b) for b in parse_formula("score ~ Machine + diag(Machine | Worker)").bars]
    ['diag(Machine | Worker)']
    """
    toks, t = _split_tilde(formula)
    parens = bar_parens(formula, toks)
    if parens and parens[0] < t:
        raise FormulaError.at(formula, toks[parens[0]].start,
                              "random-effect term in the response; put it after '~'")
    if parens and random is not None:
        raise FormulaError.at(formula, toks[parens[0]].start,
                              "random effects given twice: put them in the formula as "
                              "'(expr | group)' or in random=, not both")
    fixed, bars, offsets, fixed_vars = _rhs_terms(formula, toks, t, parens)
    variables: set[str] = set()
    scan_variables(toks, variables)
    if random is not None:
        bars += _parse_random(random, variables)
    for b in bars:
        variables.update(b.group_columns)
    response_vars: set[str] = set()
    scan_variables(toks[:t], response_vars)
    return ParsedFormula(
        formula=formula,
        response=_bambi_proportion(formula, toks, t) or text_of(formula, toks, 0, t),
        fixed_rhs=join_terms(fixed) if fixed else "1",
        bars=tuple(bars),
        offsets=tuple(offsets),
        variables=frozenset(variables),
        response_variables=frozenset(response_vars),
        fixed_variables=frozenset(fixed_vars),
    )


def _bambi_proportion(formula: str, toks: list[Token], t: int) -> str | None:
    """bambi's binomial response ``p(successes, trials)`` as ``cbind(successes, trials - successes)``.

    None when the response is not exactly a call of ``p``. Arguments that are more
    than one name or number are parenthesised: ``p(a + b, n)`` gives
    ``cbind(a + b, n - (a + b))``.
    """
    if not (t >= 3 and toks[0].kind == "name" and toks[0].text == "p" and toks[1].text == "("
            and toks[1].call and toks[1].match == t - 1):
        return None
    commas = [i for i in range(2, t - 1) if toks[i].parent == 1 and toks[i].text == ","]
    bounds = [2, *(c + 1 for c in commas), t]
    args = [text_of(formula, toks, a, b - 1) for a, b in zip(bounds, bounds[1:])]   # b - 1: ',' or ')'
    if len(args) != 2 or not all(args):
        raise FormulaError.at(formula, toks[0].start,
                              f"p() takes two arguments, p(successes, trials), got {len([a for a in args if a])}; "
                              "or write cbind(successes, failures)")
    wrap = [x if len(tokenize(x)) == 1 else f"({x})" for x in args]
    return f"cbind({args[0]}, {wrap[1]} - {wrap[0]})"


def _split_tilde(formula: object) -> tuple[list[Token], int]:
    """Tokens of ``formula`` and the index of its one top-level ``~`` (checked)."""
    if not isinstance(formula, str):
        raise FormulaError(
            f"formula must be a string like 'y ~ x + (1 | g)', got {type(formula).__name__}"
        )
    if not formula.strip():
        raise FormulaError("empty formula; write 'response ~ terms', e.g. 'y ~ x + (1 | g)'")
    toks = tokenize(formula)
    tildes = [i for i, tk in enumerate(toks) if tk.parent == -1 and tk.text == "~"]
    if not tildes:
        raise FormulaError.at(formula, toks[0].start, "formula has no '~'; a model needs a "
                              "response: write 'response ~ terms'")
    if len(tildes) > 1:
        raise FormulaError.at(formula, toks[tildes[1]].start,
                              "more than one '~'; write a single 'response ~ terms'")
    t = tildes[0]
    if t == 0:
        raise FormulaError.at(formula, toks[t].start,
                              "missing response before '~'; write 'response ~ terms'")
    if t == len(toks) - 1:
        raise FormulaError.at(formula, toks[t].end,
                              "nothing after '~'; write 'response ~ 1' for an intercept-only model")
    return toks, t


def _rhs_terms(formula: str, toks: list[Token], t: int, parens: list[int]):
    """(fixed terms, bars, offsets, fixed-part variables) of the right-hand side."""
    bar_set = set(parens)
    fixed: list[tuple[str, str]] = []
    bars: list[Bar] = []
    offsets: list[str] = []
    fixed_vars: set[str] = set()
    for sign, first, stop, sign_tok in split_terms(formula, toks, t + 1, len(toks), -1):
        k = is_bar_term(toks, first, stop, bar_set)
        is_offset = k == -1 and _is_offset(toks, first, stop)
        if (k != -1 or is_offset) and sign == "-":
            what = "a random-effect term" if k != -1 else "an offset"
            raise FormulaError.at(formula, toks[sign_tok].start,
                                  f"cannot subtract {what}; add it with '+' or leave it out")
        if k != -1:
            c = toks[k].match
            verts = [i for i in range(k + 1, c) if toks[i].parent == k and toks[i].text in VERTS]
            bars += bars_from(formula, toks, k + 1, verts, c, k, toks[c].start)
            continue
        inner = [p for p in parens if first <= p < stop]
        if inner:
            raise FormulaError.at(formula, toks[inner[0]].start, "a random-effect term must be its "
                                  "own term of the sum; write 'fixed + (expr | group)'")
        if is_offset:
            o = toks[first + 1]
            if stop - first == 3:
                raise FormulaError.at(formula, o.start, "offset() is empty; write 'offset(column)'")
            offsets.append(formula[o.end : toks[stop - 1].start].strip())
            continue
        fixed.append((sign, text_of(formula, toks, first, stop)))
        scan_variables(toks[first:stop], fixed_vars)
    return fixed, bars, offsets, fixed_vars


def format_formula(parsed: ParsedFormula) -> str:
    """Canonical formula string of ``parsed``: response ~ fixed + bars + offsets.

    ``parse_formula(format_formula(p))`` equals ``p`` except for the ``formula``
    field. The terms lme4's ``||`` expands into are written ``(1 || g)`` and
    ``(0 + x || g)``, each of which expands back to exactly itself.

    Examples
    --------
    >>> format_formula(parse_formula("y~x+(x||g)+offset(t)"))
    'y ~ x + (1 || g) + (0 + x || g) + offset(t)'
    """
    rhs = " + ".join(
        [parsed.fixed_rhs, *map(str, parsed.bars), *(f"offset({o})" for o in parsed.offsets)]
    )
    return f"{parsed.response} ~ {rhs}" if parsed.response is not None else rhs


def find_bars(formula: str) -> tuple[Bar, ...]:
    """The expanded random-effect terms of ``formula`` (lme4's ``findbars``).

    Examples
    --------
    >>> [str(b) for b in find_bars("y ~ x + (1 | a/b)")]
    ['(1 | a)', '(1 | a:b)']
    """
    return parse_formula(formula).bars


def strip_bars(formula: str | ParsedFormula) -> str:
    """``formula`` without its random-effect terms (lme4's ``nobars``); offsets kept.

    Examples
    --------
    >>> strip_bars("y ~ x + (1 | g) + offset(log(t))")
    'y ~ x + offset(log(t))'
    """
    p = parse_formula(formula) if isinstance(formula, str) else formula
    rhs = " + ".join([p.fixed_rhs, *(f"offset({o})" for o in p.offsets)])
    return f"{p.response} ~ {rhs}" if p.response is not None else rhs


def find_call(formula: str, name: str) -> int | None:
    """Position in ``formula`` of the first call ``name(...)`` (also ``np.name(...)``), or None.

    Examples
    --------
    >>> find_call("y ~ lg(x) + (1 | g)", "lg"), find_call("y ~ x", "lg")
    (4, None)
    """
    try:
        toks = tokenize(formula)
    except FormulaError:
        return None
    for i, tk in enumerate(toks[:-1]):
        if tk.kind == "name" and tk.text == name and toks[i + 1].text == "(" and toks[i + 1].call:
            return tk.start
    return None
