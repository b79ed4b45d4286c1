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
from .ir import bought_column, units_bought_column
from .sql import (
    anniversary_column,
    days_between,
    ident,
    literal,
    next_anniversary,
    pick,
    rank_column,
)
from .timeutil import MAX_DATE, shift

DERIVED = "derived"


def _order_stats(config: Config, as_of: dt.date) -> str:
    """Per customer, the activity fields from the orders export.

    Orders after the as-of date had not happened yet. A row with a negative amount (or, when
    rows are lines, a negative quantity) is a refund: it lowers the spend of the window it falls
    in by its amount (never below 0), is not an order (it counts in neither orders_12m nor
    total_orders) and moves neither order date. A row without an amount is an order of unknown
    value. What is counted as one order: the rows sharing an `order_id` when `[orders]` names
    one (a row without one is an order of its own); else, when rows are lines, a customer's
    lines of one date (one basket); else each row.
    """
    start = literal(shift(as_of, config.scoring.window, -1))
    day = literal(as_of)
    in_window = f"order_date BETWEEN {start} AND {day}"
    orders = config.orders
    order = "coalesce(amount >= 0, TRUE)"
    if orders.quantity is not None:
        order += " AND coalesce(quantity >= 0, TRUE)"

    def count(where: str) -> str:
        if orders.order_id is not None:
            return (
                f"count(DISTINCT order_id) FILTER (WHERE {where} AND {order}) "
                f"+ count(*) FILTER (WHERE {where} AND {order} AND order_id IS NULL)"
            )
        if orders.lines:
            return f"count(DISTINCT order_date) FILTER (WHERE {where} AND {order})"
        return f"count(*) FILTER (WHERE {where} AND {order})"

    return f"""
        SELECT customer_id,
            min(order_date) FILTER (WHERE order_date <= {day} AND {order}) AS first_order_date,
            max(order_date) FILTER (WHERE order_date <= {day} AND {order}) AS last_order_date,
            {count(in_window)} AS orders_12m,
            greatest(coalesce(sum(amount) FILTER (WHERE {in_window}), 0), 0) AS spend_12m,
            {count(f"order_date <= {day}")} AS total_orders
        FROM orders GROUP BY customer_id"""


# The fields from order lines and the catalogue, in the SQL types the derived table gives them.
_LINE_COLUMNS = {
    "next_runout_date": "DATE",
    "days_to_runout": "BIGINT",
    "runout_sku": "VARCHAR",
    "runout_category": "VARCHAR",
    "next_warranty_end": "DATE",
    "days_to_warranty_end": "BIGINT",
    "warranty_sku": "VARCHAR",
}
_EPOCH = dt.date(1970, 1, 1)


