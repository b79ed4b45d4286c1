"""The reference evaluator: the typed rule set interpreted over one customer's fields in Python.

Small and meant to be obviously right; `explain` and the tests use it, and property tests demand
that the SQL compiler agree with it. Missing values are None; a comparison involving one is false.
Numbers are doubles (Python floats), as in SQL: an arithmetic result that is not a finite number
(a division by zero, an overflow) is missing.

A segment's value is computed once per customer and remembered: segments built from segments
would otherwise be evaluated once per path through them, exponentially often.
"""

from __future__ import annotations

import datetime as dt
import math
import operator
import sys
from collections.abc import Callable, Mapping
from typing import Any

from . import ir
from . import types as t
from .timeutil import next_anniversary, shift

if sys.version_info >= (3, 11):
    from typing import assert_never
else:  # pragma: no cover - Python 3.10
    from typing_extensions import assert_never

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_ARITH: dict[str, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
}


def evaluate(expr: ir.Expr, row: Mapping[str, Any], as_of: dt.date) -> Any:
    """The value of `expr` for the customer `row`: a bool for conditions, None when missing."""
    return Evaluator(row, as_of).value(expr)


class Evaluator:
    """Evaluates expressions for one customer at one as-of date, remembering each segment's
    value: use one per customer to evaluate several rules (as `explain` does)."""

    def __init__(self, row: Mapping[str, Any], as_of: dt.date) -> None:
        self.row = row
        self.as_of = as_of
        self.segments: dict[int, bool] = {}  # segment_key -> value

    def value(self, expr: ir.Expr) -> Any:
        match expr:
            case ir.Field():
                value = self.row.get(expr.name)
                if value is not None and expr.type.kind is t.Kind.NUMBER:
                    return float(value)  # like SQL's doubles, whatever type the column has
                return value
            case ir.Const():
                return expr.value
            case ir.RelativeDate():
                return shift(self.as_of, expr.duration, expr.sign)
            case ir.Bought() | ir.UnitsBought():
                return self.row.get(expr.column)  # the derived table's fact (derive.py)
            case ir.NextAnniversary():
                day = self.value(expr.field)
                return None if day is None else next_anniversary(day, self.as_of)
            case ir.And():
                return all(self.value(o) for o in expr.operands)
            case ir.Or():
                return any(self.value(o) for o in expr.operands)
            case ir.Not():
                return not self.value(expr.operand)
            case ir.SegmentRef():
                return self.segment(expr)
            case ir.Truth():
                return self.value(expr.value) is True
            case ir.IsMissing():
                return (self.value(expr.value) is None) != expr.negated
            case ir.Compare():
                return self.compare(expr)
            case ir.InSet():
                return self.in_set(expr)
            case ir.TextMatch():
                value, pattern = self.value(expr.value), self.value(expr.pattern)
                if value is None or pattern is None:
                    return False
                return pattern in value if expr.op == "contains" else value.startswith(pattern)
            case ir.Arith():
                return self.arith(expr)
            case ir.Neg():
                value = self.value(expr.operand)
                return None if value is None else -value
            case _:
                assert_never(expr)

    def segment(self, ref: ir.SegmentRef) -> bool:
        """The segment's value, computing first every segment it builds on that is not known yet,
        in order (each then finds the ones it uses known: no recursion along a chain)."""
        key = ir.segment_key(ref)
        if key not in self.segments:
            for segment in ir.segments_used([ref], self.segments):
                self.segments[ir.segment_key(segment)] = bool(self.value(segment.condition))
        return self.segments[key]

    def ranked(self, expr: ir.Expr) -> Any:
        """A compared value; enumeration values compare by rank."""
        value = self.value(expr)
        if value is not None and expr.type.kind is t.Kind.ENUM:
            return expr.type.rank(value)
        return value

    def compare(self, expr: ir.Compare) -> bool:
        left, right = self.ranked(expr.left), self.ranked(expr.right)
        if left is None or right is None:
            return False
        return _COMPARE[expr.op](left, right)

    def in_set(self, expr: ir.InSet) -> bool:
        value = self.value(expr.value)
        items = [self.value(item) for item in expr.items]
        if value is None:
            return False
        if expr.negated:  # like SQL: unknown when any item is missing, and unknown is false
            return None not in items and value not in items
        return value in items

    def arith(self, expr: ir.Arith) -> float | None:
        left, right = self.value(expr.left), self.value(expr.right)
        if left is None or right is None or (expr.op == "/" and right == 0):
            return None
        result = _ARITH[expr.op](left, right)
        return result if math.isfinite(result) else None
