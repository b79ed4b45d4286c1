"""Two evaluators, one meaning: the SQL compiler agrees with the Python interpreter on random
rules over random customers (missing values, boundaries, leap-day birthdays, calendar months,
the shop's named dates), on segments built on segments, and at the extremes of numbers and of
the calendar."""

import datetime as dt
import sys
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
from retentionrules.sql import anniversary_column, next_anniversary
from retentionrules.timeutil import MAX_DATE, MIN_DATE

from .conftest import write_csv

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

# Named dates are constant date fields of the derived table (docs/engine.md, The calendar); a
# project whose rules are drawn from `conditions` declares them with CALENDAR_TOML.
CALENDAR_TOML = """
[calendar]
spring_festival = { holiday = "spring_festival" }
mid_autumn = { holiday = "mid_autumn" }
member_day = { day = 30 }
double_11 = "11-11"
"""
CONFIG = Config.model_validate(tomllib.loads(CALENDAR_TOML))
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
NAMED_DATES = ["spring_festival", "mid_autumn", "member_day", "double_11"]
OPS = st.sampled_from(["=", "!=", "<", "<=", ">", ">="])
UNITS = st.sampled_from(["days", "weeks", "months", "years"])
AS_OF = st.sampled_from(
    [
        dt.date(2026, 11, 22),
        dt.date(2028, 2, 29),
        dt.date(2026, 3, 31),
        dt.date(2027, 2, 28),
        dt.date(2026, 12, 31),
        dt.date(2027, 2, 6),  # Spring Festival
        dt.date(2027, 1, 30),  # member day
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
    st.tuples(
        st.sampled_from([*DATE_FIELDS, *NAMED_DATES]), st.integers(0, 400), UNITS, st.booleans()
    ).map(lambda t: f"{t[0]} within {'next ' if t[3] else ''}{t[1]} {t[2]}"),
    st.tuples(st.sampled_from(NAMED_DATES), st.integers(0, 31)).map(
        lambda t: f"{t[0]} within next {t[1]} days"
    ),
    st.tuples(
        st.sampled_from([*DATE_FIELDS, *NAMED_DATES]),
        st.sampled_from(["before", "after"]),
        st.integers(0, 400),
        UNITS,
    ).map(lambda t: f"{t[0]} {t[1]} {t[2]} {t[3]} ago"),
    st.tuples(st.sampled_from([*DATE_FIELDS, *NAMED_DATES, "birthday"]), OPS, DATES).map(
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
        st.sampled_from([*NUMBER_FIELDS, *DATE_FIELDS, *NAMED_DATES, "city", "tier", "birthday"]),
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


def happened(rows: list[dict], as_of: dt.date) -> list[dict]:
    """Activity dates after the as-of date are bad data (docs/engine.md): at most the as-of date."""
    fields = ("first_order_date", "last_order_date", "last_contacted")
    return [
        {k: min(v, as_of.isoformat()) if k in fields and v else v for k, v in row.items()}
        for row in rows
    ]


def derived_rows(rows: list[dict], as_of: dt.date):
    rows = happened(rows, as_of)
    with tempfile.TemporaryDirectory() as folder:
        path = write_csv(
            Path(folder) / "c.csv", [{**row, "customer_id": f"C{i}"} for i, row in enumerate(rows)]
        )
        con = duckdb.connect()
        load(con, CONFIG, Inputs(path), as_of)
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
    rows = happened(rows, as_of)
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


def agree(
    source: str, con, relation: str, as_of: dt.date, config: Config = CONFIG
) -> list[list[bool]]:
    """Check `source` and evaluate every rule over `relation` with both evaluators; assert they
    agree and return the values, one list per row."""
    report = check_sources({"r.rules": source}, config)
    assert report.ok, (source, report.diagnostics)
    rules = report.ruleset.rules
    compiled = compile_conditions([r.condition for r in rules], as_of)
    columns = ", ".join(f"{sql} AS r{i}" for i, sql in enumerate(compiled.conditions))
    cursor = con.execute(f"SELECT *, {columns} FROM {with_layers(relation, compiled.layers)}")
    names = [d[0] for d in cursor.description]
    values = []
    for row in cursor.fetchall():
        fields = dict(zip(names, row, strict=True))
        expected = [evaluate(rule.condition, fields, as_of) for rule in rules]
        assert [fields[f"r{i}"] for i in range(len(rules))] == expected, (source, fields)
        values.append(expected)
    return values


segment_sets = st.tuples(
    st.lists(conditions, min_size=3, max_size=3),
    st.lists(st.sampled_from(["and", "or"]), min_size=2, max_size=2),
    st.lists(conditions, min_size=1, max_size=3),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(segment_sets, customers, AS_OF)
def test_sql_and_interpreter_agree_on_segments_built_on_segments(parts, rows, as_of):
    """Each segment is one SQL column read by the segments and rules after it, and one
    remembered value in the interpreter: they still mean the same."""
    (first, second, third), (op1, op2), rule_texts = parts
    source = (
        f"segment g0 = {first}\n"
        f"segment g1 = g0 {op1} ({second})\n"
        f"segment g2 = (g1 {op2} g0) and not ({third}) or g1\n"
    )
    uses = ["g0", "g1", "g2", "not g2", "g1 and g2"]
    source += "".join(
        f"rule r{i}\n  when {uses[i % len(uses)]} or ({text})\n  then tag t\n"
        for i, text in enumerate(rule_texts)
    )
    agree(source, derived_rows(rows, as_of), DERIVED, as_of)


# ---------------------------------------------------------------- the extremes

HUGE = 1.7976931348623157e308
EXTREME_NUMBERS = [0.0, -0.0, 1.0, -1.0, 5e-324, 1e-300, 1e300, HUGE, -HUGE, 999999999999999.0]
LITERALS = st.sampled_from(
    ["0", "1", "2", "999999999999999", "0.000000000000001", "123456789012345", "0.5"]
)
FIELDS = ["spend_12m", "orders_12m", "avg_order_value", "total_orders", "days_since_last_order"]
extreme_numbers = st.recursive(
    st.one_of(st.sampled_from(FIELDS), LITERALS),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from("+-*/"), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        inner.map(lambda e: f"-{e}"),
    ),
    max_leaves=6,
)
extreme_tests = st.one_of(
    st.tuples(extreme_numbers, OPS, extreme_numbers).map(" ".join),
    st.tuples(extreme_numbers, st.sampled_from(["missing", "present"])).map(
        lambda t: f"{t[0]} is {t[1]}"
    ),
    st.tuples(extreme_numbers, st.lists(extreme_numbers, max_size=3), st.booleans()).map(
        lambda t: f"{t[0]} {'not in' if t[2] else 'in'} [{', '.join(t[1])}]"
    ),
    st.tuples(extreme_numbers, LITERALS, extreme_numbers).map(
        lambda t: f"{t[0]} between {t[1]} and {t[2]}"
    ),
)
EXTREME_COUNTS = [0, 1, -1, 2**53, 2**53 + 1, -(2**53) - 1, 109572]
extreme_rows = st.lists(
    st.tuples(
        *[st.one_of(st.none(), st.sampled_from(EXTREME_NUMBERS)) for _ in range(3)],
        *[st.one_of(st.none(), st.sampled_from(EXTREME_COUNTS)) for _ in range(2)],
    ),
    min_size=1,
    max_size=8,
)


def number_table(rows) -> tuple:
    """The number fields as the derived table types them: doubles from the export, whole numbers
    (BIGINT) for counts of orders and days."""
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE numbers (spend_12m DOUBLE, orders_12m DOUBLE, avg_order_value DOUBLE, "
        "total_orders BIGINT, days_since_last_order BIGINT)"
    )
    con.executemany("INSERT INTO numbers VALUES (?, ?, ?, ?, ?)", rows)
    return con, "numbers"


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(extreme_tests, min_size=1, max_size=4), extreme_rows)
def test_sql_and_interpreter_agree_at_the_extremes_of_numbers(texts, rows):
    """Largest and smallest doubles, negative zero, 2**53 and beyond, the longest literals;
    overflow, division by zero and underflow: both evaluators give the same answer."""
    source = "".join(f"rule r{i}\n  when {text}\n  then tag t\n" for i, text in enumerate(texts))
    agree(source, *number_table(rows), dt.date(2026, 11, 22))


def test_division_by_zero_and_overflow_are_missing_in_both_evaluators():
    source = "".join(
        f"rule r{i}\n  when {text}\n  then tag t\n"
        for i, text in enumerate(
            [
                "spend_12m / orders_12m is missing",  # 0 orders: missing
                "spend_12m * spend_12m is missing",  # overflow: missing
                "1 / (spend_12m * spend_12m) is missing",  # so is what is made of it
                "spend_12m * spend_12m > 0",  # and a comparison with it is false
                "not (1 / (spend_12m / orders_12m) = 0)",  # 1 / missing is missing, not 0
                "spend_12m * spend_12m - spend_12m * spend_12m != 1",
                "(spend_12m + spend_12m) / 2 = spend_12m",
            ]
        )
    )
    con, relation = number_table([(HUGE, 0.0, None, 0, 0), (2.0, 0.0, None, 1, 1)])
    assert agree(source, con, relation, dt.date(2026, 11, 22)) == [
        [True, True, True, False, True, False, False],
        [True, False, False, True, True, True, True],
    ]


EXTREME_DATES = [
    dt.date(1900, 1, 1),
    dt.date(1900, 2, 28),
    dt.date(2000, 2, 29),
    dt.date(2199, 12, 31),
    dt.date(2199, 2, 28),
    dt.date(2026, 11, 22),
]
LONGEST = st.sampled_from(["365000 days", "52000 weeks", "12000 months", "1000 years", "0 days"])
extreme_dates = st.one_of(
    st.tuples(st.sampled_from(DATE_FIELDS), LONGEST, st.booleans()).map(
        lambda t: f"{t[0]} within {'next ' if t[2] else ''}{t[1]}"
    ),
    st.tuples(st.sampled_from(DATE_FIELDS), st.sampled_from(["before", "after"]), LONGEST).map(
        lambda t: f"{t[0]} {t[1]} {t[2]} ago"
    ),
    LONGEST.map(lambda window: f"birthday within {window}"),
    st.tuples(st.sampled_from([*DATE_FIELDS, "birthday"]), OPS, st.sampled_from(EXTREME_DATES)).map(
        lambda t: f"{t[0]} {t[1]} {t[2].isoformat()}"
    ),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(extreme_dates, min_size=1, max_size=4),
    st.lists(st.tuples(*[st.one_of(st.none(), st.sampled_from(EXTREME_DATES))] * 4), min_size=1),
    st.sampled_from([MIN_DATE, MAX_DATE, dt.date(2000, 2, 29), dt.date(2199, 2, 28)]),
)
def test_sql_and_interpreter_agree_at_the_ends_of_the_calendar(texts, rows, as_of):
    """The longest durations from the first and last as-of dates, dates at the ends of the data
    range, leap days: calendar arithmetic stays in range and both evaluators agree."""
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE dates (last_order_date DATE, first_order_date DATE, last_contacted DATE, "
        "birthday DATE)"
    )
    con.executemany("INSERT INTO dates VALUES (?, ?, ?, ?)", rows)
    relation = (
        f"(SELECT *, {next_anniversary('birthday', as_of)} AS {anniversary_column('birthday')} "
        "FROM dates)"
    )
    source = "".join(f"rule r{i}\n  when {text}\n  then tag t\n" for i, text in enumerate(texts))
    agree(source, con, relation, as_of)


def chain(length: int) -> str:
    lines = ["segment s0 = tier >= G"]
    lines += [f"segment s{i} = s{i - 1} and s{i - 1}" for i in range(1, length + 1)]
    lines += [f"segment t{i} = not (s{i} or s{i})" for i in range(length + 1)]
    return "\n".join(lines) + f"\nrule r\n  when s{length} or t{length}\n  then tag t\n"


class CountingRow(dict):
    """A customer whose fields count how often they are read."""

    reads = 0

    def get(self, key, default=None):
        CountingRow.reads += 1
        return super().get(key, default)


def test_thirty_segments_each_using_the_previous_twice_are_evaluated_once_each():
    """Expanded, the condition would hold 2**30 tests; each evaluator works each segment out
    once: the SQL grows with the number of segments, the interpreter reads `tier` once."""
    report = check_sources({"r.rules": chain(30)}, CONFIG)
    assert report.ok
    (rule,) = report.ruleset.rules
    compiled = compile_conditions([rule.condition], dt.date(2026, 11, 22))
    assert len(compiled.conditions[0]) + sum(map(len, compiled.layers)) < 10_000
    CountingRow.reads = 0
    assert evaluate(rule.condition, CountingRow(tier="G"), dt.date(2026, 11, 22)) is True
    assert CountingRow.reads == 1


def test_deep_conditions_run_within_duckdb_default_limits():
    """DuckDB refuses expressions nested over 1,000 levels and plans deep ones slowly: a deep
    part of a condition becomes a column of its own every HOIST_DEPTH levels."""
    sum_ = " + ".join(["spend_12m"] * 999) + " > 0"
    divisions = "spend_12m / (" * 499 + "2" + ")" * 499 + " is present"
    nots = "not " * 999 + "spend_12m > 0"
    con, relation = number_table([(1.0, 1.0, 1.0, 1, 1), (None, None, None, None, None)])
    assert con.execute("SELECT current_setting('max_expression_depth')").fetchone()[0] == 1000
    values = agree(
        f"rule a\n  when {sum_}\n  then tag t\n"
        f"rule b\n  when {divisions}\n  then tag t\n"
        f"rule c\n  when {nots}\n  then tag t\n",
        con,
        relation,
        dt.date(2026, 11, 22),
    )
    assert values == [[True, True, False], [False, False, True]]


def test_whole_numbers_beyond_two_to_the_53_compare_as_doubles_in_both_evaluators():
    """Numbers are doubles everywhere: two counts that only differ beyond 2**53 are equal, in
    SQL (which would compare whole-number columns exactly) as in the interpreter."""
    con, relation = number_table([(None, None, None, 2**53, 2**53 + 1)])
    source = (
        "rule r0\n  when days_since_last_order = total_orders\n  then tag t\n"
        "rule r1\n  when days_since_last_order - total_orders = 0\n  then tag t\n"
        "rule r2\n  when days_since_last_order in [total_orders]\n  then tag t\n"
    )
    assert agree(source, con, relation, dt.date(2026, 11, 22)) == [[True, True, True]]
