"""Running the engine: check the rules, load the data, derive, plan, write. Returns data.

>>> from retentionrules.engine import run_plan
>>> from retentionrules.loader import Inputs
>>> result = run_plan(["examples/rules"], Inputs(Path("examples/customers.csv")), as_of)
>>> result.plan.counts
"""

from __future__ import annotations

import datetime as dt
import threading
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from . import ir
from .api import Report, check_paths, resolve_config, rule_files
from .config import Config
from .derive import DERIVED, create_derived, fields_sql
from .errors import DataError, RuleErrors, UsageError
from .interpreter import evaluate
from .loader import Inputs, LoadStats, connect, load, rejects_sql
from .output import (
    check_writable,
    digest_files,
    digest_text,
    sidecar,
    write_json,
    write_query,
)
from .planner import ELIGIBLE, REASONS, Plan, build_plan, plan_rows_sql, suppressed_sql
from .sql import ident

FORMAT_VERSION = 1
_NO_REJECTS = "SELECT NULL AS file, NULL AS row, NULL AS reason, NULL AS record LIMIT 0"


@dataclass
class PlanResult:
    plan: Plan
    stats: LoadStats
    meta: dict[str, Any]
    report: Report
    written: list[Path] = field(default_factory=list)


def today(config: Config) -> dt.date:
    """Today in the configured time zone: the default as-of date."""
    return dt.datetime.now(zoneinfo.ZoneInfo(config.timezone)).date()


def checked_rules(rule_paths: list[str | Path], config_path: Path | None) -> tuple[Report, Config]:
    files = rule_files(rule_paths)
    if not files:
        raise UsageError("no rule files found (looked for *.rules)")
    report = check_paths(files, config_path)
    if not report.ok:
        raise RuleErrors(report)
    return report, resolve_config(files, config_path)


class _Digest(threading.Thread):
    """Hash the input files while DuckDB works (hashing releases the GIL)."""

    def __init__(self, paths: list[Path]) -> None:
        super().__init__(daemon=True)
        self.paths, self.value, self.error = paths, "", None

    def run(self) -> None:
        try:
            self.value = digest_files(self.paths)
        except OSError as error:
            self.error = error


def prepare(
    rule_paths: list[str | Path],
    inputs: Inputs,
    as_of: dt.date | None,
    config_path: Path | None = None,
    rejects: Path | None = None,
) -> tuple[duckdb.DuckDBPyConnection, Report, Config, LoadStats, dt.date]:
    """Check the rules, load and validate the data, derive every field: ready to plan or score."""
    report, config = checked_rules(rule_paths, config_path)
    as_of = as_of or today(config)
    con = connect()
    stats = load(con, config, inputs, as_of, rejects)
    create_derived(con, config, as_of, inputs.orders is not None, inputs.contacts is not None)
    return con, report, config, stats, as_of


def run_plan(
    rule_paths: list[str | Path],
    inputs: Inputs,
    as_of: dt.date | None = None,
    *,
    out: Path | None = None,
    rejects: Path | None = None,
    suppressed: Path | None = None,
    config_path: Path | None = None,
) -> PlanResult:
    """Plan, and write the plan, its header, the suppressed pairs and the rejects when asked.

    Nothing is written unless every step before succeeded.
    """
    for path in (out, rejects, suppressed):
        if path is not None:
            check_writable(path)
    digest = _Digest(inputs.files())
    digest.start()
    con, report, config, stats, as_of = prepare(rule_paths, inputs, as_of, config_path, rejects)
    plan = build_plan(con, report.ruleset, config, as_of, inputs)
    if stats.future_contacts:  # not an error, but never silent
        plan.notes.append(
            f"{stats.future_contacts} contacts dated after the as-of date were left out"
        )
    digest.join()
    if digest.error is not None:
        raise DataError(f"cannot read input: {digest.error}")
    meta = _meta(report, config, digest.value, as_of, plan, stats)
    result = PlanResult(plan, stats, meta, report)
    if out is not None:
        write_query(con, plan_rows_sql(plan, meta["plan_id"]), out)
        write_json(sidecar(out), meta)
        result.written += [out, sidecar(out)]
    if suppressed is not None:
        write_query(con, suppressed_sql(report.ruleset), suppressed)
        result.written.append(suppressed)
    if rejects is not None:
        write_query(con, rejects_sql(con) or _NO_REJECTS, rejects)
        result.written.append(rejects)
    return result


