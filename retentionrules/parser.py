"""Source text -> `ast.RuleFile` plus syntax diagnostics. No `lark.Tree` leaves this module.

A file is first cut into statements by the offside rule: a statement starts on a line whose first
character is not blank and not `#`; indented lines continue it. Each statement is parsed on its
own, so one broken rule does not hide the problems in the next one (all errors in one pass).
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import os
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, cast

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.tree import Meta

from . import ast
from .diagnostics import Code, Diagnostic
from .limits import MAX_NESTING, allow_nesting

allow_nesting()  # at import too: raised mid-run, it surprises tools that save and restore it


@dataclass(frozen=True, slots=True)
class ParseResult:
    file: ast.RuleFile
    diagnostics: tuple[Diagnostic, ...]


@dataclass(frozen=True, slots=True)
class _Chunk:
    text: str
    first_line: int  # 1-based line of the chunk's first line
    offset: int  # character offset of the chunk in the file
    is_statement: bool  # False for a trailing run of comments/blank lines


def _cache_file() -> str | bool:
    """Where Lark keeps the built parser between runs: loading it is ten times faster than
    building it, which every command pays at start-up. Lark rebuilds it when the grammar or Lark
    changes. The user's own cache folder, never a shared temporary one: the cache is a pickle."""
    folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "retentionrules"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False  # no cache: build the parser every time
    return str(folder / "grammar.lark.cache")


@functools.cache
def _lark() -> Lark:
    grammar = (Path(__file__).with_name("grammar.lark")).read_text(encoding="utf-8")
    return Lark(
        grammar,
        parser="lalr",
        propagate_positions=True,
        maybe_placeholders=True,
        cache=_cache_file(),
    )


BOM = "\ufeff"


def normalize(source: str) -> str:
    """The text every position refers to: without a leading byte order mark, and with CRLF and a
    lone CR read as LF (as editors and Python's universal newlines read them).

    `parse` applies it itself; callers that keep the text to show lines or cut spans out of it
    (`api.check_sources`) keep the normalized text, so that spans and text agree. It is
    idempotent (so a second mark, invisible too, goes with the first): normalizing twice must
    not move a position."""
    source = source.lstrip(BOM)
    if "\r" in source:
        source = source.replace("\r\n", "\n").replace("\r", "\n")
    return source


def parse(source: str, path: str = "<string>") -> ParseResult:
    """Parse a whole rule file, collecting every syntax error rather than stopping at the first.

    Positions refer to `normalize(source)`."""
    statements: list[ast.Statement] = []
    comments: list[ast.Comment] = []
    diagnostics: list[Diagnostic] = []
    allow_nesting()
    for chunk in _split_statements(normalize(source)):
        comments.extend(_comments(chunk))
        if not chunk.is_statement:
            diagnostics.extend(_orphan_lines(chunk, path))
            continue
        try:
            tree = _lark().parse(chunk.text)
        except UnexpectedInput as error:
            diagnostics.append(_syntax_diagnostic(error, chunk, path))
            continue
        too_deep = _too_deep(tree, chunk, path)
        if too_deep is not None:
            diagnostics.append(too_deep)
            continue
        builder = _Builder(chunk, path)
        statement = builder.transform(tree)
        diagnostics.extend(builder.diagnostics)
        if not builder.reserved:  # a statement with a misplaced keyword is not what was meant
            statements.append(statement)
    rule_file = ast.RuleFile(path, tuple(statements), tuple(comments))
    return ParseResult(rule_file, tuple(diagnostics))


# Operators: each nests its operands one level deeper (limits.MAX_NESTING). Parentheses and the
# literals, names and lists under operators are not levels of their own, and neither is an `and`
# directly inside an `and` (nor an `or` inside an `or`): the syntax tree makes them one chain.
_OPERATORS = frozenset(
    {
        *("or_expr", "and_expr", "not_", "compare", "in_", "not_in", "between", "is_missing"),
        *("is_present", "contains", "starts_with", "within", "before_after"),
        *("add", "sub", "mul", "div", "neg"),
    }
)
_CHAINS = frozenset({"or_expr", "and_expr"})


