"""`bought "CATEGORY"`: the last purchase date in a category, and `units bought "CATEGORY"`: the
quantity bought on that date (docs/language.md "Purchases by category", docs/engine.md "Purchases
by category"): hand-checked tables of what is a purchase and what its units are, both evaluators
agreeing on random lines and rules, the checks (RR210, RR202), fmt, the plan's note and rule
tests."""

import datetime as dt
import tempfile
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retentionrules import ir
from retentionrules.api import check_sources, format_source
from retentionrules.compiler import compile_conditions, with_layers
from retentionrules.config import Config
from retentionrules.derive import DERIVED, create_derived
from retentionrules.engine import explain, run_plan
from retentionrules.interpreter import evaluate
from retentionrules.loader import Inputs, load
from retentionrules.testing import run_tests

from .conftest import customer, write_csv, write_rules
from .test_order_lines import AS_OF, LINE_CONFIG, LINES, config_of, line

CATEGORIES = ["diapers", "formula", "kettle"]


def _facts(folder, lines, fact, categories, as_of, config):
    """Each customer's `FACT "x"` columns for `categories`, by id; the derived table holds only
    the purchase facts asked for."""
    cfg = config_of(config, folder)
    ids = list(dict.fromkeys(row["customer_id"] for row in lines))
    customers = write_csv(folder / "c.csv", [customer(i) for i in ids])
    orders = write_csv(folder / "o.csv", lines, LINES)
    con = duckdb.connect()
    stats = load(con, cfg, Inputs(customers, orders), as_of)
    asked = {"categories": categories} if fact == "bought" else {"units": categories}
    create_derived(con, cfg, as_of, True, False, stats.order_lines, **asked)
    names = [d[0] for d in con.execute(f"SELECT * FROM {DERIVED} LIMIT 0").description]
    other = "units bought " if fact == "bought" else "bought "
    assert not [n for n in names if n.startswith(other)]  # only the facts the rules name
    columns = ", ".join(f'"{fact} ""{c}"""' for c in categories)
    rows = con.execute(f"SELECT customer_id, {columns} FROM {DERIVED}").fetchall()
    return {row[0]: dict(zip(categories, row[1:], strict=True)) for row in rows}


def bought(folder, lines, categories=CATEGORIES, as_of=AS_OF, config=LINE_CONFIG):
    """Each customer's `bought "x"` columns, by id."""
    return _facts(folder, lines, "bought", categories, as_of, config)


D = dt.date.fromisoformat
# (what it pins, the customer's lines, the last purchase date in diapers / formula / kettle)
CASES = [
    ("one purchase", [line("a", "2026-10-01", category="diapers", quantity=2)],
     (D("2026-10-01"), None, None)),
    ("the latest of several", [line("a", "2026-09-01", category="diapers"),
                               line("a", "2026-11-01", category="diapers"),
                               line("a", "2026-10-01", category="diapers")],
     (D("2026-11-01"), None, None)),
    ("a refund line is no purchase", [line("a", "2026-09-01", category="diapers"),
                                      line("a", "2026-11-01", category="diapers", amount=-10)],
     (D("2026-09-01"), None, None)),
    ("a return line is no purchase", [line("a", "2026-09-01", category="diapers"),
                                      line("a", "2026-11-01", category="diapers", quantity=-1)],
     (D("2026-09-01"), None, None)),
    ("quantity 0 is no purchase", [line("a", "2026-11-01", category="diapers", quantity=0)],
     (None, None, None)),
    ("no quantity is one unit", [line("a", "2026-11-01", category="diapers")],
     (D("2026-11-01"), None, None)),
    ("no amount still a purchase", [line("a", "2026-11-01", category="diapers", amount=None)],
     (D("2026-11-01"), None, None)),
    ("after the as-of date left out", [line("a", "2026-10-01", category="diapers"),
                                       line("a", "2026-11-23", category="diapers")],
     (D("2026-10-01"), None, None)),
    ("the as-of date itself counts", [line("a", "2026-11-22", category="diapers")],
     (D("2026-11-22"), None, None)),
    ("the sku's catalogue category first", [line("a", "2026-11-01", sku="F", category="diapers")],
     (None, D("2026-11-01"), None)),
    ("a sku the catalogue gives no category: the line's",
     [line("a", "2026-11-01", sku="X", category="diapers")], (D("2026-11-01"), None, None)),
    ("a sku alone, category from the catalogue", [line("a", "2026-06-01", sku="W")],
     (None, None, D("2026-06-01"))),
    ("categories are exact", [line("a", "2026-11-01", category="Diapers")], (None, None, None)),
    ("a line in no category", [line("a", "2026-11-01", sku="Q")], (None, None, None)),
]


