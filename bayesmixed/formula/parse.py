"""Formula strings -> :class:`ParsedFormula`: lme4 bars, offsets, nlme ``random=``.

A small hand-written scanner (names, numbers, quoted strings, brackets, operators)
feeds a splitter of the top-level ``+``/``-`` sum, the way lme4's ``findbars`` and
``nobars`` walk the right-hand side. No regular expressions, no data: a typical
formula parses in tens of microseconds.

Canonical text (what :func:`format_formula` writes and :func:`parse_formula` returns)
-------------------------------------------------------------------------------------
* ``response`` and each fixed term keep the user's text (stripped); fixed terms
  are joined with ``" + "`` / ``" - "``; ``"1"`` when no fixed term remains.
* ``Bar.expr`` is the same join, with runs of whitespace inside a term collapsed to
  one space; ``Bar.group`` has no spaces (``"a:b"``).
* ``(e || g)`` is expanded to ``Bar("1", g, False)`` and ``Bar("0 + t", g, False)``
  per term ``t``. Each such bar is written back as ``(1 || g)`` / ``(0 + t || g)``
  (``str(Bar)``), which expands to exactly that one bar again, so
  ``parse_formula(format_formula(p))`` equals ``p`` apart from ``formula``.
"""

from __future__ import annotations

import keyword

from bayesmixed.errors import FormulaError
from bayesmixed.formula.bars import (
    expand_bar,
    expand_double_verts,
    expand_products,
    nest_groups,
)
from bayesmixed.formula.terms import Bar, ParsedFormula

__all__ = ["format_formula", "parse_formula"]

_OPEN = {"(": ")", "[": "]", "{": "}"}
_CLOSE = {")": "(", "]": "[", "}": "{"}
_TWO_CHAR_OPS = frozenset({"||", "**", "==", "!=", "<=", ">=", "//", "->", "<-"})
_OPERAND_END = frozenset({"name", "num", "str", "bq", "close"})
_VERTS = ("|", "||")


class _Tok:
    """One token: kind, text, [start, end) in the source, enclosing bracket index."""

    __slots__ = ("kind", "text", "start", "end", "parent", "match", "call")

    def __init__(self, kind: str, text: str, start: int, end: int, parent: int) -> None:
        self.kind, self.text, self.start, self.end = kind, text, start, end
        self.parent = parent  # index of the innermost enclosing open bracket, -1 at top
        self.match = -1  # brackets: index of the partner bracket
        self.call = False  # "(" right after a name or ")": a call, never a bar

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"_Tok({self.kind}, {self.text!r}, {self.start})"


def _error(message: str, src: str, pos: int) -> FormulaError:
    """FormulaError showing the source line of ``pos`` with a caret under it."""
    pos = max(0, min(pos, len(src)))
    line_start = src.rfind("\n", 0, pos) + 1
    line_end = src.find("\n", pos)
    line = src[line_start : len(src) if line_end == -1 else line_end]
    shown = "".join(c if c.isprintable() else " " for c in line)
    return FormulaError(f"{message}\n    {shown}\n    {' ' * (pos - line_start)}^")


def _scan_number(src: str, i: int) -> int:
    """End of the number starting at ``i`` (digits, fraction, exponent)."""
    n = len(src)
    while i < n and "0" <= src[i] <= "9":
        i += 1
    if i < n and src[i] == ".":
        i += 1
        while i < n and "0" <= src[i] <= "9":
            i += 1
    if i < n and src[i] in "eE":
        j = i + 1
        if j < n and src[j] in "+-":
            j += 1
        if j < n and "0" <= src[j] <= "9":
            i = j
            while i < n and "0" <= src[i] <= "9":
                i += 1
    return i