def _too_deep(tree: Tree[Token], chunk: _Chunk, path: str) -> Diagnostic | None:
    """RR100 for a statement whose operators nest deeper than limits.MAX_NESTING, measured
    before anything recurses over it (a loop with its own stack, so any depth is measured)."""
    deepest = 0
    pending: list[tuple[Tree[Token], int, str]] = [(tree, 0, "")]
    while pending:
        node, depth, parent = pending.pop()
        if node.data in _OPERATORS and not (node.data in _CHAINS and node.data == parent):
            depth += 1
        deepest = max(deepest, depth)
        pending.extend((c, depth, node.data) for c in node.children if isinstance(c, Tree))
    if deepest <= MAX_NESTING:
        return None
    line = chunk.first_line + _first_code_line(chunk) - 1
    width = len(chunk.text.split("\n")[_first_code_line(chunk) - 1].rstrip())
    return Diagnostic(
        Code.RR100,
        f"this statement nests {deepest:,} levels deep; at most {MAX_NESTING:,} are allowed",
        path,
        ast.Span(line, 1, line, width + 1),
        "name parts of the condition as segments (`segment part = ...`) and use their names",
    )


# ---------------------------------------------------------------- splitting into statements


def source_lines(source: str) -> list[str]:
    """Lines with their endings, split on `\n` only: the line numbering Lark and editors use."""
    return re.findall(r"[^\n]*\n|[^\n]+", source)


def _starts_statement(line: str) -> bool:
    return bool(line) and not line[0].isspace() and not line.startswith("#")


def _split_statements(source: str) -> list[_Chunk]:
    """Cut at statement starts; comment lines at column 1 just before a statement go with it."""
    lines = source_lines(source)
    starts = [i for i, line in enumerate(lines) if _starts_statement(line)]
    # A run of blank lines and column-1 comments belongs to the statement that follows it.
    cut_points = []
    for start in starts:
        cut = start
        while cut > 0 and (not lines[cut - 1].strip() or lines[cut - 1].startswith("#")):
            cut -= 1
        cut_points.append(cut)
    line_offsets = [0, *itertools.accumulate(len(line) for line in lines)]
    # What comes before the first statement (its own comments aside) continues no statement.
    first = cut_points[0] if cut_points else len(lines)
    chunks = []
    if first > 0:
        chunks.append(_Chunk("".join(lines[:first]), 1, 0, is_statement=False))
    bounds = [*cut_points, len(lines)]
    for begin, end in itertools.pairwise(bounds):
        text = "".join(lines[begin:end])
        chunks.append(_Chunk(text, begin + 1, line_offsets[begin], is_statement=True))
    return chunks


def _orphan_lines(chunk: _Chunk, path: str) -> list[Diagnostic]:
    """Code in the indented lines before the first statement would continue nothing: it is an
    error, not text to skip (the parser once dropped such a rule, and fmt deleted it)."""
    for number, line in enumerate(chunk.text.split("\n"), start=chunk.first_line):
        code = _code(line)
        if code.strip():
            column = len(code) - len(code.lstrip()) + 1
            word = code.split()[0]
            return [
                Diagnostic(
                    Code.RR100,
                    "this line is indented, but no statement comes before it to continue",
                    path,
                    ast.Span(number, column, number, column + len(word)),
                    "a statement starts at the beginning of a line: remove the indentation",
                )
            ]
    return []


_STRING = re.compile(r"\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*'")


def _code(line: str) -> str:
    """The code of one line: its quoted text masked (with `x`, so that columns and the presence of
    code stay) and its comment cut off. The one place that decides where a comment starts: a `#`
    inside quotes (`"a#noqa"`) is text, not a comment."""
    masked = _STRING.sub(lambda m: "x" * len(m.group()), line)
    return masked.split("#", 1)[0]


def _comments(chunk: _Chunk) -> list[ast.Comment]:
    found = []
    for number, line in enumerate(chunk.text.split("\n"), start=chunk.first_line):
        start = len(_code(line))
        if start < len(line):
            span = ast.Span(number, start + 1, number, len(line) + 1)
            own_line = not line[:start].strip()
            found.append(ast.Comment(line[start:].rstrip(), own_line, span=span))
    return found


