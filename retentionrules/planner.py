"""The action plan: the typed rule set applied to the derived customers, policy by policy.

1. match     the rule's condition holds (compiled to SQL, `compiler.py`)
2. consent   the customer agreed to the rule's channel; never overridable
3. caps      the quiet period, per-channel caps and per-rule caps, against the contact history
4. priority  one action per customer: highest priority wins, ties by file order
5. household `once per household` keeps the member with the highest rfm_score, then lowest id
6. volume    `max N per run` keeps the N best by rfm_score, then lowest id
7. holdout   a salted hash of (customer, rule) picks a stable share, planned but never sent

Steps 1-4 are one pass over the customers (table `flags`: a stage code per rule and the winner);
steps 5-7 work on the winners only (table `planned`). Every removal keeps its reason.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

import duckdb

from . import ir
from .compiler import compile_condition
from .config import Config
from .derive import DERIVED
from .sql import HOLDOUT_BUCKETS, holdout_bucket, ident, literal
from .timeutil import shift

# Stage codes of a (customer, rule) pair after steps 1-3, and the reasons they stand for.
NO_MATCH, NO_CONSENT, QUIET, CHANNEL_CAP, RULE_CAP, ELIGIBLE = range(6)
REASONS = {
    NO_CONSENT: "consent",
    QUIET: "quiet_period",
    CHANNEL_CAP: "channel_cap",
    RULE_CAP: "rule_cap",
}
QUIET_COLUMN = "__quiet"  # contacted within the quiet period: computed once, used by every rule


@dataclass
class RuleCounts:
    """How many customers are left after each policy step, for one rule."""

    rule: str
    matched: int = 0
    consent: int = 0
    caps: int = 0
    priority: int = 0
    household: int = 0
    volume: int = 0
    sent: int = 0
    holdout: int = 0
    cost: float = 0.0


@dataclass
class Plan:
    """A computed plan, held in DuckDB tables until written or inspected."""

    con: duckdb.DuckDBPyConnection
    ruleset: ir.RuleSet
    config: Config
    as_of: dt.date
    counts: list[RuleCounts] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def actions(self) -> int:
        return sum(c.sent + c.holdout for c in self.counts)


def ranked(ruleset: ir.RuleSet) -> list[tuple[int, ir.Rule]]:
    """Rules in the order they win: priority, then file order."""
    return sorted(enumerate(ruleset.rules), key=lambda item: (-item[1].priority, item[1].order))


def _contact_counts(con, ruleset: ir.RuleSet, config: Config, as_of: dt.date) -> dict[str, str]:
    """Count each customer's recent contacts per capped channel and capped rule."""
    columns: dict[str, str] = {}
    for name, channel in config.channels.items():
        if channel.cap is not None:
            since = literal(shift(as_of, channel.cap.per, -1))
            columns[f"channel:{name}"] = f"channel = {literal(name)} AND sent_at >= {since}"
    for rule in ruleset.rules:
        if rule.cap is not None:
            since = literal(shift(as_of, rule.cap[1], -1))
            columns[f"rule:{rule.name}"] = f"rule = {literal(rule.name)} AND sent_at >= {since}"
    aliases = {key: f"n{i}" for i, key in enumerate(columns)}
    selects = ", ".join(
        f"count(*) FILTER (WHERE {cond}) AS {aliases[k]}" for k, cond in columns.items()
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE contact_counts AS SELECT customer_id"
        + (f", {selects}" if selects else "")
        + " FROM contacts GROUP BY customer_id"
    )
    return aliases


def _stage_sql(rule: ir.Rule, config: Config, as_of: dt.date, counts: dict[str, str] | None) -> str:
    """The stage code (NO_MATCH ... ELIGIBLE) of one rule for one customer."""
    cases = [f"WHEN NOT {compile_condition(rule.condition, as_of)} THEN {NO_MATCH}"]
    channel_name = rule.action.channel
    channel = config.channels.get(channel_name) if channel_name else None
    if channel is not None:
        if channel.requires_consent:
            cases.append(f"WHEN NOT coalesce({ident(channel.consent)}, FALSE) THEN {NO_CONSENT}")
        if config.contacts.quiet_period is not None:
            cases.append(f"WHEN {QUIET_COLUMN} THEN {QUIET}")
        if counts is not None and channel.cap is not None:
            column = counts[f"channel:{channel_name}"]
            cases.append(f"WHEN coalesce({column}, 0) >= {channel.cap.count} THEN {CHANNEL_CAP}")
    if counts is not None and rule.cap is not None:
        cases.append(
            f"WHEN coalesce({counts[f'rule:{rule.name}']}, 0) >= {rule.cap[0]} THEN {RULE_CAP}"
        )
    return f"CAST(CASE {' '.join(cases)} ELSE {ELIGIBLE} END AS UTINYINT)"


