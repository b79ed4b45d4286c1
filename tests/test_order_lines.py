"""Order lines and the product catalogue: orders counted right with several lines per order,
and the run-out and warranty dates (docs/engine.md "Order lines", "The product catalogue",
"Run-out and warranty dates") pinned by a hand-checked table of cases."""

import datetime as dt
import json
from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retentionrules.config import Config, ConfigError, load_config
from retentionrules.derive import DERIVED, create_derived
from retentionrules.engine import explain, run_plan, score
from retentionrules.errors import DataError
from retentionrules.loader import Inputs, load

from .conftest import customer, write_csv, write_rules

AS_OF = dt.date(2026, 11, 22)
LINES = ["customer_id", "order_date", "amount", "order_id", "sku", "category", "quantity"]
LINE_CONFIG = """
[orders]
order_id = "order_id"
sku = "sku"
category = "category"
quantity = "quantity"

[products.sku.F]
category = "formula"
days_per_unit = 5

[products.sku.X]
days_per_unit = 1.5

[products.sku.W]
category = "kettle"
warranty_days = 365

[products.category.diapers]
days_per_unit = 30
"""
FIELDS = ("next_runout_date", "days_to_runout", "runout_sku", "runout_category")
WARRANTY = ("next_warranty_end", "days_to_warranty_end", "warranty_sku")


def config_of(text: str, folder: Path) -> Config:
    path = folder / "retentionrules.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def line(who, day, sku=None, quantity=None, amount=10, category=None, order=None):
    return {
        "customer_id": who,
        "order_date": day,
        "amount": amount,
        "order_id": order,
        "sku": sku,
        "category": category,
        "quantity": quantity,
    }


def derive(folder, lines, as_of=AS_OF, config=LINE_CONFIG, products=None):
    """Every customer's derived fields, by id, from order lines (a CSV written here)."""
    cfg = config_of(config, folder)
    ids = list(dict.fromkeys(row["customer_id"] for row in lines))
    customers = write_csv(folder / "c.csv", [customer(i) for i in ids])
    orders = write_csv(folder / "o.csv", lines, LINES)
    inputs = Inputs(customers, orders, products=products)
    con = duckdb.connect()
    stats = load(con, cfg, inputs, as_of)
    create_derived(con, cfg, as_of, True, False, stats.order_lines)
    cursor = con.execute(f"SELECT * FROM {DERIVED}")
    names = [d[0] for d in cursor.description]
    rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    return {row["customer_id"]: row for row in rows}


