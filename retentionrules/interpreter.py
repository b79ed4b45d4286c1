"""The reference evaluator: the typed rule set interpreted over one customer's fields in Python.

Small and meant to be obviously right; `explain` and the tests use it, and property tests demand
that the SQL compiler agree with it. Missing values are None; a comparison involving one is false.
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Mapping
from typing import Any

from . import ir
from . import types as t
from .timeutil import next_anniversary, shift

_COMPARE = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def evaluate(expr: ir.Expr, row: Mapping[str, Any], as_of: dt.date) -> Any:
    """The value of `expr` for the customer `row`: a bool for conditions, None when missing."""
    if isinstance(expr, ir.Field):
        return row.get(expr.name)
    if isinstance(expr, ir.Const):
        return expr.value
    if isinstance(expr, ir.RelativeDate):
        return shift(as_of, expr.duration, expr.sign)
    if isinstance(expr, ir.NextAnniversary):
        day = evaluate(expr.field, row, as_of)
        return None if day is None else next_anniversary(day, as_of)
    if isinstance(expr, ir.And):
        return all(evaluate(o, row, as_of) for o in expr.operands)
    if isinstance(expr, ir.Or):
        return any(evaluate(o, row, as_of) for o in expr.operands)
    if isinstance(expr, ir.Not):
        return not evaluate(expr.operand, row, as_of)
    if isinstance(expr, ir.SegmentRef):
        return evaluate(expr.condition, row, as_of)
    if isinstance(expr, ir.Truth):
        return evaluate(expr.value, row, as_of) is True
    if isinstance(expr, ir.IsMissing):
        return (evaluate(expr.value, row, as_of) is None) != expr.negated
    if isinstance(expr, ir.Compare):
        return _compare(expr, row, as_of)
    if isinstance(expr, ir.InSet):
        return _in_set(expr, row, as_of)
    if isinstance(expr, ir.TextMatch):
        value, pattern = evaluate(expr.value, row, as_of), evaluate(expr.pattern, row, as_of)
        if value is None or pattern is None:
            return False
        return pattern in value if expr.op == "contains" else value.startswith(pattern)
    if isinstance(expr, ir.Arith):
        return _arith(expr, row, as_of)
    if isinstance(expr, ir.Neg):
        value = evaluate(expr.operand, row, as_of)
        return None if value is None else -value
    raise TypeError(f"cannot evaluate {expr!r}")  # pragma: no cover - the IR is closed


def _comparable(expr: ir.Expr, value: Any) -> Any:
    """Enumeration values compare by rank."""
    if value is not None and expr.type.kind is t.Kind.ENUM:
        return expr.type.rank(value)
    return value


def _compare(expr: ir.Compare, row: Mapping[str, Any], as_of: dt.date) -> bool:
    left = _comparable(expr.left, evaluate(expr.left, row, as_of))
    right = _comparable(expr.right, evaluate(expr.right, row, as_of))
    if left is None or right is None:
        return False
    return _COMPARE[expr.op](left, right)


def _in_set(expr: ir.InSet, row: Mapping[str, Any], as_of: dt.date) -> bool:
    value = evaluate(expr.value, row, as_of)
    items = [evaluate(item, row, as_of) for item in expr.items]
    if value is None:
        return False
    if expr.negated:  # like SQL: unknown when any item is missing, and unknown is false
        return None not in items and value not in items
    return value in items


def _arith(expr: ir.Arith, row: Mapping[str, Any], as_of: dt.date) -> float | None:
    left, right = evaluate(expr.left, row, as_of), evaluate(expr.right, row, as_of)
    if left is None or right is None:
        return None
    if expr.op == "/":
        return None if right == 0 else left / right
    return {"+": operator.add, "-": operator.sub, "*": operator.mul}[expr.op](left, right)