def _flags(con, ruleset: ir.RuleSet, config: Config, as_of: dt.date, has_contacts: bool) -> None:
    counts = _contact_counts(con, ruleset, config, as_of) if has_contacts else None
    key, household = ident(config.customers.id), config.customers.household
    stages = ", ".join(
        f"{_stage_sql(rule, config, as_of, counts)} AS s{i}" for i, rule in enumerate(ruleset.rules)
    )
    winner = " ".join(f"WHEN s{i} = {ELIGIBLE} THEN {i}" for i, _ in ranked(ruleset))
    join = f"LEFT JOIN contact_counts cc ON cc.customer_id = d.{key}" if counts is not None else ""
    quiet = config.contacts.quiet_period
    recent = (
        f"coalesce(last_contacted >= {literal(shift(as_of, quiet, -1))}, FALSE)"
        if quiet
        else "FALSE"
    )
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE flags AS
        SELECT *, CASE {winner} END AS winner FROM (
            SELECT d.__row AS input_row, d.{key} AS customer_id,
                {f"d.{ident(household)}" if household else "NULL"} AS household,
                d.rfm_score AS rfm_score, {stages}
            FROM (SELECT *, {recent} AS {QUIET_COLUMN} FROM {DERIVED}) d {join}
        )
    """)


def _rule_table(con, ruleset: ir.RuleSet, config: Config) -> None:
    rows = []
    for i, rule in enumerate(ruleset.rules):
        channel = config.channels.get(rule.action.channel or "")
        cost = channel.cost if channel else 0.0
        share = int(rule.holdout * HOLDOUT_BUCKETS / 100)
        values = (
            i,
            rule.name,
            rule.action.kind,
            rule.action.template,
            rule.action.channel,
            json.dumps(dict(rule.action.params), ensure_ascii=False, sort_keys=True),
            rule.priority,
            share,
            rule.once_per_household,
            rule.max_per_run,
            float(cost),
        )
        rows.append("(" + ", ".join(literal(v) for v in values) + ")")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE rules (idx INTEGER, name VARCHAR, kind VARCHAR, "
        "template VARCHAR, channel VARCHAR, params JSON, priority INTEGER, holdout INTEGER, "
        "once_per_household BOOLEAN, max_per_run BIGINT, cost DOUBLE)"
    )
    if rows:
        con.execute(f"INSERT INTO rules VALUES {', '.join(rows)}")


def _planned(con, ruleset: ir.RuleSet, config: Config) -> None:
    """Steps 5-7 on the winners: household, volume, holdout; each removal with its reason.

    A window or a hash that no rule asks for is left out: most rule sets use few of them.
    """
    rules = ruleset.rules
    household_rank = "1"
    if any(r.once_per_household for r in rules):
        household_rank = """CASE WHEN r.once_per_household THEN row_number() OVER (
            PARTITION BY r.idx, f.household, CASE WHEN f.household IS NULL THEN f.customer_id END
            ORDER BY f.rfm_score DESC, f.customer_id) ELSE 1 END"""
    volume_rank = "NULL"
    if any(r.max_per_run for r in rules):
        volume_rank = """CASE WHEN household_rank = 1 THEN row_number() OVER (
            PARTITION BY idx, household_rank = 1 ORDER BY rfm_score DESC, customer_id) END"""
    held = "FALSE"
    if any(r.holdout > 0 for r in rules):
        bucket = holdout_bucket(config.holdout_salt, "customer_id", "name")
        held = f"holdout > 0 AND {bucket} < holdout"
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE planned AS
        WITH w AS (
            SELECT f.input_row, f.customer_id, f.rfm_score, r.idx, r.name, r.holdout, r.max_per_run,
                {household_rank} AS household_rank
            FROM flags f JOIN rules r ON r.idx = f.winner
        ),
        v AS (SELECT *, {volume_rank} AS volume_rank FROM w)
        SELECT input_row, customer_id, idx, CASE
            WHEN household_rank > 1 THEN 'household'
            WHEN volume_rank > max_per_run THEN 'volume'
            WHEN {held} THEN 'holdout'
            ELSE 'send' END AS status
        FROM v
    """)