def _line_stats(config: Config, as_of: dt.date) -> str:
    """Per customer, the next run-out and the next warranty end (docs/engine.md "Run-out and
    warranty dates").

    A line's product is its sku, else (no sku) its category. Its facts come from the catalogue
    (`products`): days_per_unit and warranty_days from the sku's row, else from the row of the
    product's category; the category is the sku row's, else that of the product's latest line.
    Lines after the as-of date are left out. Dates are day numbers here (days since 1970-01-01)
    so that fractions of a day carry over; a run-out date is the day its last fraction falls on.

    Stock carries over: for one product, day by day (a day's lines netted: units bought less
    units returned, times days_per_unit, is `a`), `runout = max(runout + a, day + max(a, 0))`,
    which for a purchase is `max(runout, day) + a` and for a return takes the returned days off
    the stock, never below the day of the return. That recurrence is max-plus linear, so the
    last run-out is `S_n + max_i(day_i + max(a_i, 0) - S_i)` with `S_i` the running sum of `a`:
    one window sum and one aggregate, no loop. A product whose stock is gone (run-out not after
    its last day) has no run-out.
    """
    day = literal(as_of)
    epoch = literal(_EPOCH)
    last = literal((MAX_DATE - _EPOCH).days)  # a date after MAX_DATE is never
    orders = config.orders
    quantity = "coalesce(quantity, 1)" if orders.quantity is not None else "1"
    sku = "sku" if orders.sku is not None else "CAST(NULL AS VARCHAR)"
    category = "category" if orders.category is not None else "CAST(NULL AS VARCHAR)"

    def date(number: str) -> str:
        """A day number as a date, NULL beyond MAX_DATE."""
        return f"CASE WHEN {number} <= {last} THEN {epoch} + CAST(floor({number}) AS INTEGER) END"

    return f"""
        WITH lines AS (
            SELECT customer_id, order_date AS day, {sku} AS sku, {category} AS category,
                CASE WHEN {sku} IS NOT NULL THEN 's' || {sku} ELSE 'c' || {category} END
                    AS product,
                {quantity} AS quantity, coalesce(amount < 0, FALSE) AS refund
            FROM orders
            WHERE order_date <= {day} AND ({sku} IS NOT NULL OR {category} IS NOT NULL)
        ),
        owned AS (
            SELECT customer_id, product, any_value(sku) AS sku,
                max({{'d': day, 'c': category}}) FILTER (WHERE category IS NOT NULL).c
                    AS category
            FROM lines GROUP BY ALL
        ),
        facts AS (
            SELECT o.customer_id, o.product, o.sku,
                coalesce(s.category, o.category) AS category,
                coalesce(s.days_per_unit, k.days_per_unit) AS days_per_unit,
                coalesce(s.warranty_days, k.warranty_days) AS warranty_days
            FROM owned o
            LEFT JOIN (SELECT * FROM products WHERE sku IS NOT NULL) s ON s.sku = o.sku
            LEFT JOIN (SELECT * FROM products WHERE sku IS NULL) k
                ON k.category = coalesce(s.category, o.category)
        ),
        days AS (
            SELECT customer_id, product, day - {epoch} AS day,
                coalesce(sum(quantity) FILTER (WHERE quantity > 0 AND NOT refund), 0)
                    AS bought,
                coalesce(sum(-quantity) FILTER (WHERE quantity < 0), 0) AS returned
            FROM lines GROUP BY ALL
            HAVING bought > 0 OR returned > 0
        ),
        moves AS (
            SELECT d.customer_id, d.product, d.day,
                (d.bought - d.returned) * f.days_per_unit AS a,
                sum((d.bought - d.returned) * f.days_per_unit) OVER (
                    PARTITION BY d.customer_id, d.product ORDER BY d.day
                    ROWS UNBOUNDED PRECEDING) AS s
            FROM days d JOIN facts f USING (customer_id, product)
            WHERE f.days_per_unit IS NOT NULL AND d.bought <> d.returned
        ),
        stock AS (
            SELECT customer_id, product,
                arg_max(s, day) + max(day + greatest(a, 0) - s) AS runout
            FROM moves GROUP BY ALL
            HAVING runout > max(day)
        ),
        gaps AS (
            SELECT customer_id, product, day,
                day - lag(day) OVER (PARTITION BY customer_id, product ORDER BY day) AS gap
            FROM days d WHERE bought > 0 AND EXISTS (SELECT 1 FROM facts f
                WHERE f.customer_id = d.customer_id AND f.product = d.product
                AND f.days_per_unit IS NULL)
        ),
        rhythm AS (
            SELECT customer_id, product, max(day) + floor(median(gap)) AS runout
            FROM gaps GROUP BY ALL
            HAVING count(gap) > 0
        ),
        runouts AS (
            SELECT f.customer_id, f.sku, f.category, f.product, {date("t.runout")} AS runout
            FROM facts f JOIN (SELECT * FROM stock UNION ALL SELECT * FROM rhythm) t
                USING (customer_id, product)
        ),
        warranties AS (
            SELECT d.customer_id, f.sku, f.product,
                {date("d.day + f.warranty_days")} AS ends
            FROM days d JOIN facts f USING (customer_id, product)
            WHERE d.bought > 0 AND f.warranty_days IS NOT NULL
        ),
        next_runout AS (
            SELECT customer_id, runout, sku, category FROM (
                SELECT *, row_number() OVER (PARTITION BY customer_id
                    ORDER BY runout, sku NULLS LAST, product) AS n
                FROM runouts WHERE runout >= {day}) WHERE n = 1
        ),
        next_warranty AS (
            SELECT customer_id, ends, sku FROM (
                SELECT *, row_number() OVER (PARTITION BY customer_id
                    ORDER BY ends, sku NULLS LAST, product) AS n
                FROM warranties WHERE ends >= {day}) WHERE n = 1
        )
        SELECT coalesce(r.customer_id, w.customer_id) AS customer_id,
            r.runout AS next_runout_date, r.sku AS runout_sku, r.category AS runout_category,
            w.ends AS next_warranty_end, w.sku AS warranty_sku
        FROM next_runout r FULL JOIN next_warranty w USING (customer_id)"""


