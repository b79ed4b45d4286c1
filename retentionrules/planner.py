"""The action plan: the typed rule set applied to the derived customers, policy by policy.

1. match     the rule's condition holds (compiled to SQL, `compiler.py`)
2. consent   the customer agreed to the rule's channel; never overridable
3. caps      the quiet period, per-channel caps and per-rule caps, against the contact history
4. priority  one action per customer: highest priority wins, ties by file order
5. household `once per household` keeps the member with the highest rfm_score, then lowest id
6. volume    `max N per run` keeps the N best by rfm_score, then lowest id
7. holdout   a salted hash of (customer, rule) picks a stable share, planned but never sent

Steps 1-4 are one pass over the customers (table `flags`: whether each rule matches, the code
its channel and caps give, which rules on one channel share, and the winner; view `stages`: the
stage code per rule). Steps 5-7 work on the winners only (`planned`, in input order: a table,
or a view when no rule needs a window or a hash). Every removal keeps its reason.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb

from . import ir
from .compiler import LAYERS_PER_QUERY, Compiled, compile_conditions, with_layers
from .config import Config
from .derive import DERIVED
from .loader import Inputs, channel_key, one, text_key, unknown_history
from .policies import POLICIES, SEND, Reason, RuleCounts
from .sql import HOLDOUT_BUCKETS, holdout_bucket, ident, literal, pick, rank_column
from .timeutil import shift
from .types import STAGE

# Stage codes of a (customer, rule) pair after steps 1-3: 0 when the rule does not match, then
# one code per reason the consent and caps policies remove for, in their order, then eligible.
_GATES = tuple(p for p in POLICIES if p.name in ("consent", "caps"))
_GATE_REASONS = tuple(r for p in _GATES for r in p.reasons)
NO_MATCH = 0
CODE = {reason: i + 1 for i, reason in enumerate(_GATE_REASONS)}
ELIGIBLE = len(_GATE_REASONS) + 1
_REMOVED_LATER = (Reason.HOUSEHOLD, Reason.VOLUME)  # statuses of winners removed at steps 5-6
_CAPS = next(p for p in POLICIES if p.name == "caps").reasons
COUNTED = "__counted"  # contact_counts: whose contacts a row counts
QUIET_COLUMN = "__quiet"  # contacted within the quiet period: computed once, used by every rule
UNKNOWN_COLUMN = "__unknown_history"  # contact rows of the customer were set aside
RULES_PER_BITS = 63  # match bits per BIGINT column of `flags`; its sign bit stays clear


@dataclass
class Plan:
    """A computed plan, held in DuckDB tables that this module owns: read it through the
    functions below (`outcomes`, `assignments`, `plan_rows_sql`, `suppressed_sql`)."""

    con: duckdb.DuckDBPyConnection
    ruleset: ir.RuleSet
    as_of: dt.date
    counts: list[RuleCounts] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    removed: list[dict[Reason, int]] = field(default_factory=list)  # per rule: by each reason
    plan_id: str = ""  # set by `engine.run_plan` once the inputs' digests are known

    @property
    def config(self) -> Config:
        return self.ruleset.config

    def rows(self) -> list[dict[str, Any]]:
        """The plan's rows, as the plan file holds them (one per action, in the customers'
        input order), each a dict; `parameters` a dict. Read from DuckDB when asked: planning
        costs nothing more for it."""
        cursor = self.con.execute(plan_rows_sql(self, self.plan_id))
        names = [d[0] for d in cursor.description]
        found = []
        for values in cursor.fetchall():
            row = dict(zip(names, values, strict=True))
            row["parameters"] = json.loads(row["parameters"])
            found.append(row)
        return found

    def to_arrow(self) -> Any:
        """The plan's rows as a pyarrow Table (`parameters` as JSON text). Needs pyarrow."""
        _needs("pyarrow", "to_arrow")
        relation: Any = self.con.sql(plan_rows_sql(self, self.plan_id))
        # DuckDB 1.4 named it to_arrow_table; before, `arrow()` gave the table
        table = getattr(relation, "to_arrow_table", None) or relation.arrow
        return table()

    def to_pandas(self) -> Any:
        """The plan's rows as a pandas DataFrame (`parameters` as JSON text). Needs pandas."""
        _needs("pandas", "to_pandas")
        return self.con.sql(plan_rows_sql(self, self.plan_id)).df()

    @property
    def actions(self) -> int:
        return sum(c.after[-2] for c in self.counts)  # sent and held out: every row of the plan


