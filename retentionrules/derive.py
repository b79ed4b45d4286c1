"""Derived fields: the single definition of scores, tier, stage, day counts and named dates.

One SQL statement builds the table `derived` from `customers` (and the `orders` and `contacts`
tables when given). Both evaluators read their fields from it, so they can only differ in how
they evaluate rules, never in what a field means. Cut-off dates are computed here, in Python,
with `timeutil`, so calendar months mean the same everywhere; so are the `[calendar]` dates,
which enter the table as constants.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import duckdb

from . import types as t
from .config import Config
from .sql import (
    anniversary_column,
    days_between,
    ident,
    literal,
    next_anniversary,
    pick,
    rank_column,
)
from .timeutil import shift

DERIVED = "derived"


def _order_stats(config: Config, as_of: dt.date) -> str:
    """Per customer, the activity fields from the orders export.

    Orders after the as-of date had not happened yet. A row with a negative amount is a
    refund: it lowers the spend of the window it falls in (never below 0), is not an order
    (it counts in neither orders_12m nor total_orders) and moves neither order date. A row
    without an amount is an order of unknown value.
    """
    start = literal(shift(as_of, config.scoring.window, -1))
    day = literal(as_of)
    in_window = f"order_date BETWEEN {start} AND {day}"
    order = "coalesce(amount >= 0, TRUE)"
    return f"""
        SELECT customer_id,
            min(order_date) FILTER (WHERE order_date <= {day} AND {order}) AS first_order_date,
            max(order_date) FILTER (WHERE order_date <= {day} AND {order}) AS last_order_date,
            count(*) FILTER (WHERE {in_window} AND {order}) AS orders_12m,
            greatest(coalesce(sum(amount) FILTER (WHERE {in_window}), 0), 0) AS spend_12m,
            count(*) FILTER (WHERE order_date <= {day} AND {order}) AS total_orders
        FROM orders GROUP BY customer_id"""


def _finite(number: str) -> str:
    """A ratio that cannot be represented (a spend over a vanishing number of orders) is
    missing, never an infinity."""
    return f"CASE WHEN isfinite({number}) THEN {number} END"


def _scored(thresholds: list[str]) -> str:
    """5 for the first threshold met, 4 for the next, ..., else 0."""
    cases = " ".join(f"WHEN {condition} THEN {5 - i}" for i, condition in enumerate(thresholds))
    return f"CASE {cases} ELSE 0 END"


def rank_sql(name: str, enum: t.Type) -> str:
    """An enumeration field's rank (0 = lowest), so ordering compares integers."""
    ranks = " ".join(f"WHEN {literal(v)} THEN {i}" for i, v in enumerate(enum.values))
    return f"CASE {ident(name)} {ranks} END"


def _anniversaries(config: Config) -> list[str]:
    """The fields whose next occurrence gets a helper column: every anniversary, and the
    birthday (which may be declared a plain date)."""
    names = [n for n, type_ in config.field_types().items() if type_.kind is t.Kind.ANNIVERSARY]
    birthday = config.customers.birthday
    return [*names, birthday] if birthday and birthday not in names else names


def _name(field: str, enum: t.Type) -> str:
    """An enumeration value from its rank: tier and stage are computed as ranks (rules compare
    ranks), the names are for people."""
    return pick(list(enum.values), rank_column(field))


def derived_sql(config: Config, as_of: dt.date, orders: bool, contacts: bool) -> str:
    key = ident(config.customers.id)
    day = literal(as_of)
    replaced = []
    joins = []
    if orders:
        joins.append(f"LEFT JOIN ({_order_stats(config, as_of)}) o ON o.customer_id = c.{key}")
        replaced += [f"o.{n} AS {n}" for n in ("first_order_date", "last_order_date")]
        replaced += [
            f"coalesce(o.{n}, 0) AS {n}" for n in ("orders_12m", "spend_12m", "total_orders")
        ]
    if contacts:
        joins.append(
            f"LEFT JOIN (SELECT customer_id, max(sent_at) AS sent FROM contacts "
            f"GROUP BY 1) k ON k.customer_id = c.{key}"
        )
        replaced.append(
            "CASE WHEN k.sent IS NULL OR c.last_contacted > k.sent THEN c.last_contacted "
            "ELSE k.sent END AS last_contacted"
        )
    replace = f" REPLACE ({', '.join(replaced)})" if replaced else ""
    scoring = config.scoring
    recency = [f"last_order_date >= {literal(shift(as_of, d, -1))}" for d in scoring.recency]
    frequency = [f"orders_12m >= {literal(v)} AND orders_12m > 0" for v in scoring.frequency]
    monetary = [f"spend_12m >= {literal(v)} AND spend_12m > 0" for v in scoring.monetary]
    w = scoring.weights
    tier_type = config.tier_type()
    tiers = sorted(config.tiers.items(), key=lambda item: -item[1])
    tier = " ".join(
        f"WHEN rfm_score >= {literal(low)} THEN {tier_type.rank(name)}" for name, low in tiers
    )
    stages = config.stages
    stage = (
        f"CASE WHEN last_order_date IS NULL THEN {t.STAGE.rank('potential')} "
        + " ".join(
            f"WHEN last_order_date >= {literal(shift(as_of, bound, -1))} THEN {t.STAGE.rank(name)}"
            for name, bound in (
                ("active", stages.active),
                ("silent", stages.silent),
                ("sleeping", stages.sleeping),
            )
        )
        + f" ELSE {t.STAGE.rank('lost')} END"
    )
    birthday = config.customers.birthday
    to_birthday = days_between(anniversary_column(birthday), day) if birthday else "NULL"
    anniversaries = "".join(
        f", {next_anniversary(ident(name), as_of)} AS {anniversary_column(name)}"
        for name in _anniversaries(config)
    )
    ranks = "".join(
        f", {rank_sql(name, type_)} AS {rank_column(name)}"
        for name, type_ in config.customers.types().items()
        if type_.kind is t.Kind.ENUM
    )
    calendar_dates = _named_dates_sql(config, as_of)
    return f"""
        WITH base AS (
            SELECT c.rowid AS __row, c.*{replace} FROM customers c {" ".join(joins)}
        ),
        scored AS (
            SELECT *,
                {_scored(recency)} AS recency_score,
                {_scored(frequency)} AS frequency_score,
                {_scored(monetary)} AS monetary_score
            FROM base
        ),
        weighted AS (
            SELECT *, {literal(w.recency)} * recency_score
                + {literal(w.frequency)} * frequency_score
                + {literal(w.monetary)} * monetary_score AS rfm_score
            FROM scored
        ),
        ranked AS (
            SELECT *, CASE {tier} END AS {rank_column("tier")}, {stage} AS {rank_column("stage")}
                {anniversaries}
            FROM weighted
        )
        SELECT *,
            {_name("tier", tier_type)} AS tier,
            {_name("stage", t.STAGE)} AS stage,
            {days_between(day, "last_order_date")} AS days_since_last_order,
            {days_between(day, "first_order_date")} AS days_since_first_order,
            {days_between(day, "last_contacted")} AS days_since_last_contact,
            {to_birthday} AS days_to_birthday,
            {_finite("spend_12m / NULLIF(orders_12m, 0)")} AS avg_order_value{ranks}{calendar_dates}
        FROM ranked"""