def test_the_last_purchase_in_a_category_hand_checked_table(tmp_path):
    for i, (what, lines, expected) in enumerate(CASES):
        folder = tmp_path / str(i)
        folder.mkdir()
        got = bought(folder, lines)["a"]
        assert tuple(got[c] for c in CATEGORIES) == expected, what


def units(folder, lines, categories=CATEGORIES, as_of=AS_OF, config=LINE_CONFIG):
    """Each customer's `units bought "x"` columns (and nothing else of purchases), by id."""
    return _facts(folder, lines, "units bought", categories, as_of, config)


# (what it pins, the customer's lines, the units of the last purchase in diapers / formula /
# kettle)
UNITS_CASES = [
    ("one line", [line("a", "2026-10-01", category="diapers", quantity=2)], (2.0, None, None)),
    ("the lines of the last day add up, earlier days do not count",
     [line("a", "2026-09-01", category="diapers", quantity=7),
      line("a", "2026-11-01", category="diapers", quantity=2, order="o1"),
      line("a", "2026-11-01", category="diapers", quantity=3, order="o2")], (5.0, None, None)),
    ("a line without a quantity counts 1",
     [line("a", "2026-11-01", category="diapers"),
      line("a", "2026-11-01", category="diapers", quantity=2)], (3.0, None, None)),
    ("a return or refund on the last day takes nothing off",
     [line("a", "2026-11-01", category="diapers", quantity=4),
      line("a", "2026-11-01", category="diapers", quantity=-1),
      line("a", "2026-11-01", category="diapers", quantity=2, amount=-10)], (4.0, None, None)),
    ("a later return is no purchase: the last purchase's units stand",
     [line("a", "2026-10-01", category="diapers", quantity=4),
      line("a", "2026-11-01", category="diapers", quantity=-4)], (4.0, None, None)),
    ("after the as-of date left out",
     [line("a", "2026-10-01", category="diapers", quantity=4),
      line("a", "2026-11-23", category="diapers", quantity=9)], (4.0, None, None)),
    ("fractions add up", [line("a", "2026-11-01", category="diapers", quantity=0.5),
                          line("a", "2026-11-01", category="diapers", quantity=0.25)],
     (0.75, None, None)),
    ("each category its own last day",
     [line("a", "2026-11-01", category="diapers", quantity=1),
      line("a", "2026-10-01", sku="F", quantity=3),
      line("a", "2026-10-01", sku="F", quantity=1, order="o2"),
      line("a", "2026-06-01", sku="W")], (1.0, 4.0, 1.0)),
    ("never bought: missing", [line("a", "2026-11-01", category="toys", quantity=3)],
     (None, None, None)),
]


def test_the_units_of_the_last_purchase_in_a_category_hand_checked_table(tmp_path):
    for i, (what, lines, expected) in enumerate(UNITS_CASES):
        folder = tmp_path / str(i)
        folder.mkdir()
        got = units(folder, lines)["a"]
        assert tuple(got[c] for c in CATEGORIES) == expected, what


def test_without_a_quantity_column_each_line_is_one_unit(tmp_path):
    lines = [line("a", "2026-11-01", category="diapers", quantity=5),
             line("a", "2026-11-01", category="diapers", quantity=5, order="o2"),
             line("a", "2026-10-01", category="formula")]
    config = '[orders]\ncategory = "category"\norder_id = "order_id"\n'
    assert units(tmp_path, lines, config=config)["a"] == {
        "diapers": 2.0, "formula": 1.0, "kettle": None
    }


