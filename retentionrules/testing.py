"""Rule tests: example customers with the actions (or removals) the rules must give them.

A test file (`*.test.toml`, next to the rules) holds cases. Each case is one customer, given by
raw fields (`customer`) and/or derived fields (`derived`, which override what scoring computes),
with an optional contact history and as-of date. Each case is planned on its own through the same
pipeline as `plan` (load, derive, the compiled SQL, the policies), so a test passes only if a
real run would do the same.
"""

from __future__ import annotations

import csv
import datetime as dt
import difflib
import json
import math
import os
import re
import stat
import tempfile
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import ir
from . import types as t
from .api import TEST_SUFFIX, Report, file_key
from .ast import Span
from .config import BLANKS, TomlError, find_config, read_toml, shown_path
from .derive import create_derived, customer_fields, override
from .diagnostics import Code, Diagnostic
from .engine import RuleTrace, rule_traces
from .errors import DataError, UsageError
from .loader import (
    ACTIVITY_DATES,
    NON_NEGATIVE,
    NUMBER_LIMIT,
    Inputs,
    connect,
    load,
)
from .planner import Plan, build_plan, plan_rows_sql, suppressed_sql
from .policies import Reason
from .timeutil import MAX_DATE, MIN_DATE
from .tomlpos import KeyPath, Located, positions

ACTION_KEYS = ("rule", "action", "template", "channel", "parameters")
REMOVED_KEYS = ("rule", "reason")
CONTACT_KEYS = ("channel", "rule", "sent_at")
CASE_KEYS = ("name", "as_of", "customer", "derived", "contacts", "expect", "expect_removed")
FILE_KEYS = ("as_of", "defaults", "case")
DEFAULT_KEYS = ("customer", "derived")
ACTIONS = ("send", "call", "tag")
# Derived fields the engine computes as whole numbers (day counts and the three scores): a
# fraction given for one would be rounded where it is stored, so it is refused instead.
WHOLE_DERIVED = (
    "recency_score",
    "frequency_score",
    "monetary_score",
    "days_since_last_order",
    "days_since_first_order",
    "days_since_last_contact",
    "days_to_birthday",
)
LIMIT = float(NUMBER_LIMIT)  # every number lies strictly between -LIMIT and LIMIT, as in data
_RANGE = "between -10^15 and 10^15"
Table = dict[str, Any]  # a TOML table as tomllib reads it


@dataclass
class Case:
    name: str
    path: str
    line: int
    as_of: dt.date
    customer: dict[str, Any]
    derived: dict[str, Any]
    contacts: list[dict[str, Any]]
    expect: list[dict[str, Any]] | None  # None: not asserted; []: no action
    expect_removed: list[dict[str, str]]
    # Where each customer field's value (("customer", name)) and each contact (("contact", i))
    # was written: a problem only the loader finds is still reported there.
    spans: dict[tuple[str, str | int], Span] = field(default_factory=dict)


@dataclass
class CaseResult:
    case: Case
    actual: list[dict[str, Any]]  # the actions sent (a held-out action is a removal)
    removed: list[dict[str, str]]
    failures: list[str]
    traces: list[RuleTrace] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass
class TestRun:
    results: list[CaseResult]
    fired: set[str]  # the rules whose action was sent in at least one case
    rules: list[str]

    @property
    def coverage(self) -> float:
        return 100.0 * len(self.fired & set(self.rules)) / len(self.rules) if self.rules else 100.0

    @property
    def failed(self) -> int:
        return sum(not r.passed for r in self.results)

    @classmethod
    def merge(cls, runs: Mapping[str, TestRun]) -> TestRun:
        """The runs of several projects as one; rule names, which projects may share, are then
        qualified by the project's configuration."""
        if len(runs) == 1:
            return next(iter(runs.values()))

        def named(project: str, rules: set[str] | list[str]) -> list[str]:
            return [f"{rule} ({project})" for rule in rules]

        return cls(
            [result for run in runs.values() for result in run.results],
            {name for project, run in runs.items() for name in named(project, run.fired)},
            [name for project, run in runs.items() for name in named(project, run.rules)],
        )


# ---------------------------------------------------------------- finding test files