def _tokenize(src: str) -> list[_Tok]:
    """Tokens of ``src`` with bracket nesting resolved; raises on unbalanced brackets."""
    toks: list[_Tok] = []
    stack: list[int] = []
    i, n = 0, len(src)
    while i < n:
        ch = src[i]
        if ch.isspace():
            i += 1
            continue
        start, parent = i, (stack[-1] if stack else -1)
        if ch.isalpha() or ch == "_":
            i += 1
            while i < n and (src[i].isalnum() or src[i] == "_"):
                i += 1
            kind = "name"
        elif "0" <= ch <= "9" or (ch == "." and i + 1 < n and "0" <= src[i + 1] <= "9"):
            i, kind = _scan_number(src, i), "num"
        elif ch in "'\"`":
            j = i + 1
            while j < n and src[j] != ch:
                j += 2 if src[j] == "\\" else 1
            if j >= n:
                what = "backtick name" if ch == "`" else "string"
                raise _error(f"unterminated {what}: add the closing {ch}", src, i)
            i, kind = j + 1, ("bq" if ch == "`" else "str")
        elif ch in _OPEN:
            tok = _Tok("open", ch, i, i + 1, parent)
            prev = toks[-1] if toks else None
            tok.call = prev is not None and prev.kind in _OPERAND_END and prev.kind != "num"
            stack.append(len(toks))
            toks.append(tok)
            i += 1
            continue
        elif ch in _CLOSE:
            if not stack:
                raise _error(
                    f"unbalanced parentheses: this '{ch}' has no matching "
                    f"'{_CLOSE[ch]}'; remove it or add the opening one",
                    src,
                    i,
                )
            o = stack.pop()
            if toks[o].text != _CLOSE[ch]:
                raise _error(
                    f"unbalanced parentheses: '{toks[o].text}' at position "
                    f"{toks[o].start} is closed by '{ch}'; close it with "
                    f"'{_OPEN[toks[o].text]}'",
                    src,
                    i,
                )
            tok = _Tok("close", ch, i, i + 1, toks[o].parent)
            tok.match, toks[o].match = o, len(toks)
            toks.append(tok)
            i += 1
            continue
        else:
            i += 2 if src[i : i + 2] in _TWO_CHAR_OPS else 1
            kind = "op"
        toks.append(_Tok(kind, src[start:i], start, i, parent))
    if stack:
        o = toks[stack[-1]]
        raise _error(
            f"unbalanced parentheses: this '{o.text}' is never closed; add "
            f"'{_OPEN[o.text]}'",
            src,
            o.start,
        )
    return toks


def _bar_parens(src: str, toks: list[_Tok], *, top_level_ok: bool = False) -> list[int]:
    """Indices of the ``(`` that open ``(expr | group)`` terms; rejects misplaced bars.

    A ``|`` counts only when every bracket around it is a plain (non-call)
    parenthesis: ``I(a | b)`` and ``f((a | b))`` are left to the fixed-part parser.
    """
    bars: list[int] = []
    for tk in toks:
        if tk.text not in _VERTS:
            continue
        p = tk.parent
        if p == -1:
            if top_level_ok:
                continue
            raise _error(
                f"'{tk.text}' outside parentheses; write random effects as "
                f"'(expr {tk.text} group)', e.g. 'y ~ x + (1 + x {tk.text} g)'",
                src,
                tk.start,
            )
        a = p
        while a != -1 and toks[a].text == "(" and not toks[a].call:
            a = toks[a].parent
        if a == -1 and (not bars or bars[-1] != p):
            bars.append(p)
    seen = set(bars)
    for p in bars:
        a = toks[p].parent
        while a != -1:
            if a in seen:
                raise _error(
                    "random-effect term inside another random-effect term; write "
                    "them side by side: '(1 | g) + (1 | h)'",
                    src,
                    toks[p].start,
                )
            a = toks[a].parent
    return sorted(seen)


def _split_terms(
    src: str, toks: list[_Tok], lo: int, hi: int, container: int
) -> list[tuple[str, int, int, int]]:
    """Top-level ``+``/``-`` terms of ``toks[lo:hi]`` as (sign, first, stop, sign_tok).

    A ``-`` right after an operator (``x * -z``) is unary and stays in its term;
    runs of signs combine (``+ -`` is ``-``).
    """
    terms: list[tuple[str, int, int, int]] = []
    sign, first, sign_tok = "+", -1, -1
    for i in range(lo, hi):
        tk = toks[i]
        if tk.parent == container and tk.text in ("+", "-"):
            if first == -1:
                if tk.text == "-":
                    sign = "+" if sign == "-" else "-"
                sign_tok = i
                continue
            if toks[i - 1].kind in _OPERAND_END or toks[i - 1].text == ".":
                terms.append((sign, first, i, sign_tok))
                sign, first, sign_tok = tk.text, -1, i
                continue
        if first == -1:
            first = i
    if first != -1:
        last = toks[hi - 1]
        if last.kind == "op" and last.text != ".":  # "x *" would glue on "+ (1|g)"
            raise _error(
                f"nothing after '{last.text}'; add a term after it or remove it",
                src,
                last.start,
            )
        terms.append((sign, first, hi, sign_tok))
    elif sign_tok != -1:
        s = toks[sign_tok]
        raise _error(f"nothing after '{s.text}'; remove it or add a term", src, s.start)
    return terms