def named_dates(config: Config, as_of: dt.date) -> dict[str, dt.date | None]:
    """Each `[calendar]` date's next occurrence on or after the as-of date (None when the
    holidays package has no date for it): one value for every customer."""
    return {name: date.next_on_or_after(as_of) for name, date in config.calendar.items()}


def _named_dates_sql(config: Config, as_of: dt.date) -> str:
    """The named dates as constant DATE columns: nothing at all without a `[calendar]`."""
    return "".join(
        f", CAST({literal(day)} AS DATE) AS {ident(name)}"
        for name, day in named_dates(config, as_of).items()
    )


def fields_sql(config: Config, leave_out: Sequence[str] = ()) -> str:
    """The derived table as people see it: every field (but `leave_out`), without the helper
    columns."""
    ranks = [
        rank_column(n) for n, type_ in config.field_types().items() if type_.kind is t.Kind.ENUM
    ]
    hidden = ranks + [anniversary_column(name) for name in _anniversaries(config)]
    hidden += [ident(name) for name in leave_out]
    return f"SELECT * EXCLUDE (__row, {', '.join(hidden)}) FROM {DERIVED}"


def create_derived(
    con: duckdb.DuckDBPyConnection, config: Config, as_of: dt.date, orders: bool, contacts: bool
) -> None:
    """A view: the plan query computes the fields as it goes instead of storing them first."""
    query = derived_sql(config, as_of, orders, contacts)
    con.execute(f"CREATE OR REPLACE TEMP VIEW {DERIVED} AS {query}")


# ---------------------------------------------------------------- reading the derived fields


def customer_fields(
    con: duckdb.DuckDBPyConnection, config: Config, customer: str
) -> dict[str, Any] | None:
    """One customer's fields, as `explain` shows them; None when the id is not there."""
    cursor = con.execute(f"{fields_sql(config)} WHERE {ident(config.customers.id)} = ?", [customer])
    row = cursor.fetchone()
    return None if row is None else dict(zip([d[0] for d in cursor.description], row, strict=True))


def scores_sql(config: Config) -> str:
    """Every customer's fields in the export's order: what `score --out` writes. Never their
    contact details (a channel's address field): those are for `send` alone."""
    details = sorted({c.address for c in config.channels.values() if c.address})
    details = [d for d in details if d != config.customers.id]
    return f"{fields_sql(config, details)} ORDER BY __row"


def distribution(con: duckdb.DuckDBPyConnection) -> list[tuple[str | None, str, int]]:
    """How many customers are in each (tier, stage)."""
    return con.execute(
        f"SELECT tier, stage, count(*) FROM {DERIVED} GROUP BY ALL ORDER BY ALL"
    ).fetchall()


def override(con: duckdb.DuckDBPyConnection, config: Config, values: dict[str, Any]) -> None:
    """Replace derived fields with given values for every customer (rule tests give `derived`
    fields directly): the derived view becomes a table holding them, ranks recomputed."""
    con.execute(f"CREATE TEMP TABLE given AS SELECT * FROM {DERIVED}")
    types = config.field_types()
    for name, value in values.items():
        con.execute(f"UPDATE given SET {ident(name)} = ?", [value])
        if types[name].kind is t.Kind.ENUM:
            con.execute(f"UPDATE given SET {rank_column(name)} = {rank_sql(name, types[name])}")
    con.execute(f"CREATE OR REPLACE TEMP VIEW {DERIVED} AS SELECT * FROM given")
