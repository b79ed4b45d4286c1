"""Where each key and value of a TOML file was written.

tomllib returns values without positions, yet a person fixing a test file or a configuration
needs `file:line:col`. This module scans TOML's structure (table headers, arrays of tables,
dotted and quoted keys, inline tables, arrays, every kind of string) and maps each key path, as
tomllib's result would index it, to the span of its key and of its value:

    ("case", 2, "customer", "tier") -> key `tier` and value `"Gold"` in the third [[case]]

It is only ever run on text that tomllib has accepted, and it never raises: on anything it does
not understand it skips to the next line, so a position may be missing but is never wrong.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from .ast import Span

KeyPath = tuple[str | int, ...]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_BARE_VALUE = re.compile(r"[0-9A-Za-z_:.+\-]+(?: [0-9]{2}:[0-9A-Za-z_:.+\-]*)?")
_BASIC_ESCAPE = re.compile(r'\\.|"', re.DOTALL)


@dataclass(frozen=True, slots=True)
class Located:
    """A key's span and its value's span. For an array element both are the element's span; for
    a table made by a header or a dotted key, both are that name (`is_table`)."""

    key: Span
    value: Span
    is_table: bool = False


class _Skip(Exception):
    """Something the scanner does not understand: give up on the rest of the line."""


class _Scanner:
    def __init__(self, source: str) -> None:
        self.text = source
        self.pos = 0
        self.found: dict[KeyPath, tuple[tuple[int, int], tuple[int, int], bool]] = {}
        self.tables: dict[KeyPath, int] = {}  # arrays of tables -> how many so far

    # ---------------------------------------------------------------- low level

    def peek(self, ahead: int = 0) -> str:
        index = self.pos + ahead
        return self.text[index] if index < len(self.text) else ""

    def blanks(self) -> None:
        while self.peek() in (" ", "\t"):
            self.pos += 1

    def blanks_comments_newlines(self) -> None:
        """Inside arrays, newlines and comments may come between values."""
        while True:
            self.blanks()
            if self.peek() == "#":
                self.to_line_end()
            elif self.peek() in ("\n", "\r"):
                self.pos += 1
            else:
                return

    def to_line_end(self) -> None:
        end = self.text.find("\n", self.pos)
        self.pos = len(self.text) if end < 0 else end

    def next_line(self) -> None:
        self.to_line_end()
        if self.pos < len(self.text):
            self.pos += 1

    def record(
        self, path: KeyPath, key: tuple[int, int], value: tuple[int, int], table: bool = False
    ) -> None:
        self.found.setdefault(path, (key, value, table))

    # ---------------------------------------------------------------- strings and keys

    def string(self) -> tuple[str, tuple[int, int]]:
        """A string of any kind at the cursor: its value (escapes kept raw) and extent."""
        start = self.pos
        if self.text.startswith('"""', start) or self.text.startswith("'''", start):
            quote = self.text[start : start + 3]
            index = start + 3
            while True:
                end = self.text.find(quote, index)
                if end < 0:
                    raise _Skip
                if quote == '"""' and _escaped(self.text, end):
                    index = end + 1
                    continue
                while self.text.startswith(quote[0], end + 3):  # up to two quotes end the body
                    end += 1
                self.pos = end + 3
                return self.text[start + 3 : end], (start, self.pos)
        quote = self.peek()
        index = start + 1
        if quote == "'":
            end = self.text.find("'", index)
            if end < 0 or "\n" in self.text[index:end]:
                raise _Skip
            self.pos = end + 1
            return self.text[index:end], (start, self.pos)
        while True:
            match = _BASIC_ESCAPE.search(self.text, index)
            if match is None or "\n" in self.text[index : match.start()]:
                raise _Skip
            if match.group() == '"':
                self.pos = match.end()
                return _unescape(self.text[start + 1 : match.start()]), (start, self.pos)
            index = match.end()

    def simple_key(self) -> tuple[str, tuple[int, int]]:
        if self.peek() in ('"', "'"):
            return self.string()
        match = _BARE_KEY.match(self.text, self.pos)
        if match is None:
            raise _Skip
        self.pos = match.end()
        return match.group(), match.span()

    def dotted_key(self) -> list[tuple[str, tuple[int, int]]]:
        parts = [self.simple_key()]
        while True:
            self.blanks()
            if self.peek() != ".":
                return parts
            self.pos += 1
            self.blanks()
            parts.append(self.simple_key())

    # ---------------------------------------------------------------- values

    def value(self, path: KeyPath) -> tuple[int, int]:
        """Scan the value at the cursor, recording everything inside it under `path`."""
        char = self.peek()
        start = self.pos
        if char in ('"', "'"):
            return self.string()[1]
        if char == "[":
            self.pos += 1
            index = 0
            while True:
                self.blanks_comments_newlines()
                if self.peek() == "]":
                    self.pos += 1
                    return start, self.pos
                extent = self.value((*path, index))
                self.record((*path, index), extent, extent)
                index += 1
                self.blanks_comments_newlines()
                if self.peek() == ",":
                    self.pos += 1
                elif self.peek() != "]":
                    raise _Skip
        if char == "{":
            self.pos += 1
            while True:
                self.blanks()
                if self.peek() == "}":
                    self.pos += 1
                    return start, self.pos
                self.key_value(path)
                self.blanks()
                if self.peek() == ",":
                    self.pos += 1
                elif self.peek() != "}":
                    raise _Skip
        match = _BARE_VALUE.match(self.text, self.pos)
        if match is None:
            raise _Skip
        self.pos = match.end()
        return match.span()

    def key_value(self, table: KeyPath) -> None:
        parts = self.dotted_key()
        path = table
        for name, extent in parts[:-1]:  # dotted keys define the tables on the way
            path = (*path, name)
            self.record(path, extent, extent, table=True)
        path = (*path, parts[-1][0])
        self.blanks()
        if self.peek() != "=":
            raise _Skip
        self.pos += 1
        self.blanks()
        value = self.value(path)
        self.record(path, parts[-1][1], value)

    # ---------------------------------------------------------------- the document

    def header(self) -> KeyPath:
        """`[a.b]` or `[[a.b]]` at the cursor: the path that following keys live under."""
        start = self.pos
        array = self.text.startswith("[[", start)
        self.pos += 2 if array else 1
        self.blanks()
        parts = self.dotted_key()
        self.blanks()
        closing = "]]" if array else "]"
        if not self.text.startswith(closing, self.pos):
            raise _Skip
        self.pos += len(closing)
        path: KeyPath = ()
        for i, (name, extent) in enumerate(parts):
            path = (*path, name)
            self.record(path, extent, extent, table=True)
            last = i == len(parts) - 1
            if last and array:
                count = self.tables.get(path, 0)
                self.tables[path] = count + 1
                path = (*path, count)
            elif path in self.tables:
                path = (*path, self.tables[path] - 1)
        extent = (parts[0][1][0], parts[-1][1][1])
        self.record(path, extent, extent, table=True)
        return path

    def document(self) -> None:
        table: KeyPath = ()
        while self.pos < len(self.text):
            self.blanks()
            char = self.peek()
            try:
                if char in ("", "\n", "\r", "#"):
                    pass
                elif char == "[":
                    table = self.header()
                else:
                    self.key_value(table)
            except _Skip:
                pass
            self.next_line()


