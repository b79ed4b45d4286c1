"""The typed rule set: what the checker hands to the evaluators.

Sugar is gone: `between`, `within` and `before/after` are lowered to comparisons against dates
relative to the as-of date, segments are resolved, bare enumeration values are constants. Each
evaluator therefore implements a handful of node kinds, and they cannot drift apart in meaning.

A condition is a graph, not a tree: every reference to a segment shares the segment's one typed
definition. Whatever walks conditions must therefore visit each segment once (`segments_used`
gives the order), or thirty segments each using the previous one twice cost 2**30 visits.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Container, Iterable, Iterator
from dataclasses import dataclass
from dataclasses import field as _field
from decimal import Decimal
from typing import Any, Literal, Union

if sys.version_info >= (3, 11):
    from typing import assert_never
else:  # pragma: no cover - Python 3.10
    from typing_extensions import assert_never

from .ast import NO_SPAN, ArithOp, CompareOp, Span
from .config import Config
from .timeutil import Duration
from .types import BOOL, DATE, NUMBER, Type


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    type: Type
    span: Span = _field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Const:
    value: Any  # float | str | bool | date | enum value (str)
    type: Type
    span: Span = _field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class RelativeDate:
    """The as-of date moved by `duration` (sign -1: back, +1: forward; 0 days: the as-of date)."""

    duration: Duration
    sign: int
    span: Span = _field(default=NO_SPAN, compare=False, repr=False)
    type: Type = DATE


@dataclass(frozen=True, slots=True)
class NextAnniversary:
    """The next occurrence of an anniversary field's month and day, on or after the as-of date."""

    field: Field
    span: Span = _field(default=NO_SPAN, compare=False, repr=False)
    type: Type = DATE


@dataclass(frozen=True, slots=True)
class Bought:
    """`bought "diapers"`: the customer's last purchase date in the category, missing when none.

    Both evaluators read it from the derived table's column `column` (derive.py defines the
    fact once, for every category a checked rule set names: `categories_used`)."""

    category: str
    span: Span = _field(default=NO_SPAN, compare=False, repr=False)
    type: Type = DATE

    @property
    def column(self) -> str:
        return bought_column(self.category)