# ---------------------------------------------------------------- reserved words

# The keywords of the grammar (every word a terminal of grammar.lark spells), listed in
# docs/language.md; a test checks all three agree. The grammar lexes by context, so a keyword the
# parser cannot take at a spot is read as a NAME there (`then send x` followed by an indented
# `rule b` read as the template `x_rule_b`); the builder refuses every such NAME instead.
RESERVED = frozenset(
    (
        "rule", "segment", "when", "then", "send", "call", "tag", "via", "with", "and", "or", "not",
        "in", "between", "is", "missing", "present", "contains", "starts", "within", "next",
        "before", "after", "ago", "true", "false", "priority", "cap", "per", "holdout", "once",
        "household", "max", "run", "day", "days", "week", "weeks", "month", "months", "year",
        "years", "bought",
    )
)
_STATEMENT_WORDS = ("rule", "segment", "when")


# ---------------------------------------------------------------- syntax errors in plain words

_TOKEN_WORDS = {
    "VALUE": 'a field or a value (a number, "text", a date)',
    "NAME": "a name",
    "NUMBER": "a number",
    "STRING": 'a quoted text ("...")',
    "DATE": "a date (YYYY-MM-DD)",
    "UNIT": "a unit (days, weeks, months, years)",
    "ACTION_KIND": "an action (`send`, `call` or `tag`)",
    "BEFORE_AFTER": "`before` or `after`",
    "NEXT": "`next`",
    "AGO": "`ago`",
    "UNITS_BOUGHT": "`units bought`",
    "$END": "the end of the statement",
}
# Terminals listed first when several are possible, so the likeliest fix is read first.
_PREFERRED = ("THEN", "WHEN", "AND", "OR", "EQUAL", "NAME", "NUMBER", "STRING", "ACTION_KIND")


def _word(name: str) -> str:
    if name in _TOKEN_WORDS:
        return _TOKEN_WORDS[name]
    terminal = next((t for t in _lark().terminals if t.name == name), None)
    if terminal is not None and terminal.pattern.type == "str":
        return f"`{terminal.pattern.value}`"
    return name.lower()


_VALUE_START = {
    "NAME", "NUMBER", "STRING", "DATE", "TRUE", "FALSE", "LPAR", "MINUS", "BOUGHT", "UNITS_BOUGHT"
}


def _describe_expected(names: set[str]) -> str:
    if {"NAME", "NUMBER", "STRING"} <= names:
        names = (names - _VALUE_START) | {"VALUE"}
    ordered = sorted(
        names, key=lambda n: (_PREFERRED.index(n) if n in _PREFERRED else len(_PREFERRED), n)
    )
    words = list(dict.fromkeys(_word(name) for name in ordered))
    shown, rest = words[:6], words[6:]
    if len(shown) == 1:
        return shown[0]
    tail = f" or {shown[-1]}" if not rest else f", {shown[-1]} or another keyword"
    return ", ".join(shown[:-1]) + tail


def _expected(error: UnexpectedToken) -> set[str]:
    """The exact set of acceptable tokens (LALR's own list is widened by default reductions)."""
    try:
        accepts = error.interactive_parser.accepts()  # type: ignore[no-untyped-call]
        return set(accepts) or set(error.expected)
    except Exception:
        return set(error.expected)