def _at_least(histogram: dict[int, int], code: int) -> int:
    """Customers whose stage code for a rule is `code` or later: they got at least that far."""
    return sum(n for stage, n in histogram.items() if stage >= code)


def _count(con, plan: Plan) -> None:
    """Per rule, how many customers are left after each step: one histogram per rule."""
    rules = plan.ruleset.rules
    if not rules:
        return
    histograms = ", ".join(f"histogram(s{i})" for i in range(len(rules)))
    *stages, winners = con.execute(f"SELECT {histograms}, histogram(winner) FROM flags").fetchone()
    after = {
        idx: (household, volume, sent, holdout)
        for idx, household, volume, sent, holdout in con.execute("""
            SELECT idx, count(*) FILTER (WHERE status <> 'household'),
                count(*) FILTER (WHERE status IN ('send', 'holdout')),
                count(*) FILTER (WHERE status = 'send'), count(*) FILTER (WHERE status = 'holdout')
            FROM planned GROUP BY idx""").fetchall()
    }
    for i, rule in enumerate(rules):
        histogram = stages[i] or {}
        household, volume, sent, holdout = after.get(i, (0, 0, 0, 0))
        channel = plan.config.channels.get(rule.action.channel or "")
        plan.counts.append(
            RuleCounts(
                rule.name,
                _at_least(histogram, NO_CONSENT),
                _at_least(histogram, QUIET),
                _at_least(histogram, ELIGIBLE),
                (winners or {}).get(i, 0),
                household,
                volume,
                sent,
                holdout,
                round(sent * (channel.cost if channel else 0.0), 2),
            )
        )


def build_plan(
    con: duckdb.DuckDBPyConnection,
    ruleset: ir.RuleSet,
    config: Config,
    as_of: dt.date,
    has_contacts: bool,
) -> Plan:
    """Run the policies over the `derived` table already in `con`."""
    plan = Plan(con, ruleset, config, as_of)
    _rule_table(con, ruleset, config)
    _flags(con, ruleset, config, as_of, has_contacts)
    _planned(con, ruleset, config)
    _count(con, plan)
    if not has_contacts and any(r.cap for r in ruleset.rules):
        plan.notes.append("no contact history given (--contacts): per-rule caps were not applied")
    return plan


def plan_rows_sql(plan_id: str) -> str:
    """The plan, one row per action, in the customers' input order (one action per customer)."""
    return f"""
        SELECT {literal(plan_id)} AS plan_id, p.customer_id, r.name AS rule, r.kind AS action,
            r.template, r.channel, r.params AS parameters, r.priority,
            p.status = 'holdout' AS holdout,
            CASE WHEN p.status = 'holdout' THEN 0.0 ELSE r.cost END AS estimated_cost
        FROM planned p JOIN rules r ON r.idx = p.idx
        WHERE p.status IN ('send', 'holdout')
        ORDER BY p.input_row"""


def suppressed_sql(ruleset: ir.RuleSet) -> str:
    """Every (customer, rule) removed by a policy, with the reason, in a stable order."""
    reason = " ".join(f"WHEN {code} THEN {literal(text)}" for code, text in REASONS.items())
    parts = [
        f"SELECT customer_id, {literal(rule.name)} AS rule, CASE WHEN s{i} = {ELIGIBLE} "
        f"THEN 'priority' ELSE CASE s{i} {reason} END END AS reason FROM flags "
        f"WHERE s{i} BETWEEN {NO_CONSENT} AND {RULE_CAP} OR (s{i} = {ELIGIBLE} AND winner <> {i})"
        for i, rule in enumerate(ruleset.rules)
    ]
    parts.append(
        "SELECT p.customer_id, r.name, p.status FROM planned p JOIN rules r ON r.idx = p.idx "
        "WHERE p.status IN ('household', 'volume')"
    )
    return "SELECT * FROM (" + " UNION ALL ".join(parts) + ") ORDER BY customer_id, rule"