def _needs(module: str, method: str) -> None:
    """An optional library a method needs: a clear ImportError that says how to get it."""
    import importlib

    try:
        importlib.import_module(module)
    except ImportError:
        raise ImportError(
            f"Plan.{method}() needs {module}, which is not installed: pip install {module} "
            "(Plan.rows() needs nothing: a list of dicts)"
        ) from None


def ranked(ruleset: ir.RuleSet) -> list[tuple[int, ir.Rule]]:
    """Rules in the order they win: priority, then file order."""
    return sorted(enumerate(ruleset.rules), key=lambda item: (-item[1].priority, item[1].order))


def _contact_counts(
    con: duckdb.DuckDBPyConnection, ruleset: ir.RuleSet, config: Config, as_of: dt.date
) -> dict[str, str]:
    """Count each customer's recent contacts per capped channel and capped rule.

    The contacts table holds normalised ids, channel and rule names (`loader.text_key`,
    `loader.channel_key`); the configured names go through the same helpers, so `SMS` and
    ` sms` in the history count against the channel `sms`. Contacts after the as-of date had
    not happened yet.
    """
    columns: dict[str, str] = {}
    day = literal(as_of)
    for name, channel in config.channels.items():
        if channel.cap is not None:
            since = literal(shift(as_of, channel.cap.per, -1))
            columns[f"channel:{name}"] = (
                f"channel = {channel_key(literal(name))} AND sent_at BETWEEN {since} AND {day}"
            )
    for rule in ruleset.rules:
        if rule.cap is not None:
            since = literal(shift(as_of, rule.cap[1], -1))
            columns[f"rule:{rule.name}"] = (
                f"rule = {text_key(literal(rule.name))} AND sent_at BETWEEN {since} AND {day}"
            )
    aliases = {key: f"n{i}" for i, key in enumerate(columns)}
    selects = ", ".join(
        f"count(*) FILTER (WHERE {cond}) AS {aliases[k]}" for k, cond in columns.items()
    )
    # The key is not called customer_id: a rule may name that field, and the flags query
    # joins these counts beside the customers.
    counted = (
        f"SELECT customer_id AS {COUNTED}"
        + (f", {selects}" if selects else "")
        + " FROM contacts GROUP BY customer_id"
    )
    unknown = unknown_history(con)
    flag = (
        f"u.customer_id IS NOT NULL AS {UNKNOWN_COLUMN}"
        if unknown
        else f"FALSE AS {UNKNOWN_COLUMN}"
    )
    if unknown:  # a full outer join: a customer may have no readable contact left at all
        counted = (
            f"SELECT coalesce(k.{COUNTED}, u.customer_id) AS {COUNTED}, k.* EXCLUDE ({COUNTED}), "
            f"{flag} FROM ({counted}) k FULL JOIN {ident(unknown)} u "
            f"ON u.customer_id = k.{COUNTED}"
        )
    else:
        counted = f"SELECT *, {flag} FROM ({counted})"
    con.execute(f"CREATE OR REPLACE TEMP TABLE contact_counts AS {counted}")
    return aliases


def _per_rule(values: Sequence[object]) -> str:
    """Each row's value for its rule (column `idx`): plan rows keep the input order this way."""
    return pick(values, "idx")


