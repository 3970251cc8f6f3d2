"""Table-driven tests of bayesmixed.formula (lme4's findbars/nobars/expandDoubleVerts)."""

from __future__ import annotations

import dataclasses

import pytest

from bayesmixed.errors import FormulaError
from bayesmixed.formula import Bar, ParsedFormula, parse_formula
from bayesmixed.formula.bars import expand_bar, expand_double_verts, expand_products, nest_groups
from bayesmixed.formula.parse import find_bars, find_call, format_formula, strip_bars


def B(expr: str, group: str, correlated: bool = True) -> Bar:
    return Bar(expr, group, correlated)


def U(expr: str, group: str) -> Bar:
    """A term lme4's ``||`` split off: its own columns stay correlated (expandDoubleVerts)."""
    return Bar(expr, group, split=True)


def D(expr: str, group: str) -> Bar:
    """glmmTMB's ``diag(expr | group)``: one independent variance per column."""
    return Bar(expr, group, correlated=False)


# (formula, random, response, fixed_rhs, bars, offsets, variables)
CASES = [
    ("Reaction ~ Days + (Days | Subject)", None, "Reaction", "Days",
     [B("Days", "Subject")], [], {"Reaction", "Days", "Subject"}),
    ("Reaction ~ Days + (Days || Subject)", None, "Reaction", "Days",
     [U("1", "Subject"), U("0 + Days", "Subject")], [], {"Reaction", "Days", "Subject"}),
    ("y ~ x + (1 + Days + z || g)", None, "y", "x",
     [U("1", "g"), U("0 + Days", "g"), U("0 + z", "g")], [], {"y", "x", "Days", "z", "g"}),
    ("y ~ x + (0 + x || g)", None, "y", "x", [U("0 + x", "g")], [], {"y", "x", "g"}),
    ("y ~ x + (x - 1 || g)", None, "y", "x", [U("0 + x", "g")], [], {"y", "x", "g"}),
    ("y ~ (1 || g)", None, "y", "1", [U("1", "g")], [], {"y", "g"}),
    ("y ~ (1 + a*b || g)", None, "y", "1",
     [U("1", "g"), U("0 + a", "g"), U("0 + b", "g"), U("0 + a:b", "g")], [], {"y", "a", "b", "g"}),
    ("y ~ x + (1 | g1/g2)", None, "y", "x",
     [B("1", "g1"), B("1", "g1:g2")], [], {"y", "x", "g1", "g2"}),
    ("y ~ (x | a/b/c)", None, "y", "1",
     [B("x", "a"), B("x", "a:b"), B("x", "a:b:c")], [], {"y", "x", "a", "b", "c"}),
    ("y ~ (1 | a:b/c)", None, "y", "1", [B("1", "a:b"), B("1", "a:b:c")], [], {"y", "a", "b", "c"}),
    ("y ~ x + (1 | g1:g2)", None, "y", "x", [B("1", "g1:g2")], [], {"y", "x", "g1", "g2"}),
    ("y ~ x + (1 | g1 : g2)", None, "y", "x", [B("1", "g1:g2")], [], {"y", "x", "g1", "g2"}),
    ("y ~ (x || a/b)", None, "y", "1",
     [U("1", "a"), U("1", "a:b"), U("0 + x", "a"), U("0 + x", "a:b")], [], {"y", "x", "a", "b"}),
    ("y ~ x + (1 | g) + (0 + x | g)", None, "y", "x",
     [B("1", "g"), B("0 + x", "g")], [], {"y", "x", "g"}),
    ("diameter ~ 1 + (1|plate) + (1|sample)", None, "diameter", "1",
     [B("1", "plate"), B("1", "sample")], [], {"diameter", "plate", "sample"}),
    ("y ~ x + (0 + f | g)", None, "y", "x", [B("0 + f", "g")], [], {"y", "x", "f", "g"}),
    ("y ~ x + (1+Days|Subject)", None, "y", "x", [B("1 + Days", "Subject")], [],
     {"y", "x", "Days", "Subject"}),
    ("y ~ x + (  1 +   Days  |  Subject )", None, "y", "x", [B("1 + Days", "Subject")], [],
     {"y", "x", "Days", "Subject"}),
    ("y ~ x + (log(x) + I(x**2) | g)", None, "y", "x", [B("log(x) + I(x**2)", "g")], [],
     {"y", "x", "g"}),
    ("cbind(s, f) ~ x + (1|g)", None, "cbind(s, f)", "x", [B("1", "g")], [],
     {"s", "f", "x", "g"}),
    ("cbind(incidence, size - incidence) ~ period + (1 | herd)", None,
     "cbind(incidence, size - incidence)", "period", [B("1", "herd")], [],
     {"incidence", "size", "period", "herd"}),
    ("incidence/size ~ period + (1 | herd)", None, "incidence/size", "period",
     [B("1", "herd")], [], {"incidence", "size", "period", "herd"}),
    ("y ~ x + offset(log(t)) + (1|g)", None, "y", "x", [B("1", "g")], ["log(t)"],
     {"y", "x", "t", "g"}),
    ("y ~ offset(t) + (1|g)", None, "y", "1", [B("1", "g")], ["t"], {"y", "t", "g"}),
    ("y ~ 0 + x + (1|g)", None, "y", "0 + x", [B("1", "g")], [], {"y", "x", "g"}),
    ("y ~ x + 0 + (1|g)", None, "y", "x + 0", [B("1", "g")], [], {"y", "x", "g"}),
    ("y ~ -1 + x", None, "y", "-1 + x", [], [], {"y", "x"}),
    ("y ~ x - 1 + (1 | g)", None, "y", "x - 1", [B("1", "g")], [], {"y", "x", "g"}),
    ("y ~ (1|g) - 1", None, "y", "-1", [B("1", "g")], [], {"y", "g"}),
    ("y ~ (1|g)", None, "y", "1", [B("1", "g")], [], {"y", "g"}),
    ("y ~ ((1|g))", None, "y", "1", [B("1", "g")], [], {"y", "g"}),
    ("y ~ x*z + x:w + (1|g)", None, "y", "x*z + x:w", [B("1", "g")], [],
     {"y", "x", "z", "w", "g"}),
    ("y ~ x * -z", None, "y", "x * -z", [], [], {"y", "x", "z"}),
    ("y ~ I(a|b)", None, "y", "I(a|b)", [], [], {"y", "a", "b"}),
    ("y ~ I(a|b) + (I(c|d) | g)", None, "y", "I(a|b)", [B("I(c|d)", "g")], [],
     {"y", "a", "b", "c", "d", "g"}),
    ("log(y) ~ np.log(x) + scale(z) + C(f, Treatment('b'))", None, "log(y)",
     "np.log(x) + scale(z) + C(f, Treatment('b'))", [], [], {"y", "x", "z", "f"}),
    ("y ~ C(f, levels=['a', 'b']) + (1 | g)", None, "y", "C(f, levels=['a', 'b'])",
     [B("1", "g")], [], {"y", "f", "g"}),
    ('y ~ Q("my var") + x', None, "y", 'Q("my var") + x', [], [], {"y", "my var", "x"}),
    ("y ~ `my var` + (1 | g)", None, "y", "`my var`", [B("1", "g")], [], {"y", "my var", "g"}),
    ("y ~ x + (1 | Subject.id)", None, "y", "x", [B("1", "Subject.id")], [],
     {"y", "x", "Subject.id"}),
    ("y ~ x +\n    (1 | g)", None, "y", "x", [B("1", "g")], [], {"y", "x", "g"}),
    ("y ~ x + True", None, "y", "x + True", [], [], {"y", "x"}),
    ("y ~ . + (1 | g)", None, "y", ".", [B("1", "g")], [], {"y", "g"}),
    ("y ~ 1e-3 * x + (1 | g)", None, "y", "1e-3 * x", [B("1", "g")], [], {"y", "x", "g"}),
    # nlme-style random=
    ("x ~ y + z", "~1 | w/v", "x", "y + z", [B("1", "w"), B("1", "w:v")], [],
     {"x", "y", "z", "w", "v"}),
    ("y ~ x", "~x|g", "y", "x", [B("x", "g")], [], {"y", "x", "g"}),
    ("y ~ x", "~ 1 | g", "y", "x", [B("1", "g")], [], {"y", "x", "g"}),
    ("y ~ x", "1 + x | g", "y", "x", [B("1 + x", "g")], [], {"y", "x", "g"}),
    ("y ~ x", "~ x || g", "y", "x", [U("1", "g"), U("0 + x", "g")], [], {"y", "x", "g"}),
    # glmmTMB's diag()
    ("score ~ Machine + diag(Machine | Worker)", None, "score", "Machine",
     [D("Machine", "Worker")], [], {"score", "Machine", "Worker"}),
    ("score ~ Machine + (1 | Worker) + diag(0 + Machine | Worker)", None, "score", "Machine",
     [B("1", "Worker"), D("0 + Machine", "Worker")], [], {"score", "Machine", "Worker"}),
    ("y ~ x + ((diag(1 + x | a/b)))", None, "y", "x", [D("1 + x", "a"), D("1 + x", "a:b")], [],
     {"y", "x", "a", "b"}),
    ("y ~ (f || g)", None, "y", "1", [U("1", "g"), U("0 + f", "g")], [], {"y", "f", "g"}),
    ("y ~ I(diag(a | b))", None, "y", "I(diag(a | b))", [], [], {"y", "a", "b"}),
]


