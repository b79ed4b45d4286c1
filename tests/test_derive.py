"""Derived fields: the playbook's scoring, stages, calendar months, anniversaries, orders export."""

import datetime as dt

import duckdb
import pytest

from retentionrules.config import Config
from retentionrules.derive import DERIVED, create_derived
from retentionrules.loader import Inputs, load

from .conftest import COLUMNS, customer, write_csv

AS_OF = dt.date(2026, 11, 22)


def derive(tmp_path, rows, as_of=AS_OF, config=None, orders=None, contacts=None):
    config = config or Config()
    inputs = Inputs(write_csv(tmp_path / "c.csv", rows), orders, contacts)
    con = duckdb.connect()
    load(con, config, inputs, as_of)
    create_derived(con, config, as_of, orders is not None, contacts is not None)
    cursor = con.execute(f"SELECT * FROM {DERIVED} ORDER BY __row")
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def test_rfm_tier_and_stage_follow_the_playbook_table(tmp_path):
    (best, bronze, sleeper, lost, never) = derive(
        tmp_path,
        [
            customer(
                "C1", last_order_date="2026-11-10", orders_12m=6, spend_12m=2000, total_orders=9
            ),
            customer(
                "C2", last_order_date="2026-08-01", orders_12m=1, spend_12m=50, total_orders=1
            ),
            customer(
                "C3", last_order_date="2026-04-01", orders_12m=3, spend_12m=600, total_orders=3
            ),
            customer("C4", last_order_date="2025-01-01", orders_12m=0, spend_12m=0, total_orders=2),
            customer("C5"),
        ],
    )
    assert (best["recency_score"], best["frequency_score"], best["monetary_score"]) == (5, 5, 5)
    assert (best["rfm_score"], best["tier"], best["stage"]) == (40, "P", "active")
    assert (bronze["rfm_score"], bronze["tier"], bronze["stage"]) == (3 + 3 + 4, "B", "silent")
    assert (sleeper["recency_score"], sleeper["tier"], sleeper["stage"]) == (1, "S", "sleeping")
    assert (lost["rfm_score"], lost["tier"], lost["stage"]) == (0, None, "lost")
    assert (never["stage"], never["days_since_last_order"], never["tier"]) == (
        "potential",
        None,
        None,
    )
    assert bronze["avg_order_value"] == 50 and never["avg_order_value"] is None


def test_recency_in_calendar_months(tmp_path):
    as_of = dt.date(2026, 3, 31)  # one month earlier is 28 February
    rows = derive(
        tmp_path,
        [customer("A", last_order_date="2026-02-28"), customer("B", last_order_date="2026-02-27")],
        as_of,
    )
    assert [r["recency_score"] for r in rows] == [5, 4]


@pytest.mark.parametrize(
    ("as_of", "days"),
    [
        (dt.date(2027, 2, 28), 0),  # no 29 February in 2027: the birthday falls on the 28th
        (dt.date(2028, 2, 28), 1),  # 2028 has one
        (dt.date(2028, 3, 1), 364),  # passed: next is 28 February 2029
    ],
)
def test_leap_day_birthdays(tmp_path, as_of, days):
    (row,) = derive(tmp_path, [customer("A", birthday="2000-02-29")], as_of)
    assert row["days_to_birthday"] == days


def test_orders_export_gives_the_same_fields_as_totals(tmp_path):
    orders = tmp_path / "orders.csv"
    orders.write_text(
        "customer_id,order_date,amount\n"
        "A,2024-05-01,80\nA,2026-01-10,120.5\nA,2026-10-01,300\n"
        "A,2027-01-01,999\n"  # after the as-of date: not yet happened
        "B,2025-11-22,10\n"  # exactly 12 months: inside, as for recency
        "B,2025-11-21,7\n"
    )
    columns = [
        c
        for c in COLUMNS
        if c
        not in ("first_order_date", "last_order_date", "orders_12m", "spend_12m", "total_orders")
    ]
    path = write_csv(tmp_path / "c.csv", [customer("A"), customer("B"), customer("C")], columns)
    config, con = Config(), duckdb.connect()
    load(con, config, Inputs(path, orders), AS_OF)
    create_derived(con, config, AS_OF, orders=True, contacts=False)
    got = con.execute(
        f"SELECT customer_id, first_order_date, last_order_date, orders_12m, "
        f"spend_12m, total_orders, stage FROM {DERIVED} ORDER BY 1"
    ).fetchall()
    assert got == [
        ("A", dt.date(2024, 5, 1), dt.date(2026, 10, 1), 2, 420.5, 3, "active"),
        ("B", dt.date(2025, 11, 21), dt.date(2025, 11, 22), 1, 10, 2, "lost"),
        ("C", None, None, 0, 0, 0, "potential"),
    ]


