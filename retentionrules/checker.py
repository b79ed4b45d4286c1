"""Parsed files + configuration -> a typed `ir.RuleSet` and every problem found on the way.

The checker resolves names (fields, segments, bare enumeration values), types every expression,
lowers the sugar into the few node kinds in `ir`, and runs the lints in `lints.py`. It reports all
problems in one pass; a rule with errors is left out of the rule set, the others stay.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import NoReturn, TypeVar

from . import ast, ir
from . import types as t
from .config import BLANKS, Config
from .diagnostics import Code, Diagnostic
from .formatter import format_statement
from .limits import MAX_SEGMENT_CHAIN, NUMBER_DIGITS
from .lints import lint_rules
from .shopcalendar import HOLIDAY_NAMES
from .timeutil import Duration, duration_problem

if sys.version_info >= (3, 11):
    from typing import assert_never
else:  # pragma: no cover - Python 3.10
    from typing_extensions import assert_never

_TODAY = Duration(0, "day")
_Node = TypeVar("_Node", bound=ast.Node)


@dataclass(frozen=True, slots=True)
class CheckResult:
    ruleset: ir.RuleSet
    diagnostics: tuple[Diagnostic, ...]

    @property
    def ok(self) -> bool:
        return not any(d.is_error for d in self.diagnostics)


class _Invalid(Exception):
    """An expression could not be typed; its diagnostic is already recorded."""


def check(files: list[ast.RuleFile], config: Config) -> CheckResult:
    return _Checker(config).run(files)


def derived_name(rule: ast.Rule) -> str:
    """A stable name for a one-liner: its action plus a digest of its canonical text.

    Clauses whose number is beyond the limits (an error, RR101) are left out of the text: a
    whole number of thousands of digits cannot even be printed (Python refuses to)."""
    then = _first(rule, ast.Then)
    stem = f"{then.action.kind}_{then.action.template}" if then else "rule"
    printable = tuple(c for c in rule.clauses if _clause_count(c) < 10**NUMBER_DIGITS)
    text = format_statement(dataclasses.replace(rule, clauses=printable))
    return f"{stem}_{hashlib.sha256(text.encode('utf-8')).hexdigest()[:6]}"


def _clause_count(clause: ast.Clause) -> int:
    """The whole number a clause holds (its size, for the limits), 0 if none."""
    match clause:
        case ast.Priority():
            return abs(clause.value)
        case ast.Cap() | ast.MaxPerRun():
            return abs(clause.count)
        case ast.When() | ast.Then() | ast.Holdout() | ast.OncePerHousehold():
            return 0  # a percentage is no count; the others hold no number of their own
        case _:
            assert_never(clause)


class _Checker:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.fields = config.field_types()
        self.diagnostics: list[Diagnostic] = []
        self.path = ""
        self.segment_defs: dict[str, tuple[str, ast.Segment]] = {}
        self.segment_ir: dict[str, ir.Expr | None] = {}  # None: the segment has errors
        self.recording: list[str] | None = None  # see `_uses`
        self.used_segments: set[str] = set()

    # ------------------------------------------------------------ driver

    def run(self, files: list[ast.RuleFile]) -> CheckResult:
        for rule_file in files:
            self.path = rule_file.path
            for statement in rule_file.statements:
                match statement:
                    case ast.Segment():
                        self._declare_segment(statement)
                    case ast.Rule():
                        pass  # checked below, once every segment is known
                    case _:
                        assert_never(statement)
        self._check_segments()
        rules: list[ir.Rule] = []
        seen: dict[str, tuple[str, ast.Rule]] = {}
        for rule_file in files:
            self.path = rule_file.path
            for statement in rule_file.statements:
                match statement:
                    case ast.Rule():
                        checked = self._rule(statement, len(rules), seen)
                        if checked is not None:
                            rules.append(checked)
                    case ast.Segment():
                        pass  # declared and checked above
                    case _:
                        assert_never(statement)
        self._report_unused_segments()
        self.diagnostics.extend(lint_rules(rules, self.config))
        ruleset = ir.RuleSet(tuple(rules), self.config)
        return CheckResult(ruleset, tuple(sorted(self.diagnostics, key=Diagnostic.sort_key)))

    def _report(self, code: Code, message: str, span: ast.Span, hint: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(code, message, self.path, span, hint))

    # ------------------------------------------------------------ segments

    def _declare_segment(self, segment: ast.Segment) -> None:
        if segment.name in self.segment_defs:
            first_path, first = self.segment_defs[segment.name]
            self._report(
                Code.RR206,
                f"segment `{segment.name}` is defined twice",
                segment.span,
                f"the first definition is at {first_path}:{first.span.line}",
            )
            return
        if segment.name in self.fields:
            self._report(
                Code.RR206,
                f"segment `{segment.name}` has the name of a customer field",
                segment.span,
                "give the segment a name of its own",
            )
            return
        self.segment_defs[segment.name] = (self.path, segment)

    def _check_segments(self) -> None:
        """Type every segment, each after the segments it uses, and report cycles (RR204).

        Checking a segment then finds the segments it uses already typed, so nothing recurses
        from one segment into the next: a chain or a cycle of thousands of segments costs a loop,
        not a stack that deep. The uses come from a dry run of typing (`_uses`), so a name that
        turns out to be an enumeration value is not taken for a segment.
        """
        uses = {name: self._uses(name) for name in self.segment_defs}
        open_: dict[str, int] = {}  # segments on the walk's stack -> their place in it
        done: set[str] = set()
        order: list[str] = []
        for root in self.segment_defs:
            if root in done:
                continue
            stack: list[tuple[str, Iterator[str]]] = [(root, iter(uses[root]))]
            open_[root] = 0
            while stack:
                name, pending = stack[-1]
                for used in pending:
                    if used in open_:
                        self._report_cycle([n for n, _ in stack[open_[used] :]] + [used])
                    elif used not in done:
                        open_[used] = len(stack)
                        stack.append((used, iter(uses[used])))
                        break
                else:
                    stack.pop()
                    del open_[name]
                    done.add(name)
                    order.append(name)
        chain: dict[str, int] = {}  # the longest chain of segments ending in each segment
        for name in order:
            chain[name] = 1 + max((chain.get(used, 0) for used in uses[name]), default=0)
            if name in self.segment_ir:  # in a cycle
                continue
            path, segment = self.segment_defs[name]
            self.path = path
            if chain[name] == MAX_SEGMENT_CHAIN + 1:
                self._report(
                    Code.RR209,
                    f"segment `{name}` ends a chain of {chain[name]} segments, each built on the "
                    f"one before; at most {MAX_SEGMENT_CHAIN} are allowed",
                    segment.span,
                    "define some of them from fields directly instead of from other segments",
                )
            self.segment_ir[name] = (
                self._condition(segment.condition) if chain[name] <= MAX_SEGMENT_CHAIN else None
            )

    def _uses(self, name: str) -> list[str]:
        """The segments `name`'s definition uses, in the order typing meets them: typing it with
        every diagnostic dropped, recording segment names instead of resolving them."""
        path, segment = self.segment_defs[name]
        saved = self.diagnostics, self.recording, self.path
        self.diagnostics, self.recording, self.path = [], [], path
        try:
            self._condition(segment.condition)
            return self.recording
        finally:
            self.diagnostics, self.recording, self.path = saved

    def _report_cycle(self, cycle: list[str]) -> None:
        path, segment = self.segment_defs[cycle[0]]
        saved, self.path = self.path, path
        self._report(
            Code.RR204,
            f"segments refer to each other in a cycle: {' -> '.join(cycle)}",
            segment.span,
            "a segment cannot be defined in terms of itself",
        )
        self.path = saved
        for member in cycle:
            self.segment_ir[member] = None

    def _report_unused_segments(self) -> None:
        for name, (path, segment) in self.segment_defs.items():
            if name not in self.used_segments:
                self.path = path
                self._report(
                    Code.RR303,
                    f"segment `{name}` is not used by any rule",
                    segment.span,
                    "use it in a condition or delete it",
                )

    # ------------------------------------------------------------ rules

    def _rule(
        self, rule: ast.Rule, order: int, seen: dict[str, tuple[str, ast.Rule]]
    ) -> ir.Rule | None:
        errors_before = sum(d.is_error for d in self.diagnostics)
        name = rule.name or derived_name(rule)
        if rule.name is None:
            self._report(
                Code.RR300,
                f"this rule has no name; it is called `{name}` in plans",
                rule.span,
                f"name it: `rule {name}` with `when ...` and `then ...` on indented lines",
            )
        if name in seen:
            first_path, first = seen[name]
            self._report(
                Code.RR203,
                f"rule `{name}` is defined twice",
                rule.span,
                f"the first definition is at {first_path}:{first.span.line}; "
                "rule names must be unique",
            )
        else:
            seen[name] = (self.path, rule)
        self._check_clauses(rule, name)
        when, then = _first(rule, ast.When), _first(rule, ast.Then)
        condition = self._condition(when.condition) if when else None
        action = self._action(then.action) if then else None
        priority, cap = _first(rule, ast.Priority), _first(rule, ast.Cap)
        holdout, limit = _first(rule, ast.Holdout), _first(rule, ast.MaxPerRun)
        for clause, what in ((priority, "a priority"), (cap, "a cap"), (limit, "a volume limit")):
            if clause is not None and _clause_count(clause) >= 10**NUMBER_DIGITS:
                self._report(
                    Code.RR101,
                    f"{what} may have at most {NUMBER_DIGITS} digits",
                    clause.span,
                    "no rule needs more, and longer numbers are not counted exactly",
                )
        if holdout is not None and (problem := _number_problem(holdout.percent)) is not None:
            self._report(Code.RR101, f"this holdout {problem}", holdout.span)
        try:
            cap_per = self._duration(cap.per) if cap else None
        except _Invalid:
            cap_per = None
        if condition is None or action is None:
            return None
        if sum(d.is_error for d in self.diagnostics) > errors_before:
            return None
        return ir.Rule(
            name=name,
            description=rule.description,
            condition=condition,
            action=action,
            priority=priority.value if priority else 0,
            order=order,
            cap=(cap.count, cap_per) if cap and cap_per else None,
            holdout=holdout.percent if holdout else Decimal(0),
            once_per_household=_first(rule, ast.OncePerHousehold) is not None,
            max_per_run=limit.count if limit else None,
            path=self.path,
            span=rule.span,
        )

    def _check_clauses(self, rule: ast.Rule, name: str) -> None:
        seen: set[type] = set()
        for clause in rule.clauses:
            if type(clause) in seen:
                self._report(
                    Code.RR102,
                    f"rule `{name}` has more than one `{_clause_word(clause)}` clause",
                    clause.span,
                    "combine them into one",
                )
            seen.add(type(clause))
        for kind, word in ((ast.When, "when"), (ast.Then, "then")):
            if kind not in seen:
                self._report(
                    Code.RR103,
                    f"rule `{name}` has no `{word}` clause",
                    rule.span,
                    "a rule needs `when CONDITION` and `then ACTION`",
                )

    def _action(self, action: ast.Action) -> ir.Action | None:
        channel = action.channel
        if action.kind == "tag":
            channel = None
        elif channel is None:
            channel = (
                self.config.staff_channel if action.kind == "call" else self.config.default_channel
            )
            if channel is None:
                setting = "staff_channel" if action.kind == "call" else "default_channel"
                self._report(
                    Code.RR208,
                    f"`{action.kind} {action.template}` names no channel",
                    action.span,
                    f"add `via CHANNEL` ({', '.join(self.config.channels)}) or set {setting}",
                )
                return None
        if channel is not None and channel not in self.config.channels:
            self._report(
                Code.RR205,
                f"unknown channel `{channel}`",
                action.span,
                _did_you_mean(channel, self.config.channels)
                or f"configured channels: {', '.join(self.config.channels)}",
            )
            return None
        params: list[tuple[str, object]] = []
        valid = True
        for param in action.params:
            if any(name == param.name for name, _ in params):
                self._report(Code.RR207, f"parameter `{param.name}` is given twice", param.span)
                continue
            try:
                params.append((param.name, self._param_value(param.value)))
            except _Invalid:
                valid = False
        return ir.Action(action.kind, action.template, channel, tuple(params)) if valid else None

    def _param_value(self, node: ast.Expr) -> object:
        """A parameter's literal as plain data for the plan (JSON)."""
        match node:
            case ast.Number():
                value = self._number(node)
                integral = node.value == node.value.to_integral_value()
                return int(node.value) if integral else value
            case ast.Date():
                return node.value.isoformat()
            case ast.Name():
                return node.id
            case ast.String() | ast.Bool():
                return node.value
            case (
                ast.Duration() | ast.Neg() | ast.Arith() | ast.Compare() | ast.And() | ast.Or()
                | ast.Not() | ast.In() | ast.Between() | ast.IsMissing() | ast.Contains()
                | ast.StartsWith() | ast.Within() | ast.BeforeAfter() | ast.Bought()
                | ast.UnitsBought()
            ):
                raise TypeError(f"the grammar allows only literals as parameters, not {node!r}")
            case _:
                assert_never(node)

    # ------------------------------------------------------------ expressions

    def _condition(self, node: ast.Expr) -> ir.Expr | None:
        try:
            return self._bool(node)
        except _Invalid:
            return None

    def _bool(self, node: ast.Expr) -> ir.Expr:
        """Type `node` as a condition: true or false, never missing."""
        typed = self._value(node)
        if isinstance(typed, ir.Bought):
            self._mismatch(
                node,
                "`bought` is the date of the last purchase in a category, not true or false",
                f"say when: `{_bought_text(typed.category)} within 60 days`, or "
                f"`{_bought_text(typed.category)} is present` for ever",
            )
        if isinstance(typed, ir.UnitsBought):
            text = _bought_text(typed.category, units=True)
            self._mismatch(
                node,
                "`units bought` is the quantity of the last purchase in a category, "
                "not true or false",
                f"say how many: `{text} >= 3`, or `{text} is present` for ever bought",
            )
        if typed.type != t.BOOL:
            self._mismatch(node, f"a condition must be true or false, but this is {_a(typed.type)}")
        if isinstance(typed, ir.Field):  # a bool field on its own: true when present and true
            return ir.Truth(typed, span=node.span)
        return typed

    def _all(
        self, typer: Callable[[_Node], ir.Expr], nodes: Iterable[_Node]
    ) -> tuple[ir.Expr, ...]:
        """Type every node, reporting all failures before giving up."""
        typed: list[ir.Expr] = []
        failed = False
        for node in nodes:
            try:
                typed.append(typer(node))
            except _Invalid:
                failed = True
        if failed:
            raise _Invalid
        return tuple(typed)

    def _value(self, node: ast.Expr, expected: t.Type | None = None) -> ir.Expr:
        """Type `node`, lowering the sugar; `expected` lets a bare name stand for an enumeration
        value. Every kind of expression is handled here, which the type checker proves."""
        match node:
            case ast.Name():
                return self._name(node, expected)
            case ast.Number():
                return ir.Const(self._number(node), t.NUMBER, span=node.span)
            case ast.String():
                if expected is not None and expected.kind is t.Kind.ENUM:
                    return self._enum_value(node.value, expected, node.span)
                return ir.Const(node.value, t.STRING, span=node.span)
            case ast.Bool():
                return ir.Const(node.value, t.BOOL, span=node.span)
            case ast.Date():
                return ir.Const(node.value, t.DATE, span=node.span)
            case ast.Duration():
                return ir.Const(self._duration(node), t.DURATION, span=node.span)
            case ast.Neg():
                return ir.Neg(self._arithmetic(node.operand), t.NUMBER, span=node.span)
            case ast.Arith():
                left, right = self._all(self._arithmetic, (node.left, node.right))
                return ir.Arith(node.op, left, right, t.NUMBER, span=node.span)
            case ast.And():
                return ir.And(self._all(self._bool, node.operands), span=node.span)
            case ast.Or():
                return ir.Or(self._all(self._bool, node.operands), span=node.span)
            case ast.Not():
                return ir.Not(self._bool(node.operand), span=node.span)
            case ast.Compare():
                return self._compare(node)
            case ast.In():
                return self._in(node)
            case ast.Between():
                return self._between(node)
            case ast.IsMissing():
                return ir.IsMissing(self._value(node.value), node.negated, span=node.span)
            case ast.Contains() | ast.StartsWith():
                return self._text_match(node)
            case ast.Within():
                return self._within(node)
            case ast.BeforeAfter():
                return self._before_after(node)
            case ast.Bought() | ast.UnitsBought():
                return self._bought(node)
            case _:
                assert_never(node)

    def _arithmetic(self, node: ast.Expr) -> ir.Expr:
        value = self._value(node)
        if value.type != t.NUMBER:
            self._mismatch(node, f"arithmetic needs numbers, but this is {_a(value.type)}")
        return value

    def _number(self, node: ast.Number) -> float:
        """A number literal as the double both evaluators compare (limits.NUMBER_DIGITS)."""
        problem = _number_problem(node.value)
        if problem is not None:
            self._report(
                Code.RR101,
                f"this number {problem}",
                node.span,
                "numbers are compared as 64-bit floating point, exact to "
                f"{NUMBER_DIGITS} significant digits",
            )
            raise _Invalid
        return float(node.value)

    def _duration(self, node: ast.Duration) -> Duration:
        problem = duration_problem(node.amount, node.unit)
        if problem is not None:
            self._report(
                Code.RR101,
                problem,
                node.span,
                "for any time at all, test `is present` instead of a date window",
            )
            raise _Invalid
        return Duration(node.amount, node.unit)

    def _name(self, node: ast.Name, expected: t.Type | None) -> ir.Expr:
        if expected is not None and expected.kind is t.Kind.ENUM and node.id in expected.values:
            return ir.Const(node.id, expected, span=node.span)
        if node.id in self.fields:
            return ir.Field(node.id, self.fields[node.id], span=node.span)
        if node.id in self.segment_defs:
            self.used_segments.add(node.id)
            if self.recording is not None:
                self.recording.append(node.id)
                return ir.SegmentRef(node.id, ir.Const(True, t.BOOL), span=node.span)
            condition = self.segment_ir.get(node.id)
            if condition is None:  # it has errors, reported at its definition
                raise _Invalid
            return ir.SegmentRef(node.id, condition, span=node.span)
        if expected is not None and expected.kind is t.Kind.ENUM:
            return self._enum_value(node.id, expected, node.span)
        self._report(
            Code.RR200,
            f"unknown field or segment `{node.id}`",
            node.span,
            _did_you_mean(node.id, [*self.fields, *self.segment_defs]) or _holiday_hint(node.id),
        )
        raise _Invalid

    def _enum_value(self, value: str, enum: t.Type, span: ast.Span) -> ir.Const:
        if value not in enum.values:
            hint = _did_you_mean(value, enum.values) or ""
            self._report(
                Code.RR201,
                f"`{value}` is not a {enum.enum}; valid values: {', '.join(enum.values)}",
                span,
                hint or None,
            )
            raise _Invalid
        return ir.Const(value, enum, span=span)

    def _pair(self, left: ast.Expr, right: ast.Expr) -> tuple[ir.Expr, ir.Expr]:
        """Type two operands, letting a bare name on either side be the other's enum value."""
        if not self._is_field(left) and self._is_field(right):
            typed_right = self._value(right)
            return self._value(left, typed_right.type), typed_right
        typed_left = self._value(left)
        return typed_left, self._value(right, typed_left.type)

    def _is_field(self, node: ast.Expr) -> bool:
        return isinstance(node, ast.Name) and (
            node.id in self.fields or node.id in self.segment_defs
        )

    def _compare(self, node: ast.Compare) -> ir.Expr:
        left, right = self._pair(node.left, node.right)
        self._comparable(node, left.type, right.type, ordered=node.op not in ("=", "!="))
        return ir.Compare(node.op, left, right, span=node.span)

    def _comparable(self, node: ast.Node, left: t.Type, right: t.Type, ordered: bool) -> None:
        kinds = {left.kind, right.kind}
        same = left == right or kinds <= {t.Kind.DATE, t.Kind.ANNIVERSARY}
        if not same:
            hint = None
            enum = (
                left if left.kind is t.Kind.ENUM else right if right.kind is t.Kind.ENUM else None
            )
            if enum is not None:
                hint = f"{enum.enum} takes one of: {', '.join(enum.values)}"
            elif kinds & {t.Kind.DATE, t.Kind.ANNIVERSARY}:
                hint = "write a date as YYYY-MM-DD, e.g. 2026-11-22"
            self._mismatch(node, f"cannot compare {_a(left)} with {_a(right)}", hint)
        if ordered and left.kind in (t.Kind.BOOL, t.Kind.DURATION):
            self._mismatch(node, f"{_a(left)} can only be compared with `=` or `!=`")

    def _in(self, node: ast.In) -> ir.Expr:
        value = self._value(node.value)
        items = self._all(lambda item: self._value(item, value.type), node.items)
        for item, source in zip(items, node.items, strict=True):
            self._comparable(source, value.type, item.type, ordered=False)
        return ir.InSet(value, items, node.negated, span=node.span)

    def _between(self, node: ast.Between) -> ir.Expr:
        value = self._value(node.value)
        low, high = self._all(lambda n: self._value(n, value.type), (node.low, node.high))
        for bound, source in ((low, node.low), (high, node.high)):
            self._comparable(source, value.type, bound.type, ordered=True)
        return ir.And(
            (
                ir.Compare(">=", value, low, span=node.span),
                ir.Compare("<=", value, high, span=node.span),
            ),
            span=node.span,
        )

    def _text_match(self, node: ast.Contains | ast.StartsWith) -> ir.Expr:
        op: ir.TextOp
        match node:
            case ast.Contains():
                op, operand = "contains", node.needle
            case ast.StartsWith():
                op, operand = "starts_with", node.prefix
            case _:
                assert_never(node)
        value, pattern = self._all(self._value, (node.value, operand))
        for typed, source in ((value, node.value), (pattern, operand)):
            if typed.type != t.STRING:
                self._mismatch(
                    source, f"`contains` and `starts with` work on text, not {_a(typed.type)}"
                )
        return ir.TextMatch(op, value, pattern, span=node.span)

    def _window(self, node: ast.Expr) -> Duration:
        window = self._value(node)
        if window.type != t.DURATION or not isinstance(window, ir.Const):  # only literals are
            self._mismatch(node, f"expected a duration such as `30 days`, not {_a(window.type)}")
        assert isinstance(window.value, Duration)
        return window.value

    def _within(self, node: ast.Within) -> ir.Expr:
        value, window = self._value(node.value), self._window(node.window)
        span = node.span
        today = ir.RelativeDate(_TODAY, 0, span=span)
        if value.type == t.ANNIVERSARY and isinstance(value, ir.Field):  # only fields are
            upcoming = ir.NextAnniversary(value, span=span)
            return ir.Compare("<=", upcoming, ir.RelativeDate(window, 1, span=span), span=span)
        if value.type != t.DATE:
            self._mismatch(node.value, f"`within` needs a date, not {_a(value.type)}")
        if node.upcoming:
            low, high = today, ir.RelativeDate(window, 1, span=span)
        else:
            low, high = ir.RelativeDate(window, -1, span=span), today
        return ir.And(
            (ir.Compare(">=", value, low, span=span), ir.Compare("<=", value, high, span=span)),
            span=span,
        )

    def _before_after(self, node: ast.BeforeAfter) -> ir.Expr:
        value = self._value(node.value)
        if not value.type.is_datelike:
            self._mismatch(node.value, f"`{node.direction}` needs a date, not {_a(value.type)}")
        if node.ago:
            point: ir.Expr = ir.RelativeDate(self._window(node.point), -1, span=node.point.span)
        else:
            point = self._value(node.point)
            if point.type != t.DATE:
                self._mismatch(
                    node.point,
                    f"expected a date or `N days ago`, not {_a(point.type)}",
                    "write a date as YYYY-MM-DD, or a time such as `90 days ago`",
                )
        op: ast.CompareOp
        match node.direction:
            case "before":
                op = "<"
            case "after":
                op = ">"
            case _:
                assert_never(node.direction)
        return ir.Compare(op, value, point, span=node.span)

    def _bought(self, node: ast.Bought | ast.UnitsBought) -> ir.Expr:
        """The last purchase date in a category, or (`units bought`) the quantity bought on that
        date. Its category is checked against the configuration: no line column to tell a
        category by, or a category the configuration's catalogue names nowhere while it names
        some, is a warning (RR210): a `--products` file may name more at run time, so it cannot
        be an error."""
        orders, products = self.config.orders, self.config.products
        units = isinstance(node, ast.UnitsBought)
        if orders.category is None and orders.sku is None:
            self._report(
                Code.RR210,
                f"`{_bought_text(node.category, units)}` is "
                f"{'always missing' if units else 'never true'}: the orders export has no "
                "category to tell purchases by",
                node.span,
                "name the orders' line columns under [orders] in retentionrules.toml, e.g. "
                '`category = "category"` (or `sku` with a catalogue giving each sku a category)',
            )
        else:
            known = {*(k.strip(BLANKS) for k in products.category)}
            known |= {p.category for p in products.sku.values() if p.category is not None}
            if known and node.category not in known:
                self._report(
                    Code.RR210,
                    f"unknown category {_quoted(node.category)}: the catalogue in "
                    "retentionrules.toml names no such category",
                    node.span,
                    _did_you_mean_category(node.category, sorted(known), units)
                    or f"categories named there: {', '.join(map(_quoted, sorted(known)))}",
                )
        if units:
            return ir.UnitsBought(node.category, span=node.span)
        return ir.Bought(node.category, span=node.span)

    def _mismatch(self, node: ast.Node, message: str, hint: str | None = None) -> NoReturn:
        self._report(Code.RR202, message, node.span, hint)
        raise _Invalid


