"""The canonical layout of rule files (`retentionrules fmt`).

Printing goes from the AST, so formatting cannot change meaning; comments are put back next to
the code they were written beside. Output is a fixed point: formatting it again changes nothing.

A statement prints as *logical lines*: a segment, a rule header (`rule NAME "description"`), one
clause, or a one-liner's `when ... then ...` head. In the source a logical line may span several
physical lines, or share one with others; `fmt` writes each on a line of its own. A trailing
comment belongs to the logical line it is written beside (`beside`), which is also what a
`# noqa` covers, so formatting cannot change what a `# noqa` silences.
"""

from __future__ import annotations

import bisect
import sys
from dataclasses import dataclass, field
from decimal import Decimal

from . import ast
from .diagnostics import noqa_codes

if sys.version_info >= (3, 11):
    from typing import assert_never
else:  # pragma: no cover - Python 3.10
    from typing_extensions import assert_never

INDENT = "  "

_ARITH_LEVEL = {"+": 5, "-": 5, "*": 6, "/": 6}


def _level(node: ast.Expr) -> int:
    """Binding strength, loosest first: or, and, not, predicates, + -, * /, unary minus, atoms."""
    match node:
        case ast.Or():
            return 1
        case ast.And():
            return 2
        case ast.Not():
            return 3
        case (
            ast.Compare()
            | ast.In()
            | ast.Between()
            | ast.IsMissing()
            | ast.Contains()
            | ast.StartsWith()
            | ast.Within()
            | ast.BeforeAfter()
        ):
            return 4
        case ast.Arith():
            return _ARITH_LEVEL[node.op]
        case ast.Neg():
            return 7
        case (
            ast.Name() | ast.Number() | ast.String() | ast.Bool() | ast.Date() | ast.Duration()
            | ast.Bought() | ast.UnitsBought()
        ):
            return 8
        case _:
            assert_never(node)


def format_expr(node: ast.Expr, at_least: int = 0) -> str:
    text = _expr(node)
    return f"({text})" if _level(node) < at_least else text


def _expr(node: ast.Expr) -> str:
    match node:
        case ast.Or():
            return " or ".join(format_expr(o, 2) for o in node.operands)
        case ast.And():
            return " and ".join(format_expr(o, 3) for o in node.operands)
        case ast.Not():
            return f"not {format_expr(node.operand, 3)}"
        case ast.Compare():
            return f"{format_expr(node.left, 5)} {node.op} {format_expr(node.right, 5)}"
        case ast.In():
            items = ", ".join(format_expr(i, 5) for i in node.items)
            return f"{format_expr(node.value, 5)} {'not in' if node.negated else 'in'} [{items}]"
        case ast.Between():
            parts = (format_expr(p, 5) for p in (node.value, node.low, node.high))
            return "{} between {} and {}".format(*parts)
        case ast.IsMissing():
            return f"{format_expr(node.value, 5)} is {'present' if node.negated else 'missing'}"
        case ast.Contains():
            return f"{format_expr(node.value, 5)} contains {format_expr(node.needle, 5)}"
        case ast.StartsWith():
            return f"{format_expr(node.value, 5)} starts with {format_expr(node.prefix, 5)}"
        case ast.Within():
            upcoming = "next " if node.upcoming else ""
            return f"{format_expr(node.value, 5)} within {upcoming}{format_expr(node.window, 5)}"
        case ast.BeforeAfter():
            ago = " ago" if node.ago else ""
            point = format_expr(node.point, 5)
            return f"{format_expr(node.value, 5)} {node.direction} {point}{ago}"
        case ast.Arith():
            level = _ARITH_LEVEL[node.op]
            return f"{format_expr(node.left, level)} {node.op} {format_expr(node.right, level + 1)}"
        case ast.Neg():
            return f"-{format_expr(node.operand, 7)}"
        case ast.Name():
            return node.id
        case ast.Number():
            return _number(node.value)
        case ast.String():
            return _string(node.value)
        case ast.Bool():
            return "true" if node.value else "false"
        case ast.Date():
            return node.value.isoformat()
        case ast.Duration():
            return _duration(node)
        case ast.Bought():
            return f"bought {_string(node.category)}"
        case ast.UnitsBought():
            return f"units bought {_string(node.category)}"
        case _:
            assert_never(node)