def test_files(paths: Iterable[str | Path]) -> list[Path]:
    """Test files named directly, plus every `*.test.toml` anywhere below named folders (whether
    or not its own folder holds rules), in a stable order; a file reached twice is read once."""
    found: dict[Path, Path] = {}
    for raw in paths:
        path = Path(raw)
        if path.is_dir():  # a folder named *.test.toml below it is searched, not read
            listed = [p for p in sorted(path.rglob(f"*{TEST_SUFFIX}")) if not p.is_dir()]
        elif not path.exists():
            raise UsageError(f"{path}: no such file or folder")
        elif path.name.endswith(TEST_SUFFIX):
            listed = [path]
        else:
            continue
        for file in listed:
            found.setdefault(file_key(file), file)
    return list(found.values())


def by_project(
    reports: Iterable[Report], files: Iterable[Path], config_path: Path | None = None
) -> list[tuple[Report, list[Path]]]:
    """Each checked project with its test files. A test file belongs to the project of its
    folder: the nearest retentionrules.toml above it (or the one given with --config), and runs
    against that project's rules only. A test file whose project's rules were not given is a
    usage error: run against other rules it would test nothing it says."""
    grouped: dict[Path | None, tuple[Report, list[Path]]] = {
        r.project.config_path: (r, []) for r in reports if r.project is not None
    }
    orphans = []
    for file in files:
        config = config_path if config_path is not None else find_config(file)
        if config in grouped:
            grouped[config][1].append(file)
        else:
            orphans.append(f"{file} (its configuration: {shown_path(config)})")
    if orphans:
        raise UsageError(
            f"no rules given for the project of {', '.join(orphans)}; a test file runs against "
            "the rules of its own project: give its rule files or folder too"
        )
    return [(report, tests) for report, tests in grouped.values() if tests]


# ---------------------------------------------------------------- reading test files


