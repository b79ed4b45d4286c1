"""Two evaluators, one meaning: the SQL compiler agrees with the Python interpreter on random
rules over random customers (missing values, boundaries, leap-day birthdays, calendar months)."""

import datetime as dt
import tempfile
from pathlib import Path

import duckdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retentionrules.api import check_sources
from retentionrules.compiler import compile_conditions, with_layers
from retentionrules.config import Config
from retentionrules.derive import DERIVED, create_derived
from retentionrules.interpreter import evaluate
from retentionrules.loader import Inputs, load

from .conftest import write_csv

CONFIG = Config()
NUMBER_FIELDS = [
    "orders_12m",
    "spend_12m",
    "total_orders",
    "rfm_score",
    "recency_score",
    "days_since_last_order",
    "days_since_first_order",
    "days_since_last_contact",
    "days_to_birthday",
    "avg_order_value",
]
DATE_FIELDS = ["last_order_date", "first_order_date", "last_contacted"]
OPS = st.sampled_from(["=", "!=", "<", "<=", ">", ">="])
UNITS = st.sampled_from(["days", "weeks", "months", "years"])
AS_OF = st.sampled_from(
    [
        dt.date(2026, 11, 22),
        dt.date(2028, 2, 29),
        dt.date(2026, 3, 31),
        dt.date(2027, 2, 28),
        dt.date(2026, 12, 31),
    ]
)
DATES = st.dates(dt.date(2023, 1, 1), dt.date(2029, 12, 31))

numbers = st.one_of(
    st.integers(0, 3000).map(str), st.decimals(0, 500, places=2).map(lambda d: format(d, "f"))
)
number_exprs = st.recursive(
    st.one_of(st.sampled_from(NUMBER_FIELDS), numbers),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from("+-*/"), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        inner.map(lambda e: f"-{e}"),
    ),
    max_leaves=3,
)
enum_tests = st.one_of(
    st.tuples(OPS, st.sampled_from("BSGP")).map(lambda t: f"tier {t[0]} {t[1]}"),
    st.tuples(OPS, st.sampled_from(["potential", "active", "silent", "sleeping", "lost"])).map(
        lambda t: f"stage {t[0]} {t[1]}"
    ),
    st.lists(st.sampled_from("BSGP"), max_size=3).map(lambda v: f"tier in [{', '.join(v)}]"),
    st.lists(st.sampled_from(["active", "lost"]), max_size=2).map(
        lambda v: f"stage not in [{', '.join(v)}]"
    ),
)
date_tests = st.one_of(
    st.tuples(st.sampled_from(DATE_FIELDS), st.integers(0, 400), UNITS, st.booleans()).map(
        lambda t: f"{t[0]} within {'next ' if t[3] else ''}{t[1]} {t[2]}"
    ),
    st.tuples(
        st.sampled_from(DATE_FIELDS),
        st.sampled_from(["before", "after"]),
        st.integers(0, 400),
        UNITS,
    ).map(lambda t: f"{t[0]} {t[1]} {t[2]} {t[3]} ago"),
    st.tuples(st.sampled_from([*DATE_FIELDS, "birthday"]), OPS, DATES).map(
        lambda t: f"{t[0]} {t[1]} {t[2].isoformat()}"
    ),
    st.tuples(st.integers(0, 400), UNITS).map(lambda t: f"birthday within {t[0]} {t[1]}"),
)
other_tests = st.one_of(
    st.tuples(number_exprs, OPS, number_exprs).map(" ".join),
    st.tuples(number_exprs, numbers, numbers).map(lambda t: f"{t[0]} between {t[1]} and {t[2]}"),
    st.tuples(number_exprs, st.lists(numbers, max_size=3), st.booleans()).map(
        lambda t: f"{t[0]} {'not in' if t[2] else 'in'} [{', '.join(t[1])}]"
    ),
    st.tuples(
        st.sampled_from([*NUMBER_FIELDS, *DATE_FIELDS, "city", "tier", "birthday"]),
        st.sampled_from(["missing", "present"]),
    ).map(lambda t: f"{t[0]} is {t[1]}"),
    st.tuples(
        st.sampled_from(["contains", "starts with"]), st.sampled_from(["", "S", "hai", "上"])
    ).map(lambda t: f'city {t[0]} "{t[1]}"'),
    st.sampled_from(["sms_opt_in", "email_opt_in = false", "sms_opt_in != true"]),
)
conditions = st.recursive(
    st.one_of(enum_tests, date_tests, other_tests),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(lambda t: f"({' '.join(t)})"),
        inner.map(lambda c: f"not ({c})"),
    ),
    max_leaves=4,
)


