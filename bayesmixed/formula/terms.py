"""Plain-data results of parsing a formula: no data, no matrices."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Bar:
    """One random-effects term ``(expr | group)`` after ``||`` and ``/`` are expanded.

    ``expr`` is a formulaic right-hand side such as ``"1 + Days"`` or ``"0 + Days"``;
    ``group`` is a column name or an interaction of column names (``"g1:g2"``).

    ``correlated`` is False for glmmTMB's ``diag(expr | group)``: one independent
    variance per column of ``expr``. ``split`` marks the terms lme4's ``||`` expands
    into (``(1 + x || g)`` is ``(1 | g) + (0 + x | g)``); each such term keeps its own
    columns correlated, as in lme4 (a factor's columns stay correlated).

    Examples
    --------
    >>> str(Bar("0 + x", "g", split=True)), str(Bar("1 + f", "g", correlated=False))
    ('(0 + x || g)', 'diag(1 + f | g)')
    """

    expr: str
    group: str
    correlated: bool = True
    split: bool = False

    def __str__(self) -> str:
        if not self.correlated:
            return f"diag({self.expr} | {self.group})"
        bar = "||" if self.split else "|"
        return f"({self.expr} {bar} {self.group})"

    @property
    def group_columns(self) -> tuple[str, ...]:
        """Data columns whose interaction defines the grouping factor."""
        return tuple(g.strip() for g in self.group.split(":"))


@dataclass(frozen=True)
class ParsedFormula:
    """A mixed-model formula split into response, fixed part, random bars and offsets.

    ``fixed_rhs`` is a formulaic right-hand side without bars and without
    ``offset()`` terms (``"1"`` when only an intercept remains, ``"0"`` when the
    user removed it and nothing else is left). ``variables`` holds every bare column
    name the formula uses; ``response_variables`` those of the response and
    ``fixed_variables`` those of the fixed part (offsets and bars excluded).

    Examples
    --------
    >>> from bayesmixed.formula import parse_formula
    >>> p = parse_formula("log(y) ~ x + offset(t) + (z | g)")
    >>> sorted(p.response_variables), sorted(p.fixed_variables), sorted(p.variables)
    (['y'], ['x'], ['g', 't', 'x', 'y', 'z'])
    """

    formula: str
    response: str | None
    fixed_rhs: str
    bars: tuple[Bar, ...]
    offsets: tuple[str, ...] = ()
    variables: frozenset[str] = field(default_factory=frozenset)
    response_variables: frozenset[str] = field(default_factory=frozenset)
    fixed_variables: frozenset[str] = field(default_factory=frozenset)

    @property
    def fixed(self) -> str:
        return f"{self.response} ~ {self.fixed_rhs}" if self.response else self.fixed_rhs

    @property
    def group_variables(self) -> frozenset[str]:
        """Columns of the grouping factors of the random-effect terms."""
        return frozenset(c for b in self.bars for c in b.group_columns)
