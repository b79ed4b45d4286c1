"""The fast evaluator: the typed rule set compiled to SQL expressions over the `derived` table.

Field names become quoted identifiers of fields the checker resolved; constants become escaped
literals (`sql.literal`); relative dates are resolved against the as-of date with the same
`timeutil` the interpreter uses. Every condition compiles to a SQL boolean that is never NULL (a
missing value makes a test false), which keeps `not` and `or` two-valued exactly like the
interpreter.

The SQL stays linear in the size of the rules and shallow, however they nest:

- Each segment is compiled once, into a column of its own that rules and later segments read:
  pasting its SQL wherever it is used would double the query for every segment built from a
  segment used twice.
- DuckDB copies the operand of NULLIF or CASE once per use, so no expression is wrapped in one
  of them inside another (a chain of 30 divisions would otherwise be copied 2**30 times).
- DuckDB limits how deeply an expression may nest (1,000 levels) and takes time that grows
  faster than the depth to plan a deep one, so a subexpression every `HOIST_DEPTH` levels deep is
  computed as a column of its own too, like a segment.

Columns come in layers: a column is computed one layer after the last column it reads, so the
planner adds the layers to the customers one after another (`with_layers`).

Arithmetic is on doubles. An operation whose result is not a finite number (a division by zero,
an overflow beyond about 1.8e308) gives a missing value, as in the interpreter. Inside arithmetic
the SQL lets IEEE 754 carry such a result instead of NULL: an infinity or NaN stays one through
`+ - * /`, except as a divisor (x / inf is 0), so a divisor that may be one goes through
`% inf` first (NaN for an infinity or NaN, the number itself otherwise). Where a number leaves
arithmetic (a comparison, `in`, `is missing`) a value that is not finite becomes NULL: missing.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from . import ir
from . import types as t
from .sql import anniversary_column, ident, literal, rank_column
from .timeutil import shift

if sys.version_info >= (3, 11):
    from typing import assert_never
else:  # pragma: no cover - Python 3.10
    from typing_extensions import assert_never

_INFINITY = "CAST('inf' AS DOUBLE)"

# Levels of the typed rule set one SQL expression holds before its inner part becomes a column.
# DuckDB counts up to four levels of its own per level here (a division by a computed divisor),
# so an expression stays well within DuckDB's limit of 1,000 and is quick to plan.
HOIST_DEPTH = 100
# Layers of columns one query stacks before the planner stores what it has: each layer nests
# the query one level deeper, and DuckDB's limit counts those levels too.
LAYERS_PER_QUERY = 50


@dataclass(frozen=True, slots=True)
class Compiled:
    """Conditions as SQL booleans (never NULL), and the columns they read."""

    conditions: tuple[str, ...]
    # Each layer adds columns (`, sql AS "column"`...) computed from the layers before it.
    layers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Sql:
    text: str
    height: int  # levels of the typed rule set in `text`, below the columns it reads
    layer: int  # the last layer of the columns it reads; -1 when it reads none
    # A condition the same as `text` where that is true, but NULL where it may be false: what
    # `and` and `or` join, so that a chain of tests is made two-valued once, not test by test.
    # Each coalesce costs DuckDB a pass over the rows; one per rule instead of one per test makes
    # the standard job's matching a third faster. `coalesce(a AND b, FALSE)` is
    # `coalesce(a, FALSE) AND coalesce(b, FALSE)` (true only where both are), and so for OR.
    loose: str | None = None

    @property
    def joined(self) -> str:
        """What `and` and `or` join: the loose form when there is one."""
        return self.loose if self.loose is not None else self.text


def compile_conditions(conditions: Sequence[ir.Expr], as_of: dt.date) -> Compiled:
    """Compile `conditions`, and every segment they use once, into SQL and columns."""
    compiler = _Compiler(as_of)
    for segment in ir.segments_used(conditions):
        column = compiler.column(f"segment {segment.name}", compiler.sql(segment.condition))
        compiler.segments[ir.segment_key(segment)] = column
    texts = tuple(compiler.sql(condition).text for condition in conditions)
    return Compiled(texts, tuple("".join(layer) for layer in compiler.layers))


def with_layers(relation: str, layers: Sequence[str]) -> str:
    """`relation` (a table or a parenthesised query) with the columns of `layers` added."""
    for layer in layers:
        relation = f"(SELECT *{layer} FROM {relation})"
    return relation


def _may_be_null(expr: ir.Expr) -> bool:
    """Whether the SQL of `expr` can be NULL. Conditions never are; constants never are."""
    match expr:
        case (
            ir.Field() | ir.NextAnniversary() | ir.Bought() | ir.UnitsBought() | ir.Arith()
            | ir.Neg()
        ):
            return True  # a missing value, or arithmetic that gave none
        case ir.Const() | ir.RelativeDate():
            return False
        case (
            ir.Compare() | ir.InSet() | ir.IsMissing() | ir.TextMatch() | ir.Truth() | ir.And()
            | ir.Or() | ir.Not() | ir.SegmentRef()
        ):
            return False  # conditions compile to booleans that are never NULL
        case _:
            assert_never(expr)


def _may_be_infinite(expr: ir.Expr) -> bool:
    """Whether the SQL of `expr` can be an infinity or NaN: only arithmetic makes one (input data
    and number literals are finite)."""
    while True:  # a loop, not recursion: `-` may nest up to limits.MAX_NESTING deep
        match expr:
            case ir.Neg():
                expr = expr.operand
            case ir.Arith():
                return True
            case (
                ir.Field() | ir.Const() | ir.RelativeDate() | ir.NextAnniversary() | ir.Bought()
                | ir.UnitsBought() | ir.Compare() | ir.InSet() | ir.IsMissing() | ir.TextMatch()
                | ir.Truth() | ir.And() | ir.Or() | ir.Not() | ir.SegmentRef()
            ):
                return False
            case _:
                assert_never(expr)


def _text_function(op: ir.TextOp) -> str:
    """DuckDB's function for a text test."""
    match op:
        case "contains":
            return "contains"
        case "starts_with":
            return "starts_with"
        case _:
            assert_never(op)