def _string(value: str) -> str:
    """Double quotes; escapes for the characters a quoted text cannot hold as they are."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    for char, escape in (("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")):
        escaped = escaped.replace(char, escape)
    return f'"{escaped}"'


def _duration(node: ast.Duration) -> str:
    return f"{_whole(node.amount)} {node.unit}{'' if node.amount == 1 else 's'}"


def _number(value: Decimal) -> str:
    """Every digit of the value, exactly: `format(..., "f")` never rounds (Decimal.normalize
    would, to the context's 28 digits). Only zeros that do not change the value are dropped:
    leading ones and trailing ones after the point (`007.50` is written `7.5`)."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "0", "") else text


def _whole(value: int) -> str:
    """An integer of any size: `str(int)` refuses more than 4,300 digits, Decimal does not."""
    return format(Decimal(value), "f")


def format_action(action: ast.Action) -> str:
    text = f"{action.kind} {action.template}"
    if action.channel:
        text += f" via {action.channel}"
    if action.params:
        text += " with " + ", ".join(f"{p.name} = {format_expr(p.value)}" for p in action.params)
    return text


def format_clause(clause: ast.Clause) -> str:
    match clause:
        case ast.When():
            return f"when {format_expr(clause.condition)}"
        case ast.Then():
            return f"then {format_action(clause.action)}"
        case ast.Priority():
            return f"priority {_whole(clause.value)}"
        case ast.Cap():
            return f"cap {_whole(clause.count)} per {_duration(clause.per)}"
        case ast.Holdout():
            return f"holdout {_number(clause.percent)}%"
        case ast.OncePerHousehold():
            return "once per household"
        case ast.MaxPerRun():
            return f"max {_whole(clause.count)} per run"
        case _:
            assert_never(clause)


# ---------------------------------------------------------------- logical lines


@dataclass(frozen=True)
class LogicalLine:
    """One line of fmt's output and the source it stands for: where it starts in the source
    (line, column), and the last source line of its statement."""

    text: str
    start: tuple[int, int]
    statement_end: int
    indent: str = ""


def _clause_order(clause: ast.Clause) -> int:
    return ast.CLAUSE_ORDER.index(type(clause))


def _start(span: ast.Span) -> tuple[int, int]:
    return (span.line, span.column)


def _statement_lines(statement: ast.Statement) -> list[LogicalLine]:
    end = statement.span.end_line
    match statement:
        case ast.Segment():
            text = f"segment {statement.name} = {format_expr(statement.condition)}"
            return [LogicalLine(text, _start(statement.span), end)]
        case ast.Rule(name=None, clauses=(ast.When() as when, ast.Then() as then, *others)):
            # The parser puts a one-liner's own `when` and `then` first (the grammar's
            # `oneliner`); later clauses, even a second `when`, go on indented lines (the head
            # must stay `when ... then ...`).
            rest = sorted(others, key=_clause_order)
            head = f"{format_clause(when)} {format_clause(then)}"
            lines = [LogicalLine(head, min(_start(when.span), _start(then.span)), end)]
        case ast.Rule(name=str() as name):
            header = f"rule {name}"
            if statement.description is not None:
                header += " " + _string(statement.description)
            rest = sorted(statement.clauses, key=_clause_order)
            lines = [LogicalLine(header, _start(statement.span), end)]
        case ast.Rule():  # no name, and not `when ... then ...` first: no parse makes one
            raise ValueError("a rule without a name must start with its `when` and `then`")
        case _:
            assert_never(statement)
    lines.extend(LogicalLine(format_clause(c), _start(c.span), end, INDENT) for c in rest)
    return lines


def format_statement(statement: ast.Statement) -> str:
    return "\n".join(line.indent + line.text for line in _statement_lines(statement))


@dataclass(frozen=True)
class Layout:
    """The logical lines of a file in source order, to find which one a position is on."""

    lines: tuple[LogicalLine, ...]
    starts: tuple[tuple[int, int], ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "starts", tuple(line.start for line in self.lines))

    def beside(self, line: int, column: int) -> int | None:
        """The index of the logical line a position is on: the last one that starts at or
        before it, if the position is not past that line's statement.

        So a trailing comment is beside the logical line whose code it follows; when several
        share a physical line, the last of them."""
        index = bisect.bisect_right(self.starts, (line, column)) - 1
        if index < 0 or line > self.lines[index].statement_end:
            return None
        return index

    def following(self, line: int) -> int | None:
        """The index of the first logical line that starts on a later physical line."""
        index = bisect.bisect_right(self.starts, (line, sys.maxsize))
        return index if index < len(self.lines) else None


def logical_lines(rule_file: ast.RuleFile) -> Layout:
    """Every logical line of a parsed file, in source order: what a `# noqa` is beside, for the
    checker (`api._noqa_scopes`) as for `fmt`."""
    return _laid_out([_statement_lines(s) for s in rule_file.statements])[0]


def _laid_out(blocks: list[list[LogicalLine]]) -> tuple[Layout, list[tuple[int, int]]]:
    """The one construction of a file's Layout, from each statement's logical lines; with, for
    each line of the layout, where it is in `blocks` (statement, line), which `fmt` prints from."""
    keys = sorted(
        ((b, i) for b, block in enumerate(blocks) for i in range(len(block))),
        key=lambda key: blocks[key[0]][key[1]].start,
    )
    return Layout(tuple(blocks[b][i] for b, i in keys)), keys


# ---------------------------------------------------------------- whole files, with comments


@dataclass
class _Placed:
    """The comments around one output line."""

    before: list[ast.Comment] = field(default_factory=list)
    trailing: list[ast.Comment] = field(default_factory=list)


def format_file(rule_file: ast.RuleFile, source: str) -> str:
    """Canonical text of a parsed file; `source` (normalized, as parsed) tells where blank lines
    separated comments."""
    blocks = [_statement_lines(s) for s in rule_file.statements]
    layout, keys = _laid_out(blocks)
    placed = [_Placed() for _ in keys]
    footer = _place_comments(layout, placed, rule_file.comments)
    around = dict(zip(keys, placed, strict=True))
    source_lines = source.split("\n")
    out: list[str] = []
    previous: ast.Statement | None = None
    for b, (statement, block) in enumerate(zip(rule_file.statements, blocks, strict=True)):
        # Definitions of segments stay together; everything else is one blank line apart.
        grouped = isinstance(previous, ast.Segment) and isinstance(statement, ast.Segment)
        if out and not (grouped and not around[(b, 0)].before):
            out.append("")
        previous = statement
        for i, line in enumerate(block):
            comments = around[(b, i)]
            out.extend(_render_comments(comments.before, line.start[0], line.indent, source_lines))
            trailing = "  ".join(c.text for c in comments.trailing)
            out.append(f"{line.indent}{line.text}" + (f"  {trailing}" if trailing else ""))
    if footer:
        if out:
            out.append("")
        out.extend(_render_comments(footer, None, "", source_lines))
    return "\n".join(out) + "\n" if out else ""


def _place_comments(
    layout: Layout, placed: list[_Placed], comments: tuple[ast.Comment, ...]
) -> list[ast.Comment]:
    """Attach each comment to an output line; return those that come after all code.

    A trailing comment stays beside its logical line. When several are beside one, the first
    stays and the others go on their own lines above it, except those whose `noqa` silences
    something (`diagnostics.noqa_codes`, the checker's own test): they are appended to it, so
    that they keep covering that line. Own-line comments go above the next line."""
    footer: list[ast.Comment] = []
    for comment in comments:
        span = comment.span
        owner = None if comment.own_line else layout.beside(span.line, span.column)
        if owner is not None:
            at = placed[owner]
            if not at.trailing or noqa_codes(comment.text):
                at.trailing.append(comment)
            else:
                at.before.append(comment)
            continue
        following = layout.following(span.line)
        (placed[following].before if following is not None else footer).append(comment)
    return footer


def _render_comments(
    comments: list[ast.Comment], code_line: int | None, indent: str, source: list[str]
) -> list[str]:
    """Own-line comments, keeping one blank line wherever the source had blank lines."""
    out: list[str] = []
    for i, comment in enumerate(comments):
        out.append(f"{indent}{comment.text}")
        nxt = comments[i + 1].span.line if i + 1 < len(comments) else code_line
        if nxt is not None and _blank_between(source, comment.span.line, nxt):
            out.append("")
    return out


def _blank_between(source: list[str], after: int, before: int) -> bool:
    return any(not source[i - 1].strip() for i in range(after + 1, before) if 0 < i <= len(source))