@pytest.mark.parametrize(
    "formula, random, response, fixed_rhs, bars, offsets, variables",
    CASES,
    ids=[f"{c[0]}|random={c[1]}" for c in CASES],
)
def test_parse(formula, random, response, fixed_rhs, bars, offsets, variables):
    p = parse_formula(formula, random=random)
    assert p == ParsedFormula(
        formula=formula,
        response=response,
        fixed_rhs=fixed_rhs,
        bars=tuple(bars),
        offsets=tuple(offsets),
        variables=frozenset(variables),
        response_variables=p.response_variables,
        fixed_variables=p.fixed_variables,
    )
    assert p.response_variables <= p.variables and p.fixed_variables <= p.variables
    # the canonical string parses back to the same structure
    q = parse_formula(format_formula(p))
    assert dataclasses.replace(q, formula=p.formula) == p


def test_format_formula_examples():
    p = parse_formula("y~x+(x||g)+offset(t)")
    assert format_formula(p) == "y ~ x + (1 || g) + (0 + x || g) + offset(t)"
    assert format_formula(parse_formula("y ~ (1|g)")) == "y ~ 1 + (1 | g)"
    assert format_formula(parse_formula("y ~ 0 + (1 + x|g)")) == "y ~ 0 + (1 + x | g)"