D = dt.date
# (case, lines as (date, sku, quantity, amount, category), expected (next run-out, its sku,
# its category) or None). Catalogue: F formula 5 days a unit; X 1.5 days a unit; category
# diapers 30 days a unit; T (tea) has no days_per_unit. As of 2026-11-22.
RUNOUT_CASES = [
    ("one purchase: 3 x 5 days", [("2026-11-10", "F", 3)], (D(2026, 11, 25), "F", "formula")),
    (
        "stock carried over: the second tin starts when the first runs out",
        [("2026-11-01", "F", 3), ("2026-11-10", "F", 3)],
        (D(2026, 12, 1), "F", "formula"),
    ),
    (
        "stock ran out before the next purchase: nothing carried",
        [("2026-10-01", "F", 1), ("2026-11-10", "F", 4)],
        (D(2026, 11, 30), "F", "formula"),
    ),
    (
        "several SKUs: the earliest run-out on or after the as-of date",
        [("2026-11-10", "F", 3), ("2026-11-01", "D1", 1, 10, "diapers")],
        (D(2026, 11, 25), "F", "formula"),
    ),
    (
        "a run-out before the as-of date is passed over",
        [("2026-11-01", "F", 1), ("2026-11-20", "D1", 1, 10, "diapers")],
        (D(2026, 12, 20), "D1", "diapers"),
    ),
    (
        "a tie goes to the smaller sku",
        [("2026-11-01", "D2", 1, 10, "diapers"), ("2026-11-01", "D1", 1, 10, "diapers")],
        (D(2026, 12, 1), "D1", "diapers"),
    ),
    ("a SKU bought once without days_per_unit: no run-out", [("2026-11-20", "T", 1)], None),
    (
        "without days_per_unit: the median interval (10, 15, 20: 15) after the last purchase",
        [
            ("2026-10-01", "T", 1),
            ("2026-10-11", "T", 1),
            ("2026-10-31", "T", 2),
            ("2026-11-15", "T", 1),
        ],
        (D(2026, 11, 30), "T", None),
    ),
    (
        "median of an even count: the mean of the middle two (4, 10: 7); on the as-of date",
        [("2026-11-01", "T", 1), ("2026-11-05", "T", 1), ("2026-11-15", "T", 1)],
        (D(2026, 11, 22), "T", None),
    ),
    (
        "the same day twice: one purchase of both quantities",
        [("2026-11-20", "F", 1), ("2026-11-20", "F", 1)],
        (D(2026, 11, 30), "F", "formula"),
    ),
    (
        "the same day twice without days_per_unit: one purchase date (interval 10, not 0 and 10)",
        [("2026-11-10", "T", 1), ("2026-11-10", "T", 1), ("2026-11-20", "T", 1)],
        (D(2026, 11, 30), "T", None),
    ),
    (
        "purchases after the as-of date are ignored",
        [("2026-11-20", "F", 1), ("2026-11-23", "F", 10)],
        (D(2026, 11, 25), "F", "formula"),
    ),
    (
        "a return takes its days off the stock",
        [("2026-11-10", "F", 6), ("2026-11-15", "F", -2, -20)],
        (D(2026, 11, 30), "F", "formula"),
    ),
    (
        "a return that empties the stock leaves no run-out",
        [("2026-11-20", "F", 1), ("2026-11-21", "F", -3, -30)],
        None,
    ),
    (
        "a refund of money only (negative amount) is no purchase",
        [("2026-11-20", "F", 2, -10)],
        None,
    ),
    ("missing quantity: one unit", [("2026-11-20", "F", None)], (D(2026, 11, 25), "F", "formula")),
    (
        "fractions of a day carry; the run-out is the day the last fraction falls on",
        [("2026-11-20", "X", 3)],
        (D(2026, 11, 24), "X", None),
    ),
    (
        "a line with a category and no sku: the category is the product",
        [("2026-11-01", None, 2, 10, "diapers")],
        (D(2026, 12, 31), None, "diapers"),
    ),
    (
        "the line's category finds the category's days when the sku is not in the catalogue",
        [("2026-11-10", "D9", 1, 10, "diapers")],
        (D(2026, 12, 10), "D9", "diapers"),
    ),
]


def _rows(who, entries):
    rows = []
    for entry in entries:
        day, sku, quantity = entry[:3]
        amount = entry[3] if len(entry) > 3 else 10
        category = entry[4] if len(entry) > 4 else None
        rows.append(line(who, day, sku, quantity, amount, category))
    return rows


def test_runout_dates_follow_the_hand_checked_table(tmp_path):
    lines = []
    for index, (_case, entries, _expected) in enumerate(RUNOUT_CASES):
        lines += _rows(f"c{index}", entries)
    found = derive(tmp_path, lines)
    for index, (case, _entries, expected) in enumerate(RUNOUT_CASES):
        row = found[f"c{index}"]
        got = tuple(row[n] for n in FIELDS)
        want = (
            (None,) * 4
            if expected is None
            else (expected[0], (expected[0] - AS_OF).days, expected[1], expected[2])
        )
        assert got == want, case