def _text(src: str, toks: list[_Tok], first: int, stop: int) -> str:
    """The user's text of ``toks[first:stop]``."""
    return src[toks[first].start : toks[stop - 1].end]


def _canon(toks: list[_Tok], first: int, stop: int) -> str:
    """Text of ``toks[first:stop]`` with every run of whitespace made one space."""
    parts = [toks[first].text]
    for i in range(first + 1, stop):
        if toks[i].start > toks[i - 1].end:
            parts.append(" ")
        parts.append(toks[i].text)
    return "".join(parts)


def _join(terms: list[tuple[str, str]]) -> str:
    """``[("+", "x"), ("-", "1")]`` -> ``"x - 1"``; a leading ``-`` is kept (``"-1"``)."""
    out = []
    for k, (sign, text) in enumerate(terms):
        if k == 0:
            out.append(text if sign == "+" else f"-{text}")
        else:
            out.append(f" {sign} {text}")
    return "".join(out)


def _drops_intercept(sign: str, text: str) -> bool:
    return (sign == "+" and text == "0") or (sign == "-" and text == "1")


def _groups(
    src: str, toks: list[_Tok], lo: int, hi: int, container: int, end_pos: int, head: str
) -> tuple[str, ...]:
    """Grouping factors of ``toks[lo:hi]`` (after the bar), ``/`` nesting expanded."""
    if lo >= hi:
        raise _error(
            f"no grouping factor after '{head[-2:].strip()}'; write '({head} group)'",
            src,
            end_pos,
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
                _canon(toks, f, s) for _, f, s, _ in _split_terms(src, toks, lo, hi, container)
            ]
            suggestion = " + ".join(f"({head} {a})" for a in alts)
            raise _error(
                "the grouping factor must be a factor or an interaction, not a sum; "
                f"write one term per factor: '{suggestion}'",
                src,
                tk.start,
            )
        if tk.kind == "bq" or (tk.text == "(" and i > lo and toks[i - 1].text == "Q"):
            at = toks[i - 1].start if tk.kind != "bq" else tk.start
            raise _error(
                "a grouping factor cannot be quoted: rename the column to a plain name (letters, "
                "digits, '_', '.'), e.g. data.rename(columns={'my group': 'my_group'})",
                src,
                at,
            )
        raise _error(
            "the grouping factor must be a column name or an interaction such as "
            f"'a:b' (nested: 'a/b'), not '{tk.text}'",
            src,
            tk.start,
        )
    if want_name:
        last = toks[hi - 1]
        raise _error(f"nothing after '{last.text}' in the grouping factor", src, last.start)
    return nest_groups([":".join(p) for p in pieces])


def _bars_from(
    src: str,
    toks: list[_Tok],
    lo: int,
    verts: list[int],
    hi: int,
    container: int,
    end_pos: int,
) -> tuple[Bar, ...]:
    """Expanded bars of ``expr | group`` spanning ``toks[lo:hi]``, bar at ``verts[0]``."""
    if len(verts) > 1:
        raise _error(
            "only one '|' per random-effect term; write '(expr | g1) + (expr | g2)'",
            src,
            toks[verts[1]].start,
        )
    v = verts[0]
    bar = toks[v].text
    terms = _split_terms(src, toks, lo, v, container)
    if not terms:
        raise _error(
            f"nothing before '{bar}'; write '(1 {bar} group)' for a random intercept",
            src,
            toks[v].start,
        )
    labelled = [(s, _canon(toks, f, e)) for s, f, e, _ in terms]
    expr = _join(labelled)
    groups = _groups(src, toks, v + 1, hi, container, end_pos, f"{expr} {bar}")
    if bar == "|":
        exprs = [expr]
        if all(_drops_intercept(s, t) for s, t in labelled):
            exprs = []
    else:  # lme4's expandDoubleVerts
        intercept, labels = True, []
        for (sign, text), (_, f, e, sign_tok) in zip(labelled, terms):
            if _drops_intercept(sign, text):
                intercept = False
            elif sign == "-":
                raise _error(
                    "cannot remove terms inside '||'; list only the terms you want",
                    src,
                    toks[sign_tok].start,
                )
            elif text != "1":
                labels += [
                    x for x in expand_products(_factors(toks, f, e, container)) if x not in labels
                ]
        exprs = expand_double_verts(intercept, labels)
    if not exprs:
        raise _error(
            f"'({expr} {bar} ...)' has no random effects; write '(1 {bar} group)' for "
            "a random intercept",
            src,
            toks[lo].start,
        )
    return expand_bar(exprs, groups, correlated=bar == "|")


