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
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import ir
from . import types as t
from .api import Report
from .ast import Span
from .config import Config
from .derive import DERIVED, create_derived, fields_sql, rank_sql
from .diagnostics import Diagnostic
from .engine import RuleTrace, rule_traces
from .loader import Inputs, connect, load
from .planner import Plan, build_plan, plan_rows_sql, suppressed_sql
from .sql import ident, rank_column

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 only
    import tomli as tomllib

TEST_SUFFIX = ".test.toml"
REASONS = (
    "consent",
    "quiet_period",
    "channel_cap",
    "rule_cap",
    "priority",
    "household",
    "volume",
    "holdout",
)
ACTION_KEYS = ("rule", "action", "template", "channel", "parameters")
CASE_KEYS = ("name", "as_of", "customer", "derived", "contacts", "expect", "expect_removed")
FILE_KEYS = ("as_of", "defaults", "case")


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


@dataclass
class CaseResult:
    case: Case
    actual: list[dict[str, Any]]
    removed: list[dict[str, str]]
    failures: list[str]
    traces: list[RuleTrace] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass
class TestRun:
    results: list[CaseResult]
    fired: set[str]
    rules: list[str]

    @property
    def coverage(self) -> float:
        return 100.0 * len(self.fired & set(self.rules)) / len(self.rules) if self.rules else 100.0

    @property
    def failed(self) -> int:
        return sum(not r.passed for r in self.results)


# ---------------------------------------------------------------- reading test files


def test_files(rule_files: list[Path]) -> list[Path]:
    """The test files beside the rule files, in a stable order."""
    folders = sorted({path.parent for path in rule_files})
    return [p for folder in folders for p in sorted(folder.glob(f"*{TEST_SUFFIX}"))]


def _line_of(source: str, needle: str) -> Span:
    """Where `needle` first appears (TOML parsers keep no positions)."""
    for number, line in enumerate(source.split("\n"), start=1):
        column = line.find(needle)
        if column >= 0:
            return Span(number, column + 1, number, column + 1 + len(needle))
    return Span(1, 1, 1, 2)


class _Reader:
    """Reads test files into cases, collecting every problem as a diagnostic."""

    def __init__(self, config: Config, ruleset: ir.RuleSet) -> None:
        self.fields = config.customers.types() | t.ACTIVITY_FIELDS
        self.derived = t.derived_fields(config.tier_type())
        self.rules = [r.name for r in ruleset.rules]
        self.diagnostics: list[Diagnostic] = []

    def problem(self, path: str, span: Span, message: str, hint: str | None = None) -> None:
        self.diagnostics.append(Diagnostic("RR400", message, path, span, hint))

    def read(self, path: Path) -> list[Case]:
        source = path.read_text(encoding="utf-8")
        try:
            data = tomllib.loads(source)
        except tomllib.TOMLDecodeError as error:
            match = re.search(r"line (\d+), column (\d+)", str(error))
            line, column = (int(match.group(1)), int(match.group(2))) if match else (1, 1)
            message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(error))
            self.diagnostics.append(
                Diagnostic(
                    "RR400",
                    f"not valid TOML: {message}",
                    str(path),
                    Span(line, column, line, column + 1),
                )
            )
            return []
        default_as_of = data.get("as_of")
        defaults = data.get("defaults", {})
        for key in sorted(set(data) - set(FILE_KEYS)):
            self.problem(
                str(path),
                _line_of(source, key),
                f"unknown setting `{key}`",
                "a test file holds `as_of`, [defaults] and [[case]] tables",
            )
        for key in sorted(set(defaults) - {"customer", "derived"}):
            self.problem(
                str(path),
                _line_of(source, key),
                f"unknown default `{key}`",
                "[defaults] may hold `customer` and `derived`, which every case builds on",
            )
        cases = data.get("case", [])
        if not isinstance(cases, list):
            self.problem(
                str(path), _line_of(source, "case"), "`case` must be a list: write [[case]]"
            )
            return []
        found = []
        for index, raw in enumerate(cases):
            merged = {
                **raw,
                **{
                    part: {**defaults.get(part, {}), **raw.get(part, {})}
                    for part in ("customer", "derived")
                    if part in defaults or part in raw
                },
            }
            case = self._case(path, source, index, merged, default_as_of)
            if case is not None:
                found.append(case)
        return found

    def _case(self, path: Path, source: str, index: int, raw: dict, default_as_of) -> Case | None:
        name = str(raw.get("name", f"case {index + 1}"))
        line = _line_of(source, f'"{name}"') if "name" in raw else Span(1, 1, 1, 2)
        errors_before = len(self.diagnostics)
        where = str(path)
        for key in sorted(set(raw) - set(CASE_KEYS)):
            self.problem(
                where,
                _line_of(source, key),
                f"case `{name}`: unknown key `{key}`",
                _suggest(key, CASE_KEYS),
            )
        as_of = raw.get("as_of", default_as_of)
        if isinstance(as_of, str):
            try:
                as_of = dt.date.fromisoformat(as_of)
            except ValueError:
                as_of = None
        if not isinstance(as_of, dt.date):
            self.problem(
                where,
                line,
                f"case `{name}`: no as-of date",
                "give `as_of = 2026-11-22` at the top of the file or in the case",
            )
        customer, derived = raw.get("customer", {}), raw.get("derived", {})
        for table, known, what in (
            (customer, self.fields, "customer field"),
            (derived, self.derived, "derived field"),
        ):
            for key in table:
                if key not in known:
                    self.problem(
                        where,
                        _line_of(source, key),
                        f"case `{name}`: unknown {what} `{key}`",
                        _suggest(key, known),
                    )
        expect = raw.get("expect")
        if expect == "none":
            expect = []
        elif isinstance(expect, dict):
            expect = [expect]
        elif expect is not None and not isinstance(expect, list):
            self.problem(
                where,
                line,
                f'case `{name}`: `expect` must be an action table, a list of them, or "none"',
            )
            expect = None
        removed = raw.get("expect_removed", [])
        removed = [removed] if isinstance(removed, dict) else removed
        for item in [*(expect or []), *removed]:
            self._expectation(where, source, name, item)
        if expect is None and not removed:
            self.problem(
                where,
                line,
                f"case `{name}` expects nothing",
                'add `expect = {rule = "..."}`, `expect = "none"` or `expect_removed`',
            )
        if len(self.diagnostics) > errors_before:
            return None
        return Case(
            name,
            where,
            line.line,
            as_of,
            customer,
            derived,
            list(raw.get("contacts", [])),
            expect,
            removed,
        )

    def _expectation(self, where: str, source: str, name: str, item: Any) -> None:
        if not isinstance(item, dict):
            self.problem(
                where,
                _line_of(source, name),
                f'case `{name}`: an expectation must be a table such as {{rule = "winback"}}',
            )
            return
        rule = item.get("rule")
        if rule not in self.rules:
            self.problem(
                where,
                _line_of(source, f'"{rule}"'),
                f"case `{name}`: unknown rule `{rule}`",
                _suggest(str(rule), self.rules),
            )
        reason = item.get("reason")
        if reason is not None and reason not in REASONS:
            self.problem(
                where,
                _line_of(source, f'"{reason}"'),
                f"case `{name}`: unknown reason `{reason}`; one of: {', '.join(REASONS)}",
            )
        for key in set(item) - {*ACTION_KEYS, "reason"}:
            self.problem(
                where,
                _line_of(source, key),
                f"case `{name}`: unknown key `{key}`",
                _suggest(key, ACTION_KEYS),
            )