def test_leap_years_in_runout_and_warranty_dates(tmp_path):
    as_of = D(2028, 2, 27)
    found = derive(
        tmp_path,
        [
            line("leap", "2028-02-26", "F", 1),  # 26 February + 5 days in a leap year
            line("leap", "2027-03-01", "W", 1),  # + 365 days: 29 February 2028
            line("plain", "2027-02-26", "F", 1),  # 26 February + 5 days: 3 March 2027
            line("plain", "2028-02-26", "W", 1),
        ],
        as_of=as_of,
    )
    assert found["leap"]["next_runout_date"] == D(2028, 3, 2)
    assert found["leap"]["next_warranty_end"] == D(2028, 2, 29)
    assert found["leap"]["days_to_warranty_end"] == 2
    assert found["plain"]["next_runout_date"] is None  # ran out on 3 March 2027
    assert found["plain"]["next_warranty_end"] == D(2029, 2, 25)


def test_warranty_end_is_the_earliest_on_or_after_the_as_of_date(tmp_path):
    found = derive(
        tmp_path,
        [
            line("w", "2025-11-01", "W", 1),  # ended 2026-11-01: passed over
            line("w", "2026-01-10", "W", 1),  # ends 2027-01-10
            line("w", "2025-12-01", "W", 1),  # ends 2026-12-01: the earliest
            line("w", "2026-11-23", "W", 1),  # after the as-of date: ignored
            line("r", "2026-01-10", "W", 1, amount=-100),  # a refund is no purchase
            line("n", "2026-11-01", "F", 1),  # no warranty_days: none
        ],
    )
    assert tuple(found["w"][n] for n in WARRANTY) == (D(2026, 12, 1), 9, "W")
    assert tuple(found["r"][n] for n in WARRANTY) == (None, None, None)
    assert tuple(found["n"][n] for n in WARRANTY) == (None, None, None)


def _sequential(days: list[tuple[int, int]], per_unit: float) -> float | None:
    """The issue's definition, step by step: `runout = max(runout, day) + q x days_per_unit`
    for a purchase; a return takes its days off, never below its day; no stock: None."""
    runout: float | None = None
    for day, quantity in sorted(days):
        if quantity > 0:
            runout = max(runout if runout is not None else day, day) + quantity * per_unit
        elif runout is not None:
            runout = runout + quantity * per_unit
            runout = runout if runout > day else None
    return runout