def test_fixed_property_and_implicit_intercept_not_added():
    p = parse_formula("Reaction ~ Days + (Days | Subject)")
    assert p.fixed == "Reaction ~ Days"
    assert p.bars[0].expr == "Days"  # formulaic adds the intercept, not the parser
    assert p.bars[0].group_columns == ("Subject",)


# (formula, response variables, fixed-part variables)
VARIABLE_PARTS = [
    ("Reaction ~ Days + (Days | Subject)", {"Reaction"}, {"Days"}),
    ("cbind(s, n - s) ~ x * z + offset(log(t)) + (w | g)", {"s", "n"}, {"x", "z"}),
    ("log(y) ~ np.log(x) + C(f, Treatment('b'))", {"y"}, {"x", "f"}),
    ('y ~ Q("my var") + (1 | g)', {"y"}, {"my var"}),
    ("y ~ 1 + (x | g)", {"y"}, set()),
]


@pytest.mark.parametrize("formula, response_vars, fixed_vars", VARIABLE_PARTS)
def test_response_and_fixed_variables_are_structure(formula, response_vars, fixed_vars):
    p = parse_formula(formula)
    assert p.response_variables == frozenset(response_vars)
    assert p.fixed_variables == frozenset(fixed_vars)


def test_double_bar_is_lme4s_expansion_and_diag_is_diagonal():
    p = parse_formula("score ~ Machine + (Machine || Worker)")
    assert p.bars == (U("1", "Worker"), U("0 + Machine", "Worker"))
    assert all(b.correlated for b in p.bars)          # each split term keeps a full covariance
    d = parse_formula("score ~ Machine + diag(Machine | Worker)")
    assert d.bars == (D("Machine", "Worker"),) and str(d.bars[0]) == "diag(Machine | Worker)"
    assert format_formula(d) == "score ~ Machine + diag(Machine | Worker)"
    assert [str(b) for b in expand_bar(["1"], ["g"], correlated=False)] == ["diag(1 | g)"]