def test_bought_and_units_bought_together_read_the_same_last_day(tmp_path):
    lines = [line("a", "2026-09-01", category="diapers", quantity=6),
             line("a", "2026-11-01", category="diapers", quantity=2)]
    cfg = config_of(LINE_CONFIG, tmp_path)
    customers = write_csv(tmp_path / "c.csv", [customer("a"), customer("b")])
    orders = write_csv(tmp_path / "o.csv", lines, LINES)
    con = duckdb.connect()
    stats = load(con, cfg, Inputs(customers, orders), AS_OF)
    create_derived(con, cfg, AS_OF, True, False, stats.order_lines, ["diapers"], ["diapers"])
    got = con.execute(
        f'SELECT customer_id, "bought ""diapers""", "units bought ""diapers""" FROM {DERIVED} '
        "ORDER BY customer_id"
    ).fetchall()
    assert got == [("a", dt.date(2026, 11, 1), 2.0), ("b", None, None)]


def test_without_a_category_column_nobody_has_bought_anything(tmp_path):
    lines = [line("a", "2026-11-01", category="diapers", quantity=1)]
    config = '[orders]\nquantity = "quantity"\n'
    assert bought(tmp_path, lines, config=config)["a"] == dict.fromkeys(CATEGORIES)
    assert units(tmp_path, lines, config=config)["a"] == dict.fromkeys(CATEGORIES)


# ---------------------------------------------------------------- both evaluators agree

RANDOM_CONFIG = Config.model_validate(
    {"orders": {"sku": "sku", "category": "category", "quantity": "quantity"}}
)
DATES = st.dates(dt.date(2026, 1, 1), dt.date(2027, 3, 31))
lines = st.lists(
    st.fixed_dictionaries(
        {
            "customer_id": st.sampled_from(["a", "b", "c", "d"]),
            "order_date": DATES.map(str),
            "amount": st.sampled_from([10, -10, None, 0]),
            "order_id": st.none(),
            "sku": st.none(),
            "category": st.sampled_from(["diapers", "formula", "toys", None]),
            "quantity": st.sampled_from([1, 3, 0, -1, None]),
        }
    ),
    max_size=25,
)
bought_tests = st.one_of(
    st.tuples(st.sampled_from(["diapers", "formula"]), st.integers(0, 200),
              st.sampled_from(["days", "weeks", "months"]), st.booleans())
    .map(lambda t: f'bought "{t[0]}" within {"next " if t[3] else ""}{t[1]} {t[2]}'),
    st.tuples(st.sampled_from(["diapers", "formula"]), st.sampled_from(["before", "after"]),
              st.integers(0, 200))
    .map(lambda t: f'bought "{t[0]}" {t[1]} {t[2]} days ago'),
    st.tuples(st.sampled_from(["diapers", "toys"]), st.sampled_from(["<", ">=", "="]), DATES)
    .map(lambda t: f'bought "{t[0]}" {t[1]} {t[2]}'),
    st.tuples(st.sampled_from(["diapers", "formula"]), st.sampled_from(["missing", "present"]))
    .map(lambda t: f'bought "{t[0]}" is {t[1]}'),
    st.tuples(st.sampled_from(["diapers", "formula", "toys"]),
              st.sampled_from(["<", "<=", ">=", "=", "!="]), st.sampled_from([0, 1, 2, 3, 4, 6]))
    .map(lambda t: f'units bought "{t[0]}" {t[1]} {t[2]}'),
    st.tuples(st.sampled_from(["diapers", "formula"]), st.sampled_from(["missing", "present"]))
    .map(lambda t: f'units bought "{t[0]}" is {t[1]}'),
    st.sampled_from(['units bought "diapers" + units bought "formula" > 2',
                     'bought "formula" within 30 days and units bought "formula" >= 3']),
    st.sampled_from(["last_order_date within 30 days", "orders_12m >= 2"]),
)
conditions = st.recursive(
    bought_tests,
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(lambda t: f"({' '.join(t)})"),
        inner.map(lambda c: f"not ({c})"),
    ),
    max_leaves=3,
)


def oracle(rows, who, category, as_of):
    """The definition, in Python: the latest date of a purchase line in the category."""
    days = [
        dt.date.fromisoformat(r["order_date"]) for r in rows
        if r["customer_id"] == who and r["category"] == category
        and (r["quantity"] is None or r["quantity"] > 0)
        and (r["amount"] is None or r["amount"] >= 0)
        and dt.date.fromisoformat(r["order_date"]) <= as_of
    ]
    return max(days, default=None)


