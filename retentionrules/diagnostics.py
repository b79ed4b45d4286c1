"""Diagnostics are data: a stable code, a severity, a message, a span and an optional hint.

Every stage reports problems by returning these; renderers (`render.py`) turn them into text,
JSON, GitHub annotations or SARIF. The catalogue below is the single list of codes; the
documentation and the golden tests are checked against it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from .ast import NO_SPAN, Span


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Code:
    code: str
    severity: Severity
    title: str


def _catalogue(*codes: Code) -> dict[str, Code]:
    return {c.code: c for c in codes}


E, W = Severity.ERROR, Severity.WARNING
CODES = _catalogue(
    Code("RR001", E, "file cannot be read"),
    Code("RR100", E, "syntax error"),
    Code("RR101", E, "invalid number"),
    Code("RR102", E, "duplicate clause"),
    Code("RR103", E, "missing clause"),
    Code("RR200", E, "unknown field or segment"),
    Code("RR201", E, "unknown enumeration value"),
    Code("RR202", E, "type mismatch"),
    Code("RR203", E, "duplicate rule name"),
    Code("RR204", E, "segment cycle"),
    Code("RR205", E, "unknown channel"),
    Code("RR206", E, "duplicate segment name"),
    Code("RR207", E, "duplicate parameter"),
    Code("RR208", E, "no channel"),
    Code("RR209", E, "segment chain too long"),
    Code("RR300", W, "unnamed rule"),
    Code("RR301", W, "condition can never hold"),
    Code("RR302", W, "rule is shadowed"),
    Code("RR303", W, "unused segment"),
    Code("RR400", E, "invalid test file"),
)


@dataclass(frozen=True, slots=True)
class Diagnostic:
    code: str
    message: str
    path: str = ""
    span: Span = NO_SPAN
    hint: str | None = None

    @property
    def severity(self) -> Severity:
        return CODES[self.code].severity

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.path, self.span.line, self.span.column, self.code)


_NOQA = re.compile(r"#\s*noqa(?::\s*(?P<codes>[A-Z]+\d+(?:\s*,\s*[A-Z]+\d+)*))?", re.IGNORECASE)


def noqa_lines(source: str) -> dict[int, frozenset[str] | None]:
    """Map line number -> codes silenced on it (None silences every code on that line)."""
    silenced: dict[int, frozenset[str] | None] = {}
    for number, line in enumerate(source.split("\n"), start=1):
        if "#" not in line:
            continue
        match = _NOQA.search(line)
        if match:
            codes = match.group("codes")
            silenced[number] = (
                frozenset(c.strip().upper() for c in codes.split(",")) if codes else None
            )
    return silenced


def apply_noqa(diagnostics: Iterable[Diagnostic], sources: dict[str, str]) -> list[Diagnostic]:
    """Drop the diagnostics that a `# noqa` comment on their first line silences."""
    tables = {path: noqa_lines(text) for path, text in sources.items()}
    kept = []
    for d in diagnostics:
        table = tables.get(d.path, {})
        if d.span.line in table:
            codes = table[d.span.line]
            if codes is None or d.code in codes:
                continue
        kept.append(d)
    return kept
