"""Formula strings to structure (no data): lme4 bars, nlme ``random=``."""

from bayesmixed.formula.terms import Bar, ParsedFormula
from bayesmixed.formula.parse import parse_formula

__all__ = ["Bar", "ParsedFormula", "parse_formula"]
