"""The fast evaluator: the typed rule set compiled to SQL expressions over the `derived` table.

Field names become quoted identifiers of fields the checker resolved; constants become escaped
literals (`sql.literal`); relative dates are resolved against the as-of date with the same
`timeutil` the interpreter uses. Every predicate is wrapped so that a missing value makes it
false rather than NULL, which keeps `not` and `or` two-valued exactly like the interpreter.
"""

from __future__ import annotations

import datetime as dt

from . import ir
from . import types as t
from .sql import anniversary_column, ident, literal, rank_column
from .timeutil import shift


def compile_condition(expr: ir.Expr, as_of: dt.date) -> str:
    """A SQL boolean that is never NULL."""
    return _Compiler(as_of).boolean(expr)


class _Compiler:
    def __init__(self, as_of: dt.date) -> None:
        self.as_of = as_of

    def boolean(self, expr: ir.Expr) -> str:
        if isinstance(expr, ir.And):
            return "(" + " AND ".join(self.boolean(o) for o in expr.operands) + ")"
        if isinstance(expr, ir.Or):
            return "(" + " OR ".join(self.boolean(o) for o in expr.operands) + ")"
        if isinstance(expr, ir.Not):
            return f"(NOT {self.boolean(expr.operand)})"
        if isinstance(expr, ir.SegmentRef):
            return self.boolean(expr.condition)
        if isinstance(expr, ir.Truth):
            return f"coalesce({self.value(expr.value)}, FALSE)"
        if isinstance(expr, ir.IsMissing):
            return f"({self.value(expr.value)} IS {'NOT ' if expr.negated else ''}NULL)"
        if isinstance(expr, ir.Compare):
            left, right = self.ordered(expr.left), self.ordered(expr.right)
            return f"coalesce({left} {'<>' if expr.op == '!=' else expr.op} {right}, FALSE)"
        if isinstance(expr, ir.InSet):
            return self.in_set(expr)
        if isinstance(expr, ir.TextMatch):
            function = "contains" if expr.op == "contains" else "starts_with"
            return (
                f"coalesce({function}({self.value(expr.value)}, {self.value(expr.pattern)}), FALSE)"
            )
        if isinstance(expr, ir.Const):
            return literal(bool(expr.value))
        raise TypeError(f"not a condition: {expr!r}")  # pragma: no cover - the checker types it

    def in_set(self, expr: ir.InSet) -> str:
        value = self.ordered(expr.value)
        if not expr.items:
            return f"({value} IS NOT NULL)" if expr.negated else "FALSE"
        items = ", ".join(self.ordered(item) for item in expr.items)
        return f"coalesce({value} {'NOT ' if expr.negated else ''}IN ({items}), FALSE)"

    def ordered(self, expr: ir.Expr) -> str:
        """Enumeration values compare by rank (integers: cheaper than text, and tier and stage
        are computed as ranks); everything else by value."""
        if expr.type.kind is not t.Kind.ENUM:
            return self.value(expr)
        if isinstance(expr, ir.Const):
            return str(expr.type.rank(expr.value))
        return rank_column(expr.name)  # enumeration values come only from fields and constants

    def value(self, expr: ir.Expr) -> str:
        if isinstance(expr, ir.Field):
            return ident(expr.name)
        if isinstance(expr, ir.Const):
            return literal(expr.value)
        if isinstance(expr, ir.RelativeDate):
            return literal(shift(self.as_of, expr.duration, expr.sign))
        if isinstance(expr, ir.NextAnniversary):
            return anniversary_column(expr.field.name)
        if isinstance(expr, ir.Arith):
            left, right = self.value(expr.left), self.value(expr.right)
            if expr.op == "/":
                return f"(CAST({left} AS DOUBLE) / NULLIF(CAST({right} AS DOUBLE), 0))"
            return f"(CAST({left} AS DOUBLE) {expr.op} CAST({right} AS DOUBLE))"
        if isinstance(expr, ir.Neg):
            return f"(-CAST({self.value(expr.operand)} AS DOUBLE))"
        return self.boolean(expr)
