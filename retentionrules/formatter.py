"""The canonical layout of rule files (`retentionrules fmt`).

Printing goes from the AST, so formatting cannot change meaning; comments are put back next to
the clause they were written beside. Output is a fixed point: formatting it again changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from . import ast

INDENT = "  "

_PREDICATES = (
    ast.Compare,
    ast.In,
    ast.Between,
    ast.IsMissing,
    ast.Contains,
    ast.StartsWith,
    ast.Within,
    ast.BeforeAfter,
)
_ARITH_LEVEL = {"+": 5, "-": 5, "*": 6, "/": 6}


def _level(node: ast.Expr) -> int:
    """Binding strength, loosest first: or, and, not, predicates, + -, * /, unary minus, atoms."""
    if isinstance(node, ast.Or):
        return 1
    if isinstance(node, ast.And):
        return 2
    if isinstance(node, ast.Not):
        return 3
    if isinstance(node, _PREDICATES):
        return 4
    if isinstance(node, ast.Arith):
        return _ARITH_LEVEL[node.op]
    if isinstance(node, ast.Neg):
        return 7
    return 8


def format_expr(node: ast.Expr, at_least: int = 0) -> str:
    text = _expr(node)
    return f"({text})" if _level(node) < at_least else text


def _expr(node: ast.Expr) -> str:
    if isinstance(node, ast.Or):
        return " or ".join(format_expr(o, 2) for o in node.operands)
    if isinstance(node, ast.And):
        return " and ".join(format_expr(o, 3) for o in node.operands)
    if isinstance(node, ast.Not):
        return f"not {format_expr(node.operand, 3)}"
    if isinstance(node, ast.Compare):
        return f"{format_expr(node.left, 5)} {node.op} {format_expr(node.right, 5)}"
    if isinstance(node, ast.In):
        items = ", ".join(format_expr(i, 5) for i in node.items)
        return f"{format_expr(node.value, 5)} {'not in' if node.negated else 'in'} [{items}]"
    if isinstance(node, ast.Between):
        parts = (format_expr(p, 5) for p in (node.value, node.low, node.high))
        return "{} between {} and {}".format(*parts)
    if isinstance(node, ast.IsMissing):
        return f"{format_expr(node.value, 5)} is {'present' if node.negated else 'missing'}"
    if isinstance(node, ast.Contains):
        return f"{format_expr(node.value, 5)} contains {format_expr(node.needle, 5)}"
    if isinstance(node, ast.StartsWith):
        return f"{format_expr(node.value, 5)} starts with {format_expr(node.prefix, 5)}"
    if isinstance(node, ast.Within):
        upcoming = "next " if node.upcoming else ""
        return f"{format_expr(node.value, 5)} within {upcoming}{format_expr(node.window, 5)}"
    if isinstance(node, ast.BeforeAfter):
        ago = " ago" if node.ago else ""
        return f"{format_expr(node.value, 5)} {node.direction} {format_expr(node.point, 5)}{ago}"
    if isinstance(node, ast.Arith):
        level = _ARITH_LEVEL[node.op]
        return f"{format_expr(node.left, level)} {node.op} {format_expr(node.right, level + 1)}"
    if isinstance(node, ast.Neg):
        return f"-{format_expr(node.operand, 7)}"
    return format_literal(node)


def format_literal(node: ast.Expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Number):
        return _number(node.value)
    if isinstance(node, ast.String):
        escaped = node.value.replace("\\", "\\\\").replace('"', '\\"')
        for char, escape in (("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")):
            escaped = escaped.replace(char, escape)
        return f'"{escaped}"'
    if isinstance(node, ast.Bool):
        return "true" if node.value else "false"
    if isinstance(node, ast.Date):
        return node.value.isoformat()
    if isinstance(node, ast.Duration):
        return f"{node.amount} {node.unit}{'' if node.amount == 1 else 's'}"
    raise TypeError(f"not an expression: {node!r}")  # pragma: no cover - the AST is closed


def _number(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def format_action(action: ast.Action) -> str:
    text = f"{action.kind} {action.template}"
    if action.channel:
        text += f" via {action.channel}"
    if action.params:
        text += " with " + ", ".join(f"{p.name} = {format_literal(p.value)}" for p in action.params)
    return text


def format_clause(clause: ast.Clause) -> str:
    if isinstance(clause, ast.When):
        return f"when {format_expr(clause.condition)}"
    if isinstance(clause, ast.Then):
        return f"then {format_action(clause.action)}"
    if isinstance(clause, ast.Priority):
        return f"priority {clause.value}"
    if isinstance(clause, ast.Cap):
        return f"cap {clause.count} per {format_literal(clause.per)}"
    if isinstance(clause, ast.Holdout):
        return f"holdout {_number(clause.percent)}%"
    if isinstance(clause, ast.OncePerHousehold):
        return "once per household"
    return f"max {clause.count} per run"


# ---------------------------------------------------------------- statements, with source lines


@dataclass
class _Line:
    text: str
    first: int  # source lines this output line stands for
    last: int
    indent: str = ""
    comments_before: list[ast.Comment] = field(default_factory=list)
    trailing: ast.Comment | None = None


def _clause_order(clause: ast.Clause) -> int:
    return ast.CLAUSE_ORDER.index(type(clause))


def _statement_lines(statement: ast.Statement) -> list[_Line]:
    span = statement.span
    if isinstance(statement, ast.Segment):
        text = f"segment {statement.name} = {format_expr(statement.condition)}"
        return [_Line(text, span.line, span.end_line)]
    clauses = sorted(statement.clauses, key=_clause_order)
    if statement.name is None:
        head = [c for c in clauses if isinstance(c, (ast.When, ast.Then))][:2]
        rest = [c for c in clauses if not any(c is h for h in head)]
        text = " ".join(format_clause(c) for c in head)
        first = min(c.span.line for c in head)
        lines = [_Line(text, first, max(c.span.end_line for c in head))]
    else:
        header = f"rule {statement.name}"
        if statement.description is not None:
            header += " " + format_literal(ast.String(statement.description))
        rest = clauses
        lines = [_Line(header, span.line, span.line)]
    lines.extend(_Line(format_clause(c), c.span.line, c.span.end_line, INDENT) for c in rest)
    return lines


def format_statement(statement: ast.Statement) -> str:
    return "\n".join(line.indent + line.text for line in _statement_lines(statement))


def format_file(rule_file: ast.RuleFile, source: str) -> str:
    """Canonical text of a parsed file; `source` tells where blank lines separated comments."""
    blocks = [_statement_lines(s) for s in rule_file.statements]
    lines = [line for block in blocks for line in block]
    footer = _place_comments(lines, rule_file.comments)
    source_lines = source.split("\n")
    out: list[str] = []
    previous: ast.Statement | None = None
    for statement, block in zip(rule_file.statements, blocks, strict=True):
        # Definitions of segments stay together; everything else is one blank line apart.
        grouped = isinstance(previous, ast.Segment) and isinstance(statement, ast.Segment)
        if out and not (grouped and not block[0].comments_before):
            out.append("")
        previous = statement
        for line in block:
            out.extend(
                _render_comments(line.comments_before, line.first, line.indent, source_lines)
            )
            trailing = f"  {line.trailing.text}" if line.trailing else ""
            out.append(f"{line.indent}{line.text}{trailing}")
    if footer:
        if out:
            out.append("")
        out.extend(_render_comments(footer, None, "", source_lines))
    return "\n".join(out) + "\n" if out else ""


def _place_comments(lines: list[_Line], comments: tuple[ast.Comment, ...]) -> list[ast.Comment]:
    """Attach each comment to an output line; return those that come after all code."""
    by_start = sorted(lines, key=lambda line: line.first)
    footer: list[ast.Comment] = []
    for comment in comments:
        row = comment.span.line
        if not comment.own_line:
            owner = max(
                (ln for ln in by_start if ln.first <= row <= ln.last),
                key=lambda ln: ln.first,
                default=None,
            )
            if owner is not None and owner.trailing is None:
                owner.trailing = comment
                continue
            if owner is not None:
                owner.comments_before.append(comment)
                continue
        following = next((ln for ln in by_start if ln.first > row), None)
        (following.comments_before if following else footer).append(comment)
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