def _factors(toks: list[_Tok], first: int, stop: int, container: int) -> list[str]:
    """``a * b:c`` -> ``["a", "b:c"]``; the whole term when it is not a clean product."""
    cuts = [i for i in range(first, stop) if toks[i].parent == container and toks[i].text == "*"]
    bounds = [first - 1, *cuts, stop]
    if any(b - a < 2 for a, b in zip(bounds, bounds[1:])):
        return [_canon(toks, first, stop)]
    return [_canon(toks, a + 1, b) for a, b in zip(bounds, bounds[1:])]


def _is_offset(toks: list[_Tok], first: int, stop: int) -> bool:
    """``toks[first:stop]`` is exactly ``offset(...)``."""
    return (
        toks[first].kind == "name"
        and toks[first].text == "offset"
        and stop - first >= 3
        and toks[first + 1].text == "("
        and toks[first + 1].match == stop - 1
    )


def _is_bar_term(toks: list[_Tok], first: int, stop: int, bars: set[int]) -> int:
    """Index of the bar paren if ``toks[first:stop]`` is ``(e | g)`` (maybe in extra parens)."""
    k, last = first, stop - 1
    while k < last and toks[k].text == "(" and not toks[k].call and toks[k].match == last:
        if k in bars:
            return k
        k, last = k + 1, last - 1
    return -1


def _unquote(text: str) -> str:
    """Body of a quoted string with backslash escapes resolved simply."""
    body, out, i = text[1:-1], [], 0
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body):
            i += 1
        out.append(body[i])
        i += 1
    return "".join(out)


def _scan_variables(toks: list[_Tok], out: set[str]) -> None:
    """Add the bare variable names of ``toks`` (best effort) to ``out``."""
    n = len(toks)
    for i, tk in enumerate(toks):
        if tk.kind == "name":
            nxt = toks[i + 1].text if i + 1 < n else ""
            if nxt in ("(", ".", "=") or (i and toks[i - 1].text == "."):
                continue  # function, module/object, keyword argument, attribute
            if not keyword.iskeyword(tk.text):
                out.add(tk.text)
        elif tk.kind == "bq":
            out.add(_unquote(tk.text))
        elif (
            tk.kind == "str"
            and 2 <= i < n - 1
            and toks[i - 1].text == "("
            and toks[i - 2].text == "Q"
            and toks[i + 1].text == ")"
        ):
            out.add(_unquote(tk.text))


def _parse_random(random: object, variables: set[str]) -> tuple[Bar, ...]:
    """nlme-style ``random="~ expr | g1/g2"`` (tilde optional) -> bars."""
    if not isinstance(random, str):
        raise FormulaError(
            f"random= must be a string like '~ 1 | g', got {type(random).__name__}"
        )
    if not random.strip():
        raise FormulaError("random= is empty; write it like '~ 1 | g' or '~ x | g1/g2'")
    toks = _tokenize(random)
    lo = 1 if toks[0].text == "~" else 0
    for tk in toks[lo:]:
        if tk.text == "~" and tk.parent == -1:
            raise _error(
                "random= takes one leading '~': write '~ expr | group'", random, tk.start
            )
    parens = _bar_parens(random, toks, top_level_ok=True)
    if parens:
        raise _error(
            "random= takes '~ expr | group' without parentheses; put "
            "'(expr | group)' terms in the formula instead",
            random,
            toks[parens[0]].start,
        )
    verts = [i for i, tk in enumerate(toks) if tk.parent == -1 and tk.text in _VERTS]
    if not verts:
        raise _error(
            "random= needs '|' and a grouping factor: write '~ 1 | group'",
            random,
            len(random.rstrip()),
        )
    _scan_variables(toks, variables)
    return _bars_from(random, toks, lo, verts, len(toks), -1, len(random.rstrip()))