@settings(max_examples=25, derandomize=True, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 60), st.integers(-3, 4).filter(bool)), min_size=1, max_size=6
    ),
    st.sampled_from([1, 2.5, 7]),
)
def test_stock_carried_over_agrees_with_the_step_by_step_definition(tmp_path_factory, days, unit):
    folder = tmp_path_factory.mktemp("stock")
    start = D(2026, 9, 1)
    by_day: dict[int, int] = {}
    for day, quantity in days:
        by_day[day] = by_day.get(day, 0) + quantity
    lines = [
        line("c", (start + dt.timedelta(days=day)).isoformat(), "P", quantity)
        for day, quantity in days
    ]
    config = LINE_CONFIG + f"\n[products.sku.P]\ndays_per_unit = {unit}\n"
    as_of = start + dt.timedelta(days=max(day for day, _ in days))  # every line counts
    found = derive(folder, lines, as_of=as_of, config=config)["c"]
    net = [(day, q) for day, q in sorted(by_day.items()) if q]
    want = _sequential(net, unit)
    expected = None if want is None else start + dt.timedelta(days=int(want // 1))
    expected = expected if expected is not None and expected >= as_of else None
    assert found["next_runout_date"] == expected


def test_orders_are_counted_once_however_many_lines(tmp_path):
    lines = [
        line("id", "2026-11-01", "F", 1, order="o1"),
        line("id", "2026-11-01", "D1", 1, order="o1"),
        line("id", "2026-11-01", "T", 1, order="o2"),  # another order on the same day
        line("id", "2026-11-02", "F", 1, order=None),  # no order id: an order of its own
        line("id", "2026-11-03", "F", -1, amount=-10, order="o3"),  # only a refund: no order
        line("id", "2026-11-04", "F", 1, order="o4"),
        line("id", "2026-11-04", "F", -1, amount=-10, order="o4"),  # o4 still counts
    ]
    found = derive(tmp_path, lines)["id"]
    assert (found["orders_12m"], found["total_orders"]) == (4, 4)
    assert found["spend_12m"] == 10 * 5 - 20
    assert (found["first_order_date"], found["last_order_date"]) == (D(2026, 11, 1), D(2026, 11, 4))


def test_without_order_id_a_customers_lines_of_one_date_are_one_order(tmp_path):
    config = LINE_CONFIG.replace('order_id = "order_id"\n', "")
    lines = [
        line("b", "2026-11-01", "F", 1),
        line("b", "2026-11-01", "D1", 2),
        line("b", "2026-11-05", "F", 1),
        line("b", "2026-11-06", "F", -1, amount=-10),  # a return: not an order, no date
    ]
    found = derive(tmp_path, lines, config=config)["b"]
    assert (found["orders_12m"], found["total_orders"], found["spend_12m"]) == (2, 2, 20)
    assert found["last_order_date"] == D(2026, 11, 5)


def test_without_line_columns_each_row_is_an_order_and_line_fields_are_missing(tmp_path):
    found = derive(
        tmp_path,
        [line("a", "2026-11-01", "F", 1), line("a", "2026-11-01", "F", 1)],
        config="",
    )["a"]
    assert found["orders_12m"] == 2
    assert all(found[n] is None for n in (*FIELDS, *WARRANTY))


# ---------------------------------------------------------------- the catalogue


def test_a_catalogue_file_adds_to_the_configuration_and_replaces_its_keys(tmp_path):
    products = write_csv(
        tmp_path / "p.csv",
        [
            {"sku": "F", "category": "formula", "days_per_unit": "10"},  # replaces F's 5
            {"sku": "T", "category": "tea", "days_per_unit": "20"},
            {"category": "kettle", "warranty_days": "30"},
        ],
        ["sku", "category", "days_per_unit", "warranty_days"],
    )
    found = derive(
        tmp_path,
        [
            line("f", "2026-11-20", "F", 1),
            line("t", "2026-11-20", "T", 1),
            line("k", "2026-11-20", "K", 1, category="kettle"),
        ],
        products=products,
    )
    assert found["f"]["next_runout_date"] == D(2026, 11, 30)
    assert (found["t"]["next_runout_date"], found["t"]["runout_category"]) == (
        D(2026, 12, 10),
        "tea",
    )
    assert (found["k"]["next_warranty_end"], found["k"]["warranty_sku"]) == (D(2026, 12, 20), "K")


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"sku": "A", "days_per_unit": "0"}, "column days_per_unit: `0` is not more than 0"),
        ({"sku": "A", "days_per_unit": "-3"}, "is not more than 0"),
        ({"sku": "A", "days_per_unit": "NaN"}, "is not a finite number"),
        ({"sku": "A", "days_per_unit": "lots"}, "is not a number"),
        ({"sku": "A", "warranty_days": "1.5"}, "column warranty_days: `1.5` is not a whole number"),
        ({"sku": "A", "warranty_days": "400000"}, "is more than 366,000"),
        ({"days_per_unit": "3"}, "names neither a sku nor a category"),
    ],
)
def test_bad_catalogue_rows_are_bad_data(tmp_path, row, reason):
    products = write_csv(
        tmp_path / "p.csv",
        [{"sku": "G", "days_per_unit": "2"}, row],
        ["sku", "category", "days_per_unit", "warranty_days"],
    )
    with pytest.raises(DataError, match="p.csv: row 2: .*" + reason.replace("`", ".")):
        derive(tmp_path, [line("a", "2026-11-20", "G", 1)], products=products)


