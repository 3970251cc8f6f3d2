"""Formula syntax errors reach the user through ``bm.Model`` with a caret under the token."""

from __future__ import annotations

import pytest

import bayesmixed as bm

SS = bm.load_dataset("sleepstudy")


def _caret_column(msg: str) -> tuple[str, int]:
    """The formula line shown in the message and the column of the caret under it."""
    lines = msg.splitlines()
    caret = next(i for i, line in enumerate(lines) if line.strip() == "^")
    return lines[caret - 1][4:], lines[caret].index("^") - 4


@pytest.mark.parametrize("formula, words, token", [
    ("Reaction ~ Days + (1 | )", "no grouping factor after '|'", ")"),
    ("Reaction ~ Days + (1 | Subject", "unbalanced parentheses", "("),
    ("Reaction ~ Days + (1 | Subject))", "unbalanced", ")"),
    ("Reaction ~ Days + Days | Subject", "'|' outside parentheses", "|"),
    ("Reaction ~ Days + ( | Subject)", "nothing before '|'", "|"),
    ("Reaction ~ Days + foo(Days) + (1 | Subject)", "unknown function 'foo'", "foo"),
    ("Reaction ~ np.lgo(Days) + (1 | Subject)", "unknown function 'lgo'", "lgo"),
    ("Reaction ~ lg(Days) + (1 | Subject)", "unknown function 'lg' (did you mean 'log'", "lg"),
    ("Reaction ~ Days + (sqr(Days) | Subject)", "unknown function 'sqr' (did you mean 'sqrt'", "sqr"),
    ("Reaction ~ Days + (1 | `my group`)", "a grouping factor cannot be quoted: rename the column", "`"),
    ('Reaction ~ Days + (1 | Q("my group"))', "a grouping factor cannot be quoted", "Q("),
])
def test_model_shows_formula_with_caret(formula, words, token):
    with pytest.raises(bm.FormulaError) as exc:
        bm.Model(formula, SS)
    msg = str(exc.value)
    assert words in msg
    shown, col = _caret_column(msg)
    assert shown == formula
    assert formula[col:].startswith(token)


def test_unknown_function_error_says_what_to_do():
    with pytest.raises(bm.FormulaError) as exc:
        bm.Model("Reaction ~ foo(Days) + (1 | Subject)", SS)
    assert "compute anything else as a new column first" in str(exc.value)


def test_formula_error_is_a_bayesmixed_error_and_value_error():
    with pytest.raises(bm.BayesMixedError):
        bm.Model("Reaction ~ Days + (1 | )", SS)
    with pytest.raises(ValueError):
        bm.Model("Reaction ~ Days + (1 | )", SS)


def test_random_argument_errors_surface_too():
    with pytest.raises(bm.FormulaError) as exc:
        bm.Model("Reaction ~ Days", SS, random="~ 1 | ")
    assert "^" in str(exc.value)


def test_empty_formula():
    with pytest.raises(bm.FormulaError) as exc:
        bm.Model("", SS)
    assert "empty formula" in str(exc.value)


# ---- property: junk formulas against real data raise only the library's own errors ------------
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

TOKENS = ["Reaction", "Days", "Subject", "Dayz", "x", "(", ")", "|", "||", "+", "-", "*", ":", "/",
          "~", "1", "0", "log(", "foo(", "I(", 'Q("Days")', "`Days`", ",", "^", "**", "np.", "scale(",
          "offset(", "cbind(", "C(", " ", "2", "[", "]", "'", '"', ".", "=", "poly(", "(1 | Subject)",
          "(Days || Subject)", "Subject:Days", "1e3", "None", "lambda", "\n"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=12),
       st.sampled_from(["gaussian", "poisson", "binomial"]),
       st.sampled_from(["{}", "Reaction ~ {}", "Reaction ~ Days + {} + (1 | Subject)",
                        "Reaction ~ Days + ({} | Subject)"]))
def test_junk_formulas_raise_only_library_errors(tokens, family, frame):
    import warnings

    formula = frame.format("".join(tokens))   # junk alone, or inside a valid formula
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            bm.Model(formula, SS, family=family)
        except bm.BayesMixedError as exc:
            assert str(exc).strip(), formula           # never an empty message