# ---------------------------------------------------------------- helpers


def _number_problem(value: Decimal) -> str | None:
    """Why a number literal is beyond limits.NUMBER_DIGITS, or None. Zeros that do not change
    the value (`0897.50`) are not counted: `fmt` drops them, and must not change a verdict."""
    digits, exponent = list(value.as_tuple().digits), value.as_tuple().exponent
    decimals = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    while decimals and len(digits) > 1 and digits[-1] == 0:
        digits.pop()
        decimals -= 1
    while len(digits) > 1 and digits[0] == 0:
        digits.pop(0)
    if len(digits) > NUMBER_DIGITS:
        return f"has {len(digits):,} significant digits; at most {NUMBER_DIGITS} are allowed"
    if decimals > NUMBER_DIGITS:
        return f"has {decimals:,} digits after the point; at most {NUMBER_DIGITS} are allowed"
    return None


def _first(rule: ast.Rule, kind: type[_Node]) -> _Node | None:
    """The rule's first clause of this kind."""
    return next((c for c in rule.clauses if isinstance(c, kind)), None)


def _a(type_: t.Type) -> str:
    if type_.kind is t.Kind.ENUM:
        return f"a {type_.enum}"
    return {
        "number": "a number",
        "string": "text",
        "bool": "true/false",
        "date": "a date",
        "anniversary": "an anniversary date",
        "duration": "a duration",
    }[type_.kind.value]


def _clause_word(clause: ast.Clause) -> str:
    return {
        ast.When: "when",
        ast.Then: "then",
        ast.Priority: "priority",
        ast.Cap: "cap",
        ast.Holdout: "holdout",
        ast.OncePerHousehold: "once per household",
        ast.MaxPerRun: "max",
    }[type(clause)]


def _holiday_hint(word: str) -> str | None:
    """A statutory holiday is a field once the project's `[calendar]` names it."""
    if word not in HOLIDAY_NAMES:
        return None
    return (
        f"holidays are named dates: add `{word} = {{ holiday = \"{word}\" }}` under "
        "[calendar] in retentionrules.toml"
    )


def _quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _bought_text(category: str, units: bool = False) -> str:
    return f"{'units ' if units else ''}bought {_quoted(category)}"


def _did_you_mean_category(category: str, known: list[str], units: bool) -> str | None:
    close = difflib.get_close_matches(category, known, n=1, cutoff=0.6)
    if not close:
        lowered = {k.lower(): k for k in known}  # `Diapers` for `diapers`: too far for difflib
        close = [lowered[category.lower()]] if category.lower() in lowered else []
    return f"did you mean `{_bought_text(close[0], units)}`?" if close else None


def _did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None