def _syntax_diagnostic(error: UnexpectedInput, chunk: _Chunk, path: str) -> Diagnostic:
    line = error.line + chunk.first_line - 1 if error.line > 0 else _last_line(chunk)
    column = error.column if error.column > 0 else 1
    hint = None
    if isinstance(error, UnexpectedToken) and error.token.type == "$END":
        message = f"the statement ends too early; expected {_describe_expected(_expected(error))}"
        line, column = _end_position(chunk)
    elif isinstance(error, UnexpectedToken):
        token = error.token
        expected = _expected(error)
        message = f"unexpected `{token}`; expected {_describe_expected(expected)}"
        hint = _hint_for(token, expected, chunk)
    elif isinstance(error, UnexpectedCharacters):
        char = chunk.text[error.pos_in_stream or 0]
        message = f"unexpected character {_show_char(char)}"
        ascii_char = ascii_for(char)
        if ascii_char is not None:
            hint = (
                f"{_show_char(char)} is a full-width character (as a Chinese input method "
                f"types it); use the ASCII character `{ascii_char}`"
            )
        else:
            hint = (
                'the language has names, numbers, "quoted text", dates and the operators '
                "= != < <= > >= + - * /"
            )
    elif isinstance(error, UnexpectedEOF):
        message = "the statement ends too early"
        line, column = _end_position(chunk)
    else:  # pragma: no cover - lark raises only the three above
        message = str(error)
    width = len(str(getattr(error, "token", " "))) or 1
    return Diagnostic(Code.RR100, message, path, ast.Span(line, column, line, column + width), hint)


# Punctuation a Chinese input method types in place of ASCII: curly quotes, the ideographic
# comma and full stop, corner brackets. The full-width forms (U+FF01-U+FF5E: `，＞（）＝`, digits)
# and the ideographic space are their ASCII characters under NFKC.
_LOOKALIKES = {"“": '"', "”": '"', "„": '"', "‘": '"', "’": '"', "、": ",", "。": ".",
               "【": "[", "】": "]", "「": '"', "」": '"', "『": '"', "』": '"', "《": "<",
               "》": ">"}  # fmt: skip


def ascii_for(char: str) -> str | None:
    """The ASCII character a full-width or Chinese punctuation character stands for, or None:
    `，` -> `,`, `“` -> `"`, `＞` -> `>`."""
    import unicodedata

    if char in _LOOKALIKES:
        return _LOOKALIKES[char]
    folded = unicodedata.normalize("NFKC", char)
    if folded != char and len(folded) == 1 and folded.isascii() and folded.isprintable():
        return folded
    return None


def _show_char(char: str) -> str:
    """A character as people can see it: invisible ones (a full-width space, a zero-width space,
    a bidirectional override) by their Unicode name."""
    if char.isprintable() and not char.isspace():
        return f"`{char}`"
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X}" + (f" ({name})" if name else "")


def _hint_for(token: Token, expected: set[str], chunk: _Chunk) -> str | None:
    text = str(token)
    if token.line == _first_code_line(chunk) and token.column == 1:
        return (
            "a statement starts with `rule`, `segment` or `when` at the start of a line; "
            "indent the lines that continue a rule"
        )
    if text in ("send", "call", "tag") and "THEN" in expected:
        return f"write `then {text} ...` after the condition"
    start = token.start_pos or 0
    if text == "=" and chunk.text[start - 1 : start] in ("=", "!", "<", ">"):
        return "compare with a single `=` (or `!=`, `<=`, `>=`)"
    before = chunk.text[: token.start_pos or 0]
    if expected == {"STRING"} and re.search(r"\bunits\s+bought\s*$", before):
        return (
            '`units bought` takes a category in quotes: `units bought "formula" >= 3` tests the '
            "quantity of the last purchase in a category"
        )
    if expected == {"STRING"} and re.search(r"\bbought\s*$", before):
        return (
            '`bought` takes a category in quotes: `bought "diapers" within 60 days` tests the '
            "last purchase in a category (a field cannot be named `bought`)"
        )
    if token.type != "NAME" and text.isidentifier() and "NAME" in expected:
        return f"`{text}` is a keyword of the language and cannot be used as a name here"
    return None


def _first_code_line(chunk: _Chunk) -> int:
    for i, line in enumerate(chunk.text.split("\n"), start=1):
        if _starts_statement(line):
            return i
    return 1


def _end_position(chunk: _Chunk) -> tuple[int, int]:
    lines = chunk.text.split("\n")
    for i in range(len(lines) - 1, -1, -1):
        code = _code(lines[i]).rstrip()
        if code:
            return chunk.first_line + i, len(code) + 1
    return chunk.first_line, 1


def _last_line(chunk: _Chunk) -> int:
    return _end_position(chunk)[0]