def parse_formula(formula: str, random: str | None = None) -> ParsedFormula:
    """Split an lme4 formula into response, fixed part, random-effect bars and offsets.

    Parameters
    ----------
    formula : str
        ``"response ~ fixed + (expr | group) + ..."``. Bars may use ``||``
        (uncorrelated terms), ``/`` (nesting) and ``:`` (interaction groups).
    random : str, optional
        nlme-style random part such as ``"~1 | w/v"`` or ``"x | g"``; then
        ``formula`` itself must not contain bars.

    Returns
    -------
    ParsedFormula
        ``bars`` expanded (``||`` and ``/``); ``offsets`` pulled out of the fixed
        part; ``variables`` the bare column names used anywhere.

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
    """
    if not isinstance(formula, str):
        raise FormulaError(
            "formula must be a string like 'y ~ x + (1 | g)', got "
            f"{type(formula).__name__}"
        )
    if not formula.strip():
        raise FormulaError("empty formula; write 'response ~ terms', e.g. 'y ~ x + (1 | g)'")
    toks = _tokenize(formula)
    tildes = [i for i, tk in enumerate(toks) if tk.parent == -1 and tk.text == "~"]
    if not tildes:
        raise _error(
            "formula has no '~'; a model needs a response: write 'response ~ terms'",
            formula,
            toks[0].start,
        )
    if len(tildes) > 1:
        raise _error(
            "more than one '~'; write a single 'response ~ terms'",
            formula,
            toks[tildes[1]].start,
        )
    t = tildes[0]
    if t == 0:
        raise _error(
            "missing response before '~'; write 'response ~ terms'",
            formula,
            toks[t].start,
        )
    if t == len(toks) - 1:
        raise _error(
            "nothing after '~'; write 'response ~ 1' for an intercept-only model",
            formula,
            toks[t].end,
        )
    parens = _bar_parens(formula, toks)
    if parens and parens[0] < t:
        raise _error(
            "random-effect term in the response; put it after '~'",
            formula,
            toks[parens[0]].start,
        )
    if parens and random is not None:
        raise _error(
            "random effects given twice: put them in the formula as '(expr | group)' "
            "or in random=, not both",
            formula,
            toks[parens[0]].start,
        )
    bar_set = set(parens)
    fixed: list[tuple[str, str]] = []
    bars: list[Bar] = []
    offsets: list[str] = []
    for sign, first, stop, sign_tok in _split_terms(formula, toks, t + 1, len(toks), -1):
        k = _is_bar_term(toks, first, stop, bar_set)
        is_offset = k == -1 and _is_offset(toks, first, stop)
        if k != -1 or is_offset:
            if sign == "-":
                what = "a random-effect term" if k != -1 else "an offset"
                raise _error(
                    f"cannot subtract {what}; add it with '+' or leave it out",
                    formula,
                    toks[sign_tok].start,
                )
        if k != -1:
            c = toks[k].match
            verts = [i for i in range(k + 1, c) if toks[i].parent == k and toks[i].text in _VERTS]
            bars += _bars_from(formula, toks, k + 1, verts, c, k, toks[c].start)
            continue
        inner = [p for p in parens if first <= p < stop]
        if inner:
            raise _error(
                "a random-effect term must be its own term of the sum; write "
                "'fixed + (expr | group)'",
                formula,
                toks[inner[0]].start,
            )
        if is_offset:
            o = toks[first + 1]
            if stop - first == 3:
                raise _error("offset() is empty; write 'offset(column)'", formula, o.start)
            offsets.append(formula[o.end : toks[stop - 1].start].strip())
            continue
        fixed.append((sign, _text(formula, toks, first, stop)))
    variables: set[str] = set()
    _scan_variables(toks, variables)
    if random is not None:
        bars += _parse_random(random, variables)
    for b in bars:
        variables.update(b.group_columns)
    return ParsedFormula(
        formula=formula,
        response=_text(formula, toks, 0, t),
        fixed_rhs=_join(fixed) if fixed else "1",
        bars=tuple(bars),
        offsets=tuple(offsets),
        variables=frozenset(variables),
    )


def format_formula(parsed: ParsedFormula) -> str:
    """Canonical formula string of ``parsed``: response ~ fixed + bars + offsets.

    ``parse_formula(format_formula(p))`` equals ``p`` except for the ``formula``
    field. Uncorrelated bars (from ``||``) are written ``(1 || g)`` and
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
