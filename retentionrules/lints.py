"""Warnings about rules that are valid but cannot be what the author meant.

Both lints reason over the same small algebra: a conjunction of `field OP constant` tests becomes
`Facts`, one `Constraint` per field and kind of constant. A conjunction with an empty constraint
can never hold (RR301); a rule whose facts imply an earlier winner's is shadowed by it (RR302).
The reasoning is syntactic and conservative: it never warns about something it cannot prove.

Constants are typed keys: a number, a text, a date, a rank, a truth value, or a number of days
from the as-of date. Only keys of one kind are ever compared, because a field's constraints are
kept per kind: `x within 30 days` (days from the as-of date) and `x after 2026-03-01` (a date)
are two constraints on `x` that the algebra never orders against each other (it cannot: their
order depends on the as-of date). Each is still enough to prove a contradiction on its own.

Segments are read once each (their facts are remembered), never once per use.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Union

from . import ir
from . import types as t
from .ast import CompareOp
from .config import Config
from .diagnostics import Code, Diagnostic

if sys.version_info >= (3, 11):
    from typing import assert_never
else:  # pragma: no cover - Python 3.10
    from typing_extensions import assert_never

# `a OP b` is `b FLIP[OP] a`.
_FLIP: dict[CompareOp, CompareOp] = {
    "<": ">",
    "<=": ">=",
    ">": "<",
    ">=": "<=",
    "=": "=",
    "!=": "!=",
}

# What a constant is, for the algebra. Values of one kind are totally ordered among themselves.
KeyKind = Literal["number", "text", "date", "days from as-of", "rank", "bool"]
Key = Union[float, str, dt.date, int, bool]  # noqa: UP007 - a runtime alias


@dataclass(frozen=True)
class Constraint:
    """The values one field may take, all keys of one kind: an interval, an optional finite set,
    excluded points. A constraint also says that the field is present (a test of a missing value
    is false)."""

    allowed: frozenset[Key] | None = None
    low: Key | None = None
    low_inclusive: bool = True
    high: Key | None = None
    high_inclusive: bool = True
    excluded: frozenset[Key] = frozenset()

    def admits(self, value: Key) -> bool:
        if value in self.excluded or (self.allowed is not None and value not in self.allowed):
            return False
        if self.low is not None and (
            value < self.low or (value == self.low and not self.low_inclusive)  # type: ignore[operator]
        ):
            return False
        return not (
            self.high is not None
            and (value > self.high or (value == self.high and not self.high_inclusive))  # type: ignore[operator]
        )

    def is_empty(self) -> bool:
        if self.allowed is not None:
            return not any(self.admits(v) for v in self.allowed)
        if self.low is None or self.high is None:
            return False
        if self.low == self.high:
            return not (self.low_inclusive and self.high_inclusive) or self.low in self.excluded
        return self.low > self.high  # type: ignore[operator]

    def within(self, other: Constraint) -> bool:
        """Every value this constraint admits, `other` admits too."""
        if self.is_empty():
            return True
        if self.allowed is not None:
            return all(other.admits(v) for v in self.allowed if self.admits(v))
        if other.allowed is not None:
            return False
        return (
            _bound_inside(self.low, self.low_inclusive, other.low, other.low_inclusive, 1)
            and _bound_inside(self.high, self.high_inclusive, other.high, other.high_inclusive, -1)
            and all(not self.admits(v) for v in other.excluded)
        )

    @staticmethod
    def all(parts: list[Constraint]) -> Constraint:
        """The values every part admits, in one pass (thousands of `x != n` stay cheap)."""
        allowed: frozenset[Key] | None = None
        low: Key | None = None
        high: Key | None = None
        low_inc = high_inc = True
        excluded: set[Key] = set()
        for part in parts:
            if part.allowed is not None:
                allowed = part.allowed if allowed is None else allowed & part.allowed
            low, low_inc = _tighter(low, low_inc, part.low, part.low_inclusive, 1)
            high, high_inc = _tighter(high, high_inc, part.high, part.high_inclusive, -1)
            excluded.update(part.excluded)
        return Constraint(allowed, low, low_inc, high, high_inc, frozenset(excluded))


def _tighter(
    a: Key | None, a_inc: bool, b: Key | None, b_inc: bool, direction: int
) -> tuple[Key | None, bool]:
    """The tighter of two bounds: the higher of two lows (direction 1), the lower of two highs."""
    if a is None:
        return b, b_inc
    if b is None:
        return a, a_inc
    if a == b:
        return a, a_inc and b_inc
    a_tighter = a > b if direction == 1 else a < b  # type: ignore[operator]
    return (a, a_inc) if a_tighter else (b, b_inc)


def _bound_inside(
    mine: Key | None, mine_inc: bool, theirs: Key | None, theirs_inc: bool, direction: int
) -> bool:
    if theirs is None:
        return True
    if mine is None:
        return False
    if mine == theirs:
        return theirs_inc or not mine_inc
    return (mine > theirs) if direction == 1 else (mine < theirs)  # type: ignore[operator]


@dataclass(frozen=True)
class Facts:
    """What a conjunction of tests says about a customer."""

    # (field, kind of key) -> the values the field may take: it is present
    values: Mapping[tuple[str, KeyKind], Constraint] = field(default_factory=dict)
    # field -> True: it must be missing; False: it must be present
    presence: Mapping[str, bool] = field(default_factory=dict)
    # the tests the algebra cannot read, each once (an ordered set)
    opaque: Mapping[ir.Expr, None] = field(default_factory=dict)
    contradictory: bool = False  # a field that must be both missing and present

    @staticmethod
    def all(parts: Iterable[Facts]) -> Facts:
        """The facts of a conjunction: every part holds. One pass over the parts, so a rule of
        thousands of tests costs thousands of steps, not millions."""
        values: dict[tuple[str, KeyKind], list[Constraint]] = {}
        presence: dict[str, bool] = {}
        opaque: dict[ir.Expr, None] = {}
        contradictory = False
        for part in parts:
            for key, constraint in part.values.items():
                values.setdefault(key, []).append(constraint)
            for name, missing in part.presence.items():
                contradictory |= presence.setdefault(name, missing) != missing
            opaque.update(part.opaque)
            contradictory |= part.contradictory
        merged = {key: Constraint.all(group) for key, group in values.items()}
        return Facts(merged, presence, opaque, contradictory)

    def never_holds(self) -> bool:
        """Proven: no customer satisfies every test."""
        return (
            self.contradictory
            or any(c.is_empty() for c in self.values.values())
            or any(self.presence.get(name) is True for name, _ in self.values)
        )

    def implies(self, weak: Facts) -> bool:
        """Proven: every customer these facts hold for satisfies `weak` too."""
        if self.never_holds():
            return True
        if any(test not in self.opaque for test in weak.opaque):
            return False
        for key, constraint in weak.values.items():
            mine = self.values.get(key)
            if mine is None or not mine.within(constraint):
                return False
        present = {name for name, _ in self.values} | {
            name for name, missing in self.presence.items() if not missing
        }
        return all(
            self.presence.get(name) is True if missing else name in present
            for name, missing in weak.presence.items()
        )


# ---------------------------------------------------------------- from IR to facts


def _key(expr: ir.Expr) -> tuple[KeyKind, Key] | None:
    """A constant as a typed key, or None when the algebra cannot reason about it."""
    match expr:
        case ir.Const():
            return _const_key(expr)
        case ir.RelativeDate():
            if expr.duration.unit in ("day", "week"):
                days = expr.duration.amount * (7 if expr.duration.unit == "week" else 1)
                return "days from as-of", expr.sign * days
            return None  # months and years: their length in days depends on the as-of date
        case (
            ir.Field() | ir.NextAnniversary() | ir.Bought() | ir.UnitsBought() | ir.Arith()
            | ir.Neg() | ir.Compare() | ir.InSet() | ir.IsMissing() | ir.TextMatch() | ir.Truth()
            | ir.And() | ir.Or() | ir.Not() | ir.SegmentRef()
        ):
            return None  # not a constant: its value is known only per customer
        case _:
            assert_never(expr)


def _const_key(const: ir.Const) -> tuple[KeyKind, Key] | None:
    kind = const.type.kind
    match kind:
        case t.Kind.ENUM:
            return "rank", const.type.rank(const.value)
        case t.Kind.NUMBER:
            return "number", float(const.value)
        case t.Kind.STRING:
            return "text", str(const.value)
        case t.Kind.BOOL:
            return "bool", bool(const.value)
        case t.Kind.DATE | t.Kind.ANNIVERSARY:
            return "date", const.value
        case t.Kind.DURATION:
            return None  # durations are never compared with fields
        case _:
            assert_never(kind)


def _domain(field: ir.Field) -> frozenset[Key] | None:
    if field.type.kind is t.Kind.ENUM:
        return frozenset(range(len(field.type.values)))
    if field.type.kind is t.Kind.BOOL:
        return frozenset((True, False))
    return None


def _value_facts(name: str, kind: KeyKind, constraint: Constraint) -> Facts:
    return Facts(values={(name, kind): constraint})


def _compare_facts(expr: ir.Compare) -> Facts | None:
    """`field OP constant`, either way round."""
    op, left, right = expr.op, expr.left, expr.right
    if not isinstance(left, ir.Field | ir.Bought | ir.UnitsBought):
        op, left, right = _FLIP[op], right, left
    key = _key(right)
    if not isinstance(left, ir.Field | ir.Bought | ir.UnitsBought) or key is None:
        return None
    kind, value = key
    # `bought "x"` (a date) and `units bought "x"` (a number) are values per customer like
    # fields, under their derived columns' names
    domain = _domain(left) if isinstance(left, ir.Field) else None
    name = left.name if isinstance(left, ir.Field) else left.column
    match op:
        case "=":
            constraint = Constraint(allowed=frozenset((value,)))
        case "!=":
            constraint = Constraint(allowed=domain, excluded=frozenset((value,)))
        case "<" | "<=":
            constraint = Constraint(allowed=domain, high=value, high_inclusive=op == "<=")
        case ">" | ">=":
            constraint = Constraint(allowed=domain, low=value, low_inclusive=op == ">=")
        case _:
            assert_never(op)
    return _value_facts(name, kind, constraint)


def _in_facts(expr: ir.InSet) -> Facts | None:
    if not isinstance(expr.value, ir.Field) or expr.negated:
        return None
    keys = [_key(item) for item in expr.items]
    kinds = {key[0] for key in keys if key is not None}
    if None in keys or len(kinds) > 1:
        return None
    kind: KeyKind = kinds.pop() if kinds else "number"  # `x in []`: empty, of any kind
    values = frozenset(key[1] for key in keys if key is not None)
    return _value_facts(expr.value.name, kind, Constraint(allowed=values))


def facts(expr: ir.Expr, segments: Mapping[int, Facts]) -> Facts:
    """What the condition `expr` says, given the facts of the segments it uses (`segments`,
    by segment_key; see `lint_rules`). Tests it cannot read stay opaque."""
    opaque = Facts(opaque={expr: None})
    match expr:
        case ir.And():
            return Facts.all(facts(operand, segments) for operand in expr.operands)
        case ir.SegmentRef():
            return segments[ir.segment_key(expr)]
        case ir.Compare():
            return _compare_facts(expr) or opaque
        case ir.InSet():
            return _in_facts(expr) or opaque
        case ir.IsMissing():
            if isinstance(expr.value, ir.Field):
                return Facts(presence={expr.value.name: not expr.negated})
            if isinstance(expr.value, ir.Bought | ir.UnitsBought):
                return Facts(presence={expr.value.column: not expr.negated})
            return opaque
        case ir.Truth():
            if isinstance(expr.value, ir.Field):
                return _value_facts(expr.value.name, "bool", Constraint(frozenset((True,))))
            return opaque
        case ir.Or() | ir.Not() | ir.TextMatch() | ir.Const():
            return opaque
        case (
            ir.Field() | ir.RelativeDate() | ir.NextAnniversary() | ir.Bought() | ir.UnitsBought()
            | ir.Arith() | ir.Neg()
        ):
            return opaque  # values, not conditions: the checker never makes them one
        case _:
            assert_never(expr)


def segment_facts(conditions: Iterable[ir.Expr]) -> dict[int, Facts]:
    """The facts of every segment the conditions use, each worked out once, in an order that
    finds the segments a segment uses already done."""
    known: dict[int, Facts] = {}
    for segment in ir.segments_used(conditions):
        known[ir.segment_key(segment)] = facts(segment.condition, known)
    return known


# ---------------------------------------------------------------- the lints


def _always_reaches(winner: ir.Rule, loser: ir.Rule, config: Config) -> bool:
    """Nothing but the match decides whether `winner` takes the customers `loser` would get:
    whatever stops `winner` at the consent and caps steps stops `loser` too."""
    if winner.cap is not None:
        return False
    if winner.action.channel is None or winner.action.channel == loser.action.channel:
        return True  # a tag passes every gate; one channel, one gate
    channel = config.channels.get(winner.action.channel)
    return (
        channel is not None
        and not channel.requires_consent
        and channel.cap is None
        # the quiet period holds back every channel, but never a tag
        and (loser.action.channel is not None or config.contacts.quiet_period is None)
    )


def lint_rules(rules: list[ir.Rule], config: Config) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    segments = segment_facts(rule.condition for rule in rules)
    split = {rule.name: facts(rule.condition, segments) for rule in rules}
    # Rules in the order they win (priority, then file order); a rule can only be shadowed by an
    # earlier winner that constrains nothing it leaves free: index those by their constraints.
    winners: dict[frozenset[tuple[str, KeyKind]], list[ir.Rule]] = {}
    for rule in sorted(rules, key=lambda r: (-r.priority, r.order)):
        mine = split[rule.name]
        if mine.never_holds():
            found.append(
                Diagnostic(
                    Code.RR301,
                    f"the condition of rule `{rule.name}` can never hold",
                    rule.path,
                    rule.condition.span,
                    "two of its tests contradict each other",
                )
            )
            continue
        keys = frozenset(mine.values)
        shadow = next(
            (
                other
                for constrained, candidates in winners.items()
                if constrained <= keys
                for other in candidates
                if _always_reaches(other, rule, config) and mine.implies(split[other.name])
            ),
            None,
        )
        if shadow is not None:
            found.append(
                Diagnostic(
                    Code.RR302,
                    f"rule `{rule.name}` never fires: every customer it matches is taken by "
                    f"`{shadow.name}` first",
                    rule.path,
                    rule.span,
                    f"give `{rule.name}` a higher priority than `{shadow.name}` "
                    f"or narrow `{shadow.name}`",
                )
            )
        winners.setdefault(keys, []).append(rule)
    return found