# ---------------------------------------------------------------- tree -> AST

_UNITS: dict[str, ast.DurationUnit] = {
    "day": "day",
    "days": "day",
    "week": "week",
    "weeks": "week",
    "month": "month",
    "months": "month",
    "year": "year",
    "years": "year",
}
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"', "'": "'"}


def _unquote(token: str) -> str:
    body = token[1:-1]
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body)


@v_args(meta=True)
class _Builder(Transformer[Token, ast.Statement]):
    """Turns one statement's Lark tree into AST nodes, shifting positions into file coordinates."""

    def __init__(self, chunk: _Chunk, path: str) -> None:
        super().__init__()
        self._chunk_lines = chunk.text.split("\n")
        self._line_shift = chunk.first_line - 1
        self._offset_shift = chunk.offset
        self._path = path
        self.diagnostics: list[Diagnostic] = []
        self.reserved = False  # a reserved word was used as a name

    def _name(self, token: Token, what: str, hint: str | None = None) -> str:
        """Every NAME of the grammar passes here: a reserved word is never a name."""
        word = str(token)
        if word in RESERVED:
            self.reserved = True
            before = self._chunk_lines[(token.line or 1) - 1][: (token.column or 1) - 1]
            if word in _STATEMENT_WORDS and before.strip() == "" and before:
                hint = (
                    f"a statement starts at the beginning of a line: to start a new one, "
                    f"remove the indentation before `{word}`"
                )
            self.diagnostics.append(
                Diagnostic(
                    Code.RR100,
                    f"`{word}` is a reserved word and cannot be {what}",
                    self._path,
                    self._span(token),
                    hint
                    or f"choose another name, e.g. `{word}_1` (the reserved words are listed in "
                    "docs/language.md)",
                )
            )
        return word

    # -- positions
    def _span(self, meta: Meta | Token) -> ast.Span:
        """Where `meta` (a tree's or a token's position) is in the file; none for an empty
        rule, or a token Lark made without a position."""
        if getattr(meta, "empty", False):
            return ast.NO_SPAN
        line, column, end_line, end_column = meta.line, meta.column, meta.end_line, meta.end_column
        start, end = meta.start_pos, meta.end_pos
        if None in (line, column, end_line, end_column, start, end):
            return ast.NO_SPAN
        assert line is not None and column is not None and end_line is not None
        assert end_column is not None and start is not None and end is not None
        return ast.Span(
            line + self._line_shift,
            column,
            end_line + self._line_shift,
            end_column,
            start + self._offset_shift,
            end + self._offset_shift,
        )

    def _whole(self, token: Token, what: str, minimum: int = 0) -> int:
        value = Decimal(str(token))
        if value != value.to_integral_value() or value < minimum:
            self.diagnostics.append(
                Diagnostic(
                    Code.RR101,
                    f"{what} must be a whole number of at least {minimum}, not {token}",
                    self._path,
                    self._span(token),
                )
            )
            return max(int(value), minimum)
        return int(value)

    # -- statements
    def start(self, meta: Meta, children: Sequence[Any]) -> ast.Statement:
        statement: ast.Statement = children[0]
        return statement

    def segment_def(self, meta: Meta, children: Sequence[Any]) -> ast.Segment:
        name, condition = children
        return ast.Segment(self._name(name, "a segment name"), condition, span=self._span(meta))

    def rule_def(self, meta: Meta, children: Sequence[Any]) -> ast.Rule:
        name, description, *clauses = children
        text = _unquote(description) if description is not None else None
        name = self._name(name, "a rule name")
        return ast.Rule(name, text, tuple(clauses), span=self._span(meta))

    def oneliner(self, meta: Meta, children: Sequence[Any]) -> ast.Rule:
        return ast.Rule(None, None, tuple(children), span=self._span(meta))

    # -- clauses
    def when_clause(self, meta: Meta, children: Sequence[Any]) -> ast.When:
        return ast.When(children[0], span=self._span(meta))

    def then_clause(self, meta: Meta, children: Sequence[Any]) -> ast.Then:
        return ast.Then(children[0], span=self._span(meta))

    def priority_clause(self, meta: Meta, children: Sequence[Any]) -> ast.Priority:
        return ast.Priority(self._whole(children[0], "a priority"), span=self._span(meta))

    def cap_clause(self, meta: Meta, children: Sequence[Any]) -> ast.Cap:
        count = self._whole(children[0], "a cap", minimum=1)
        return ast.Cap(count, children[1], span=self._span(meta))

    def holdout_clause(self, meta: Meta, children: Sequence[Any]) -> ast.Holdout:
        percent = Decimal(str(children[0]))
        if percent > 100:
            self.diagnostics.append(
                Diagnostic(
                    Code.RR101,
                    f"a holdout is a share from 0% to 100%, not {percent}%",
                    self._path,
                    self._span(children[0]),
                )
            )
        return ast.Holdout(percent, span=self._span(meta))

    def household_clause(self, meta: Meta, children: Sequence[Any]) -> ast.OncePerHousehold:
        return ast.OncePerHousehold(span=self._span(meta))

    def max_clause(self, meta: Meta, children: Sequence[Any]) -> ast.MaxPerRun:
        count = self._whole(children[0], "a volume limit", minimum=1)
        return ast.MaxPerRun(count, span=self._span(meta))

    # -- actions
    def action(self, meta: Meta, children: Sequence[Any]) -> ast.Action:
        kind, words, channel, params = children
        action = cast(ast.ActionKind, str(kind))  # the grammar's ACTION_KIND
        return ast.Action(action, words, channel, tuple(params or ()), span=self._span(meta))

    def words(self, meta: Meta, children: Sequence[Any]) -> str:
        joined = "_".join(str(word) for word in children)
        hint = f"write the template as one word, e.g. `{joined}`" if len(children) > 1 else None
        return "_".join(self._name(word, "part of a template name", hint) for word in children)

    def via(self, meta: Meta, children: Sequence[Any]) -> str:
        return self._name(children[0], "a channel name")

    def params(self, meta: Meta, children: Sequence[Any]) -> Sequence[ast.Param]:
        return children

    def param(self, meta: Meta, children: Sequence[Any]) -> ast.Param:
        name, value = children
        return ast.Param(self._name(name, "a parameter name"), value, span=self._span(meta))

    # -- literals
    def number(self, meta: Meta, children: Sequence[Any]) -> ast.Number:
        return ast.Number(Decimal(str(children[0])), span=self._span(meta))

    def negative_number(self, meta: Meta, children: Sequence[Any]) -> ast.Number:
        # copy_negate is exact; unary minus would round to the context's 28 digits
        return ast.Number(Decimal(str(children[0])).copy_negate(), span=self._span(meta))

    def string(self, meta: Meta, children: Sequence[Any]) -> ast.String:
        return ast.String(_unquote(children[0]), span=self._span(meta))

    def date(self, meta: Meta, children: Sequence[Any]) -> ast.Date:
        text = str(children[0])
        try:
            value = dt.date.fromisoformat(text)
        except ValueError:
            self.diagnostics.append(
                Diagnostic(
                    Code.RR101,
                    f"`{text}` is not a calendar date",
                    self._path,
                    self._span(meta),
                    "write dates as YYYY-MM-DD, e.g. 2026-11-22",
                )
            )
            value = dt.date(1970, 1, 1)
        return ast.Date(value, span=self._span(meta))

    def true(self, meta: Meta, children: Sequence[Any]) -> ast.Bool:
        return ast.Bool(True, span=self._span(meta))

    def false(self, meta: Meta, children: Sequence[Any]) -> ast.Bool:
        return ast.Bool(False, span=self._span(meta))

    def name(self, meta: Meta, children: Sequence[Any]) -> ast.Name:
        what = "a field, segment or value name"
        return ast.Name(self._name(children[0], what), span=self._span(meta))

    def bought(self, meta: Meta, children: Sequence[Any]) -> ast.Bought:
        return ast.Bought(_unquote(children[0]), span=self._span(meta))

    def units_bought(self, meta: Meta, children: Sequence[Any]) -> ast.UnitsBought:
        return ast.UnitsBought(_unquote(children[1]), span=self._span(meta))

    def duration(self, meta: Meta, children: Sequence[Any]) -> ast.Duration:
        amount = self._whole(children[0], "a duration")
        return ast.Duration(amount, _UNITS[str(children[1])], span=self._span(meta))

    # -- expressions
    def or_expr(self, meta: Meta, children: Sequence[Any]) -> ast.Or:
        return ast.Or(_flatten(ast.Or, children), span=self._span(meta))

    def and_expr(self, meta: Meta, children: Sequence[Any]) -> ast.And:
        return ast.And(_flatten(ast.And, children), span=self._span(meta))

    def not_(self, meta: Meta, children: Sequence[Any]) -> ast.Not:
        return ast.Not(children[0], span=self._span(meta))

    def compare_op(self, meta: Meta, children: Sequence[Any]) -> str:
        return str(children[0])

    def compare(self, meta: Meta, children: Sequence[Any]) -> ast.Compare:
        left, op, right = children
        return ast.Compare(op, left, right, span=self._span(meta))

    def in_(self, meta: Meta, children: Sequence[Any]) -> ast.In:
        return ast.In(children[0], children[1], span=self._span(meta))

    def not_in(self, meta: Meta, children: Sequence[Any]) -> ast.In:
        return ast.In(children[0], children[1], negated=True, span=self._span(meta))

    def list(self, meta: Meta, children: Sequence[Any]) -> tuple[ast.Expr, ...]:
        return tuple(c for c in children if c is not None)

    def between(self, meta: Meta, children: Sequence[Any]) -> ast.Between:
        return ast.Between(*children, span=self._span(meta))

    def is_missing(self, meta: Meta, children: Sequence[Any]) -> ast.IsMissing:
        return ast.IsMissing(children[0], span=self._span(meta))

    def is_present(self, meta: Meta, children: Sequence[Any]) -> ast.IsMissing:
        return ast.IsMissing(children[0], negated=True, span=self._span(meta))

    def contains(self, meta: Meta, children: Sequence[Any]) -> ast.Contains:
        return ast.Contains(*children, span=self._span(meta))

    def starts_with(self, meta: Meta, children: Sequence[Any]) -> ast.StartsWith:
        return ast.StartsWith(*children, span=self._span(meta))

    def within(self, meta: Meta, children: Sequence[Any]) -> ast.Within:
        value, upcoming, window = children
        return ast.Within(value, window, upcoming is not None, span=self._span(meta))

    def before_after(self, meta: Meta, children: Sequence[Any]) -> ast.BeforeAfter:
        value, direction, point, ago = children
        way = cast(Literal["before", "after"], str(direction))  # the grammar's BEFORE_AFTER
        return ast.BeforeAfter(value, way, point, ago is not None, span=self._span(meta))

    def add(self, meta: Meta, children: Sequence[Any]) -> ast.Arith:
        return ast.Arith("+", children[0], children[1], span=self._span(meta))

    def sub(self, meta: Meta, children: Sequence[Any]) -> ast.Arith:
        return ast.Arith("-", children[0], children[1], span=self._span(meta))

    def mul(self, meta: Meta, children: Sequence[Any]) -> ast.Arith:
        return ast.Arith("*", children[0], children[1], span=self._span(meta))

    def div(self, meta: Meta, children: Sequence[Any]) -> ast.Arith:
        return ast.Arith("/", children[0], children[1], span=self._span(meta))

    def neg(self, meta: Meta, children: Sequence[Any]) -> ast.Neg:
        return ast.Neg(children[0], span=self._span(meta))


def _flatten(
    kind: type[ast.And] | type[ast.Or], operands: Sequence[ast.Expr]
) -> tuple[ast.Expr, ...]:
    """`(a and b) and c` means `a and b and c`: keep one n-ary node per chain."""
    flat: list[ast.Expr] = []
    for operand in operands:
        if isinstance(operand, kind):
            flat.extend(operand.operands)
        else:
            flat.append(operand)
    return tuple(flat)