def units_oracle(rows, who, category, as_of):
    """The definition, in Python: the units of the purchase lines on the last purchase date."""
    last = oracle(rows, who, category, as_of)
    if last is None:
        return None
    return float(sum(
        1 if r["quantity"] is None else r["quantity"] for r in rows
        if r["customer_id"] == who and r["category"] == category
        and dt.date.fromisoformat(r["order_date"]) == last
        and (r["quantity"] is None or r["quantity"] > 0)
        and (r["amount"] is None or r["amount"] >= 0)
    ))


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(conditions, min_size=1, max_size=3), lines,
       st.sampled_from([dt.date(2026, 11, 22), dt.date(2027, 2, 28), dt.date(2026, 3, 1)]))
def test_sql_and_interpreter_agree_on_bought(texts, rows, as_of):
    source = "".join(f"rule r{i}\n  when {text}\n  then tag t\n" for i, text in enumerate(texts))
    report = check_sources({"r.rules": source}, RANDOM_CONFIG)
    assert report.ok, (source, report.diagnostics)
    rules = report.ruleset.rules
    conditions = [r.condition for r in rules]
    categories = ir.categories_used(conditions)
    units = ir.units_categories_used(conditions)
    with tempfile.TemporaryDirectory() as folder:
        customers = write_csv(Path(folder) / "c.csv", [customer(i) for i in "abcde"])
        orders = write_csv(Path(folder) / "o.csv", rows, LINES)
        con = duckdb.connect()
        stats = load(con, RANDOM_CONFIG, Inputs(customers, orders), as_of)
        create_derived(
            con, RANDOM_CONFIG, as_of, True, False, stats.order_lines, categories, units
        )
    compiled = compile_conditions([r.condition for r in rules], as_of)
    columns = ", ".join(f"{sql} AS r{i}" for i, sql in enumerate(compiled.conditions))
    cursor = con.execute(f"SELECT *, {columns} FROM {with_layers(DERIVED, compiled.layers)}")
    names = [d[0] for d in cursor.description]
    for values in cursor.fetchall():
        row = dict(zip(names, values, strict=True))
        for category in categories:
            assert row[f'bought "{category}"'] == oracle(rows, row["customer_id"], category, as_of)
        for category in units:
            got = row[f'units bought "{category}"']
            assert got == units_oracle(rows, row["customer_id"], category, as_of)
        assert not {n for n in names if "bought" in n} - {
            *(f'bought "{c}"' for c in categories), *(f'units bought "{c}"' for c in units)
        }  # a column for each fact a rule names, and no other
        for i, rule in enumerate(rules):
            assert row[f"r{i}"] == evaluate(rule.condition, row, as_of), (texts[i], row)


# ---------------------------------------------------------------- checks and fmt


def check(source, config):
    return check_sources({"r.rules": source}, Config.model_validate(config)).diagnostics


CATALOGUE = {
    "orders": {"sku": "sku", "category": "category"},
    "products": {
        "category": {"diapers": {"days_per_unit": 3}},
        "sku": {"F": {"category": "formula"}},
    },
}


def test_an_unknown_category_is_a_warning_with_did_you_mean_when_the_catalogue_is_configured():
    (d,) = check('when bought "diaper" within 9 days then tag t\n', CATALOGUE)[1:]
    assert (d.code, d.hint) == ("RR210", 'did you mean `bought "diapers"`?')
    assert d.severity == "warning" and (d.span.column, d.span.end_column) == (6, 21)
    (d,) = check('when bought "Formula" within 9 days then tag t\n', CATALOGUE)[1:]
    assert d.hint == 'did you mean `bought "formula"`?'
    (d,) = check('when bought "toys" within 9 days then tag t\n', CATALOGUE)[1:]
    assert d.hint == 'categories named there: "diapers", "formula"'
    assert check('when bought "formula" within 9 days then tag t\n', CATALOGUE)[1:] == []


def test_without_a_configured_catalogue_any_category_is_accepted():
    config = {"orders": {"category": "category"}}
    assert [d.code for d in check('when bought "x" within 9 days then tag t\n', config)] == [
        "RR300"
    ]


