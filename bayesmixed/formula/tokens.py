"""The formula scanner: tokens with bracket nesting, top-level sums, canonical text.

A small hand-written scanner (names, numbers, quoted strings, brackets, operators)
shared by :mod:`bayesmixed.formula.bars` and :mod:`bayesmixed.formula.parse`. No
regular expressions, no data.
"""

from __future__ import annotations

import keyword

from bayesmixed.errors import FormulaError

__all__ = ["Token", "tokenize"]   # the other helpers serve bars.py and parse.py

OPEN = {"(": ")", "[": "]", "{": "}"}
CLOSE = {")": "(", "]": "[", "}": "{"}
_TWO_CHAR_OPS = frozenset({"||", "**", "==", "!=", "<=", ">=", "//", "->", "<-"})
OPERAND_END = frozenset({"name", "num", "str", "bq", "close"})
VERTS = ("|", "||")


class Token:
    """One token: kind, text, [start, end) in the source, enclosing bracket index."""

    __slots__ = ("kind", "text", "start", "end", "parent", "match", "call")

    def __init__(self, kind: str, text: str, start: int, end: int, parent: int) -> None:
        self.kind, self.text, self.start, self.end = kind, text, start, end
        self.parent = parent  # index of the innermost enclosing open bracket, -1 at top
        self.match = -1  # brackets: index of the partner bracket
        self.call = False  # "(" right after a name or ")": a call (holds a bar only as diag(...))

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Token({self.kind}, {self.text!r}, {self.start})"


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


def tokenize(src: str) -> list[Token]:
    """Tokens of ``src`` with bracket nesting resolved; raises on unbalanced brackets.

    Examples
    --------
    >>> [(t.kind, t.text, t.parent) for t in tokenize("(1 | g)")]
    [('open', '(', -1), ('num', '1', 0), ('op', '|', 0), ('name', 'g', 0), ('close', ')', -1)]
    """
    toks: list[Token] = []
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
                raise FormulaError.at(src, i, f"unterminated {what}: add the closing {ch}")
            i, kind = j + 1, ("bq" if ch == "`" else "str")
        elif ch in OPEN:
            tok = Token("open", ch, i, i + 1, parent)
            prev = toks[-1] if toks else None
            tok.call = prev is not None and prev.kind in OPERAND_END and prev.kind != "num"
            stack.append(len(toks))
            toks.append(tok)
            i += 1
            continue
        elif ch in CLOSE:
            if not stack:
                raise FormulaError.at(
                    src, i,
                    f"unbalanced parentheses: this '{ch}' has no matching "
                    f"'{CLOSE[ch]}'; remove it or add the opening one"
                )
            o = stack.pop()
            if toks[o].text != CLOSE[ch]:
                raise FormulaError.at(
                    src, i,
                    f"unbalanced parentheses: '{toks[o].text}' at position "
                    f"{toks[o].start} is closed by '{ch}'; close it with "
                    f"'{OPEN[toks[o].text]}'"
                )
            tok = Token("close", ch, i, i + 1, toks[o].parent)
            tok.match, toks[o].match = o, len(toks)
            toks.append(tok)
            i += 1
            continue
        else:
            i += 2 if src[i : i + 2] in _TWO_CHAR_OPS else 1
            kind = "op"
        toks.append(Token(kind, src[start:i], start, i, parent))
    if stack:
        o = toks[stack[-1]]
        raise FormulaError.at(
            src, o.start,
            f"unbalanced parentheses: this '{o.text}' is never closed; add "
            f"'{OPEN[o.text]}'"
        )
    return toks


def split_terms(
    src: str, toks: list[Token], lo: int, hi: int, container: int
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
            if toks[i - 1].kind in OPERAND_END or toks[i - 1].text == ".":
                terms.append((sign, first, i, sign_tok))
                sign, first, sign_tok = tk.text, -1, i
                continue
        if first == -1:
            first = i
    if first != -1:
        last = toks[hi - 1]
        if last.kind == "op" and last.text != ".":  # "x *" would glue on "+ (1|g)"
            raise FormulaError.at(
                src, last.start,
                f"nothing after '{last.text}'; add a term after it or remove it"
            )
        terms.append((sign, first, hi, sign_tok))
    elif sign_tok != -1:
        s = toks[sign_tok]
        raise FormulaError.at(src, s.start, f"nothing after '{s.text}'; remove it or add a term")
    return terms


def text_of(src: str, toks: list[Token], first: int, stop: int) -> str:
    """The user's text of ``toks[first:stop]``."""
    return src[toks[first].start : toks[stop - 1].end]


def canon(toks: list[Token], first: int, stop: int) -> str:
    """Text of ``toks[first:stop]`` with every run of whitespace made one space."""
    parts = [toks[first].text]
    for i in range(first + 1, stop):
        if toks[i].start > toks[i - 1].end:
            parts.append(" ")
        parts.append(toks[i].text)
    return "".join(parts)


def join_terms(terms: list[tuple[str, str]]) -> str:
    """``[("+", "x"), ("-", "1")]`` -> ``"x - 1"``; a leading ``-`` is kept (``"-1"``)."""
    out = []
    for k, (sign, text) in enumerate(terms):
        if k == 0:
            out.append(text if sign == "+" else f"-{text}")
        else:
            out.append(f" {sign} {text}")
    return "".join(out)


def drops_intercept(sign: str, text: str) -> bool:
    return (sign == "+" and text == "0") or (sign == "-" and text == "1")


def unquote(text: str) -> str:
    """Body of a quoted string with backslash escapes resolved simply."""
    body, out, i = text[1:-1], [], 0
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body):
            i += 1
        out.append(body[i])
        i += 1
    return "".join(out)


def scan_variables(toks: list[Token], out: set[str]) -> None:
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
            out.add(unquote(tk.text))
        elif (
            tk.kind == "str"
            and 2 <= i < n - 1
            and toks[i - 1].text == "("
            and toks[i - 2].text == "Q"
            and toks[i + 1].text == ")"
        ):
            out.add(unquote(tk.text))