def bought_column(category: str) -> str:
    """The derived column of a category's last purchase date: `bought "diapers"`, as the rules
    write it (JSON's quoting keeps two categories apart; no declared field has a space)."""
    return "bought " + json.dumps(category, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class UnitsBought:
    """`units bought "formula"`: the quantity the customer bought in the category on their last
    purchase date in it (the sum of that day's purchase lines, a line without a quantity counting
    1), missing when none. Both evaluators read it from the derived table's column `column`
    (derive.py, for every category a checked rule set names so: `units_categories_used`)."""

    category: str
    span: Span = _field(default=NO_SPAN, compare=False, repr=False)
    type: Type = NUMBER

    @property
    def column(self) -> str:
        return units_bought_column(self.category)


def units_bought_column(category: str) -> str:
    """The derived column of the quantity of a category's last purchase: `units bought
    "formula"`, as the rules write it."""
    return "units " + bought_column(category)


@dataclass(frozen=True, slots=True)
class Arith:
    op: ArithOp
    left: Expr
    right: Expr
    type: Type
    span: Span = _field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Neg:
    operand: Expr
    type: Type
    span: Span = _field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Compare:
    """False when either side is missing; enumerations compare by rank."""

    op: CompareOp
    left: Expr
    right: Expr
    span: Span = _field(default=NO_SPAN, compare=False, repr=False)
    type: Type = BOOL


@dataclass(frozen=True, slots=True)
class InSet:
    value: Expr
    items: tuple[Expr, ...]
    negated: bool = False  # still false when the value is missing
    span: Span = _field(default=NO_SPAN, compare=False, repr=False)
    type: Type = BOOL


@dataclass(frozen=True, slots=True)
class IsMissing:
    value: Expr
    negated: bool = False
    span: Span = _field(default=NO_SPAN, compare=False, repr=False)
    type: Type = BOOL


TextOp = Literal["contains", "starts_with"]


@dataclass(frozen=True, slots=True)
class TextMatch:
    op: TextOp
    value: Expr
    pattern: Expr
    span: Span = _field(default=NO_SPAN, compare=False, repr=False)
    type: Type = BOOL


@dataclass(frozen=True, slots=True)
class Truth:
    """A bool field used as a condition: true only when present and true."""

    value: Expr
    span: Span = _field(default=NO_SPAN, compare=False, repr=False)
    type: Type = BOOL


@dataclass(frozen=True, slots=True)
class And:
    operands: tuple[Expr, ...]
    span: Span = _field(default=NO_SPAN, compare=False, repr=False)
    type: Type = BOOL


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple[Expr, ...]
    span: Span = _field(default=NO_SPAN, compare=False, repr=False)
    type: Type = BOOL


@dataclass(frozen=True, slots=True)
class Not:
    operand: Expr
    span: Span = _field(default=NO_SPAN, compare=False, repr=False)
    type: Type = BOOL


@dataclass(frozen=True, slots=True)
class SegmentRef:
    """A use of a segment. `condition` is the segment's definition, one object shared by every
    use: it is left out of equality, hashing and repr, which would otherwise walk it once per
    use (exponentially often for segments built from segments). Segment names are unique in a
    checked rule set, so the name stands for the segment there."""

    name: str
    condition: Expr = _field(compare=False, repr=False)
    span: Span = _field(default=NO_SPAN, compare=False, repr=False)
    type: Type = BOOL


Expr = Union[  # noqa: UP007 - a runtime alias
    Field,
    Const,
    RelativeDate,
    NextAnniversary,
    Bought,
    UnitsBought,
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


def subexpressions(expr: Expr) -> tuple[Expr, ...]:
    """The expressions directly inside `expr`. A segment reference has none: its definition is
    walked on its own, once (see `segments_used`)."""
    match expr:
        case Field() | Const() | RelativeDate() | Bought() | UnitsBought() | SegmentRef():
            return ()
        case NextAnniversary():
            return (expr.field,)
        case Arith() | Compare():
            return (expr.left, expr.right)
        case TextMatch():
            return (expr.value, expr.pattern)
        case InSet():
            return (expr.value, *expr.items)
        case IsMissing() | Truth():
            return (expr.value,)
        case Neg() | Not():
            return (expr.operand,)
        case And() | Or():
            return expr.operands
        case _:
            assert_never(expr)


def fields_used(exprs: Iterable[Expr]) -> set[str]:
    """The names of the fields the expressions read, through the segments they use."""
    roots = list(exprs)
    pending = [*roots, *(ref.condition for ref in segments_used(roots))]
    names: set[str] = set()
    while pending:  # a loop, not recursion (see `direct_segments`)
        node = pending.pop()
        if isinstance(node, Field):
            names.add(node.name)
        pending.extend(subexpressions(node))
    return names


def categories_used(exprs: Iterable[Expr]) -> list[str]:
    """The categories `bought` tests in the expressions, through the segments they use: each
    once, sorted (the derived table gets a column for each)."""
    return _purchase_categories(exprs, Bought)


def units_categories_used(exprs: Iterable[Expr]) -> list[str]:
    """The categories `units bought` tests in the expressions, through the segments they use:
    each once, sorted (the derived table gets a column for each)."""
    return _purchase_categories(exprs, UnitsBought)


def _purchase_categories(exprs: Iterable[Expr], kind: type[Bought | UnitsBought]) -> list[str]:
    roots = list(exprs)
    pending = [*roots, *(ref.condition for ref in segments_used(roots))]
    found: set[str] = set()
    while pending:
        node = pending.pop()
        if isinstance(node, kind):
            found.add(node.category)
        pending.extend(subexpressions(node))
    return sorted(found)


def segment_key(ref: SegmentRef) -> int:
    """What identifies a segment to the evaluators: its one definition object. Unlike the name,
    this never confuses two segments of the same name from rule sets checked apart."""
    return id(ref.condition)


def direct_segments(expr: Expr) -> list[SegmentRef]:
    """The segment references in `expr`, not looking inside the segments themselves."""
    found: list[SegmentRef] = []
    pending = [expr]
    while pending:  # a loop, not recursion: conditions may nest up to limits.MAX_NESTING deep
        node = pending.pop()
        if isinstance(node, SegmentRef):
            found.append(node)
        else:
            pending.extend(reversed(subexpressions(node)))
    return found


def segments_used(exprs: Iterable[Expr], known: Container[int] = ()) -> list[SegmentRef]:
    """Every segment the expressions use, directly or through other segments: each once, and
    each after the segments it uses, so evaluating or compiling them in this order finds every
    segment a definition refers to already done. Segments whose `segment_key` is in `known` (done
    before) are left out, and not looked into.

    A depth-first walk with an explicit stack: a chain of thousands of segments must not recurse.
    """
    order: list[SegmentRef] = []
    seen: set[int] = set()
    for root in exprs:
        stack: list[tuple[SegmentRef | None, Iterator[SegmentRef]]] = [
            (None, iter(direct_segments(root)))
        ]
        while stack:
            segment, pending = stack[-1]
            for ref in pending:
                key = segment_key(ref)
                if key not in seen and key not in known:
                    seen.add(key)
                    stack.append((ref, iter(direct_segments(ref.condition))))
                    break
            else:
                stack.pop()
                if segment is not None:
                    order.append(segment)
    return order


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
    span: Span = _field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Checked rules with the configuration they were checked against. The two travel together
    so that nothing can plan rules under another project's channels, consent fields or caps."""

    rules: tuple[Rule, ...]
    config: Config