def test_bought_without_a_category_column_is_never_true_and_says_so():
    (d,) = check('when bought "x" within 9 days then tag t\n', {})[1:]
    assert d.code == "RR210" and "never true" in d.message and "[orders]" in d.hint


def test_bought_alone_is_a_date_not_a_condition():
    (d,) = [d for d in check('when bought "x" then tag t\n', CATALOGUE) if d.code == "RR202"]
    assert 'bought "x" within 60 days' in d.hint


def test_bought_is_a_keyword_with_a_hint_to_quote_the_category():
    (d,) = check("when bought diapers within 9 days then tag t\n", CATALOGUE)
    assert d.code == "RR100" and "in quotes" in d.hint


@pytest.mark.parametrize(
    ("source", "canonical"),
    [
        (
            "when   bought 'dia\"pers'   within 60 days and not bought \"x\" before 3 days ago\n",
            'when bought "dia\\"pers" within 60 days and not bought "x" before 3 days ago',
        ),
        (
            "when units   bought\n    'for\"mula' >= 3 and (units bought \"x\" + 1) * 2 > 4\n",
            'when units bought "for\\"mula" >= 3 and (units bought "x" + 1) * 2 > 4',
        ),
    ],
    ids=["bought", "units bought"],
)
def test_fmt_prints_purchases_canonically_and_round_trips(source, canonical):
    formatted, diagnostics = format_source(source + "  then tag t\n")
    assert diagnostics == []
    assert formatted == canonical + " then tag t\n"
    assert format_source(formatted)[0] == formatted


# ---------------------------------------------------------------- plan, explain, rule tests

RULES = 'rule diapers\n  when bought "diapers" within 30 days\n  then tag refill\n'


def test_plan_and_explain_read_the_same_purchases(tmp_path):
    rules = write_rules(tmp_path / "rules", RULES, LINE_CONFIG)
    customers = write_csv(tmp_path / "c.csv", [customer("a"), customer("b")])
    orders = write_csv(
        tmp_path / "o.csv",
        [line("a", "2026-11-01", category="diapers"), line("b", "2026-09-01", sku="F")],
        LINES,
    )
    inputs = Inputs(customers, orders)
    result = run_plan(rules, inputs, AS_OF, config_path=rules / "retentionrules.toml")
    assert [c.matched for c in result.plan.counts] == [1]
    (a, b) = explain(rules, inputs, ["a", "b"], AS_OF, rules / "retentionrules.toml")
    assert a.fields['bought "diapers"'] == dt.date(2026, 11, 1) and a.rules[0].matched
    assert b.fields['bought "diapers"'] is None and not b.rules[0].matched


def test_a_plan_without_order_lines_notes_that_nobody_has_bought(tmp_path):
    rules = write_rules(tmp_path / "rules", RULES, LINE_CONFIG)
    customers = write_csv(tmp_path / "c.csv", [customer("a")])
    result = run_plan(rules, Inputs(customers), AS_OF, config_path=rules / "retentionrules.toml")
    assert any('`bought "diapers"`: no purchase' in note for note in result.plan.notes)


def _rule_tests_pass(tmp_path, rules_text: str, cases: str) -> None:
    """The cases, run as `retentionrules test` runs them, all pass (two of them)."""
    from retentionrules.api import check_paths

    rules = write_rules(tmp_path / "rules", rules_text, LINE_CONFIG)
    tests = rules / "r.test.toml"
    tests.write_text("as_of = 2026-11-22\n" + cases, encoding="utf-8")
    tested = run_tests(check_paths([rules], rules / "retentionrules.toml"), [tests])
    assert tested.problems == [] and tested.run is not None, tested
    assert tested.run.failed == 0 and len(tested.run.results) == 2, tested


def test_a_rule_test_gives_bought_as_a_derived_field(tmp_path):
    _rule_tests_pass(
        tmp_path,
        RULES,
        '[[case]]\nname = "recent"\nderived = { \'bought "diapers"\' = 2026-11-01 }\n'
        'expect = [{ rule = "diapers" }]\n'
        '[[case]]\nname = "never"\nexpect = []\n',
    )


# ---------------------------------------------------------------- units bought