def _suggest(word: str, candidates: Any) -> str | None:
    close = difflib.get_close_matches(word, [str(c) for c in candidates], n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


def _a(type_: t.Type) -> str:
    if type_.kind is t.Kind.ENUM:
        return f"one of {', '.join(type_.values)}"
    return {
        "number": "a number",
        "string": 'text in quotes ("...")',
        "bool": "true or false",
        "date": "a date such as 2026-11-22 (without quotes)",
        "anniversary": "a date such as 1990-11-25 (without quotes)",
        "duration": "a duration",
    }[type_.kind.value]


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return str(value)


_UNQUOTED = "write the date without quotes"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite(value: int | float) -> bool:
    """An integer is always finite (math.isfinite would fail on one beyond a double's range)."""
    return isinstance(value, int) or math.isfinite(value)


def value_problem(
    value: Any, type_: t.Type, whole: bool = False, non_negative: bool = False
) -> tuple[str, str | None] | None:
    """Why `value` (as tomllib read it) is not a valid value of `type_`, with a hint; or None.

    The same rules as the customer export's (docs/engine.md): finite numbers strictly between
    -10^15 and 10^15 (`non_negative`: not below 0; `whole`: without a fraction), real booleans,
    dates in the documented range, enumeration values exactly as declared.
    """
    kind = type_.kind
    if kind is t.Kind.NUMBER:
        if _is_number(value):
            if not _finite(value):
                return f"{_shown(value)} is not a finite number", None
            if not -LIMIT < value < LIMIT:
                return f"{_shown(value)} is out of range (numbers lie strictly {_RANGE})", None
            if non_negative and value < 0:
                return f"{_shown(value)} is negative", "counts and spend are never below 0"
            if whole and value != int(value):
                return (
                    f"{_shown(value)} is not a whole number",
                    "day counts and scores are whole numbers",
                )
            return None
    elif kind is t.Kind.STRING:
        if isinstance(value, str):
            return None
        return f"{_shown(value)} is not text", f'write it in quotes: "{_shown(value)}"'
    elif kind is t.Kind.BOOL:
        if isinstance(value, bool):
            return None
    elif kind in (t.Kind.DATE, t.Kind.ANNIVERSARY):
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            if MIN_DATE <= value <= MAX_DATE:
                return None
            return (
                f"{value.isoformat()} is outside the dates data may carry "
                f"({MIN_DATE.isoformat()} to {MAX_DATE.isoformat()})",
                None,
            )
        if isinstance(value, str):
            return f"{_shown(value)} is text, not a date", _UNQUOTED
    elif kind is t.Kind.ENUM:
        if isinstance(value, str) and value in type_.values:
            return None
        if isinstance(value, str):
            hint = _suggest(value, type_.values)
            return (
                f"{_shown(value)} is not a {type_.enum}; valid values: {', '.join(type_.values)}",
                hint,
            )
    return f"{_shown(value)} is not {_a(type_)}", None


def _parameter_problem(value: Any) -> str | None:
    """Why an expected parameter value can never equal one in the plan, or None. The plan's
    parameters are numbers, text and true/false (a date in a rule is text in the plan; a date
    written here is compared as that text)."""
    if isinstance(value, (str, bool)):
        return None
    if _is_number(value):
        return None if _finite(value) else f"{_shown(value)} is not a finite number"
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return None
    return f"{_shown(value)} is not a number, text, true/false or a date"


def _regular_file(path: Path) -> bytes | None:
    """A file's bytes, or None when it is not a regular file. It is opened without waiting and
    checked once open, so that a FIFO or a device named *.test.toml (or a symbolic link to one)
    is refused, never waited on or read without end."""
    handle = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(handle, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            return None
        return file.read()


class _Reader:
    """Reads test files into cases, collecting every problem as a diagnostic at the line and
    column of the key or value it is about."""

    def __init__(self, ruleset: ir.RuleSet) -> None:
        config = ruleset.config
        self.config = config
        self.zone = zoneinfo.ZoneInfo(config.timezone)
        self.id = config.customers.id
        self.fields = config.customers.types() | t.ACTIVITY_FIELDS
        self.derived = t.derived_fields(config.tier_type())
        # `bought "x"`: the last purchase date in each category the rules test, given as a
        # derived field (`'bought "diapers"' = 2026-03-01`); `units bought "x"` its quantity
        # (`'units bought "formula"' = 3`)
        conditions = [rule.condition for rule in ruleset.rules]
        categories = ir.categories_used(conditions)
        self.derived |= {ir.bought_column(c): t.DATE for c in categories}
        units = ir.units_categories_used(conditions)
        self.derived |= {ir.units_bought_column(c): t.NUMBER for c in units}
        self.rules = [r.name for r in ruleset.rules]
        self.channels = {name.lower(): name for name in config.channels}
        self.diagnostics: list[Diagnostic] = []
        self.path = ""
        self.context = ""  # "case `NAME`: " while reading a case
        self.file_as_of = False  # the file gives a default as-of date
        self.where: dict[KeyPath, Located] = {}
        self.sources: dict[str, str] = {}  # each file's text as read, to show under problems

    # ------------------------------------------------------------ positions and problems

    def span(self, key: KeyPath, value: bool = False) -> Span:
        """Where `key` (or its value) was written; else its nearest located ancestor."""
        for end in range(len(key), 0, -1):
            found = self.where.get(key[:end])
            if found is not None:
                return found.value if value and end == len(key) else found.key
        return Span(1, 1, 1, 2)

    def problem(self, span: Span, message: str, hint: str | None = None) -> None:
        problem = Diagnostic(Code.RR400, self.context + message, self.path, span, hint)
        self.diagnostics.append(problem)

    def unknown_keys(self, table: Table, key: KeyPath, known: tuple[str, ...], what: str) -> None:
        for name in table:
            if name not in known:
                self.problem(
                    self.span((*key, name)),
                    f"unknown {what} `{name}`",
                    _suggest(name, known) or f"use {', '.join(f'`{k}`' for k in known)}",
                )

    def table(self, value: Any, key: KeyPath, what: str) -> Table | None:
        if isinstance(value, dict):
            return value
        self.problem(self.span(key, value=True), f"{what} must be a table such as {{ ... }}")
        return None

    # ------------------------------------------------------------ the file

    def read(self, path: Path) -> list[Case]:
        self.path = str(path)
        self.sources[self.path] = ""
        start = Span(1, 1, 1, 2)
        try:
            raw = _regular_file(path)
        except OSError as error:
            self.problem(start, f"cannot read: {error.strerror or error}")
            return []
        if raw is None:  # a FIFO or a device may never end: it is not even opened for reading
            self.problem(start, "cannot read: not a regular file")
            return []
        try:
            source = raw.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            line = error.object.count(b"\n", 0, error.start) + 1
            self.problem(Span(line, 1, line, 2), "not UTF-8 text", "save the file as UTF-8")
            return []
        self.sources[self.path] = source
        try:
            data = read_toml(source)
        except TomlError as error:
            at = Span(error.line, error.column, error.line, error.column + 1)
            self.problem(at, error.message, error.hint)
            return []
        try:
            self.where = positions(source)
        except RecursionError:  # shallower than tomllib's own limit, but never a crash
            self.where = {}
        self.unknown_keys(data, (), FILE_KEYS, "setting")
        self.file_as_of = "as_of" in data
        default_as_of = self.as_of(data, ("as_of",)) if "as_of" in data else None
        defaults = self.table(data.get("defaults", {}), ("defaults",), "[defaults]") or {}
        self.unknown_keys(defaults, ("defaults",), DEFAULT_KEYS, "default")
        given = {
            part: self.fields_of(defaults.get(part, {}), ("defaults", part), part)
            for part in DEFAULT_KEYS
        }
        cases = data.get("case", [])
        if not isinstance(cases, list):
            self.problem(self.span(("case",)), "`case` must be a list of tables: write [[case]]")
            return []
        if not cases:  # a file that tests nothing must not pass as if it did
            self.problem(
                self.span(("case",)),
                "no cases: this test file tests nothing",
                'add a case: [[case]], then name = "...", its customer and what it expects',
            )
        found = []
        for index, raw in enumerate(cases):
            key: KeyPath = ("case", index)
            if self.table(raw, key, "a case") is None:
                continue
            case = self.case(raw, key, default_as_of, given)
            if case is not None:
                found.append(case)
        return found

    def as_of(self, table: Table, key: KeyPath) -> dt.date | None:
        value = table["as_of"]
        where = self.span(key, value=True)
        if isinstance(value, str):
            self.problem(
                where,
                f"as_of {_shown(value)} is text, not a date",
                f"{_UNQUOTED}: as_of = 2026-11-22",
            )
        elif not isinstance(value, dt.date) or isinstance(value, dt.datetime):
            self.problem(
                where, f"as_of {_shown(value)} is not a date", "write it as as_of = 2026-11-22"
            )
        elif not MIN_DATE <= value <= MAX_DATE:
            self.problem(
                where,
                f"as_of {value.isoformat()} is outside the dates retentionrules plans for "
                f"({MIN_DATE.isoformat()} to {MAX_DATE.isoformat()})",
            )
        else:
            return value
        return None

    def fields_of(self, table: Any, key: KeyPath, part: str) -> dict[str, Any]:
        """`customer` or `derived` fields, each checked against its type; bad ones dropped."""
        known = self.fields if part == "customer" else self.derived
        what = "customer field" if part == "customer" else "derived field"
        if self.table(table, key, f"`{part}`") is None:
            return {}
        good = {}
        for name, value in table.items():
            if name not in known:
                self.problem(
                    self.span((*key, name)), f"unknown {what} `{name}`", _suggest(name, known)
                )
                continue
            problem = value_problem(
                value,
                known[name],
                whole=part == "derived" and name in WHOLE_DERIVED,
                non_negative=part == "customer" and name in NON_NEGATIVE,
            )
            # The loader takes ids without surrounding blanks: nothing left is no id.
            blank_id = part == "customer" and name == self.id and not str(value).strip(BLANKS)
            if problem is None and blank_id:
                problem = "an id is never blank", 'give an id such as "C1", or leave it out'
            if problem is not None:
                message, hint = problem
                self.problem(self.span((*key, name), value=True), f"{name}: {message}", hint)
                continue
            good[name] = value
        return good

    # ------------------------------------------------------------ one case

    def case(
        self, raw: Table, key: KeyPath, default_as_of: dt.date | None, given: dict[str, Table]
    ) -> Case | None:
        before = len(self.diagnostics)
        name = raw.get("name", f"case {int(key[-1]) + 1}")
        if not isinstance(name, str):
            self.problem(self.span((*key, "name"), value=True), "a case's name must be text")
            name = str(name)
        line = self.span((*key, "name"), value=True) if "name" in raw else self.span(key)
        self.context = f"case `{name}`: "
        self.unknown_keys(raw, key, CASE_KEYS, "key")
        as_of = self.as_of(raw, (*key, "as_of")) if "as_of" in raw else default_as_of
        if "as_of" not in raw and not self.file_as_of:
            self.problem(
                line,
                "no as-of date",
                "give `as_of = 2026-11-22` at the top of the file or in the case",
            )
        own = raw.get("customer", {})
        customer = {
            **given["customer"],
            **self.fields_of(own, (*key, "customer"), "customer"),
        }
        derived = {
            **given["derived"],
            **self.fields_of(raw.get("derived", {}), (*key, "derived"), "derived"),
        }
        spans: dict[tuple[str, str | int], Span] = {
            ("customer", field_name): self.span(
                (*key, "customer", field_name)
                if isinstance(own, dict) and field_name in own
                else ("defaults", "customer", field_name),
                value=True,
            )
            for field_name in customer
        }
        if as_of is not None:
            self.not_after(customer, as_of, spans)
        contacts = self.contacts(raw.get("contacts", []), (*key, "contacts"))
        spans |= {
            ("contact", index): self.span((*key, "contacts", index), value=True)
            for index in range(len(contacts))
        }
        expect = self.expect(raw, key)
        removed = self.removed(raw, key)
        if "expect" not in raw and raw.get("expect_removed", []) == []:
            self.problem(
                line,
                "expects nothing",
                'add `expect = {rule = "..."}`, `expect = "none"` or `expect_removed`',
            )
        self.context = ""
        if len(self.diagnostics) > before or as_of is None:
            return None
        return Case(
            name, self.path, line.line, as_of, customer, derived, contacts, expect, removed, spans
        )

    def not_after(
        self, customer: Table, as_of: dt.date, spans: dict[tuple[str, str | int], Span]
    ) -> None:
        """Activity dates record what already happened: after the as-of date they are bad data,
        as in the customer export."""
        for name in ACTIVITY_DATES:
            value = customer.get(name)
            if isinstance(value, dt.date) and value > as_of:
                self.problem(
                    spans[("customer", name)],
                    f"{name}: {value.isoformat()} is after the as-of date {as_of.isoformat()}",
                    "an activity date records what already happened: give one on or before "
                    "the as-of date",
                )

    def shop_date(self, sent: Any) -> dt.date | None:
        """The date of a contact as the loader takes it: a time with an offset (or Z) converted
        to the shop's time zone, one without taken as shop-local; None if it is neither."""
        if isinstance(sent, dt.datetime):
            if sent.tzinfo is None:
                return sent.date()
            try:
                return sent.astimezone(self.zone).date()
            except OverflowError:  # beyond year 9999 or before year 1: out of range anyway
                return sent.date()
        if isinstance(sent, dt.date):
            return sent
        return None

    def contacts(self, value: Any, key: KeyPath) -> list[dict[str, Any]]:
        if not isinstance(value, list):
            self.problem(
                self.span(key, value=True),
                "`contacts` must be a list of tables",
                'write contacts = [{ channel = "sms", sent_at = 2026-11-20 }]',
            )
            return []
        found = []
        for index, contact in enumerate(value):
            at: KeyPath = (*key, index)
            if self.table(contact, at, "a contact") is None:
                continue
            self.unknown_keys(contact, at, CONTACT_KEYS, "contact key")
            if "sent_at" not in contact:
                self.problem(self.span(at), "a contact needs `sent_at`", "add sent_at = 2026-11-20")
                continue
            sent = contact["sent_at"]
            where = self.span((*at, "sent_at"), value=True)
            day = self.shop_date(sent)
            if isinstance(sent, str):
                self.problem(
                    where,
                    f"sent_at {_shown(sent)} is text, not a date or time",
                    f"{_UNQUOTED}: sent_at = 2026-11-20 or sent_at = 2026-11-20T09:30:00+08:00",
                )
                continue
            if day is None:
                self.problem(
                    where,
                    f"sent_at {_shown(sent)} is not a date or time",
                    "write sent_at = 2026-11-20 or sent_at = 2026-11-20T09:30:00+08:00",
                )
                continue
            if not MIN_DATE <= day <= MAX_DATE:
                converted = (
                    f" ({day.isoformat()} in the shop's time zone, {self.config.timezone})"
                    if isinstance(sent, dt.datetime) and sent.tzinfo is not None
                    else ""
                )
                self.problem(
                    where,
                    f"sent_at {_shown(sent)}{converted} is outside the dates data may carry "
                    f"({MIN_DATE.isoformat()} to {MAX_DATE.isoformat()})",
                )
                continue
            channel = contact.get("channel", "")
            if not isinstance(channel, str) or channel.strip().lower() not in self.channels:
                self.problem(
                    self.span((*at, "channel"), value=True),
                    f"unknown channel `{channel}`",
                    _suggest(str(channel), self.channels)
                    or f"configured channels: {', '.join(self.channels)}",
                )
                continue
            rule = contact.get("rule", "")
            if not isinstance(rule, str) or (rule and rule not in self.rules):
                self.problem(
                    self.span((*at, "rule"), value=True),
                    f"unknown rule `{rule}`",
                    _suggest(str(rule), self.rules),
                )
                continue
            found.append({"channel": channel, "rule": rule, "sent_at": sent})
        return found

    def expect(self, raw: Table, key: KeyPath) -> list[dict[str, Any]] | None:
        if "expect" not in raw:
            return None
        value = raw["expect"]
        at: KeyPath = (*key, "expect")
        if value == "none":
            return []
        items = [value] if isinstance(value, dict) else value
        if not isinstance(items, list):
            self.problem(
                self.span(at, value=True),
                '`expect` must be an action table, a list of them, or "none"',
            )
            return None
        keys = [at] if isinstance(value, dict) else [(*at, i) for i in range(len(items))]
        return [
            item
            for item, k in zip(items, keys, strict=True)
            if self.expectation(item, k, ACTION_KEYS)
        ]

    def removed(self, raw: Table, key: KeyPath) -> list[dict[str, str]]:
        value = raw.get("expect_removed", [])
        at: KeyPath = (*key, "expect_removed")
        items = [value] if isinstance(value, dict) else value
        if not isinstance(items, list):
            self.problem(self.span(at, value=True), "`expect_removed` must be a table or a list")
            return []
        keys = [at] if isinstance(value, dict) else [(*at, i) for i in range(len(items))]
        return [
            item
            for item, k in zip(items, keys, strict=True)
            if self.expectation(item, k, REMOVED_KEYS)
        ]

    def expectation(self, item: Any, key: KeyPath, allowed: tuple[str, ...]) -> bool:
        """Whether an expected action (or removal) is well formed; reports each problem."""
        if not isinstance(item, dict) or not item:
            self.problem(
                self.span(key, value=True),
                'an expectation is a table that names at least the rule: { rule = "winback" }',
            )
            return False
        before = len(self.diagnostics)
        self.unknown_keys(item, key, allowed, "key")
        if allowed is REMOVED_KEYS and "rule" not in item:
            self.problem(self.span(key, value=True), "an expected removal names its `rule`")
        checks: list[tuple[str, tuple[str, ...] | None, str]] = [
            ("rule", tuple(self.rules), "rule"),
            ("action", ACTIONS, "action"),
            ("channel", tuple(self.channels.values()), "channel"),
            ("reason", tuple(r.value for r in Reason), "reason"),
            ("template", None, "template"),
        ]
        for name, choices, what in checks:
            if name not in item or name not in allowed:
                continue
            value = item[name]
            if not isinstance(value, str) or (choices is not None and value not in choices):
                hint = _suggest(str(value), choices or ()) or (
                    f"one of: {', '.join(choices)}" if choices else None
                )
                self.problem(self.span((*key, name), value=True), f"unknown {what} `{value}`", hint)
        if "parameters" in item and "parameters" in allowed:
            parameters = item["parameters"]
            if not isinstance(parameters, dict):
                self.problem(
                    self.span((*key, "parameters"), value=True),
                    "`parameters` must be a table such as { amount = 50 }",
                )
            else:
                for name, value in parameters.items():
                    problem = _parameter_problem(value)
                    if problem is not None:
                        self.problem(
                            self.span((*key, "parameters", name), value=True),
                            f"parameter `{name}`: {problem}",
                            "a plan's parameters are numbers, text (dates too) and true or false",
                        )
        return len(self.diagnostics) == before


# ---------------------------------------------------------------- running cases


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value.isoformat() if isinstance(value, dt.date) else str(value)


def _plan_case(case: Case, ruleset: ir.RuleSet, folder: Path) -> tuple[Plan, Table]:
    """Plan one case's customer through the same loader, derivation and policies as `plan`."""
    config = ruleset.config
    key = config.customers.id
    row = dict.fromkeys([*config.customers.fields, *t.ACTIVITY_FIELDS], "")
    row.update({k: _csv_value(v) for k, v in case.customer.items()})
    row[key] = row.get(key) or "case"
    for name in ("orders_12m", "spend_12m", "total_orders"):
        row[name] = row.get(name) or "0"
    customers = folder / "customers.csv"
    with customers.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        writer.writeheader()
        writer.writerow(row)
    contacts = None
    if case.contacts:
        contacts = folder / "contacts.csv"
        with contacts.open("w", newline="", encoding="utf-8") as handle:
            history = csv.writer(handle)
            history.writerow(["customer_id", "channel", "rule", "sent_at"])
            for contact in case.contacts:
                history.writerow(
                    [row[key], contact["channel"], contact["rule"], _csv_value(contact["sent_at"])]
                )
    inputs = Inputs(customers, contacts=contacts)
    con = connect()
    load(con, config, inputs, case.as_of)
    conditions = [rule.condition for rule in ruleset.rules]
    create_derived(
        con,
        config,
        case.as_of,
        orders=False,
        contacts=contacts is not None,
        categories=ir.categories_used(conditions),
        units=ir.units_categories_used(conditions),
    )
    override(con, config, case.derived)
    plan = build_plan(con, ruleset, case.as_of, inputs)
    # The id as the loader keeps it: without the blanks it trims (and no others).
    fields = customer_fields(con, config, row[key].strip(BLANKS))
    assert fields is not None  # the one customer just loaded
    return plan, fields


def _outcome(plan: Plan) -> tuple[list[Table], list[Table]]:
    """The actions sent, and the removals: a held-out action is not sent (it is a removal with
    the reason `holdout`), so it never satisfies `expect` and never counts as coverage."""
    cursor = plan.con.execute(plan_rows_sql(plan, ""))
    names = [d[0] for d in cursor.description]
    actual: list[Table] = []
    held: list[Table] = []
    for values in cursor.fetchall():
        row = dict(zip(names, values, strict=True))
        action = {
            "rule": row["rule"],
            "action": row["action"],
            "template": row["template"],
            "channel": row["channel"],
            "parameters": json.loads(row["parameters"]),
        }
        (held if row["holdout"] else actual).append(action)
    removed = [
        {"rule": rule, "reason": reason}
        for _, rule, reason in plan.con.execute(suppressed_sql(plan)).fetchall()
    ]
    removed += [{"rule": a["rule"], "reason": Reason.HOLDOUT.value} for a in held]
    return actual, removed


def _same(expected: Any, actual: Any) -> bool:
    """An expected parameter value equals the plan's: true/false only true/false (never 1 or
    0), a number only a number, a date its ISO text (the plan holds dates as text)."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return isinstance(expected, bool) and isinstance(actual, bool) and expected == actual
    if isinstance(expected, dt.date):
        return bool(actual == expected.isoformat())
    if _is_number(expected):
        return _is_number(actual) and bool(expected == actual)
    return bool(expected == actual)


def _matches(expected: Table, actual: Table) -> bool:
    for key, value in expected.items():
        if key == "parameters":
            given = actual.get("parameters")
            if not isinstance(given, dict) or set(given) != set(value):
                return False
            if not all(_same(value[name], given[name]) for name in value):
                return False
        elif actual.get(key) != value:
            return False
    return True


def _check(case: Case, actual: list[Table], removed: list[Table]) -> list[str]:
    failures = []
    if case.expect is not None:
        unmatched = list(actual)
        for expected in case.expect:
            hit = next((a for a in unmatched if _matches(expected, a)), None)
            if hit is None:
                failures.append(f"expected {_show(expected)}")
            else:
                unmatched.remove(hit)
        failures += [f"unexpected {_show(a)}" for a in unmatched]
        if not case.expect and actual:
            failures = [f"expected no action, got {_show(a)}" for a in actual]
    for expected in case.expect_removed:
        if not any(
            r["rule"] == expected["rule"] and r["reason"] == expected.get("reason", r["reason"])
            for r in removed
        ):
            reasons = [r["reason"] for r in removed if r["rule"] == expected["rule"]]
            got = f"removed for {', '.join(reasons)}" if reasons else "not removed"
            failures.append(
                f"expected {expected['rule']} removed for "
                f"{expected.get('reason', 'any reason')}, but it was {got}"
            )
    return failures


def _show(action: Table) -> str:
    keys = [k for k in ACTION_KEYS if k in action]
    return "{" + ", ".join(f"{k} = {action[k]!r}" for k in keys) + "}"


_REFUSED = re.compile(
    r"(?P<file>customers|contacts)\.csv: (?:row (?P<row>\d+): )?(?P<reason>.*?)"
    r"(?: \(and \d+ more bad rows?\))?(?:; nothing was written\..*)?",
    re.DOTALL,
)


def _refused(case: Case, error: DataError, folder: Path) -> Diagnostic:
    """What the loader refused in a case's data, for the person who wrote the case: the case,
    the field or contact and the reason, at the value's own line when known; never the
    temporary files the case was written to, nor advice (--rejects) that fits no test. The
    reader checks what the loader does, so this is only a backstop."""
    message = str(error).replace(str(folder) + "/", "").replace(str(folder), "")
    match = _REFUSED.fullmatch(message)
    span = Span(case.line, 1, case.line, 2)
    if match is None:
        return Diagnostic(
            Code.RR400, f"case `{case.name}`: its data is not valid: {message}", case.path, span
        )
    reason = match.group("reason")
    named = re.search(r"column ([^:]+): ", reason)
    if match.group("file") == "customers":
        what = "the customer"
        if named is not None:
            span = case.spans.get(("customer", named.group(1)), span)
    else:
        index = int(match.group("row") or 1) - 1
        what = f"contact {index + 1}"
        span = case.spans.get(("contact", index), span)
    reason = re.sub(r"column ([^:]+): ", r"\1: ", reason)
    return Diagnostic(
        Code.RR400, f"case `{case.name}`: {what} is not valid: {reason}", case.path, span
    )


@dataclass
class Tested:
    """The outcome of one project's tests: the run, or the problems in its test files that
    stopped it (exit 2: the tests themselves are broken), with the files' text as read."""

    run: TestRun | None
    problems: list[Diagnostic]
    sources: dict[str, str]


def run_tests(report: Report, files: list[Path]) -> Tested:
    """Read and run every case of one project; on problems in the test files, return their
    diagnostics instead."""
    ruleset = report.ruleset
    reader = _Reader(ruleset)
    cases = [case for path in files for case in reader.read(path)]
    if reader.diagnostics:
        return Tested(None, sorted(reader.diagnostics, key=Diagnostic.sort_key), reader.sources)
    results, fired = [], set()
    with tempfile.TemporaryDirectory() as folder:
        for case in cases:
            try:
                plan, fields = _plan_case(case, ruleset, Path(folder))
            except DataError as error:  # what the reader let through must still never pass
                return Tested(None, [_refused(case, error, Path(folder))], reader.sources)
            actual, removed = _outcome(plan)
            fired |= {a["rule"] for a in actual}
            failures = _check(case, actual, removed)
            key = ruleset.config.customers.id
            traces = rule_traces(plan, report, fields, fields[key], case.as_of) if failures else []
            results.append(CaseResult(case, actual, removed, failures, traces))
    return Tested(TestRun(results, fired, [r.name for r in ruleset.rules]), [], reader.sources)
