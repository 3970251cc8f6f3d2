"""Property tests of parse_formula: a small grammar of valid formulas, and junk."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from bayesmixed.errors import FormulaError
from bayesmixed.formula import parse_formula
from bayesmixed.formula.parse import format_formula

SETTINGS = settings(max_examples=200, deadline=None)

RESPONSES = ["y", "log(y)", "cbind(s, f)", "y/n", "Reaction", "np.log1p(y)"]
FIXED = ["x", "z", "x:z", "x*z", "np.log(x)", "scale(z)", "C(f)", "I(x**2)", "I(a | b)",
         'Q("my var")', "0", "1", "-1", "C(f, Treatment('b'))", "poly(x, degree=2)"]
OFFSETS = ["offset(t)", "offset(log(t))"]
# bar expr -> (number of bars from '|', number from '||') per grouping factor
EXPRS = {"1": (1, 1), "x": (1, 2), "1 + x": (1, 2), "0 + x": (1, 1), "x + z": (1, 3),
         "1+x+z": (1, 3), "x - 1": (1, 1), "log(x)": (1, 2), "a*b": (1, 4)}
NAMES = ["g", "h", "Subject", "plate", "k2"]
SPACE = st.sampled_from(["", " ", "  ", "\n    "])


@st.composite
def groups(draw):
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=3))
    ops = [draw(st.sampled_from(["/", ":"])) for _ in names[1:]]
    sp = draw(SPACE)
    text = names[0] + "".join(f"{sp}{op}{sp}{n}" for op, n in zip(ops, names[1:]))
    return text, ops.count("/") + 1


@st.composite
def bars(draw):
    expr = draw(st.sampled_from(sorted(EXPRS)))
    bar = draw(st.sampled_from(["|", "||", "diag"]))
    group, n_groups = draw(groups())
    sp = draw(SPACE)
    n_exprs = EXPRS[expr][bar == "||"]
    kind = (bar != "diag", bar == "||")              # (correlated, split) of the bars it gives
    if bar == "diag":
        return f"diag({sp}{expr}{sp}|{sp}{group}{sp})", n_exprs * n_groups, kind
    return f"({sp}{expr}{sp}{bar}{sp}{group}{sp})", n_exprs * n_groups, kind


@st.composite
def formulas(draw):
    response = draw(st.sampled_from(RESPONSES))
    fixed = draw(st.lists(st.sampled_from(FIXED), max_size=3))
    offsets = draw(st.lists(st.sampled_from(OFFSETS), max_size=2))
    bs = draw(st.lists(bars(), max_size=3))
    terms = draw(st.permutations(fixed + offsets + [b[0] for b in bs]))
    if not terms:
        terms = ["1"]
    plus = draw(st.sampled_from([" + ", "+", "  +\n  "]))
    tilde = draw(st.sampled_from([" ~ ", "~", " ~\n "]))
    expected = {
        "n_bars": sum(b[1] for b in bs),
        "n_offsets": len(offsets),
        "n_fixed": len(fixed),
        "kinds": {b[2] for b in bs},
    }
    return response + tilde + plus.join(terms), expected


@SETTINGS
@given(formulas())
def test_valid_formulas_parse_and_round_trip(case):
    formula, expected = case
    p = parse_formula(formula)
    assert len(p.bars) == expected["n_bars"]
    assert len(p.offsets) == expected["n_offsets"]
    assert "|" not in p.fixed_rhs.replace("I(a | b)", "")
    assert "offset(" not in p.fixed_rhs
    if expected["n_fixed"] == 0:
        assert p.fixed_rhs == "1"
    for b in p.bars:
        assert b.expr == b.expr.strip() and " " not in b.group and "/" not in b.group
        assert "  " not in b.expr and "\n" not in b.expr
        assert (b.correlated, b.split) in expected["kinds"]
    assert p.response in RESPONSES
    assert "np" not in p.variables and "log" not in p.variables
    q = parse_formula(format_formula(p))
    assert dataclasses.replace(q, formula=p.formula) == p
    # formatting is idempotent
    assert format_formula(q) == format_formula(p)


@SETTINGS
@given(st.sampled_from(["y ~ x", "y ~ 0 + x*z", "log(y) ~ 1"]), bars().filter(lambda b: b[2][0]),
       st.booleans())
def test_random_argument_equals_bars_in_formula(fixed, bar, tilde):
    text, n_bars, _ = bar
    inner = text.strip()[1:-1]
    with_random = parse_formula(fixed, random=("~ " if tilde else "") + inner)
    in_formula = parse_formula(f"{fixed} + {text}")
    assert len(with_random.bars) == n_bars
    assert with_random.bars == in_formula.bars
    assert with_random.variables == in_formula.variables


def _only_formula_errors(formula, random=None):
    try:
        p = parse_formula(formula, random=random)
    except FormulaError as err:
        assert str(err)
        return
    # whatever parses must format and re-parse to the same structure
    q = parse_formula(format_formula(p))
    assert dataclasses.replace(q, formula=p.formula) == p


FORMULA_CHARS = "xyzg01 ~~||||()()+-*/:.,'\"`[]{}_\nIQ"


@SETTINGS
@given(st.text())
def test_junk_text_only_raises_formula_error(text):
    _only_formula_errors(text)


@SETTINGS
@given(st.text(alphabet=FORMULA_CHARS, max_size=40))
def test_formula_like_junk_only_raises_formula_error(text):
    _only_formula_errors(text)


@SETTINGS
@given(st.text(alphabet=FORMULA_CHARS, max_size=25))
def test_junk_random_only_raises_formula_error(text):
    _only_formula_errors("y ~ x", random=text)


PIECES = ["x", "y", "g", "1", "0", "(", ")", "|", "||", "+", "-", "*", "~", " ", "/", ":",
          ",", "offset(", "I(", "Q('a b')", "np.", "log(", "(1 | g)", "[", "]", "."]


@SETTINGS
@given(st.lists(st.sampled_from(PIECES), max_size=20).map("".join))
def test_token_junk_only_raises_formula_error(text):
    _only_formula_errors(text)
    _only_formula_errors("y ~ " + text)
    _only_formula_errors("y ~ x", random=text)