def _gate_cases(
    rule: ir.Rule, config: Config, counts: dict[str, str] | None
) -> list[tuple[Reason, str]]:
    """Steps 2-3 for a customer the rule matches: each reason the rule's channel and caps may
    remove it for, in policy order, with the test that removes it."""
    cases = []
    channel_name = rule.action.channel
    channel = config.channels.get(channel_name) if channel_name else None
    if channel is not None:
        if channel.requires_consent:
            assert channel.consent is not None  # the configuration requires it
            consent = ident(channel.consent)
            cases.append((Reason.CONSENT, f"NOT coalesce({consent}, FALSE)"))
        if counts is not None:  # rows of the customer's history were set aside: hold back
            cases.append((Reason.UNKNOWN_HISTORY, UNKNOWN_COLUMN))
        if config.contacts.quiet_period is not None:
            cases.append((Reason.QUIET_PERIOD, QUIET_COLUMN))
        if counts is not None and channel.cap is not None:
            column = counts[f"channel:{channel_name}"]
            cases.append((Reason.CHANNEL_CAP, f"coalesce({column}, 0) >= {channel.cap.count}"))
    if counts is not None and rule.cap is not None:
        column = counts[f"rule:{rule.name}"]
        cases.append((Reason.RULE_CAP, f"coalesce({column}, 0) >= {rule.cap[0]}"))
    return cases


def _gate_sql(cases: list[tuple[Reason, str]]) -> str:
    """The stage code a matched customer reaches: the first reason that removes them, else
    eligible. Rules on the same channel without a cap of their own share one gate, computed
    once."""
    if not cases:
        return f"CAST({ELIGIBLE} AS UTINYINT)"
    whens = " ".join(f"WHEN {test} THEN {CODE[reason]}" for reason, test in cases)
    return f"CAST(CASE {whens} ELSE {ELIGIBLE} END AS UTINYINT)"


def _matched(i: int) -> str:
    """Whether rule `i` matched: its bit in the flags' `matched` columns."""
    return f"(matched{i // RULES_PER_BITS} & {1 << i % RULES_PER_BITS} <> 0)"


def _match_bits(count: int) -> str:
    """The `matched` columns, from the `m0`... booleans. Storing `flags` is most of the cost of
    the pass, and one integer stores much faster than a boolean column per rule."""
    columns = []
    for start in range(0, count, RULES_PER_BITS):
        terms = [
            f"CASE WHEN m{i} THEN {1 << i % RULES_PER_BITS} ELSE 0 END"
            for i in range(start, min(start + RULES_PER_BITS, count))
        ]
        columns.append(f", CAST({' + '.join(terms)} AS BIGINT) AS matched{start // RULES_PER_BITS}")
    return "".join(columns)


def _quiet_sql(config: Config, as_of: dt.date) -> str:
    """Contacted within the quiet period: on one of its days, up to the as-of date itself."""
    quiet = config.contacts.quiet_period
    if quiet is None:
        return "FALSE"
    since = literal(shift(as_of, quiet, -1))
    return f"coalesce(last_contacted BETWEEN {since} AND {literal(as_of)}, FALSE)"


def _with_columns(
    con: duckdb.DuckDBPyConnection, relation: str, compiled: Compiled
) -> tuple[str, list[str]]:
    """`relation` with the columns the compiled conditions read (segments, deep parts), and the
    tables stored on the way. A long chain of them, segments built on segments, is stored every
    LAYERS_PER_QUERY layers, as DuckDB limits how deeply one query may nest. Each step reads one
    table, so rows keep their input order."""
    layers, size = compiled.layers, LAYERS_PER_QUERY
    blocks = [layers[start : start + size] for start in range(0, len(layers), size)]
    stored = []
    for n, block in enumerate(blocks[:-1]):
        query = with_layers(relation, block)
        con.execute(f"CREATE OR REPLACE TEMP TABLE columns{n} AS SELECT * FROM {query}")
        relation = f"columns{n}"
        stored.append(relation)
    return (with_layers(relation, blocks[-1]) if blocks else relation), stored