def test_diag_with_double_bar_is_refused():
    with pytest.raises(FormulaError, match=r"diag\(\) takes one '\|'") as exc:
        parse_formula("y ~ diag(x || g)")
    assert _caret(str(exc.value)) == ("y ~ diag(x || g)", 11)


def test_find_call():
    assert find_call("y ~ lg(x) + np.lgg(z)", "lgg") == 15
    assert find_call("y ~ lg + x", "lg") is None
    assert find_call("y ~ (x", "x") is None


def test_bars_helpers():
    assert nest_groups(["a", "b", "c"]) == ("a", "a:b", "a:b:c")
    assert expand_products(["a", "b", "c"]) == ["a", "b", "c", "a:b", "a:c", "b:c", "a:b:c"]
    assert expand_double_verts(False, ["x"]) == ["0 + x"]
    assert find_bars("y ~ x + (1 | a/b)") == (B("1", "a"), B("1", "a:b"))
    assert strip_bars("y ~ x + (1 | g) + offset(log(t))") == "y ~ x + offset(log(t))"
    assert strip_bars("y ~ (1 | g)") == "y ~ 1"


def _caret(message: str) -> tuple[str, int]:
    """(shown source line, caret column) of a FormulaError message."""
    lines = message.split("\n")
    assert lines[-1].strip() == "^", message
    return lines[-2][4:], lines[-1].index("^") - 4


# (formula, random, words in the message, caret column or None when no caret)
ERRORS = [
    ("y ~ x + (1 | g", None, ["unbalanced parentheses", "never closed"], 8),
    ("y ~ log(x + (1 | g)", None, ["unbalanced parentheses", "never closed"], 7),
    ("y ~ x) + (1|g)", None, ["unbalanced parentheses", "no matching"], 5),
    ("y ~ f(x] + (1|g)", None, ["unbalanced parentheses", "closed by"], 7),
    ("y ~ x + (1 | )", None, ["no grouping factor", "(1 | group)"], 13),
    ("y ~ x + ( | g)", None, ["nothing before '|'", "(1 | group)"], 10),
    ("Reaction ~ Days + Days | Subject", None,
     ["'|' outside parentheses", "write random effects as '(expr | group)'"], 23),
    ("Reaction ~ Days || Subject", None, ["'||' outside parentheses"], 16),
    ("~ x", None, ["missing response"], 0),
    ("   ~ x + (1|g)", None, ["missing response"], 3),
    ("y ~", None, ["nothing after '~'", "response ~ 1"], 3),
    ("y ~   ", None, ["nothing after '~'"], 3),
    ("y ~ x ~ z", None, ["more than one '~'"], 6),
    ("y x + (1|g)", None, ["no '~'", "response ~ terms"], 0),
    ("", None, ["empty formula", "response ~ terms"], None),
    ("   ", None, ["empty formula"], None),
    ("y ~ (1 | g1 + g2)", None,
     ["factor or an interaction", "'(1 | g1) + (1 | g2)'"], 12),
    ("y ~ (1 | g1*g2)", None, ["column name or an interaction"], 11),
    ("y ~ (1 | factor(g))", None, ["column name or an interaction"], 15),
    ("y ~ (1 | g:)", None, ["nothing after ':'"], 10),
    ("y ~ (1 | (x | g))", None, ["inside another random-effect term"], 9),
    ("y ~ ((1 | g) | h)", None, ["inside another random-effect term"], 5),
    ("y ~ (1 | g | h)", None, ["only one '|'"], 11),
    ("y ~ x + ", None, ["nothing after '+'"], 6),
    ("y ~ x * + (1|g)", None, ["its own term"], 10),
    ("y ~ (1|g) + x *", None, ["nothing after '*'"], 14),
    ("y ~ (x + | g)", None, ["nothing after '+'"], 7),
    ("y ~ x:(1|g)", None, ["its own term"], 6),
    ("y ~ (x + (1|g))", None, ["its own term"], 9),
    ("y ~ x - (1|g)", None, ["cannot subtract a random-effect term"], 6),
    ("y ~ x - offset(t)", None, ["cannot subtract an offset"], 6),
    ("y ~ x + offset()", None, ["offset() is empty"], 14),
    ("y ~ x + (0 | g)", None, ["no random effects", "(1 | group)"], 9),
    ("y ~ x + (x - z || g)", None, ["cannot remove terms inside '||'"], 11),
    ("(1|g) ~ x", None, ["in the response"], 0),
    ("y ~ x + 'abc", None, ["unterminated string"], 8),
    ("y ~ x + `abc", None, ["unterminated backtick"], 8),
    ("y ~ x + (1|g)", "~1|h", ["given twice", "not both"], 8),
    ("y ~ x", "~ 1", ["random= needs '|'"], 3),
    ("y ~ x", "~ 1 | ", ["no grouping factor"], 5),
    ("y ~ x", "~ (1 | g)", ["without parentheses"], 2),
    ("y ~ x", "~ 1 | g ~ h", ["one leading '~'"], 8),
    ("y ~ x", "", ["random= is empty"], None),
    ("y ~ x\n  + (1 | )", None, ["no grouping factor"], 9),
]


