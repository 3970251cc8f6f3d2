"""Plain-data results of parsing a formula: no data, no matrices."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Bar:
    """One random-effects term ``(expr | group)`` after ``||`` and ``/`` are expanded.

    ``expr`` is a formulaic right-hand side such as ``"1 + Days"`` or ``"0 + Days"``;
    ``group`` is a column name or an interaction of column names (``"g1:g2"``).
    """

    expr: str
    group: str
    correlated: bool = True

    def __str__(self) -> str:
        bar = "|" if self.correlated else "||"
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
    user removed it and nothing else is left).
    """

    formula: str
    response: str | None
    fixed_rhs: str
    bars: tuple[Bar, ...]
    offsets: tuple[str, ...] = ()
    variables: frozenset[str] = field(default_factory=frozenset)

    @property
    def fixed(self) -> str:
        return f"{self.response} ~ {self.fixed_rhs}" if self.response else self.fixed_rhs
