"""Formula strings to structure (no data): lme4 bars, glmmTMB ``diag()``, nlme ``random=``."""

from bayesmixed.formula.parse import find_bars, format_formula, parse_formula, strip_bars
from bayesmixed.formula.terms import Bar, ParsedFormula

__all__ = ["Bar", "ParsedFormula", "find_bars", "format_formula", "parse_formula", "strip_bars"]