def _suggest(word: str, candidates) -> str | None:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


# ---------------------------------------------------------------- running cases


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value.isoformat() if isinstance(value, dt.date) else str(value)


def _plan_case(case: Case, report: Report, config: Config, folder: Path) -> tuple[Plan, dict]:
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
            writer = csv.writer(handle)
            writer.writerow(["customer_id", "channel", "rule", "sent_at"])
            for contact in case.contacts:
                writer.writerow(
                    [
                        row[key],
                        contact.get("channel", ""),
                        contact.get("rule", ""),
                        _csv_value(contact.get("sent_at")),
                    ]
                )
    inputs = Inputs(customers, contacts=contacts)
    con = connect()
    load(con, config, inputs, case.as_of)
    create_derived(con, config, case.as_of, orders=False, contacts=contacts is not None)
    con.execute(f"CREATE TEMP TABLE given AS SELECT * FROM {DERIVED}")
    types = config.field_types()
    for name, value in case.derived.items():
        con.execute(f"UPDATE given SET {ident(name)} = ?", [value])
        if types[name].kind is t.Kind.ENUM:
            con.execute(f"UPDATE given SET {rank_column(name)} = {rank_sql(name, types[name])}")
    con.execute(f"CREATE OR REPLACE TEMP VIEW {DERIVED} AS SELECT * FROM given")
    plan = build_plan(con, report.ruleset, config, case.as_of, inputs)
    cursor = con.execute(fields_sql(config))
    fields = dict(zip([d[0] for d in cursor.description], cursor.fetchone(), strict=True))
    return plan, fields


def _outcome(plan: Plan) -> tuple[list[dict], list[dict]]:
    cursor = plan.con.execute(plan_rows_sql(plan, ""))
    names = [d[0] for d in cursor.description]
    actual = []
    for values in cursor.fetchall():
        row = dict(zip(names, values, strict=True))
        actual.append(
            {
                "rule": row["rule"],
                "action": row["action"],
                "template": row["template"],
                "channel": row["channel"],
                "parameters": json.loads(row["parameters"]),
                "holdout": row["holdout"],
            }
        )
    removed = [
        {"rule": rule, "reason": reason}
        for _, rule, reason in plan.con.execute(suppressed_sql(plan.ruleset)).fetchall()
    ]
    removed += [{"rule": a["rule"], "reason": "holdout"} for a in actual if a["holdout"]]
    return actual, removed


def _matches(expected: dict, actual: dict) -> bool:
    return all(actual.get(k) == v for k, v in expected.items() if k != "reason")


def _check(case: Case, actual: list[dict], removed: list[dict]) -> list[str]:
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


def _show(action: dict) -> str:
    keys = [k for k in ACTION_KEYS if k in action]
    return "{" + ", ".join(f"{k} = {action[k]!r}" for k in keys) + "}"


def run_tests(
    report: Report, config: Config, files: list[Path]
) -> tuple[TestRun | None, list[Diagnostic]]:
    """Read and run every case; on problems in the test files, return their diagnostics."""
    reader = _Reader(config, report.ruleset)
    cases = [case for path in files for case in reader.read(path)]
    if reader.diagnostics:
        return None, reader.diagnostics
    results, fired = [], set()
    with tempfile.TemporaryDirectory() as folder:
        for case in cases:
            plan, fields = _plan_case(case, report, config, Path(folder))
            actual, removed = _outcome(plan)
            fired |= {a["rule"] for a in actual}
            failures = _check(case, actual, removed)
            traces = (
                rule_traces(plan, report, fields, fields[config.customers.id], case.as_of)
                if failures
                else []
            )
            results.append(CaseResult(case, actual, removed, failures, traces))
    return TestRun(results, fired, [r.name for r in report.ruleset.rules]), []
