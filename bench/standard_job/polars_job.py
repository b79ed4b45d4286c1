#!/usr/bin/env python3
"""The standard job hand-written as one lazy Polars query (a peer of handwritten.sql).

usage: polars_job.py CUSTOMERS.csv OUT.csv   (needs `pip install polars`)

The same job as reference_job.py and handwritten.sql, the way a Polars user would write it:
`scan_csv` (lazy: only the columns the job reads are parsed), scores, tier and stage as
expressions, the 3-day quiet period as a filter, the 20 rules (consent folded into each) as one
`when` chain where the first true branch wins, and `sink_csv` of the same four columns as the
hand-written DuckDB query: customer_id,rule,action,channel. As-of date 2026-11-22.
"""

from __future__ import annotations

import datetime as dt
import sys

import polars as pl

AS_OF = dt.date(2026, 11, 22)
P, G, S, B = 4, 3, 2, 1


def days_since(column: str) -> pl.Expr:
    return (pl.lit(AS_OF) - pl.col(column)).dt.total_days()


def birthday_in(year: int) -> pl.Expr:
    """This year's birthday; 2026 and 2027 have no 29 February, such birthdays fall on the 28th."""
    month, day = pl.col("birthday").dt.month(), pl.col("birthday").dt.day()
    day = pl.when((month == 2) & (day == 29)).then(28).otherwise(day)
    return pl.date(year, month, day)


def first_of(steps: list[tuple[pl.Expr, int | str]], otherwise: pl.Expr | int) -> pl.Expr:
    """The value of the first step whose condition holds, as a SQL CASE reads."""
    chain = pl.when(steps[0][0]).then(pl.lit(steps[0][1]))
    for condition, value in steps[1:]:
        chain = chain.when(condition).then(pl.lit(value))
    return chain.otherwise(otherwise)


def main() -> None:
    source, out = sys.argv[1], sys.argv[2]
    dates = ["birthday", "first_order_date", "last_order_date", "last_contacted"]
    frame = pl.scan_csv(
        source,
        schema_overrides={
            **dict.fromkeys(dates, pl.Date),
            "customer_id": pl.String,
            "city": pl.String,
            "category": pl.String,
            "orders_12m": pl.Int64,
            "spend_12m": pl.Float64,
            "total_orders": pl.Int64,
            "sms_opt_in": pl.Boolean,
            "email_opt_in": pl.Boolean,
        },
    )
    dsl, o12, s12 = pl.col("dsl"), pl.col("orders_12m"), pl.col("spend_12m")
    b26, b27 = birthday_in(AS_OF.year), birthday_in(AS_OF.year + 1)
    recency = first_of(
        [(dsl.is_null() | (dsl > 365), 0), (dsl <= 30, 5), (dsl <= 90, 4), (dsl <= 120, 3)],
        pl.when(dsl <= 210).then(2).otherwise(1),
    )
    frequency = first_of([(o12 >= 6, 5), (o12 >= 4, 4)], o12)
    monetary = first_of(
        [(s12 >= 2000, 5), (s12 >= 1000, 4), (s12 >= 500, 3), (s12 >= 300, 2), (s12 > 0, 1)], 0
    )
    frame = (
        frame.with_columns(
            dsl=days_since("last_order_date"),
            dsf=days_since("first_order_date"),
            dsc=days_since("last_contacted"),
            bday=(pl.when(b26 >= AS_OF).then(b26).otherwise(b27) - pl.lit(AS_OF)).dt.total_days(),
        )
        .filter(pl.col("dsc").is_null() | (pl.col("dsc") > 3))
        .with_columns(rfm=recency + 3 * frequency + 4 * monetary)
    )
    rfm = pl.col("rfm")
    frame = frame.with_columns(
        tier=first_of([(rfm >= 36, P), (rfm >= 26, G), (rfm >= 17, S), (rfm >= 1, B)], 0),
        stage=first_of(
            [(dsl.is_null(), "potential"), (dsl <= 90, "active"), (dsl <= 180, "silent")],
            pl.when(dsl <= 270).then(pl.lit("sleeping")).otherwise(pl.lit("lost")),
        ),
    )
    tier, stage, tot, dsf = pl.col("tier"), pl.col("stage"), pl.col("total_orders"), pl.col("dsf")
    category, bday = pl.col("category"), pl.col("bday")
    rules = [  # name, channel, action, condition: reference_job.py's order
        ("vip_call", "phone", "vip_care_call", (tier == P) & (stage == "active")),
        ("birthday_gift", "sms", "birthday_coupon", bday.is_between(0, 7) & (tier >= S)),
        ("high_value_at_risk", "phone", "retention_call", (s12 >= 1000) & dsl.is_between(60, 90)),
        ("winback_gold", "sms", "winback_coupon_50", (stage == "sleeping") & (tier >= G)),
        ("winback_silver", "sms", "winback_coupon_20", (stage == "sleeping") & (tier == S)),
        ("silent_care", "email", "care_message", (stage == "silent") & (tier >= G)),
        (
            "replenish",
            "sms",
            "replenish_reminder",
            (category == "consumables") & dsl.is_between(25, 35),
        ),
        ("second_purchase", "email", "second_purchase_coupon", (tot == 1) & dsl.is_between(7, 30)),
        ("welcome", "email", "welcome", (tot == 1) & dsf.is_between(0, 3)),
        ("member_day", "email", "member_day_invite", o12 >= 10),
        ("lost_reactivation", "email", "reactivation_offer", (stage == "lost") & (tot >= 3)),
        ("potential_first_order", "email", "first_order_coupon", tot == 0),
        (
            "warranty_check",
            "phone",
            "warranty_check_call",
            (category == "appliances") & dsl.is_between(350, 365),
        ),
        (
            "city_new_arrivals",
            "email",
            "new_arrivals",
            pl.col("city").is_in(["Shanghai", "Beijing"]) & (stage == "active") & (tier >= S),
        ),
        ("silent_nudge", "email", "silent_nudge", (stage == "silent") & tier.is_in([B, S])),
        ("building_referral", "sms", "referral_reward", (category == "building") & (tot >= 2)),
        (
            "bronze_upsell",
            "email",
            "upsell_offer",
            (tier == B) & (stage == "active") & (s12 >= 200),
        ),
        ("sleeping_bronze", "email", "winback_coupon_10", (stage == "sleeping") & (tier == B)),
        (
            "apparel_lookbook",
            "email",
            "season_lookbook",
            (category == "apparel") & stage.is_in(["active", "silent"]),
        ),
        ("lost_last_chance", "email", "last_chance", stage == "lost"),
    ]
    consent = {"phone": pl.lit(True), "sms": pl.col("sms_opt_in"), "email": pl.col("email_opt_in")}
    # The first rule whose condition holds and whose channel is consented wins (a null
    # condition, from a missing date, is not true).
    pick = first_of(
        [
            (consent[channel] & condition, index)
            for index, (_, channel, _, condition) in enumerate(rules)
        ],
        pl.lit(None, pl.Int64),
    )
    indexes = list(range(len(rules)))
    (
        frame.with_columns(pick=pick)
        .filter(pl.col("pick").is_not_null())
        .select(
            "customer_id",
            *(
                pl.col("pick")
                .replace_strict(indexes, [rule[field] for rule in rules], return_dtype=pl.String)
                .alias(name)
                for field, name in ((0, "rule"), (2, "action"), (1, "channel"))
            ),
        )
        .sink_csv(out)
    )


if __name__ == "__main__":
    main()
