"""Renderers for plan, explain and score results: rich tables for people, JSON for machines."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.table import Table

from .engine import Explanation, PlanResult, ScoreResult

_STEPS = ("matched", "consent", "caps", "priority", "household", "volume", "sent", "holdout")


def _plain(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def plan_json(result: PlanResult) -> str:
    payload = {
        **result.meta,
        "rules": [asdict(c) for c in result.plan.counts],
        "rejected": result.stats.rejected,
        "notes": result.plan.notes,
        "written": [str(p) for p in result.written],
    }
    return json.dumps(payload, ensure_ascii=False, indent=2)


def print_plan(result: PlanResult, console: Console) -> None:
    table = Table(title=f"plan {result.meta['plan_id']} as of {result.meta['as_of']}")
    table.add_column("rule")
    for step in _STEPS:
        table.add_column(step, justify="right")
    table.add_column("cost", justify="right")
    totals = [0] * len(_STEPS)
    cost = 0.0
    for counts in result.plan.counts:
        values = [getattr(counts, step) for step in _STEPS]
        totals = [a + b for a, b in zip(totals, values, strict=True)]
        cost += counts.cost
        table.add_row(counts.rule, *map(str, values), f"{counts.cost:.2f}")
    table.add_section()
    table.add_row("total", *map(str, totals), f"{cost:.2f}")
    console.print(table)
    stats = result.stats
    console.print(
        f"{stats.customers} customers read; {stats.total_rejected} rows rejected"
        + "".join(f"\n  {n} from {f}" for f, n in stats.rejected.items())
    )
    for note in result.plan.notes:
        console.print(f"note: {note}")
    for path in result.written:
        console.print(f"wrote {path}")


def explain_json(explanations: list[Explanation]) -> str:
    return json.dumps(
        [
            {
                "customer": e.customer,
                "fields": {k: _plain(v) for k, v in e.fields.items()},
                "rules": [
                    {
                        "rule": t.rule,
                        "matched": t.matched,
                        "outcome": t.outcome,
                        "conditions": [
                            {"test": text, "value": _plain(v)} for text, v in t.conditions
                        ],
                    }
                    for t in e.rules
                ],
            }
            for e in explanations
        ],
        ensure_ascii=False,
        indent=2,
    )


def print_explanation(explanation: Explanation, console: Console) -> None:
    console.print(f"[bold]customer {explanation.customer}[/bold]")
    fields = Table(show_header=False, box=None, padding=(0, 2))
    for name, value in explanation.fields.items():
        fields.add_row(name, "—" if value is None else str(_plain(value)))
    console.print(fields)
    for trace in explanation.rules:
        mark = "✓" if trace.matched else "✗"
        console.print(f"\n{mark} [bold]{trace.rule}[/bold]: {trace.outcome}")
        for text, value in trace.conditions:
            console.print(f"    {'true ' if value else 'false'}  {text}", markup=False)


def score_json(result: ScoreResult) -> str:
    return json.dumps(
        {
            "customers": result.stats.customers,
            "rejected": result.stats.rejected,
            "distribution": [
                {"tier": t, "stage": s, "customers": n} for t, s, n in result.distribution
            ],
        },
        ensure_ascii=False,
        indent=2,
    )


def print_score(result: ScoreResult, console: Console) -> None:
    stages = ("potential", "active", "silent", "sleeping", "lost")
    counts = {(t, s): n for t, s, n in result.distribution}
    table = Table(title="customers by tier and stage")
    table.add_column("tier")
    for stage in stages:
        table.add_column(stage, justify="right")
    table.add_column("total", justify="right")
    for tier in (*reversed(result.tiers), None):
        row = [counts.get((tier, s), 0) for s in stages]
        table.add_row(tier or "(none)", *map(str, row), str(sum(row)))
    console.print(table)
    console.print(
        f"{result.stats.customers} customers; {result.stats.total_rejected} rows rejected"
    )