customers = st.lists(
    st.fixed_dictionaries(
        {
            "household_id": st.sampled_from(["", "H1", "H2"]),
            "city": st.sampled_from(["", "Shanghai", "上海", "Xian"]),
            "category": st.sampled_from(["consumables", "apparel"]),
            "birthday": st.one_of(
                st.just(""),
                st.sampled_from(["2000-02-29", "1996-02-29", "1990-12-31", "1985-03-01"]),
                DATES.map(str),
            ),
            "first_order_date": st.one_of(st.just(""), DATES.map(str)),
            "last_order_date": st.one_of(st.just(""), DATES.map(str)),
            "orders_12m": st.one_of(st.just(""), st.integers(0, 12).map(str)),
            "spend_12m": st.one_of(st.just(""), st.decimals(0, 5000, places=2).map(str)),
            "total_orders": st.one_of(st.just(""), st.integers(0, 30).map(str)),
            "sms_opt_in": st.sampled_from(["true", "false", ""]),
            "email_opt_in": st.sampled_from(["true", "false", ""]),
            "last_contacted": st.one_of(st.just(""), DATES.map(str)),
        }
    ),
    min_size=1,
    max_size=12,
)


def derived_rows(rows: list[dict], as_of: dt.date):
    with tempfile.TemporaryDirectory() as folder:
        path = write_csv(
            Path(folder) / "c.csv", [{**row, "customer_id": f"C{i}"} for i, row in enumerate(rows)]
        )
        con = duckdb.connect()
        load(con, CONFIG, Inputs(path))
        create_derived(con, CONFIG, as_of, orders=False, contacts=False)
    return con


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(conditions, min_size=1, max_size=4), customers, AS_OF)
def test_sql_and_interpreter_agree(texts, rows, as_of):
    source = "".join(f"rule r{i}\n  when {text}\n  then tag t\n" for i, text in enumerate(texts))
    report = check_sources({"r.rules": source}, CONFIG)
    assert report.ok, (source, report.diagnostics)
    con = derived_rows(rows, as_of)
    compiled = compile_conditions([r.condition for r in report.ruleset.rules], as_of)
    columns = ", ".join(f"{sql} AS r{i}" for i, sql in enumerate(compiled.conditions))
    source = with_layers(DERIVED, compiled.layers)
    cursor = con.execute(f"SELECT *, {columns} FROM {source} ORDER BY __row")
    names = [d[0] for d in cursor.description]
    for values in cursor.fetchall():
        row = dict(zip(names, values, strict=True))
        for i, rule in enumerate(report.ruleset.rules):
            assert row[f"r{i}"] == evaluate(rule.condition, row, as_of), (texts[i], row)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(customers, AS_OF)
def test_consent_is_never_violated(rows, as_of):
    """Whatever the data, no plan row targets a channel its customer did not agree to."""
    from retentionrules.engine import run_plan

    from .conftest import ROOT

    consent = {"sms": "sms_opt_in", "email": "email_opt_in"}
    with tempfile.TemporaryDirectory() as folder:
        path = write_csv(
            Path(folder) / "c.csv", [{**row, "customer_id": f"C{i}"} for i, row in enumerate(rows)]
        )
        out = Path(folder) / "plan.csv"
        run_plan([ROOT / "rules"], Inputs(path), as_of, out=out)
        import csv

        with out.open() as handle:
            planned = list(csv.DictReader(handle))
    by_id = {f"C{i}": row for i, row in enumerate(rows)}
    for action in planned:
        field = consent.get(action["channel"])
        if field is not None:
            assert by_id[action["customer_id"]][field] == "true", action
