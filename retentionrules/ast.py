"""The syntax tree of a rule file: plain immutable data, every node with its source span.

Spans are attributes, not children: they are excluded from equality so that two parses of the
same meaning compare equal even when the layout differs (the formatter's contract).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal, Union


@dataclass(frozen=True, slots=True)
class Span:
    """A region of source text; lines and columns count from 1, offsets from 0."""

    line: int
    column: int
    end_line: int
    end_column: int
    offset: int = 0
    end_offset: int = 0


NO_SPAN = Span(0, 0, 0, 0)


@dataclass(frozen=True, slots=True)
class Node:
    span: Span = field(default=NO_SPAN, compare=False, repr=False, kw_only=True)


# ---------------------------------------------------------------- expressions


@dataclass(frozen=True, slots=True)
class Name(Node):
    """A field, a segment, or a bare enumeration value: the checker decides which."""

    id: str


@dataclass(frozen=True, slots=True)
class Number(Node):
    value: Decimal


@dataclass(frozen=True, slots=True)
class String(Node):
    value: str


@dataclass(frozen=True, slots=True)
class Bool(Node):
    value: bool


@dataclass(frozen=True, slots=True)
class Date(Node):
    value: dt.date


DurationUnit = Literal["day", "week", "month", "year"]


@dataclass(frozen=True, slots=True)
class Duration(Node):
    amount: int
    unit: DurationUnit


@dataclass(frozen=True, slots=True)
class Neg(Node):
    operand: Expr


ArithOp = Literal["+", "-", "*", "/"]


@dataclass(frozen=True, slots=True)
class Arith(Node):
    op: ArithOp
    left: Expr
    right: Expr


CompareOp = Literal["=", "!=", "<", "<=", ">", ">="]


@dataclass(frozen=True, slots=True)
class Compare(Node):
    op: CompareOp
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class And(Node):
    operands: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Or(Node):
    operands: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Not(Node):
    operand: Expr


@dataclass(frozen=True, slots=True)
class In(Node):
    value: Expr
    items: tuple[Expr, ...]
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Between(Node):
    value: Expr
    low: Expr
    high: Expr


@dataclass(frozen=True, slots=True)
class IsMissing(Node):
    value: Expr
    negated: bool = False  # `is present`


@dataclass(frozen=True, slots=True)
class Contains(Node):
    value: Expr
    needle: Expr


@dataclass(frozen=True, slots=True)
class StartsWith(Node):
    value: Expr
    prefix: Expr


@dataclass(frozen=True, slots=True)
class Within(Node):
    """`x within 30 days` (the past 30 days) or `x within next 30 days` (the coming ones)."""

    value: Expr
    window: Expr
    upcoming: bool = False


@dataclass(frozen=True, slots=True)
class BeforeAfter(Node):
    """`x before 2026-01-01`, `x after 90 days ago`."""

    value: Expr
    direction: Literal["before", "after"]
    point: Expr
    ago: bool = False


@dataclass(frozen=True, slots=True)
class Bought(Node):
    """`bought "diapers"`: the date of the customer's last purchase in the category (missing
    when there is none), so that `bought "diapers" within 60 days` reads as it says."""

    category: str


@dataclass(frozen=True, slots=True)
class UnitsBought(Node):
    """`units bought "formula"`: the quantity the customer bought in the category on their last
    purchase date in it (missing when there is none), so `units bought "formula" >= 3`."""

    category: str


Expr = Union[  # noqa: UP007 - a runtime alias used in isinstance checks
    Name,
    Number,
    String,
    Bool,
    Date,
    Duration,
    Neg,
    Arith,
    Compare,
    And,
    Or,
    Not,
    In,
    Between,
    IsMissing,
    Contains,
    StartsWith,
    Within,
    BeforeAfter,
    Bought,
    UnitsBought,
]


# ---------------------------------------------------------------- actions and clauses

ActionKind = Literal["send", "call", "tag"]


@dataclass(frozen=True, slots=True)
class Param(Node):
    name: str
    value: Expr


@dataclass(frozen=True, slots=True)
class Action(Node):
    kind: ActionKind
    template: str
    channel: str | None = None
    params: tuple[Param, ...] = ()


@dataclass(frozen=True, slots=True)
class When(Node):
    condition: Expr


@dataclass(frozen=True, slots=True)
class Then(Node):
    action: Action


@dataclass(frozen=True, slots=True)
class Priority(Node):
    value: int


@dataclass(frozen=True, slots=True)
class Cap(Node):
    count: int
    per: Duration


@dataclass(frozen=True, slots=True)
class Holdout(Node):
    percent: Decimal


@dataclass(frozen=True, slots=True)
class OncePerHousehold(Node):
    pass


@dataclass(frozen=True, slots=True)
class MaxPerRun(Node):
    count: int


Clause = Union[When, Then, Priority, Cap, Holdout, OncePerHousehold, MaxPerRun]  # noqa: UP007
CLAUSE_ORDER: tuple[type, ...] = (When, Then, Priority, Cap, Holdout, OncePerHousehold, MaxPerRun)


# ---------------------------------------------------------------- statements


@dataclass(frozen=True, slots=True)
class Segment(Node):
    name: str
    condition: Expr


@dataclass(frozen=True, slots=True)
class Rule(Node):
    """A named rule, or a one-liner (`name is None`) that the checker names for it."""

    name: str | None
    description: str | None
    clauses: tuple[Clause, ...]

    def clause(self, kind: type) -> Clause | None:
        return next((c for c in self.clauses if isinstance(c, kind)), None)


Statement = Union[Segment, Rule]  # noqa: UP007


@dataclass(frozen=True, slots=True)
class Comment(Node):
    text: str
    own_line: bool  # nothing but whitespace before it on its line


@dataclass(frozen=True, slots=True)
class RuleFile(Node):
    path: str
    statements: tuple[Statement, ...]
    comments: tuple[Comment, ...] = ()