def _purchases(
    config: Config, as_of: dt.date, categories: Sequence[str], units: Sequence[str] = ()
) -> str:
    """Per customer, the last purchase date in each of `categories` (docs/engine.md "Purchases
    by category"): the latest date of a purchase line in the category on or before the as-of
    date. A purchase line has a quantity above 0 (a line without one is 1 unit) and an amount
    that is not negative: refund and return lines are not purchases. A line's category is its
    sku's in the catalogue, else the line's own `category`.

    And for each of `units` (`units bought "x"`), the quantity bought in the category on that
    last date: the sum of that day's purchase lines' quantities (a line without one: 1), as a
    double. Without `units` the query is the date's alone, as cheap as before."""
    orders = config.orders
    day = literal(as_of)
    quantity = "coalesce(o.quantity, 1) > 0" if orders.quantity is not None else "TRUE"
    own = "o.category" if orders.category is not None else "CAST(NULL AS VARCHAR)"
    category, join = own, ""
    if orders.sku is not None:
        category = f"coalesce(s.category, {own})"
        join = (
            "LEFT JOIN (SELECT sku, any_value(category) AS category FROM products "
            "WHERE sku IS NOT NULL GROUP BY sku) s ON s.sku = o.sku"
        )
    facts = [
        f"max(order_date) FILTER (WHERE category = {literal(c)}) AS {ident(bought_column(c))}"
        for c in categories
    ]
    wanted = " OR ".join(f"category = {literal(c)}" for c in sorted({*categories, *units}))

    def lines(extra: str) -> str:
        return f"""
            SELECT o.customer_id, o.order_date, {category} AS category{extra}
            FROM orders o {join}
            WHERE o.order_date <= {day} AND coalesce(o.amount >= 0, TRUE) AND {quantity}"""

    if not units:
        return f"""
        SELECT customer_id, {", ".join(facts)} FROM ({lines("")}
        ) WHERE {wanted} GROUP BY customer_id"""
    # One row per customer, category and day with that day's units: the last day's is the
    # units of the row with the latest day (unique per customer and category, so exact).
    count = "coalesce(o.quantity, 1)" if orders.quantity is not None else "1"
    facts += [
        f"arg_max(units, order_date) FILTER (WHERE category = {literal(c)}) "
        f"AS {ident(units_bought_column(c))}"
        for c in units
    ]
    per_day = lines(f", CAST({count} AS DOUBLE) AS units")
    return f"""
        SELECT customer_id, {", ".join(facts)} FROM (
            SELECT customer_id, category, order_date, sum(units) AS units FROM ({per_day}
            ) WHERE {wanted} GROUP BY customer_id, category, order_date
        ) GROUP BY customer_id"""


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


def purchases_known(config: Config, lines: bool) -> bool:
    """Whether a purchase's category can be known: the orders export has lines, with a category
    column or a sku (whose category the catalogue may give)."""
    return lines and (config.orders.category is not None or config.orders.sku is not None)