def _escaped(text: str, index: int) -> bool:
    """Whether the character at `index` is escaped by an odd run of backslashes."""
    count = 0
    while index - count - 1 >= 0 and text[index - count - 1] == "\\":
        count += 1
    return count % 2 == 1


_SIMPLE_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}


def _unescape(body: str) -> str:
    """A basic string's value, so that quoted keys compare equal to tomllib's keys."""

    def one(match: re.Match[str]) -> str:
        text = match.group()
        if text[1] in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[text[1]]
        try:
            return chr(int(text[2:], 16))
        except ValueError:
            return text

    return re.sub(r"\\(?:u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|.)", one, body)


def positions(source: str) -> dict[KeyPath, Located]:
    """Every key path of the document, with where its key and value were written."""
    scanner = _Scanner(source)
    scanner.document()
    starts = [0] + [m.end() for m in re.finditer("\n", source)]

    def span(extent: tuple[int, int]) -> Span:
        begin, end = extent
        line = bisect.bisect_right(starts, begin)
        end_line = bisect.bisect_right(starts, max(begin, end - 1))
        return Span(
            line,
            begin - starts[line - 1] + 1,
            end_line,
            end - starts[end_line - 1] + 1,
            begin,
            end,
        )

    return {
        path: Located(span(key), span(value), table)
        for path, (key, value, table) in scanner.found.items()
    }