@pytest.mark.parametrize("formula, random, words, col", ERRORS, ids=[e[0] for e in ERRORS])
def test_errors(formula, random, words, col):
    with pytest.raises(FormulaError) as info:
        parse_formula(formula, random=random)
    message = str(info.value)
    for w in words:
        assert w in message, message
    if col is not None:
        line, c = _caret(message)
        src = random if random is not None and "given twice" not in message else formula
        assert line in src.split("\n")
        assert c == col, message


def test_multiline_caret_shows_the_offending_line():
    with pytest.raises(FormulaError) as info:
        parse_formula("y ~ x\n  + (1 | )")
    line, col = _caret(str(info.value))
    assert line == "  + (1 | )" and col == 9


@pytest.mark.parametrize("bad", [None, 3, ["y ~ x"], b"y ~ x"])
def test_non_string_formula_is_formula_error(bad):
    with pytest.raises(FormulaError, match="must be a string"):
        parse_formula(bad)


def test_non_string_random_is_formula_error():
    with pytest.raises(FormulaError, match="random= must be a string"):
        parse_formula("y ~ x", random={"g": "~1"})


def test_formula_error_is_value_error():
    with pytest.raises(ValueError):
        parse_formula("y ~ (1 | )")


def test_formula_and_design_layers_import_one_way():
    """formula's modules import no later layer and no module back (tokens <- bars <- parse);
    design's modules import no package module inside functions (issue 9)."""
    import ast
    import pathlib

    import bayesmixed

    root = pathlib.Path(bayesmixed.__file__).parent
    order = {"tokens": 0, "terms": 0, "bars": 1, "parse": 2, "__init__": 3}
    for path in sorted((root / "formula").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bayesmixed"):
                parts = node.module.split(".")
                assert parts[1] in ("errors", "formula"), (path.name, node.module)
                if len(parts) > 2:
                    assert order[parts[2]] < order[path.stem], (path.name, node.module)
    for path in [*sorted((root / "formula").glob("*.py")), *sorted((root / "design").glob("*.py"))]:
        for fn in ast.walk(ast.parse(path.read_text())):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(fn):
                    if isinstance(node, (ast.Import, ast.ImportFrom)):
                        mods = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                        assert not any((m or "").startswith("bayesmixed") for m in mods), (path.name, fn.name)