def _flags(
    con: duckdb.DuckDBPyConnection,
    ruleset: ir.RuleSet,
    config: Config,
    as_of: dt.date,
    has_contacts: bool,
) -> tuple[list[str], list[tuple[Reason, ...]]]:
    """Steps 1-4 in one pass: per rule whether it matches (bits in `matched0`...) and the gate
    code its channel and caps give (`g0`...), then the winner. The stage codes are a view over
    these (`stages`). Each customer's tier and stage ranks are kept for the report's counts.

    Returns each rule's gate column and the reasons its gate may remove for, which the counts
    read.
    """
    counts = _contact_counts(con, ruleset, config, as_of) if has_contacts else None
    key, household = ident(config.customers.id), config.customers.household
    gates: dict[str, str] = {}  # gate SQL -> its column
    cases = [_gate_cases(rule, config, counts) for rule in ruleset.rules]
    rule_gates = [gates.setdefault(_gate_sql(c), f"g{len(gates)}") for c in cases]
    compiled = compile_conditions([rule.condition for rule in ruleset.rules], as_of)
    matches = "".join(f", {sql} AS m{i}" for i, sql in enumerate(compiled.conditions))
    customers, stored = _with_columns(
        con, f"(SELECT *, {_quiet_sql(config, as_of)} AS {QUIET_COLUMN} FROM {DERIVED})", compiled
    )
    gate_columns = "".join(f", {sql} AS {column}" for sql, column in gates.items())
    winner = " ".join(
        f"WHEN m{i} AND {rule_gates[i]} = {ELIGIBLE} THEN {i}" for i, _ in ranked(ruleset)
    )
    join = f"LEFT JOIN contact_counts cc ON cc.{COUNTED} = d.{key}" if counts is not None else ""
    kept = _match_bits(len(rule_gates)) + "".join(f", {column}" for column in gates.values())
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE flags AS
        SELECT input_row, customer_id, household, rfm_score, tier_rank, stage_rank{kept},
            {f"CASE {winner} END" if winner else "NULL"} AS winner
        FROM (
            SELECT d.__row AS input_row, d.{key} AS customer_id,
                {f"d.{ident(household)}" if household else "NULL"} AS household,
                d.rfm_score AS rfm_score, d.{rank_column("tier")} AS tier_rank,
                d.{rank_column("stage")} AS stage_rank{matches}{gate_columns}
            FROM {customers} d {join}
        )
    """)
    for table in [*stored, "contact_counts"]:  # what built `flags`, read by nothing else
        con.execute(f"DROP TABLE IF EXISTS {table}")
    stages = "".join(
        f", CASE WHEN {_matched(i)} THEN {gate} ELSE {NO_MATCH} END AS s{i}"
        for i, gate in enumerate(rule_gates)
    )
    con.execute(f"CREATE OR REPLACE TEMP VIEW stages AS SELECT *{stages} FROM flags")
    return rule_gates, [tuple(reason for reason, _ in c) for c in cases]


def _planned(
    con: duckdb.DuckDBPyConnection, ruleset: ir.RuleSet, config: Config, flags_in_order: bool
) -> None:
    """Steps 5-7 on the winners: household, volume, holdout; each removal with its reason.

    A window or a hash that no rule asks for is left out: most rule sets use few of them.
    `planned` lists the winners in input order, so the plan is written from it without sorting
    wide rows. Without windows or hashes and with `flags` already in input order, it is a view:
    nothing is worth storing.
    """
    rules = ruleset.rules
    per_household = any(r.once_per_household for r in rules)
    limited = any(r.max_per_run for r in rules)
    held_out = any(r.holdout > 0 for r in rules)
    household_rank = "1"
    if per_household:
        household_rank = f"""CASE WHEN {_per_rule([r.once_per_household for r in rules])}
            THEN row_number() OVER (
                PARTITION BY idx, household, CASE WHEN household IS NULL THEN customer_id END
                ORDER BY rfm_score DESC, customer_id) ELSE 1 END"""
    volume_rank = "NULL"
    if limited:
        volume_rank = """CASE WHEN household_rank = 1 THEN row_number() OVER (
            PARTITION BY idx, household_rank = 1 ORDER BY rfm_score DESC, customer_id) END"""
    held = "FALSE"
    if held_out:
        shares = [int(r.holdout * HOLDOUT_BUCKETS / 100) for r in rules]
        names = _per_rule([r.name for r in rules])
        bucket = holdout_bucket(config.holdout_salt, "customer_id", names)
        held = f"{bucket} < {_per_rule(shares)}"
    as_view = flags_in_order and not (per_household or limited or held_out)
    con.execute(f"""
        CREATE OR REPLACE TEMP {"VIEW" if as_view else "TABLE"} planned AS
        WITH w AS (
            SELECT input_row, customer_id, household, rfm_score, tier_rank, stage_rank,
                winner AS idx, {household_rank} AS household_rank
            FROM flags WHERE winner IS NOT NULL
        ),
        v AS (SELECT *, {volume_rank} AS volume_rank FROM w)
        SELECT input_row, customer_id, idx, tier_rank, stage_rank, CASE
            WHEN household_rank > 1 THEN {literal(Reason.HOUSEHOLD.value)}
            WHEN volume_rank > {_per_rule([r.max_per_run for r in rules])}
                THEN {literal(Reason.VOLUME.value)}
            WHEN {held} THEN {literal(Reason.HOLDOUT.value)}
            ELSE {literal(SEND)} END AS status
        FROM v {"" if as_view else "ORDER BY input_row"}
    """)


# sent or held out
IN_PLAN = f"status IN ({literal(SEND)}, {literal(Reason.HOLDOUT.value)})"


def _count(
    con: duckdb.DuckDBPyConnection,
    plan: Plan,
    gates: list[str],
    reasons: list[tuple[Reason, ...]],
) -> None:
    """Per rule, how many customers are left after each policy (POLICIES order), and how many
    each reason removed.

    Steps 1-3 count from the flags (count_if is far cheaper than grouping stage codes), steps
    4-7 from the winners. A policy with one reason removed the difference of its neighbours'
    counts; only a rule whose caps may remove for several reasons needs a count per reason, in
    the same pass.
    """
    rules = plan.ruleset.rules
    if not rules:
        return
    per_rule = [f"count_if({_matched(i)})" for i in range(len(rules))]
    # Codes grow in policy order: a pair got past a policy when its code is above that policy's.
    passed = [max(CODE[r] for r in policy.reasons) for policy in _GATES]
    columns = [
        f"count_if({_matched(i)} AND {gate} > {code})"
        for i, gate in enumerate(gates)
        for code in passed
    ]
    capped = [[r for r in found if r in _CAPS] for found in reasons]
    several = [
        (i, reason) for i, found in enumerate(capped) if len(found) > 1 for reason in found
    ]
    columns += [f"count_if({_matched(i)} AND {gates[i]} = {CODE[r]})" for i, r in several]
    # count_if over no customers at all is NULL
    reached = [n or 0 for n in one(con, f"SELECT {', '.join(per_rule + columns)} FROM flags")]
    by_reason = dict(zip(several, reached[len(rules) * (1 + len(_GATES)) :], strict=True))
    household, volume = (literal(r.value) for r in _REMOVED_LATER)
    after = {
        idx: counts
        for idx, *counts in con.execute(f"""
            SELECT idx, count(*), count(*) FILTER (WHERE status <> {household}),
                count(*) FILTER (WHERE status NOT IN ({household}, {volume})),
                count(*) FILTER (WHERE status = {literal(SEND)})
            FROM planned GROUP BY idx""").fetchall()
    }
    gated = len(_GATES)
    for i, rule in enumerate(rules):
        later = after.get(i, [0, 0, 0, 0])
        kept = (reached[i], *reached[len(rules) + i * gated : len(rules) + (i + 1) * gated], *later)
        plan.counts.append(
            RuleCounts(rule.name, tuple(kept), round(later[-1] * _cost(rule, plan.config), 2))
        )
        removed = dict.fromkeys(Reason, 0)
        for policy, before, left in zip(POLICIES[1:], kept[:-1], kept[1:], strict=True):
            if len(policy.reasons) == 1:
                removed[policy.reasons[0]] = before - left
        if len(capped[i]) == 1:
            removed[capped[i][0]] = kept[1] - kept[2]
        for reason in capped[i] if len(capped[i]) > 1 else ():
            removed[reason] = by_reason[i, reason]
        plan.removed.append(removed)


def build_plan(
    con: duckdb.DuckDBPyConnection, ruleset: ir.RuleSet, as_of: dt.date, inputs: Inputs
) -> Plan:
    """Run the policies over the `derived` table already in `con`, made from `inputs`, with the
    configuration the rules were checked against (it travels with the rule set)."""
    config = ruleset.config
    plan = Plan(con, ruleset, as_of)
    has_contacts = inputs.has_contacts
    gates, reasons = _flags(con, ruleset, config, as_of, has_contacts)
    # DuckDB keeps row order through single-table queries, not through joins: `flags` is in
    # input order unless orders or contacts were joined in.
    _planned(con, ruleset, config, flags_in_order=inputs.orders is None and not has_contacts)
    _count(con, plan, gates, reasons)
    if not has_contacts:
        unapplied = caps_not_applied(ruleset)
        if unapplied:
            plan.notes.append(
                "no contact history given (--contacts): these caps were not applied: "
                + ", ".join(unapplied)
            )
    return plan


def caps_not_applied(ruleset: ir.RuleSet) -> list[str]:
    """Every cap that needs a contact history to count against: each rule's own (`cap N per
    D`) and the caps of the channels the rules reach (a channel's `cap` in the configuration).
    Without a history none of them is applied, and the summary says which."""
    config = ruleset.config
    caps = [f"rule {r.name} ({r.cap[0]} per {r.cap[1]})" for r in ruleset.rules if r.cap]
    used = {r.action.channel for r in ruleset.rules if r.action.channel}
    caps += [
        f"channel {name} ({channel.cap.count} per {channel.cap.per})"
        for name, channel in config.channels.items()
        if channel.cap is not None and name in used
    ]
    return caps


def _cost(rule: ir.Rule, config: Config) -> float:
    channel = config.channels.get(rule.action.channel or "")
    return float(channel.cost) if channel else 0.0


def plan_rows_sql(plan: Plan, plan_id: str) -> str:
    """The plan, one row per action, in the customers' input order (one action per customer)."""
    rules = plan.ruleset.rules
    params = [json.dumps(dict(r.action.params), ensure_ascii=False, sort_keys=True) for r in rules]
    holdout = literal(Reason.HOLDOUT.value)
    return f"""
        SELECT {literal(plan_id)} AS plan_id, customer_id,
            {_per_rule([r.name for r in rules])} AS rule,
            {_per_rule([r.action.kind for r in rules])} AS action,
            {_per_rule([r.action.template for r in rules])} AS template,
            {_per_rule([r.action.channel for r in rules])} AS channel,
            CAST({_per_rule(params)} AS JSON) AS parameters,
            {_per_rule([r.priority for r in rules])} AS priority,
            status = {holdout} AS holdout,
            CASE WHEN status = {holdout} THEN 0.0
                ELSE {_per_rule([_cost(r, plan.config) for r in rules])} END AS estimated_cost
        FROM planned
        WHERE {IN_PLAN}"""


def suppressed_sql(plan: Plan) -> str:
    """Every (customer, rule) removed by a policy, with the reason, in a stable order.

    One scan that unnests each customer's stage codes: a query per rule joined by UNION ALL
    costs DuckDB seconds to plan once there are hundreds of rules.
    """
    reason = " ".join(f"WHEN {code} THEN {literal(r.value)}" for r, code in CODE.items())
    rules = plan.ruleset.rules
    if not rules:
        return "SELECT NULL AS customer_id, NULL AS rule, NULL AS reason LIMIT 0"
    names = _per_rule([r.name for r in rules])
    stages = ", ".join(f"s{i}" for i in range(len(rules)))
    later = ", ".join(literal(r.value) for r in _REMOVED_LATER)
    return f"""
        SELECT customer_id, {names} AS rule, CASE WHEN stage = {ELIGIBLE}
            THEN {literal(Reason.PRIORITY.value)} ELSE CASE stage {reason} END END AS reason
        FROM (
            SELECT customer_id, winner, unnest(range({len(rules)})) AS idx,
                unnest([{stages}]) AS stage
            FROM stages
        )
        WHERE stage BETWEEN {NO_MATCH + 1} AND {ELIGIBLE - 1}
            OR (stage = {ELIGIBLE} AND winner <> idx)
        UNION ALL
        SELECT customer_id, {names}, status FROM planned WHERE status IN ({later})
        ORDER BY customer_id, rule"""


# ---------------------------------------------------------------- reading a plan


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the plan did with one rule for one customer."""

    rule: str
    matched: bool
    planned: bool  # in the plan: sent, or held out when `reason` is HOLDOUT
    reason: Reason | None = None  # why it was removed (or held out)
    winner: str | None = None  # the rule that took the customer, when removed for priority


def outcomes(plan: Plan, customer_id: str) -> list[Outcome]:
    """Rule by rule, what happened to `customer_id` (for explain and failing rule tests)."""
    rules = plan.ruleset.rules
    row = plan.con.execute("SELECT * FROM stages WHERE customer_id = ?", [customer_id]).fetchone()
    columns = [d[0] for d in plan.con.description] if row else []
    flags = dict(zip(columns, row, strict=True)) if row else {}
    status = dict(
        plan.con.execute(
            "SELECT idx, status FROM planned WHERE customer_id = ?", [customer_id]
        ).fetchall()
    )
    by_code = {code: reason for reason, code in CODE.items()}
    found = []
    for i, rule in enumerate(rules):
        stage = flags.get(f"s{i}", NO_MATCH)
        if i in status:
            reason = None if status[i] == SEND else Reason(status[i])
            planned = reason in (None, Reason.HOLDOUT)
            found.append(Outcome(rule.name, True, planned, reason))
        elif stage == ELIGIBLE:
            winner = rules[flags["winner"]].name
            found.append(Outcome(rule.name, True, False, Reason.PRIORITY, winner))
        elif stage in by_code:
            found.append(Outcome(rule.name, True, False, by_code[stage]))
        else:
            found.append(Outcome(rule.name, False, False))
    return found


def assignments(plan: Plan) -> dict[str, str]:
    """Each customer in the plan (sent or held out) and the rule they got."""
    names = [rule.name for rule in plan.ruleset.rules]
    rows = plan.con.execute(f"SELECT customer_id, idx FROM planned WHERE {IN_PLAN}").fetchall()
    return {customer: names[idx] for customer, idx in rows}


def tier_stage_counts(plan: Plan) -> tuple[list[tuple[str | None, str, int]], ...]:
    """How many customers are in each (tier, stage): all of them, and those the plan sends to
    (held-out actions left out). Two small GROUP BYs over the ranks the flags keep."""
    tiers, stages = plan.config.tier_type().values, STAGE.values
    found = []
    for query in (
        "SELECT tier_rank, stage_rank, count(*) FROM flags GROUP BY ALL ORDER BY ALL",
        f"SELECT tier_rank, stage_rank, count(*) FROM planned WHERE status = {literal(SEND)} "
        "GROUP BY ALL ORDER BY ALL",
    ):
        rows = plan.con.execute(query).fetchall()
        found.append([(None if t is None else tiers[t], stages[s], n) for t, s, n in rows])
    return tuple(found)