def _meta(
    report: Report, config: Config, inputs_digest: str, as_of: dt.date, plan: Plan, stats: LoadStats
) -> dict[str, Any]:
    rules_digest = digest_text(*(report.sources[p] for p in sorted(report.sources)))
    config_digest = digest_text(config.model_dump_json())
    plan_id = digest_text(rules_digest, config_digest, inputs_digest, as_of.isoformat())[:16]
    return {
        "format_version": FORMAT_VERSION,
        "plan_id": plan_id,
        "as_of": as_of.isoformat(),
        "rules_digest": rules_digest,
        "config_digest": config_digest,
        "input_digest": inputs_digest,
        "actions": plan.actions,
        "customers": stats.customers,
        "rejected_rows": stats.total_rejected,
    }


# ---------------------------------------------------------------- explain


@dataclass
class RuleTrace:
    rule: str
    conditions: list[tuple[str, Any]]  # (source text of each top-level test, its value)
    matched: bool
    outcome: str  # planned, holdout, not matched, or the reason it was removed


@dataclass
class Explanation:
    customer: str
    fields: dict[str, Any]
    rules: list[RuleTrace]


def explain(
    rule_paths: list[str | Path],
    inputs: Inputs,
    customers: list[str],
    as_of: dt.date | None = None,
    config_path: Path | None = None,
) -> list[Explanation]:
    """Why each customer got, or did not get, each rule's action (the plan runs over everyone:
    household and volume limits depend on the other customers)."""
    con, report, config, _stats, as_of = prepare(rule_paths, inputs, as_of, config_path)
    plan = build_plan(con, report.ruleset, config, as_of, inputs)
    key = config.customers.id
    found = []
    for customer in customers:
        cursor = con.execute(f"{fields_sql(config)} WHERE {ident(key)} = ?", [customer])
        row = cursor.fetchone()
        if row is None:
            raise UsageError(f"customer {customer!r} is not in {inputs.customers}")
        fields = dict(zip([d[0] for d in cursor.description], row, strict=True))
        found.append(
            Explanation(customer, fields, rule_traces(plan, report, fields, customer, as_of))
        )
    return found


def rule_traces(
    plan: Plan, report: Report, fields: dict, customer: str, as_of: dt.date
) -> list[RuleTrace]:
    rules = plan.ruleset.rules
    flags = plan.con.execute("SELECT * FROM stages WHERE customer_id = ?", [customer]).fetchone()
    columns = [d[0] for d in plan.con.description] if flags else []
    flag = dict(zip(columns, flags, strict=True)) if flags else {}
    status = dict(
        plan.con.execute(
            "SELECT idx, status FROM planned WHERE customer_id = ?", [customer]
        ).fetchall()
    )
    traces = []
    for i, rule in enumerate(rules):
        stage = flag.get(f"s{i}", 0)
        matched = bool(evaluate(rule.condition, fields, as_of))
        if i in status:
            outcome = {"send": "planned", "holdout": "planned as holdout (not sent)"}.get(
                status[i], f"removed: {status[i]}"
            )
        elif stage == ELIGIBLE:
            outcome = f"removed: priority (lost to {rules[flag['winner']].name})"
        elif stage in REASONS:
            outcome = f"removed: {REASONS[stage]}"
        else:
            outcome = "not matched"
        traces.append(
            RuleTrace(rule.name, _conditions(rule, fields, report, as_of), matched, outcome)
        )
    return traces


def _conditions(
    rule: ir.Rule, fields: dict, report: Report, as_of: dt.date
) -> list[tuple[str, Any]]:
    source = report.sources.get(rule.path, "")
    operands = rule.condition.operands if isinstance(rule.condition, ir.And) else (rule.condition,)
    return [(_text(source, o.span), evaluate(o, fields, as_of)) for o in operands]


def _text(source: str, span) -> str:
    return " ".join(source[span.offset : span.end_offset].split()) if span.end_offset else "?"


# ---------------------------------------------------------------- score


@dataclass
class ScoreResult:
    stats: LoadStats
    distribution: list[tuple[str | None, str, int]]  # (tier, stage, customers)
    tiers: tuple[str, ...]


def score(
    inputs: Inputs,
    as_of: dt.date | None = None,
    *,
    out: Path | None = None,
    config_path: Path | None = None,
    rejects: Path | None = None,
) -> ScoreResult:
    """The derived-field table for every customer, and the tier x stage distribution."""
    for path in (out, rejects):
        if path is not None:
            check_writable(path)
    config = resolve_config([inputs.customers], config_path)
    as_of = as_of or today(config)
    con = connect()
    stats = load(con, config, inputs, as_of, rejects)
    create_derived(con, config, as_of, inputs.orders is not None, inputs.contacts is not None)
    if out is not None:
        write_query(con, f"{fields_sql(config)} ORDER BY __row", out)
    if rejects is not None:
        write_query(con, rejects_sql(con) or _NO_REJECTS, rejects)
    rows = con.execute(
        f"SELECT tier, stage, count(*) FROM {DERIVED} GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    return ScoreResult(stats, rows, config.tier_type().values)
