"""The typed rule set: what the checker hands to the evaluators.

Sugar is gone: `between`, `within` and `before/after` are lowered to comparisons against dates
relative to the as-of date, segments are resolved, bare enumeration values are constants. Each
evaluator therefore implements a handful of node kinds, and they cannot drift apart in meaning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Union

from .ast import NO_SPAN, Span
from .config import Config
from .timeutil import Duration
from .types import BOOL, DATE, Type


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    type: Type
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Const:
    value: Any  # float | str | bool | date | enum value (str)
    type: Type
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class RelativeDate:
    """The as-of date moved by `duration` (sign -1: back, +1: forward; 0 days: the as-of date)."""

    duration: Duration
    sign: int
    span: Span = field(default=NO_SPAN, compare=False, repr=False)
    type: Type = DATE


@dataclass(frozen=True, slots=True)
class NextAnniversary:
    """The next occurrence of an anniversary field's month and day, on or after the as-of date."""

    field: Field
    span: Span = field(default=NO_SPAN, compare=False, repr=False)
    type: Type = DATE


@dataclass(frozen=True, slots=True)
class Arith:
    op: str
    left: Expr
    right: Expr
    type: Type
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Neg:
    operand: Expr
    type: Type
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Compare:
    """False when either side is missing; enumerations compare by rank."""

    op: str
    left: Expr
    right: Expr
    span: Span = field(default=NO_SPAN, compare=False, repr=False)
    type: Type = BOOL


@dataclass(frozen=True, slots=True)
class InSet:
    value: Expr
    items: tuple[Expr, ...]
    negated: bool = False  # still false when the value is missing
    span: Span = field(default=NO_SPAN, compare=False, repr=False)
    type: Type = BOOL


@dataclass(frozen=True, slots=True)
class IsMissing:
    value: Expr
    negated: bool = False
    span: Span = field(default=NO_SPAN, compare=False, repr=False)
    type: Type = BOOL


@dataclass(frozen=True, slots=True)
class TextMatch:
    op: str  # contains | starts_with
    value: Expr
    pattern: Expr
    span: Span = field(default=NO_SPAN, compare=False, repr=False)
    type: Type = BOOL


@dataclass(frozen=True, slots=True)
class Truth:
    """A bool field used as a condition: true only when present and true."""

    value: Expr
    span: Span = field(default=NO_SPAN, compare=False, repr=False)
    type: Type = BOOL


@dataclass(frozen=True, slots=True)
class And:
    operands: tuple[Expr, ...]
    span: Span = field(default=NO_SPAN, compare=False, repr=False)
    type: Type = BOOL


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple[Expr, ...]
    span: Span = field(default=NO_SPAN, compare=False, repr=False)
    type: Type = BOOL


@dataclass(frozen=True, slots=True)
class Not:
    operand: Expr
    span: Span = field(default=NO_SPAN, compare=False, repr=False)
    type: Type = BOOL


@dataclass(frozen=True, slots=True)
class SegmentRef:
    name: str
    condition: Expr
    span: Span = field(default=NO_SPAN, compare=False, repr=False)
    type: Type = BOOL


Expr = Union[  # noqa: UP007 - a runtime alias
    Field,
    Const,
    RelativeDate,
    NextAnniversary,
    Arith,
    Neg,
    Compare,
    InSet,
    IsMissing,
    TextMatch,
    Truth,
    And,
    Or,
    Not,
    SegmentRef,
]


@dataclass(frozen=True, slots=True)
class Action:
    kind: str  # send | call | tag
    template: str
    channel: str | None  # None for tags: they reach nobody
    params: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    description: str | None
    condition: Expr
    action: Action
    priority: int
    order: int  # position across all files: breaks priority ties
    cap: tuple[int, Duration] | None = None
    holdout: Decimal = Decimal(0)
    once_per_household: bool = False
    max_per_run: int | None = None
    path: str = ""
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Checked rules with the configuration they were checked against. The two travel together
    so that nothing can plan rules under another project's channels, consent fields or caps."""

    rules: tuple[Rule, ...]
    config: Config