def _combine(text: str, *parts: _Sql) -> _Sql:
    """The SQL `text` built from `parts`: one level above the highest of them."""
    return _Sql(
        text,
        1 + max((p.height for p in parts), default=0),
        max((p.layer for p in parts), default=-1),
    )


def _loose(condition: str, *parts: _Sql) -> _Sql:
    """A `condition` that may be NULL where it is false, made two-valued (see `_Sql.loose`)."""
    made = _combine(f"coalesce({condition}, FALSE)", *parts)
    return _Sql(made.text, made.height, made.layer, condition)


class _Compiler:
    def __init__(self, as_of: dt.date) -> None:
        self.as_of = as_of
        self.segments: dict[int, _Sql] = {}  # segment_key -> the column holding its value
        self.layers: list[list[str]] = []

    def column(self, what: str, sql: _Sql) -> _Sql:
        """`sql` computed as a column of its own, one layer after the columns it reads."""
        layer = sql.layer + 1
        if layer == len(self.layers):
            self.layers.append([])
        # `#`: no field name can start with it; the number keeps every column apart.
        name = ident(f"#{sum(map(len, self.layers))} {what}")
        self.layers[layer].append(f", {sql.text} AS {name}")
        return _Sql(name, 0, layer)

    def sql(self, expr: ir.Expr) -> _Sql:
        """`expr` as SQL, as a column of its own when it has grown HOIST_DEPTH levels deep."""
        sql = self._sql(expr)
        return self.column("part", sql) if sql.height >= HOIST_DEPTH else sql

    def _sql(self, expr: ir.Expr) -> _Sql:
        """A boolean that is never NULL for a condition; for a number, a double that is NULL when
        missing and may be infinite or NaN after arithmetic (see `value`)."""
        match expr:
            case ir.Field():
                return _Sql(ident(expr.name), 0, -1)
            case ir.Const():
                return _Sql(literal(expr.value), 0, -1)
            case ir.RelativeDate():
                return _Sql(literal(shift(self.as_of, expr.duration, expr.sign)), 0, -1)
            case ir.NextAnniversary():
                return _Sql(anniversary_column(expr.field.name), 0, -1)
            case ir.Bought() | ir.UnitsBought():
                return _Sql(ident(expr.column), 0, -1)
            case ir.Arith():
                left, right = self.operand(expr.left), self.operand(expr.right)
                divisor = right.text
                if expr.op == "/" and _may_be_infinite(expr.right):
                    divisor = f"({divisor} % {_INFINITY})"
                return _combine(f"({left.text} {expr.op} {divisor})", left, right)
            case ir.Neg():
                operand = self.operand(expr.operand)
                return _combine(f"(-{operand.text})", operand)
            case ir.And() | ir.Or():
                operands = [self.sql(o) for o in expr.operands]
                joiner = " AND " if isinstance(expr, ir.And) else " OR "
                joined = "(" + joiner.join(o.joined for o in operands) + ")"
                if all(o.loose is None for o in operands):
                    return _combine(joined, *operands)
                return _loose(joined, *operands)
            case ir.Not():
                operand = self.sql(expr.operand)
                return _combine(f"(NOT {operand.text})", operand)
            case ir.SegmentRef():
                return self.segments[ir.segment_key(expr)]
            case ir.Truth():
                value = self.sql(expr.value)
                return _loose(value.text, value)
            case ir.IsMissing():
                value = self.value(expr.value)
                test = f"({value.text} IS {'NOT ' if expr.negated else ''}NULL)"
                return _combine(test, value)
            case ir.Compare():
                left, right = self.ordered(expr.left), self.ordered(expr.right)
                op = "<>" if expr.op == "!=" else expr.op
                test = f"{left.text} {op} {right.text}"
                return self.total(test, (expr.left, expr.right), left, right)
            case ir.InSet():
                return self.in_set(expr)
            case ir.TextMatch():
                function = _text_function(expr.op)
                value, pattern = self.sql(expr.value), self.sql(expr.pattern)
                test = f"{function}({value.text}, {pattern.text})"
                return self.total(test, (expr.value, expr.pattern), value, pattern)
            case _:
                assert_never(expr)

    def operand(self, expr: ir.Expr) -> _Sql:
        """An operand of arithmetic, as a double: a whole-number column would overflow."""
        sql = self.sql(expr)
        match expr:
            case ir.Arith() | ir.Neg() | ir.Const():
                return sql  # doubles already
            case (
                ir.Field() | ir.RelativeDate() | ir.NextAnniversary() | ir.Bought()
                | ir.UnitsBought() | ir.Compare() | ir.InSet() | ir.IsMissing() | ir.TextMatch()
                | ir.Truth() | ir.And() | ir.Or() | ir.Not() | ir.SegmentRef()
            ):
                return _Sql(f"CAST({sql.text} AS DOUBLE)", sql.height, sql.layer)
            case _:
                assert_never(expr)

    def value(self, expr: ir.Expr) -> _Sql:
        """`expr` where it is compared: a number as a double (a whole-number column too, so that
        two counts beyond 2**53 compare as the interpreter's floats do), NULL when missing or
        not a finite number. Its SQL appears twice then, which is safe only because arithmetic
        holds no such wrapper inside it."""
        sql = self.sql(expr)
        match expr:
            case ir.Field():
                if expr.type.kind is t.Kind.NUMBER:
                    return _Sql(f"CAST({sql.text} AS DOUBLE)", sql.height, sql.layer)
                return sql
            case ir.Arith() | ir.Neg():
                if _may_be_infinite(expr):
                    return _combine(f"CASE WHEN isfinite({sql.text}) THEN {sql.text} END", sql)
                return sql
            case (
                ir.Const() | ir.RelativeDate() | ir.NextAnniversary() | ir.Bought()
                | ir.UnitsBought() | ir.Compare() | ir.InSet() | ir.IsMissing() | ir.TextMatch()
                | ir.Truth() | ir.And() | ir.Or() | ir.Not() | ir.SegmentRef()
            ):
                return sql  # finite: constants, dates and conditions
            case _:
                assert_never(expr)

    def total(self, test: str, operands: tuple[ir.Expr, ...], *parts: _Sql) -> _Sql:
        """`test` made false where it would be NULL (an operand missing)."""
        if any(_may_be_null(operand) for operand in operands):
            return _loose(f"({test})", *parts)
        return _combine(f"({test})", *parts)

    def in_set(self, expr: ir.InSet) -> _Sql:
        value = self.ordered(expr.value)
        if not expr.items:
            return _combine(f"({value.text} IS NOT NULL)" if expr.negated else "FALSE", value)
        items = [self.ordered(item) for item in expr.items]
        # `x IN (a, b)` is by definition `x = a OR x = b`, NULLs included. Written out, because
        # DuckDB plans an IN list of five or more constants as a join, which loses the input
        # order of the rows (and with it the plan's order and byte-identical reruns).
        either = " OR ".join(f"{value.text} = {item.text}" for item in items)
        test = f"NOT ({either})" if expr.negated else f"({either})"
        return self.total(test, (expr.value, *expr.items), value, *items)

    def ordered(self, expr: ir.Expr) -> _Sql:
        """A compared value. Enumeration values compare by rank (integers: cheaper than text, and
        tier and stage are computed as ranks); everything else by value."""
        match expr:
            case ir.Const() if expr.type.kind is t.Kind.ENUM:
                return _Sql(str(expr.type.rank(expr.value)), 0, -1)
            case ir.Field() if expr.type.kind is t.Kind.ENUM:
                return _Sql(rank_column(expr.name), 0, -1)
            case (
                ir.Const() | ir.Field() | ir.RelativeDate() | ir.NextAnniversary() | ir.Bought()
                | ir.UnitsBought() | ir.Arith() | ir.Neg() | ir.Compare() | ir.InSet()
                | ir.IsMissing() | ir.TextMatch() | ir.Truth() | ir.And() | ir.Or() | ir.Not()
                | ir.SegmentRef()
            ):
                # No other kind holds an enumeration value: the checker types these numbers,
                # dates or booleans. A new kind that may must say here how it is ranked.
                return self.value(expr)
            case _:
                assert_never(expr)