def test_a_sku_on_two_catalogue_rows_sets_both_aside(tmp_path):
    products = write_csv(
        tmp_path / "p.csv",
        [
            {"sku": "F", "days_per_unit": "2"},
            {"sku": "G", "days_per_unit": "2"},
            {"sku": " F", "days_per_unit": "3"},
            {"category": "tea", "days_per_unit": "3"},
            {"category": "tea", "days_per_unit": "4"},
        ],
        ["sku", "category", "days_per_unit", "warranty_days"],
    )
    config = config_of('[orders]\nsku = "sku"\n', tmp_path)
    customers = write_csv(tmp_path / "c.csv", [customer("a")])
    orders = write_csv(tmp_path / "o.csv", [line("a", "2026-11-20", "G", 1)], LINES)
    con = duckdb.connect()
    rejects = tmp_path / "rejects.csv"
    stats = load(con, config, Inputs(customers, orders, products=products), AS_OF, rejects)
    assert stats.rejected == {str(products): 4}
    reasons = dict(con.execute("SELECT row, reason FROM rejects_products").fetchall())
    assert reasons[1] == "sku `F` is on 2 rows (1, 3): which is right cannot be told"
    assert reasons[5] == "category `tea` is on 2 rows (4, 5): which is right cannot be told"
    assert con.execute("SELECT sku FROM products").fetchall() == [("G",)]


def test_a_catalogue_in_json_lines_is_read_by_its_types(tmp_path):
    products = tmp_path / "p.jsonl"
    products.write_text(json.dumps({"sku": "F", "days_per_unit": "5"}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"row 1: column days_per_unit: .* is not a number"):
        derive(tmp_path, [line("a", "2026-11-20", "F", 1)], products=products)


def test_bad_catalogue_settings_name_their_line_and_column(tmp_path):
    path = tmp_path / "retentionrules.toml"
    path.write_text('[products.sku."formula-900g"]\ndays_per_unit = -15\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"toml:2:17: .*must be more than 0, not -15"):
        load_config(path)
    path.write_text('[products.category.tea]\ncategory = "x"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="a category entry has no category of its own"):
        load_config(path)


def test_a_named_line_column_must_be_in_the_orders_export(tmp_path):
    config = config_of('[orders]\nsku = "SKU"\n', tmp_path)
    customers = write_csv(tmp_path / "c.csv", [customer("a")])
    orders = write_csv(tmp_path / "o.csv", [line("a", "2026-11-20", "F", 1)], LINES)
    with pytest.raises(DataError, match=r"o.csv: missing column SKU \(the header has `sku`"):
        load(duckdb.connect(), config, Inputs(customers, orders), AS_OF)


def test_bad_order_lines_are_bad_data(tmp_path):
    with pytest.raises(DataError, match=r"o.csv: row 1: column quantity: `two` is not a number"):
        derive(tmp_path, [line("a", "2026-11-20", "F", "two")])


# ---------------------------------------------------------------- rules, plan, explain, score


def test_rules_plan_explain_and_score_read_the_new_fields(tmp_path):
    rules = write_rules(
        tmp_path / "rules",
        'rule restock "Formula about to run out"\n'
        '  when next_runout_date within next 3 days and runout_category = "formula"\n'
        "  then send restock_reminder via sms\n",
        LINE_CONFIG,
    )
    customers = write_csv(tmp_path / "c.csv", [customer("soon"), customer("later")])
    orders = write_csv(
        tmp_path / "o.csv",
        [line("soon", "2026-11-10", "F", 3), line("later", "2026-11-20", "F", 3)],
        LINES,
    )
    inputs = Inputs(customers, orders)
    result = run_plan([rules], inputs, AS_OF, out=tmp_path / "plan.csv")
    planned = (tmp_path / "plan.csv").read_text(encoding="utf-8-sig").splitlines()[1:]
    assert [row.split(",")[1] for row in planned] == ["soon"]
    assert result.plan.counts[0].rule == "restock"
    (soon,) = explain([rules], inputs, "soon", AS_OF)
    assert soon.fields["days_to_runout"] == 3 and soon.rules[0].matched
    (later,) = explain([rules], inputs, "later", AS_OF)
    assert later.fields["next_runout_date"] == D(2026, 12, 5) and not later.rules[0].matched
    score(inputs, AS_OF, out=tmp_path / "s.csv", config_path=rules / "retentionrules.toml")
    header = (tmp_path / "s.csv").read_text(encoding="utf-8-sig").splitlines()[0].split(",")
    assert header[-7:] == [*FIELDS, *WARRANTY]