def test_contact_history_updates_last_contacted(tmp_path):
    contacts = tmp_path / "contacts.csv"
    contacts.write_text(
        "customer_id,channel,rule,sent_at\nA,sms,r,2026-11-20T09:30:00\nB,sms,r,2026-01-01\n"
    )
    rows = derive(
        tmp_path,
        [customer("A", last_contacted="2026-10-01"), customer("B", last_contacted="2026-11-01")],
        contacts=contacts,
    )
    assert [r["days_since_last_contact"] for r in rows] == [2, 21]


ORDER_COLUMNS = [
    c
    for c in COLUMNS
    if c not in ("first_order_date", "last_order_date", "orders_12m", "spend_12m", "total_orders")
]


def order_fields(tmp_path, orders_csv: str, ids=("A",), config=None):
    orders = tmp_path / "orders.csv"
    orders.write_text("customer_id,order_date,amount\n" + orders_csv)
    path = write_csv(tmp_path / "c.csv", [customer(i) for i in ids], ORDER_COLUMNS)
    config, con = config or Config(), duckdb.connect()
    load(con, config, Inputs(path, orders), AS_OF)
    create_derived(con, config, AS_OF, orders=True, contacts=False)
    cursor = con.execute(
        f"SELECT customer_id, first_order_date, last_order_date, orders_12m, spend_12m, "
        f"total_orders FROM {DERIVED} ORDER BY 1"
    )
    return cursor.fetchall()


def test_a_refund_lowers_spend_but_is_not_an_order_and_moves_no_date(tmp_path):
    got = order_fields(
        tmp_path,
        "A,2026-01-10,300\n"
        "A,2026-03-01,-120.5\n"  # a refund in the window
        "A,2026-11-20,-10\n"  # the latest row, but a refund: not the last order
        "A,2025-01-01,-50\n"  # a refund before the window: spend of the window unchanged
        "B,2026-02-01,40\nB,2026-02-02,-100\n"  # refunded more than spent: spend is 0
        "C,2026-05-05,-5\n",  # only a refund: no orders at all
        ids=("A", "B", "C"),
    )
    assert got == [
        ("A", dt.date(2026, 1, 10), dt.date(2026, 1, 10), 1, 169.5, 1),
        ("B", dt.date(2026, 2, 1), dt.date(2026, 2, 1), 1, 0, 1),
        ("C", None, None, 0, 0, 0),
    ]


def test_order_times_are_dated_in_the_shop_time_zone(tmp_path):
    got = order_fields(
        tmp_path,
        "A,2026-11-21T17:00:00Z,10\n"  # 01:00 on the 22nd in Shanghai: the as-of date
        "A,2026-11-22T17:00:00Z,99\n",  # the 23rd in Shanghai: not yet happened
    )
    assert got == [("A", dt.date(2026, 11, 22), dt.date(2026, 11, 22), 1, 10, 1)]


def test_contacts_after_the_as_of_date_are_ignored(tmp_path):
    contacts = tmp_path / "contacts.csv"
    contacts.write_text(
        "customer_id,channel,rule,sent_at\n"
        "A,sms,r,2026-11-23\n"  # tomorrow: had not happened on the as-of date
        "A,sms,r,2026-11-22T16:30:00Z\n"  # also the 23rd, in Shanghai
        "B,sms,r,2026-11-22T15:30:00Z\n"  # 23:30 on the 22nd in Shanghai
    )
    config, con = Config(), duckdb.connect()
    inputs = Inputs(
        write_csv(tmp_path / "c.csv", [customer("A"), customer("B")]), contacts=contacts
    )
    stats = load(con, config, inputs, AS_OF)
    assert (stats.contacts, stats.future_contacts) == (3, 2)  # read; left out
    create_derived(con, config, AS_OF, orders=False, contacts=True)
    got = con.execute(f"SELECT customer_id, last_contacted FROM {DERIVED} ORDER BY 1").fetchall()
    assert got == [("A", None), ("B", AS_OF)]


def test_avg_order_value_is_missing_rather_than_infinite(tmp_path):
    """JSON output never holds Infinity: a spend over a vanishing number of orders."""
    (row,) = derive(tmp_path, [customer("A", orders_12m="1e-300", spend_12m="1e14")])
    assert row["avg_order_value"] is None