def test_units_bought_unknown_category_is_a_warning_with_did_you_mean():
    (d,) = check('when units bought "formla" >= 3 then tag t\n', CATALOGUE)[1:]
    assert (d.code, d.hint) == ("RR210", 'did you mean `units bought "formula"`?')
    assert d.severity == "warning" and (d.span.column, d.span.end_column) == (6, 27)
    (d,) = check('when units bought "x" >= 3 then tag t\n', {})[1:]
    assert d.code == "RR210" and "always missing" in d.message and "[orders]" in d.hint
    assert check('when units bought "formula" >= 3 then tag t\n', CATALOGUE)[1:] == []


def test_units_bought_alone_is_a_number_not_a_condition():
    (d,) = [d for d in check('when units bought "x" then tag t\n', CATALOGUE) if d.code == "RR202"]
    assert 'units bought "x" >= 3' in d.hint
    (d,) = [
        d for d in check('when units bought "x" within 3 days then tag t\n', CATALOGUE)
        if d.code == "RR202"
    ]


def test_units_is_a_keyword_only_before_bought():
    fields = {**Config().model_dump()["customers"]["fields"], "units": "number"}
    config = {"orders": {"category": "category"}, "customers": {"fields": fields}}
    source = (
        "rule units\n  when units >= 2 and units bought \"formula\" >= units\n  then tag units\n"
    )
    assert [d.code for d in check(source, config)] == []
    (d,) = check("when units bought formula >= 3 then tag t\n", CATALOGUE)
    assert d.code == "RR100" and "in quotes" in d.hint and "units bought" in d.hint


def test_the_two_facts_of_a_category_contradict_themselves_alone():
    source = 'when units bought "formula" >= 3 and units bought "formula" < 2 then tag t\n'
    assert "RR301" in [d.code for d in check(source, CATALOGUE)]
    source = 'when units bought "formula" >= 3 and units bought "diapers" < 2 then tag t\n'
    assert "RR301" not in [d.code for d in check(source, CATALOGUE)]




UNITS_RULES = (
    'rule formula_stock\n  when bought "formula" within 30 days and units bought "formula" >= 3\n'
    "  then tag stocked\n"
)


def test_plan_and_explain_read_the_same_units(tmp_path):
    rules = write_rules(tmp_path / "rules", UNITS_RULES, LINE_CONFIG)
    customers = write_csv(tmp_path / "c.csv", [customer("a"), customer("b")])
    orders = write_csv(
        tmp_path / "o.csv",
        [line("a", "2026-11-01", sku="F", quantity=2), line("a", "2026-11-01", sku="F"),
         line("b", "2026-10-01", sku="F", quantity=5), line("b", "2026-11-10", sku="F")],
        LINES,
    )
    inputs = Inputs(customers, orders)
    result = run_plan(rules, inputs, AS_OF, config_path=rules / "retentionrules.toml")
    assert [c.matched for c in result.plan.counts] == [1]
    (a, b) = explain(rules, inputs, ["a", "b"], AS_OF, rules / "retentionrules.toml")
    assert a.fields['units bought "formula"'] == 3 and a.rules[0].matched
    assert b.fields['units bought "formula"'] == 1 and not b.rules[0].matched


def test_a_plan_without_order_lines_notes_that_no_units_were_bought(tmp_path):
    rules = write_rules(tmp_path / "rules", UNITS_RULES, LINE_CONFIG)
    customers = write_csv(tmp_path / "c.csv", [customer("a")])
    result = run_plan(rules, Inputs(customers), AS_OF, config_path=rules / "retentionrules.toml")
    assert any(
        '`bought "formula"`, `units bought "formula"`: no purchase' in note
        for note in result.plan.notes
    )


def test_a_rule_test_gives_units_bought_as_a_derived_field(tmp_path):
    _rule_tests_pass(
        tmp_path,
        UNITS_RULES,
        '[[case]]\nname = "stocked"\n'
        'derived = { \'bought "formula"\' = 2026-11-01, \'units bought "formula"\' = 3 }\n'
        'expect = [{ rule = "formula_stock" }]\n'
        '[[case]]\nname = "one can"\n'
        'derived = { \'bought "formula"\' = 2026-11-01, \'units bought "formula"\' = 1 }\n'
        'expect = []\n',
    )