def derived_sql(
    config: Config,
    as_of: dt.date,
    orders: bool,
    contacts: bool,
    lines: bool = False,
    categories: Sequence[str] = (),
    units: Sequence[str] = (),
) -> str:
    """The derived table's query. `lines`: the orders export has lines (and `products`, the
    catalogue, is loaded): run-out and warranty dates are derived; else they are missing.
    `categories`: those whose last purchase date (`bought "x"`) the rules read, each a column;
    `units`: those whose last purchase's quantity (`units bought "x"`) the rules read, each a
    column too. Both are missing for everyone when purchases have no category."""
    key = ident(config.customers.id)
    day = literal(as_of)
    replaced = []
    joins = []
    added = exclude = ""
    if (categories or units) and purchases_known(config, lines):
        query = _purchases(config, as_of, categories, units)
        joins.append(f"LEFT JOIN ({query}) b ON b.customer_id = c.{key}")
        added += "".join(f", b.{ident(bought_column(c))}" for c in categories)
        added += "".join(f", b.{ident(units_bought_column(c))}" for c in units)
    else:
        added += "".join(
            f", CAST(NULL AS DATE) AS {ident(bought_column(c))}" for c in categories
        )
        added += "".join(
            f", CAST(NULL AS DOUBLE) AS {ident(units_bought_column(c))}" for c in units
        )
    if lines:
        joins.append(f"LEFT JOIN ({_line_stats(config, as_of)}) l ON l.customer_id = c.{key}")
        joined = [n for n in _LINE_COLUMNS if not n.startswith("days_")]
        added += "".join(f", l.{n}" for n in joined)
        exclude = f" EXCLUDE ({', '.join(joined)})"
        since = {"days_to_runout": "next_runout_date", "days_to_warranty_end": "next_warranty_end"}
        line_fields = ", ".join(
            f"{days_between(since[n], day)} AS {n}" if n in since else n for n in _LINE_COLUMNS
        )
    else:
        line_fields = ", ".join(
            f"CAST(NULL AS {sql_type}) AS {name}" for name, sql_type in _LINE_COLUMNS.items()
        )
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
            SELECT c.rowid AS __row, c.*{replace}{added} FROM customers c {" ".join(joins)}
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
        SELECT *{exclude},
            {_name("tier", tier_type)} AS tier,
            {_name("stage", t.STAGE)} AS stage,
            {days_between(day, "last_order_date")} AS days_since_last_order,
            {days_between(day, "first_order_date")} AS days_since_first_order,
            {days_between(day, "last_contacted")} AS days_since_last_contact,
            {to_birthday} AS days_to_birthday,
            {_finite("spend_12m / NULLIF(orders_12m, 0)")} AS avg_order_value,
            {line_fields}{ranks}{calendar_dates}
        FROM ranked"""


def named_dates(config: Config, as_of: dt.date) -> dict[str, dt.date | None]:
    """Each `[calendar]` date's next occurrence on or after the as-of date (None when the
    holidays package has no date for it, or when it falls after the last date retentionrules
    plans for, as run-out dates do): one value for every customer."""
    found = {name: date.next_on_or_after(as_of) for name, date in config.calendar.items()}
    return {name: day if day is None or day <= MAX_DATE else None for name, day in found.items()}


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
    con: duckdb.DuckDBPyConnection,
    config: Config,
    as_of: dt.date,
    orders: bool,
    contacts: bool,
    lines: bool = False,
    categories: Sequence[str] = (),
    units: Sequence[str] = (),
) -> None:
    """A view: the plan query computes the fields as it goes instead of storing them first."""
    query = derived_sql(config, as_of, orders, contacts, lines, categories, units)
    con.execute(f"CREATE OR REPLACE TEMP VIEW {DERIVED} AS {query}")


def release(con: duckdb.DuckDBPyConnection) -> None:
    """Drop the derived view (and the table of given values a rule test put under it): once the
    plan holds what it needs (`planner.build_plan`), the exports under it are dropped
    (`loader.release`) and nothing may read it again."""
    con.execute(f"DROP VIEW IF EXISTS {DERIVED}")
    con.execute("DROP TABLE IF EXISTS given")


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
    fields directly, `bought "x"` too): the derived view becomes a table holding them, ranks
    recomputed."""
    con.execute(f"CREATE TEMP TABLE given AS SELECT * FROM {DERIVED}")
    types = config.field_types()
    for name, value in values.items():
        con.execute(f"UPDATE given SET {ident(name)} = ?", [value])
        if name in types and types[name].kind is t.Kind.ENUM:
            con.execute(f"UPDATE given SET {rank_column(name)} = {rank_sql(name, types[name])}")
    con.execute(f"CREATE OR REPLACE TEMP VIEW {DERIVED} AS SELECT * FROM given")
