"""Diagnostics are data: a stable code, a severity, a message, a span and an optional hint.

Every stage reports problems by returning these; renderers (`render.py`) turn them into text,
JSON, GitHub annotations or SARIF. The catalogue below is the single list of codes; the
documentation and the golden tests are checked against it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum

from .ast import NO_SPAN, Span


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"


E, W = Severity.ERROR, Severity.WARNING


class Code(str, Enum):
    """Every diagnostic code, its severity and its description: the one catalogue. The docs and the
    golden tests are checked against it. A member is its code as text (`Code.RR100 == "RR100"`)."""

    severity: Severity
    description: str

    def __new__(cls, code: str, severity: Severity, title: str) -> Code:
        member = str.__new__(cls, code)
        member._value_ = code
        member.severity = severity
        member.description = title
        return member

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)

    RR001 = ("RR001", E, "file cannot be read")
    RR100 = ("RR100", E, "syntax error")
    RR101 = ("RR101", E, "invalid number")
    RR102 = ("RR102", E, "duplicate clause")
    RR103 = ("RR103", E, "missing clause")
    RR200 = ("RR200", E, "unknown field or segment")
    RR201 = ("RR201", E, "unknown enumeration value")
    RR202 = ("RR202", E, "type mismatch")
    RR203 = ("RR203", E, "duplicate rule name")
    RR204 = ("RR204", E, "segment cycle")
    RR205 = ("RR205", E, "unknown channel")
    RR206 = ("RR206", E, "duplicate segment name")
    RR207 = ("RR207", E, "duplicate parameter")
    RR208 = ("RR208", E, "no channel")
    RR209 = ("RR209", E, "segment chain too long")
    RR210 = ("RR210", W, "unknown category")
    RR300 = ("RR300", W, "unnamed rule")
    RR301 = ("RR301", W, "condition can never hold")
    RR302 = ("RR302", W, "rule is shadowed")
    RR303 = ("RR303", W, "unused segment")
    RR400 = ("RR400", E, "invalid test file")


@dataclass(frozen=True, slots=True)
class Diagnostic:
    code: Code
    message: str
    path: str = ""
    span: Span = NO_SPAN
    hint: str | None = None

    @property
    def severity(self) -> Severity:
        return self.code.severity

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.path, self.span.line, self.span.column, self.code)


_CODE = r"[A-Z]+[0-9]+"
_MARKER = re.compile(
    rf"\s*noqa(?:\s*:\s*(?P<codes>{_CODE}(?:(?:\s*,\s*|\s+){_CODE})*))?\s*", re.IGNORECASE
)
EVERY_CODE = frozenset({"*"})  # a bare marker; "*" is no code, so unions keep it


def noqa_codes(comment: str) -> frozenset[str]:
    """The codes a comment's `noqa` markers silence: `EVERY_CODE` for a bare marker, nothing for a
    comment without a marker. This is the one definition of what a comment silences: the checker
    applies it, and `fmt` keeps beside its line every comment for which it is not empty.

    The grammar, in any letter case. The comment is cut at each `#` into parts (so that the
    comments fmt joins into one keep their markers); a part is a marker when it is exactly

        noqa                     (blanks around it allowed): every warning, or
        noqa: CODE[, CODE...]    (blanks around `:` and `,`; blanks alone also separate codes):
                                 those codes,

    each CODE a whole code (letters then digits: `RR301`, not `RR301x`). Anything else after
    `noqa` (a code without the colon, `=`, a reason, a typo in a code) makes the part no marker:
    it silences nothing, rather than everything. A reason goes in a comment of its own, after
    the marker."""
    codes: set[str] = set()
    for part in comment.split("#")[1:]:
        match = _MARKER.fullmatch(part)
        if match is None:
            continue
        listed = match.group("codes")
        if listed is None:
            return EVERY_CODE
        codes.update(code.upper() for code in re.split(r"[\s,]+", listed))
    return frozenset(codes)


def apply_noqa(
    diagnostics: Iterable[Diagnostic], silenced: Callable[[Diagnostic], frozenset[str]]
) -> list[Diagnostic]:
    """Drop the warnings that a `# noqa` covers; `silenced(d)` gives the codes silenced where `d`
    is reported. Errors are never dropped: a broken rule must not vanish without a word."""
    kept = []
    for d in diagnostics:
        if not d.is_error:
            codes = silenced(d)
            if d.code in codes or codes >= EVERY_CODE:
                continue
        kept.append(d)
    return kept
