"""Renderers for plan, explain and score results: rich tables for people, JSON for machines.

Rule names, ids, field values and paths are data: they are printed as they are, never read as
rich markup (`[/bold]` in a city, `[x]` in a path), whatever console they are printed on.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from . import ir
from .engine import Explanation, PlanResult, ScoreResult, test_line
from .output import json_text
from .policies import POLICIES, RuleCounts
from .words import counted

if TYPE_CHECKING:  # types only: importing `send` (HTTP, TLS) would slow every plan's start
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from .impact import Impact
    from .send import Approval, SendReport


def _plain(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def _table(**options: Any) -> Table:
    """rich is imported only when a table is drawn: machines asking for JSON start faster.
    (Titles hold only ids, dates and counts: no data that could read as markup.)"""
    from rich.table import Table

    return Table(**options)


def _text(value: object, style: str = "") -> Text:
    """A value as plain text for a table cell or a line: never markup."""
    from rich.text import Text

    return Text(str(value), style=style)


def _row(table: Table, *cells: object) -> None:
    table.add_row(*(_text(cell) for cell in cells))


def plan_json(result: PlanResult) -> str:
    payload = {
        **result.meta,
        "config": result.plan.config.where(),
        "rules": [c.as_dict() for c in result.plan.counts],
        "rejected": result.stats.rejected,
        "notes": result.plan.notes,
        "written": [str(p) for p in result.written],
    }
    return json_text(payload)


# The plan summary shows what each step removed: a new user reads a number under `consent` as
# the customers consent took away (shown the customers left after each step instead, "consent
# 54" was read as 54 removed). Matched minus every step's removals is what is planned.
PLAN_LEGEND = (
    "matched: customers the rule's condition holds for; consent ... holdout: how many of them "
    "each step removed",
    "holdout: kept in the plan as the control group, never sent",
    "planned: matched minus the removals, the actions `send` delivers once the plan is approved "
    "(a tag is a label: sent to nobody)",
)


def action_text(rule: ir.Rule) -> str:
    """What a rule does, as the summary shows it: `send via sms`, `call via phone`, or
    `tag LABEL` (a tag reaches nobody: it has no channel and costs nothing)."""
    action = rule.action
    if action.kind == "tag":
        return f"tag {action.template}"
    return f"{action.kind} via {action.channel}" if action.channel else action.kind


def removed_by_step(counts: RuleCounts) -> list[int]:
    """How many customers each step after `match` removed, in POLICIES order (the last is the
    holdout: held out, not sent)."""
    return [counts.after[i] - counts.after[i + 1] for i in range(len(counts.after) - 1)]


def print_plan(result: PlanResult, console: Console) -> None:
    """Checker warnings first (a rule that never fires explains a row of zeros), then the
    table of what each step removed, its legend and the notes."""
    warnings = result.report.diagnostics
    if warnings:
        from .render import render_text

        console.print(render_text(warnings, result.report.sources), markup=False)
    table = _table(
        title=f"plan {result.meta['plan_id']} as of {result.meta['as_of']}: "
        "customers removed by each step"
    )
    table.add_column("rule")
    table.add_column("action")
    table.add_column("matched", justify="right")
    for policy in POLICIES[1:]:
        table.add_column(policy.name, justify="right")
    table.add_column("planned", justify="right")
    table.add_column("cost", justify="right")
    actions = {rule.name: action_text(rule) for rule in result.plan.ruleset.rules}
    totals = [0] * (len(POLICIES) + 1)
    cost = 0.0
    for counts in result.plan.counts:
        values = [counts.matched, *removed_by_step(counts), counts.sent]
        totals = [a + b for a, b in zip(totals, values, strict=True)]
        cost += counts.cost
        _row(
            table,
            counts.rule,
            actions.get(counts.rule, ""),
            *_removals(values),
            f"{counts.cost:.2f}",
        )
    table.add_section()
    _row(table, "total", "", *_removals(totals), f"{cost:.2f}")
    console.print(table)
    for line in PLAN_LEGEND:
        console.print(line, markup=False)
    stats = result.stats
    console.print(
        f"{counted(stats.customers, 'customer')} read; "
        f"{counted(stats.total_rejected, 'row')} rejected"
        + "".join(f"\n  {n} from {f}" for f, n in stats.rejected.items()),
        markup=False,
    )
    console.print(f"configuration: {result.plan.config.where()}", markup=False)
    for note in result.plan.notes:
        console.print(f"note: {note}", markup=False)
    for path in result.written:
        console.print(f"wrote {path}", markup=False)


def _removals(values: list[int]) -> list[str]:
    """matched, the removals (`-3`, or `0` when a step removed nobody), planned."""
    first, *removed, last = values
    return [str(first), *(f"-{n}" if n else "0" for n in removed), str(last)]


def explain_json(explanations: list[Explanation]) -> str:
    return json_text(
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
                            {
                                "test": c.text,
                                "value": _plain(c.value),
                                "reads": {k: _plain(v) for k, v in c.reads.items()},
                            }
                            for c in t.conditions
                        ],
                    }
                    for t in e.rules
                ],
            }
            for e in explanations
        ]
    )


def print_explanation(explanation: Explanation, console: Console) -> None:
    console.print(_text(f"customer {explanation.customer}", "bold"))
    fields = _table(show_header=False, box=None, padding=(0, 2))
    for name, value in explanation.fields.items():
        _row(fields, name, "—" if value is None else _plain(value))
    console.print(fields)
    for trace in explanation.rules:
        mark = "✓" if trace.matched else "✗"
        line = _text(f"\n{mark} ")
        line.append(trace.rule, style="bold")
        line.append(f": {trace.outcome}")
        console.print(line)
        for test in trace.conditions:
            console.print(f"    {test_line(test)}", markup=False)


def score_json(result: ScoreResult) -> str:
    return json_text(
        {
            "config": result.config,
            "customers": result.stats.customers,
            "rejected": result.stats.rejected,
            "distribution": [
                {"tier": t, "stage": s, "customers": n} for t, s, n in result.distribution
            ],
        }
    )


def print_score(result: ScoreResult, console: Console) -> None:
    stages = ("potential", "active", "silent", "sleeping", "lost")
    counts = {(t, s): n for t, s, n in result.distribution}
    table = _table(title="customers by tier and stage")
    table.add_column("tier")
    for stage in stages:
        table.add_column(stage, justify="right")
    table.add_column("total", justify="right")
    for tier in (*reversed(result.tiers), None):
        row = [counts.get((tier, s), 0) for s in stages]
        _row(table, tier or "(none)", *row, sum(row))
    console.print(table)
    console.print(
        f"{counted(result.stats.customers, 'customer')}; "
        f"{counted(result.stats.total_rejected, 'row')} rejected",
        markup=False,
    )
    console.print(f"configuration: {result.config}", markup=False)


# ---------------------------------------------------------------- diff


def _impact_rows(impact: Impact) -> list[list[str]]:
    rows = []
    for r in impact.rules:
        moved_in = ", ".join(f"{n} from {rule}" for rule, n in sorted(r.moved_in.items()))
        moved_out = ", ".join(f"{n} to {rule}" for rule, n in sorted(r.moved_out.items()))
        rows.append(
            [
                r.rule,
                str(r.before),
                str(r.after),
                f"+{len(r.added)}",
                f"-{len(r.removed)}",
                moved_in or "—",
                moved_out or "—",
                f"{r.cost_after - r.cost_before:+.2f}",
            ]
        )
    total = [sum(getattr(r, k) for r in impact.rules) for k in ("before", "after")]
    added = sum(len(r.added) for r in impact.rules)
    removed = sum(len(r.removed) for r in impact.rules)
    cost = sum(r.cost_after - r.cost_before for r in impact.rules)
    rows.append(
        ["total", str(total[0]), str(total[1]), f"+{added}", f"-{removed}", "", "", f"{cost:+.2f}"]
    )
    return rows


_IMPACT_HEADER = [
    "rule",
    "before",
    "after",
    "added",
    "removed",
    "moved in",
    "moved out",
    "cost change",
]


def impact_markdown(impact: Impact) -> str:
    """A pull-request comment: what the rule change does to the audience."""
    lines = [
        f"### Audience impact of this rule change ({impact.customers:,} customers, "
        f"as of {impact.as_of.isoformat()})",
        "",
        "| " + " | ".join(_IMPACT_HEADER) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(_IMPACT_HEADER))) + "|",
    ]
    lines += [
        "| "
        + " | ".join(f"`{c}`" if i == 0 and c != "total" else c for i, c in enumerate(row))
        + " |"
        for row in _impact_rows(impact)
    ]
    return "\n".join(lines)


def print_impact(impact: Impact, console: Console) -> None:
    table = _table(
        title=f"audience impact, {impact.customers:,} customers, as of {impact.as_of.isoformat()}"
    )
    for i, name in enumerate(_IMPACT_HEADER):
        table.add_column(name, justify="left" if i in (0, 5, 6) else "right")
    rows = _impact_rows(impact)
    for row in rows[:-1]:
        _row(table, *row)
    table.add_section()
    _row(table, *rows[-1])
    console.print(table)


def impact_json(impact: Impact) -> str:
    return json_text(
        {
            "as_of": impact.as_of.isoformat(),
            "customers": impact.customers,
            "rules": [
                {
                    **asdict(r),
                    "moved": r.moved,
                    "cost_change": round(r.cost_after - r.cost_before, 2),
                }
                for r in impact.rules
            ],
        }
    )


# ---------------------------------------------------------------- approve and send


def approval_json(approval: Approval) -> str:
    return json_text(
        {
            **approval.record,
            "as_of": approval.header["as_of"],
            "channels": {
                channel: {"messages": count, "cost": round(cost, 2)}
                for channel, (count, cost) in approval.by_channel.items()
            },
            "holdout": approval.holdout,
            "written": str(approval.written),
        }
    )


def print_approval(approval: Approval, console: Console) -> None:
    header = approval.header
    console.print(
        f"plan {header['plan_id']} as of {header['as_of']}: what it will send", markup=False
    )
    table = _table()
    for name in ("channel", "messages", "cost"):
        table.add_column(name, justify="left" if name == "channel" else "right")
    for channel, (count, cost) in sorted(approval.by_channel.items()):
        table.add_row(channel, str(count), f"{cost:.2f}")
    console.print(table)
    console.print(
        f"{approval.holdout} held out (never sent); "
        f"{counted(header['customers'], 'customer')} planned, "
        f"{counted(header['rejected_rows'], 'row')} rejected",
        markup=False,
    )
    record = approval.record
    console.print(
        f"approved by {record['approved_by']} at {record['approved_at']}"
        + (f": {record['note']}" if record.get("note") else ""),
        markup=False,
    )
    console.print(f"wrote {approval.written}", markup=False)


_SEND_COLUMNS = (
    ("sent", "sent"),
    ("would_send", "would send"),
    ("already_sent", "sent before"),
    ("deferred", "deferred"),
    ("consent_withdrawn", "consent withdrawn"),
    ("customer_missing", "not in export"),
    ("no_address", "no address"),
    ("failed", "failed"),
    ("holdout", "held out"),
)


def send_json(report: SendReport) -> str:
    return json_text(
        {
            "plan_id": report.plan_id,
            "to": report.transport,
            "dry_run": report.dry_run,
            "channels": {
                channel: {**dict(tally.counts), "cost": round(tally.cost, 2)}
                for channel, tally in sorted(report.channels.items())
            },
            "deferred_until": report.deferred_until.isoformat()
            if report.deferred_until
            else None,
            "not_sent": [
                {"customer_id": c, "rule": r, "reason": why} for c, r, why in report.not_sent
            ],
            "problems": report.problems,
            "customers_changed": report.customers_changed,
        }
    )


def print_send(report: SendReport, console: Console) -> None:
    shown = [
        (key, title)
        for key, title in _SEND_COLUMNS
        if any(t.counts[key] for t in report.channels.values())
    ]
    verb = "would send" if report.dry_run else f"sent to {report.transport}"
    console.print(f"plan {report.plan_id}: {verb}", markup=False)  # a URL: never markup
    table = _table()
    table.add_column("channel")
    for _key, title in shown:
        table.add_column(title, justify="right")
    table.add_column("cost", justify="right")
    for channel, tally in sorted(report.channels.items()):
        table.add_row(
            channel, *(str(tally.counts[key]) for key, _ in shown), f"{tally.cost:.2f}"
        )
    console.print(table)
    deferred = report.total("deferred")
    if deferred and report.deferred_until is not None:
        console.print(
            f"{deferred} deferred: outside their channel's send window; run send again from "
            f"{report.deferred_until.isoformat(timespec='minutes')}",
            markup=False,
        )
    if report.customers_changed:
        console.print(
            "note: the customer export is not the one the plan was made from; consent and "
            "addresses were read from it",
            markup=False,
        )
    for customer, rule, reason in report.not_sent[:20]:
        console.print(f"not sent: {customer} ({rule}): {reason}", markup=False)
    if len(report.not_sent) > 20:
        console.print(f"... and {len(report.not_sent) - 20} more (--format json lists all)")
    for problem in report.problems:
        console.print(f"stopped: {problem}", markup=False)
