"""Warnings about rules that are valid but cannot be what the author meant.

Both lints reason over the same small algebra: a conjunction of `field OP constant` tests becomes
one `Constraint` per field. A conjunction whose constraint is empty can never hold (RR301); a rule
whose constraints all lie inside an earlier winner's is shadowed by it (RR302). The reasoning is
syntactic and conservative: it never warns about something it cannot prove.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from . import ir
from . import types as t
from .config import Config
from .diagnostics import Diagnostic

_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "=": "=", "!=": "!="}


@dataclass(frozen=True)
class Constraint:
    """The values one field may take: an interval, an optional finite set, excluded points."""

    allowed: frozenset | None = None
    low: object = None
    low_inclusive: bool = True
    high: object = None
    high_inclusive: bool = True
    excluded: frozenset = frozenset()
    missing: bool | None = None  # True: must be missing; False: must be present

    def admits(self, value: object) -> bool:
        if value in self.excluded or (self.allowed is not None and value not in self.allowed):
            return False
        if self.low is not None and (
            value < self.low or (value == self.low and not self.low_inclusive)
        ):
            return False
        return not (
            self.high is not None
            and (value > self.high or (value == self.high and not self.high_inclusive))
        )

    def is_empty(self) -> bool:
        if self.missing is True:
            return False
        if self.allowed is not None:
            return not any(self.admits(v) for v in self.allowed)
        if self.low is None or self.high is None:
            return False
        if self.low == self.high:
            return not (self.low_inclusive and self.high_inclusive) or self.low in self.excluded
        return self.low > self.high

    def within(self, other: Constraint) -> bool:
        """Every value this constraint admits, `other` admits too."""
        if self.is_empty():
            return True
        if other.missing is not None and self.missing != other.missing:
            return False
        if self.missing is True:
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

    def intersect(self, other: Constraint) -> Constraint:
        if self.missing is not None and other.missing is not None and self.missing != other.missing:
            return Constraint(allowed=frozenset())
        allowed = (
            self.allowed
            if other.allowed is None
            else (other.allowed if self.allowed is None else self.allowed & other.allowed)
        )
        low, low_inc = _tighter(self.low, self.low_inclusive, other.low, other.low_inclusive, max)
        high, high_inc = _tighter(
            self.high, self.high_inclusive, other.high, other.high_inclusive, min
        )
        missing = self.missing if self.missing is not None else other.missing
        merged = Constraint(
            allowed, low, low_inc, high, high_inc, self.excluded | other.excluded, missing
        )
        if missing is True and merged != Constraint(missing=True):
            return Constraint(allowed=frozenset())  # a value test on a missing value never holds
        return merged


def _tighter(a, a_inc, b, b_inc, pick):
    if a is None:
        return b, b_inc
    if b is None or a == b:
        return a, (a_inc and b_inc) if b is not None else a_inc
    return (a, a_inc) if pick(a, b) == a else (b, b_inc)


def _bound_inside(mine, mine_inc, theirs, theirs_inc, direction: int) -> bool:
    if theirs is None:
        return True
    if mine is None:
        return False
    if mine == theirs:
        return theirs_inc or not mine_inc
    return (mine > theirs) if direction == 1 else (mine < theirs)


# ---------------------------------------------------------------- from IR to constraints


def _key(expr: ir.Expr) -> object | None:
    """A comparable constant, or None when the lint cannot reason about it."""
    if isinstance(expr, ir.Const):
        if expr.type.kind is t.Kind.ENUM:
            return expr.type.rank(expr.value)
        return expr.value
    if isinstance(expr, ir.RelativeDate) and expr.duration.unit in ("day", "week"):
        days = expr.duration.amount * (7 if expr.duration.unit == "week" else 1)
        return ("as_of", expr.sign * days)
    return None


def _domain(field: ir.Field) -> frozenset | None:
    if field.type.kind is t.Kind.ENUM:
        return frozenset(range(len(field.type.values)))
    if field.type.kind is t.Kind.BOOL:
        return frozenset((True, False))
    return None


def _atom(expr: ir.Expr) -> tuple[str, Constraint] | None:
    """`field OP constant` (either way round) as a constraint on that field."""
    if isinstance(expr, ir.SegmentRef):
        return None
    if isinstance(expr, ir.IsMissing) and isinstance(expr.value, ir.Field):
        return expr.value.name, Constraint(missing=not expr.negated)
    if isinstance(expr, ir.Truth) and isinstance(expr.value, ir.Field):
        return expr.value.name, Constraint(allowed=frozenset((True,)), missing=False)
    if isinstance(expr, ir.InSet) and isinstance(expr.value, ir.Field) and not expr.negated:
        keys = [_key(item) for item in expr.items]
        if None in keys:
            return None
        return expr.value.name, Constraint(allowed=frozenset(keys), missing=False)
    if not isinstance(expr, ir.Compare):
        return None
    op, left, right = expr.op, expr.left, expr.right
    if not isinstance(left, ir.Field):
        op, left, right = _FLIP[op], right, left
    value = _key(right)
    if not isinstance(left, ir.Field) or value is None:
        return None
    constraint = _constraint(op, value, _domain(left))
    return (left.name, constraint) if constraint is not None else None


def _constraint(op: str, value: object, domain: frozenset | None) -> Constraint | None:
    if op == "=":
        return Constraint(allowed=frozenset((value,)), missing=False)
    if op == "!=":
        return Constraint(allowed=domain, excluded=frozenset((value,)), missing=False)
    bounds = {
        "<": dict(high=value, high_inclusive=False),
        "<=": dict(high=value),
        ">": dict(low=value, low_inclusive=False),
        ">=": dict(low=value),
    }[op]
    return Constraint(allowed=domain, missing=False, **bounds)


def _conjuncts(expr: ir.Expr) -> Iterator[ir.Expr]:
    if isinstance(expr, ir.And):
        for operand in expr.operands:
            yield from _conjuncts(operand)
    elif isinstance(expr, ir.SegmentRef):
        yield from _conjuncts(expr.condition)
    else:
        yield expr


def constraints(expr: ir.Expr) -> tuple[dict[str, Constraint], list[ir.Expr]]:
    """Split a condition into per-field constraints and the conjuncts the algebra cannot read."""
    per_field: dict[str, Constraint] = {}
    opaque: list[ir.Expr] = []
    for conjunct in _conjuncts(expr):
        atom = _atom(conjunct)
        if atom is None or not _comparable_keys(atom[1], per_field.get(atom[0])):
            opaque.append(conjunct)
            continue
        name, constraint = atom
        per_field[name] = per_field[name].intersect(constraint) if name in per_field else constraint
    return per_field, opaque


def _comparable_keys(new: Constraint, old: Constraint | None) -> bool:
    """Relative dates and fixed dates cannot be ordered without an as-of date."""
    keys = [
        k
        for c in (new, old)
        if c is not None
        for k in (c.low, c.high, *(c.allowed or ()))
        if k is not None and not isinstance(k, bool)
    ]
    return len({isinstance(k, tuple) for k in keys}) <= 1 and len({type(k) for k in keys}) <= 1


# ---------------------------------------------------------------- the lints


def _implies(strong, weak) -> bool:
    (strong_fields, strong_opaque), (weak_fields, weak_opaque) = strong, weak
    if not weak_fields.keys() <= strong_fields.keys():
        return False
    if any(c not in strong_opaque for c in weak_opaque):
        return False
    return all(
        name in strong_fields and strong_fields[name].within(constraint)
        for name, constraint in weak_fields.items()
    )


def _always_reaches(winner: ir.Rule, loser: ir.Rule, config: Config) -> bool:
    """Nothing but the match decides whether `winner` takes the customers `loser` would get."""
    if winner.cap is not None:
        return False
    if winner.action.channel == loser.action.channel:
        return True
    channel = config.channels.get(winner.action.channel or "")
    return winner.action.channel is None or (channel is not None and not channel.requires_consent)


def lint_rules(rules: list[ir.Rule], config: Config) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    split = {rule.name: constraints(rule.condition) for rule in rules}
    # Rules in the order they win (priority, then file order); a rule can only be shadowed by an
    # earlier winner that constrains no field it leaves free: index those by their field sets.
    winners: dict[frozenset[str], list[ir.Rule]] = {}
    for rule in sorted(rules, key=lambda r: (-r.priority, r.order)):
        fields = split[rule.name][0]
        if any(c.is_empty() for c in fields.values()):
            found.append(
                Diagnostic(
                    "RR301",
                    f"the condition of rule `{rule.name}` can never hold",
                    rule.path,
                    rule.condition.span,
                    "two of its tests contradict each other",
                )
            )
            continue
        shadow = next(
            (
                other
                for keys, candidates in winners.items()
                if keys <= fields.keys()
                for other in candidates
                if _always_reaches(other, rule, config)
                and _implies(split[rule.name], split[other.name])
            ),
            None,
        )
        if shadow is not None:
            found.append(
                Diagnostic(
                    "RR302",
                    f"rule `{rule.name}` never fires: every customer it matches is taken by "
                    f"`{shadow.name}` first",
                    rule.path,
                    rule.span,
                    f"give `{rule.name}` a higher priority than `{shadow.name}` "
                    f"or narrow `{shadow.name}`",
                )
            )
        winners.setdefault(frozenset(fields), []).append(rule)
    return found
