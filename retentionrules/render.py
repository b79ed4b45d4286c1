"""Diagnostics -> text for people, JSON for tools, GitHub annotations, SARIF for code scanning."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from . import __version__
from .diagnostics import Code, Diagnostic


def render(diagnostics: Sequence[Diagnostic], sources: dict[str, str], fmt: str) -> str:
    return {
        "text": render_text,
        "json": render_json,
        "github": render_github,
        "sarif": render_sarif,
    }[fmt](diagnostics, sources)


# C0 and C1 control characters but the tab, and DEL.
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def display_width(text: str) -> int:
    """Columns `text` takes in a terminal: wide and full-width characters (CJK, `，`) two,
    combining marks none, the rest one."""
    import unicodedata

    return sum(
        0
        if unicodedata.combining(c)
        else 2
        if unicodedata.east_asian_width(c) in ("W", "F")
        else 1
        for c in text
    )


def caret_line(source: str, column: int, width: int) -> str:
    """Carets under `width` characters of the source line from `column` (from 1), aligned by
    display width: under a line with Chinese text each wide character takes two columns. A tab
    before the place stays a tab, so that the terminal moves both lines alike."""
    before = source[: column - 1]
    pad = "".join("\t" if c == "\t" else " " * display_width(c) for c in before)
    under = source[column - 1 : column - 1 + width]
    return pad + "^" * max(1, display_width(under), width - len(under))


def excerpt(text: str, column: int, end_line: int, line: int, end_column: int) -> list[str]:
    """The source line and the carets under the place (to the end of the line when the place
    runs on past it), indented as every diagnostic shows them: rules and configuration alike."""
    width = end_column - column if end_line == line else len(text) - column + 1
    return [f"    {text}", "    " + caret_line(text, column, max(1, width))]


def escape_controls(text: str) -> str:
    """Control characters shown as `\\u000a`, for text read in a terminal or a CI log: a line
    break in a case name or a file name would otherwise start a line of its own (where GitHub
    reads `::warning::...` as a command), and an escape sequence would drive the terminal."""
    return _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def render_text(diagnostics: Sequence[Diagnostic], sources: dict[str, str]) -> str:
    """`file:line:col: CODE message`, the source line, a caret under the problem, the hint.
    Control characters are escaped (`escape_controls`); in the source line each shows as one
    `\ufffd`, so that the caret stays under the problem."""
    out = []
    for d in diagnostics:
        span = d.span
        path = escape_controls(d.path)
        where = f"{path}:{span.line}:{span.column}" if span.line else path
        out.append(f"{where}: {d.code} {d.severity.value}: {escape_controls(d.message)}")
        source = sources.get(d.path, "")  # "" for a file that could not be read
        lines = source.split("\n") if source else []
        if 0 < span.line <= len(lines):
            text = _CONTROL.sub("\ufffd", lines[span.line - 1].rstrip())
            out += excerpt(text, span.column, span.end_line, span.line, span.end_column)
        if d.hint:
            out.append(f"    hint: {escape_controls(d.hint)}")
    errors = sum(d.is_error for d in diagnostics)
    warnings = len(diagnostics) - errors
    files = len(set(sources) | {d.path for d in diagnostics})
    out.append(
        f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)} "
        f"in {files} file{'s' * (files != 1)}"
    )
    return "\n".join(out)


def _as_dict(d: Diagnostic) -> dict[str, object]:
    s = d.span
    return {
        "path": d.path,
        "line": s.line,
        "column": s.column,
        "end_line": s.end_line,
        "end_column": s.end_column,
        "code": d.code,
        "severity": d.severity.value,
        "message": d.message,
        "hint": d.hint,
    }


def render_json(diagnostics: Sequence[Diagnostic], sources: dict[str, str]) -> str:
    return json.dumps(
        {"files": sorted(sources), "diagnostics": [_as_dict(d) for d in diagnostics]},
        ensure_ascii=False,
        indent=2,
    )


def escape_github(text: str, property_: bool = False) -> str:
    """Text safe inside a GitHub workflow command, as GitHub documents it: `%`, CR and LF in the
    message; also `:` and `,` in a property (`file=`, `title=`). Without it, a line break in a
    name would start a workflow command of its own."""
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if property_ else text


def render_github(diagnostics: Sequence[Diagnostic], sources: dict[str, str]) -> str:
    """GitHub Actions workflow commands: each diagnostic becomes an annotation on the PR diff."""
    lines = []
    for d in diagnostics:
        s = d.span
        level = "error" if d.is_error else "warning"
        props = (
            f"file={escape_github(d.path, True)},line={s.line},col={s.column},"
            f"endLine={s.end_line},endColumn={s.end_column},title={d.code}"
        )
        message = d.message + (f" (hint: {d.hint})" if d.hint else "")
        lines.append(f"::{level} {props}::{escape_github(message)}")
    return "\n".join(lines)


def render_sarif(diagnostics: Sequence[Diagnostic], sources: dict[str, str]) -> str:
    rules = [
        {
            "id": c.value,
            "name": c.description,
            "shortDescription": {"text": c.description},
            "defaultConfiguration": {"level": c.severity.value},
        }
        for c in Code
    ]
    results = [
        {
            "ruleId": d.code,
            "level": d.severity.value,
            "message": {"text": d.message + (f" Hint: {d.hint}" if d.hint else "")},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": d.path},
                        "region": {
                            "startLine": max(1, d.span.line),
                            "startColumn": max(1, d.span.column),
                            "endLine": max(1, d.span.end_line),
                            "endColumn": max(1, d.span.end_column),
                        },
                    }
                }
            ],
        }
        for d in diagnostics
    ]
    log = {
        "version": "2.1.0",
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "runs": [
            {
                "tool": {
                    "driver": {"name": "retentionrules", "version": __version__, "rules": rules}
                },
                "results": results,
            }
        ],
    }
    return json.dumps(log, ensure_ascii=False, indent=2)
