"""Bad data: a message naming file, row and column, and nothing written; or, with --rejects,
the bad rows set aside with their reason and counted. Nothing is dropped silently."""

import csv
import datetime as dt
import json
import random
import re
import zoneinfo

import pytest

from retentionrules.config import STANDARD_FIELDS, Config
from retentionrules.engine import run_plan
from retentionrules.errors import DataError
from retentionrules.loader import Inputs, connect, load, rejects_sql

from .conftest import COLUMNS, customer, write_csv, write_rules

RULES = "rule winback\n  when stage = sleeping\n  then send winback_coupon via email\n"


@pytest.fixture
def shop(tmp_path):
    rules = write_rules(tmp_path / "rules", RULES)
    good = [
        customer(f"C{i}", last_order_date="2026-04-01", total_orders=2, orders_12m=1, spend_12m=100)
        for i in range(1, 5)
    ]
    return tmp_path, rules, good


def plan(run_cli, tmp_path, rules, customers, *extra):
    out = tmp_path / "plan.jsonl"
    result = run_cli(
        "plan",
        "--rules",
        rules,
        "--customers",
        customers,
        "--as-of",
        "2026-11-22",
        "--out",
        out,
        *extra,
    )
    return result, out


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "last_order_date",
            "2026-13-01",
            "row 3: column last_order_date: `2026-13-01` is not a date",
        ),
        ("spend_12m", "lots", "row 3: column spend_12m: `lots` is not a number"),
        ("spend_12m", "-5", "row 3: column spend_12m: `-5` is negative"),
        ("sms_opt_in", "maybe", "row 3: column sms_opt_in: `maybe` is not true or false"),
        ("customer_id", "", "row 3: column customer_id: empty"),
    ],
)
def test_bad_value_stops_the_run_naming_row_and_column(run_cli, shop, field, value, message):
    tmp_path, rules, rows = shop
    rows[2][field] = value
    customers = write_csv(tmp_path / "customers.csv", rows)
    result, _ = plan(run_cli, tmp_path, rules, customers)
    assert result.exit_code == 1
    assert f"{customers}: {message}" in result.output
    assert "nothing was written" in result.output and "Traceback" not in result.output
    assert list(tmp_path.glob("plan*")) == []


def test_duplicate_ids_name_every_row_of_the_id(run_cli, shop):
    tmp_path, rules, rows = shop
    rows[3]["customer_id"] = "C2"
    customers = write_csv(tmp_path / "customers.csv", rows)
    result, out = plan(run_cli, tmp_path, rules, customers)
    assert result.exit_code == 1
    assert (
        "row 2: column customer_id: the id `C2` is on 2 rows (2, 4): which is right cannot be told"
    ) in result.output
    assert not out.exists()


def test_a_repeated_id_is_never_planned_whichever_row_withdraws_consent(run_cli, shop):
    """With --rejects, keeping the first row of a repeated id let a later row that withdrew
    consent be ignored: every row of the id is set aside."""
    tmp_path, rules, rows = shop
    rows[3].update(customer_id="C1", email_opt_in="false")  # C1 again, now without consent
    customers = write_csv(tmp_path / "customers.csv", rows)
    result, out = plan(run_cli, tmp_path, rules, customers, "--rejects", tmp_path / "r.csv")
    assert result.exit_code == 0, result.output
    planned = [json.loads(line)["customer_id"] for line in out.read_text().splitlines()]
    assert planned == ["C2", "C3"]


def _typed(row: dict) -> dict:
    """A CSV row of the shop as a JSON object with real numbers and booleans."""
    numbers, flags = ("orders_12m", "spend_12m", "total_orders"), ("sms_opt_in", "email_opt_in")
    typed = {k: v or None for k, v in row.items()}
    typed.update({k: float(row[k]) for k in numbers if row[k]})
    typed.update({k: row[k] == "true" for k in flags if row[k]})
    return typed


@pytest.mark.parametrize("form", ["ragged csv", "jsonl line that is not json"])
def test_a_broken_row_of_a_customer_sets_aside_every_row_of_that_customer(run_cli, shop, form):
    """A row too broken to convert still says whose it is: it may be the row that withdrew
    consent, so the customer's other row must not be planned on its own."""
    tmp_path, rules, rows = shop
    rows[3].update(customer_id="C1", email_opt_in="false")  # C1 again, now without consent
    if form == "ragged csv":
        customers = write_csv(tmp_path / "customers.csv", rows)
        lines = customers.read_text(encoding="utf-8").splitlines()
        lines[4] += ",one cell too many"
        customers.write_text("\n".join(lines) + "\n", encoding="utf-8")
    else:
        customers = tmp_path / "customers.jsonl"
        lines = [json.dumps(_typed(row)) for row in rows]
        lines[3] = lines[3][:-1]  # the closing brace lost
        customers.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result, out = plan(run_cli, tmp_path, rules, customers, "--rejects", tmp_path / "r.csv")
    assert result.exit_code == 0, result.output
    planned = [json.loads(line)["customer_id"] for line in out.read_text().splitlines()]
    assert planned == ["C2", "C3"]
    reasons = (tmp_path / "r.csv").read_text(encoding="utf-8-sig")
    assert "the id `C1` is also on row 4, which could not be read" in reasons


def test_a_broken_customer_row_without_a_readable_id_is_noted(run_cli, shop):
    tmp_path, rules, rows = shop
    customers = tmp_path / "customers.jsonl"
    lines = [json.dumps({k: v or None for k, v in row.items()}) for row in rows]
    lines.append("{not json at all")
    customers.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result, _ = plan(run_cli, tmp_path, rules, customers, "--rejects", tmp_path / "r.csv")
    assert result.exit_code == 0, result.output
    assert "1 customer row set aside could not be read far enough" in result.output


def test_missing_required_column(run_cli, shop):
    """The rule sends e-mail: the e-mail consent column is needed."""
    tmp_path, rules, rows = shop
    customers = write_csv(
        tmp_path / "customers.csv", rows, [c for c in COLUMNS if c != "email_opt_in"]
    )
    result, out = plan(run_cli, tmp_path, rules, customers)
    assert result.exit_code == 1 and f"{customers}: missing column email_opt_in" in result.output
    assert not out.exists()


def test_declared_columns_no_rule_needs_may_be_absent(run_cli, shop):
    """SMS consent, city, household, birthday: declared, but nothing of this plan reads them."""
    tmp_path, rules, rows = shop
    unread = {"sms_opt_in", "city", "household_id", "birthday", "category", "last_contacted"}
    customers = write_csv(tmp_path / "customers.csv", rows, [c for c in COLUMNS if c not in unread])
    result, out = plan(run_cli, tmp_path, rules, customers)
    assert result.exit_code == 0, result.output
    assert out.read_text().count('"rule":"winback"') == 4


def test_an_orders_only_shop_needs_no_invented_columns(run_cli, tmp_path):
    rules = write_rules(tmp_path / "rules", RULES + "  once per household\n")
    customers = tmp_path / "customers.csv"
    customers.write_text("customer_id,email_opt_in,household_id\nC1,true,H1\nC2,true,H2\n")
    orders = tmp_path / "orders.csv"
    orders.write_text("customer_id,order_date,amount\nC1,2026-04-01,100\nC2,2025-01-01,50\n")
    result, out = plan(run_cli, tmp_path, rules, customers, "--orders", orders)
    assert result.exit_code == 0, result.output
    assert [line.split('"customer_id":"')[1][:2] for line in out.read_text().splitlines()] == ["C1"]
    without = tmp_path / "no_household.csv"
    without.write_text("customer_id,email_opt_in\nC1,true\n")
    result, _ = plan(run_cli, tmp_path, rules, without, "--orders", orders)
    assert result.exit_code == 1 and "missing column household_id" in result.output


def test_a_column_name_spelled_differently_is_pointed_out(tmp_path):
    columns = [" SMS_opt_in" if c == "sms_opt_in" else c for c in COLUMNS]
    path = write_csv(tmp_path / "c.csv", [{**customer("C1"), " SMS_opt_in": "true"}], columns)
    assert bad_data(path).endswith(
        "missing column sms_opt_in (the header has ` SMS_opt_in`: names must match exactly)"
    )


def test_missing_file_and_non_utf8_file(run_cli, shop):
    tmp_path, rules, _ = shop
    result, out = plan(run_cli, tmp_path, rules, tmp_path / "nope.csv")
    assert result.exit_code == 1 and "nope.csv: no such file" in result.output
    latin = tmp_path / "latin.csv"
    latin.write_bytes(",".join(COLUMNS).encode() + b"\nC1,H1,M\xfcnchen,x,,,,0,0,0,true,true,\n")
    result, out = plan(run_cli, tmp_path, rules, latin)
    assert result.exit_code == 1
    assert "latin.csv: not UTF-8: line 2 (byte 161) has `\\xfc`" in result.output
    assert "Traceback" not in result.output and not out.exists()


def test_rejects_sets_bad_rows_aside_and_counts_them(run_cli, shop):
    tmp_path, rules, rows = shop
    rows[1]["spend_12m"] = "lots"
    rows[3]["customer_id"] = "C1"
    customers = write_csv(tmp_path / "customers.csv", rows)
    rejects = tmp_path / "rejects.csv"
    result, out = plan(
        run_cli, tmp_path, rules, customers, "--rejects", rejects, "--format", "json"
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["rejected"] == {str(customers): 3}
    assert summary["customers"] == 1
    with rejects.open(encoding="utf-8-sig") as handle:
        rejected = list(csv.DictReader(handle))
    repeated = "column customer_id: the id `C1` is on 2 rows (1, 4): which is right cannot be told"
    assert [(r["row"], r["reason"]) for r in rejected] == [
        ("1", repeated),
        ("2", "column spend_12m: `lots` is not a number"),
        ("4", repeated),
    ]
    record = json.loads(rejected[1]["record"])  # the row as the file has it, nothing added
    assert list(record) == COLUMNS and (record["customer_id"], record["spend_12m"]) == (
        "C2",
        "lots",
    )
    planned = [json.loads(line)["customer_id"] for line in out.read_text().splitlines()]
    assert planned == ["C3"]


def test_unknown_output_type_is_a_usage_error_before_any_work(run_cli, shop):
    tmp_path, rules, rows = shop
    customers = write_csv(tmp_path / "customers.csv", rows)
    result = run_cli(
        "plan", "--rules", rules, "--customers", customers, "--out", tmp_path / "p.xlsx"
    )
    assert result.exit_code == 2 and "unknown output type" in result.output


def test_rule_errors_stop_the_plan(run_cli, shop):
    tmp_path, rules, rows = shop
    (rules / "r.rules").write_text("rule r\n  when stge = sleeping\n  then send x\n")
    customers = write_csv(tmp_path / "customers.csv", rows)
    result, out = plan(run_cli, tmp_path, rules, customers)
    assert result.exit_code == 1 and "RR200" in result.output and not out.exists()


def test_jsonl_and_parquet_exports_plan_like_csv(run_cli, shop):
    tmp_path, rules, rows = shop
    rows[0]["birthday"] = "1990-02-28"
    customers = write_csv(tmp_path / "customers.csv", rows)
    plans = {}
    for suffix, options in (("jsonl", "FORMAT JSON"), ("parquet", "FORMAT PARQUET")):
        converted = convert(customers, tmp_path / f"customers.{suffix}", options)
        result, out = plan(run_cli, tmp_path, rules, converted)
        assert result.exit_code == 0, result.output
        plans[suffix] = actions(out)
    result, out = plan(run_cli, tmp_path, rules, customers)
    assert plans["jsonl"] == plans["parquet"] == actions(out) != []


def convert(customers, target, options):
    """The same export in another format, as DuckDB writes it."""
    import duckdb

    duckdb.connect().execute(
        f"COPY (SELECT * FROM read_csv('{customers}', header = true)) TO '{target}' ({options})"
    )
    return target


def actions(path):
    """The plan's rows without the plan id, which names the input file's digest."""
    return [
        {k: v for k, v in json.loads(line).items() if k != "plan_id"}
        for line in path.read_text().splitlines()
    ]


def test_bad_rows_in_parquet_are_found_by_row(run_cli, shop):
    tmp_path, rules, rows = shop
    rows[1]["spend_12m"] = "-3"
    customers = write_csv(tmp_path / "customers.csv", rows)
    converted = convert(customers, tmp_path / "customers.parquet", "FORMAT PARQUET")
    result, out = plan(run_cli, tmp_path, rules, converted)
    assert result.exit_code == 1
    assert f"{converted}: row 2: column spend_12m: `-3` is negative" in result.output
    assert not out.exists()


# ---------------------------------------------------------------- helpers: real files, real DuckDB

AS_OF = dt.date(2026, 11, 22)
WINBACK = dict(last_order_date="2026-04-01", total_orders=2, orders_12m=1, spend_12m=100)


def load_file(path, config=None, as_of=AS_OF, rejects=None, needed=None, **histories):
    con = connect()
    stats = load(con, config or Config(), Inputs(path, **histories), as_of, rejects, needed)
    return con, stats


def table(con, name="customers"):
    cursor = con.execute(f"SELECT * FROM {name}")
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def bad_data(path, **options) -> str:
    with pytest.raises(DataError) as error:
        load_file(path, **options)
    return str(error.value)


def reasons(path, **options):
    """Load with a rejects file: the reason each bad row was set aside, by row."""
    con, _ = load_file(path, rejects=path.with_name("rejects.csv"), **options)
    return dict(con.execute(f"SELECT row, reason FROM ({rejects_sql(con)})").fetchall())


def json_customer(customer_id, **fields):
    """A customer of the standard export as JSON lines write it: typed values, null when
    missing."""
    row = {
        **dict.fromkeys(COLUMNS),
        "customer_id": customer_id,
        "orders_12m": 1,
        "spend_12m": 100,
        "total_orders": 2,
        "last_order_date": "2026-04-01",
        "sms_opt_in": True,
        "email_opt_in": True,
    }
    row.update(fields)
    return row


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def write_parquet(path, select):
    """A Parquet file as DuckDB writes it, from a SELECT naming the columns and their types."""
    import duckdb

    duckdb.connect().execute(f"COPY ({select}) TO '{path}' (FORMAT PARQUET)")
    return path


def parquet_customers(path, **columns):
    """The standard export as Parquet: typed columns, overridable by SQL expressions."""
    types = {
        "customer_id": "'C1'",
        "household_id": "NULL::VARCHAR",
        "city": "NULL::VARCHAR",
        "category": "NULL::VARCHAR",
        "birthday": "NULL::DATE",
        "first_order_date": "NULL::DATE",
        "last_order_date": "DATE '2026-04-01'",
        "orders_12m": "1",
        "spend_12m": "100.0",
        "total_orders": "2",
        "sms_opt_in": "TRUE",
        "email_opt_in": "TRUE",
        "last_contacted": "NULL::DATE",
    }
    types.update(columns)
    return write_parquet(path, "SELECT " + ", ".join(f"{v} AS {k}" for k, v in types.items()))


SMS_RULES = "rule winback\n  when stage = sleeping\n  then send winback_coupon via sms\n"


def planned(tmp_path, customers, rules=SMS_RULES, config="", **options):
    """Customer ids planned, and (customer, reason) removed, by a real plan."""
    folder = write_rules(tmp_path / "rules", rules, config)
    out, suppressed = tmp_path / "plan.jsonl", tmp_path / "suppressed.csv"
    contacts = options.pop("contacts", None)
    orders = options.pop("orders", None)
    run_plan([folder], Inputs(customers, orders, contacts), AS_OF, out=out, suppressed=suppressed)
    ids = [json.loads(line)["customer_id"] for line in out.read_text().splitlines()]
    with suppressed.open(encoding="utf-8-sig") as handle:
        removed = {(r["customer_id"], r["reason"]) for r in csv.DictReader(handle)}
    return ids, removed


# ---------------------------------------------------------------- consent by type


def test_jsonl_consent_is_only_a_json_true(tmp_path):
    values = [2, -1, 5, "true", 1.0, 1, "yes", "", [True], {"v": True}]
    rows = [
        json_customer("C0"),
        *(json_customer(f"C{i}", sms_opt_in=v) for i, v in enumerate(values, 1)),
    ]
    found = reasons(write_jsonl(tmp_path / "c.jsonl", rows))
    shown = ["2", "-1", "5", '"true"', "1.0", "1", '"yes"', '""', "[true]", '{"v":true}']
    assert found == {
        i + 2: f"column sms_opt_in: `{text}` is not true or false (a JSON boolean)"
        for i, text in enumerate(shown)
    }


def test_jsonl_true_consents_false_null_and_absent_do_not(tmp_path):
    rows = [
        json_customer("C1", sms_opt_in=True),
        json_customer("C2", sms_opt_in=False),
        json_customer("C3", sms_opt_in=None),
        {k: v for k, v in json_customer("C4").items() if k != "sms_opt_in"},
    ]
    ids, removed = planned(tmp_path, write_jsonl(tmp_path / "c.jsonl", rows))
    assert ids == ["C1"]
    assert removed == {("C2", "consent"), ("C3", "consent"), ("C4", "consent")}


def test_a_wrongly_typed_json_value_after_the_sampled_rows_is_still_found(tmp_path):
    """DuckDB detects JSON types from a sample of the file and then converts what it did not
    sample (a 2 became consent, 1.5 an integer): every value is checked, not a sample."""
    rows = [json_customer(f"C{i}") for i in range(30_000)]
    rows.append(json_customer("late", sms_opt_in=2))
    message = bad_data(write_jsonl(tmp_path / "c.jsonl", rows))
    assert "row 30001: column sms_opt_in: `2` is not true or false" in message


def test_csv_booleans_take_exactly_the_documented_spellings(tmp_path):
    spellings = {
        "true": True,
        "TRUE": True,
        " Yes ": True,
        "1": True,
        "\tno": False,
        "False": False,
        "0": False,
        "NO": False,
        "\u3000yes\u00a0": True,
        "": None,
        "   ": None,
    }
    path = write_csv(
        tmp_path / "c.csv", [customer(f"C{i}", sms_opt_in=c) for i, c in enumerate(spellings)]
    )
    con, _ = load_file(path)
    assert [r["sms_opt_in"] for r in table(con)] == list(spellings.values())
    wrong = ["t", "y", "n", "2", "on", "-1", "1.0", "yes!", "是", "tru e"]
    path = write_csv(
        tmp_path / "d.csv", [customer(f"C{i}", sms_opt_in=c) for i, c in enumerate(wrong)]
    )
    assert reasons(path) == {
        i: f"column sms_opt_in: `{cell}` is not true or false (write true/false, yes/no or 1/0)"
        for i, cell in enumerate(wrong, 1)
    }


def test_parquet_consent_must_be_a_boolean_column(tmp_path):
    path = parquet_customers(tmp_path / "c.parquet", sms_opt_in="2")
    message = bad_data(path)
    assert "row 1: column sms_opt_in: `2` is not true or false: the column's type is INTEGER" in (
        message
    )


# ---------------------------------------------------------------- ids and channels


def test_jsonl_ids_are_text_whatever_json_type_they_have(tmp_path):
    rows = [
        json_customer("C1"),
        json_customer(3),
        json_customer(" C5 "),
        json_customer(7.0),
        json_customer(-12),
    ]
    con, _ = load_file(write_jsonl(tmp_path / "c.jsonl", rows))
    assert [r["customer_id"] for r in table(con)] == ["C1", "3", "C5", "7", "-12"]


def test_ids_that_are_not_text_or_exact_whole_numbers_are_bad_data(tmp_path):
    values = [1.5, True, {"id": 1}, [1], 1e20]
    path = write_jsonl(tmp_path / "c.jsonl", [json_customer(v) for v in values])
    shown = ["1.5", "true", '{"id":1}', "[1]", "100000000000000000000.0"]
    assert reasons(path) == {
        i: f"column customer_id: `{text}` is not text (a JSON string or a whole number)"
        for i, text in enumerate(shown, 1)
    }


def test_mixed_json_ids_keep_their_contact_history(tmp_path):
    """Issue 8: a JSONL export mixing "C1" and 3 turned C1 into `"C1"`, its contacts were no
    longer found, and the quiet period was skipped."""
    customers = write_jsonl(tmp_path / "c.jsonl", [json_customer("C1"), json_customer(3)])
    contacts = tmp_path / "contacts.csv"
    contacts.write_text(
        "customer_id,channel,rule,sent_at\nC1,sms,other,2026-11-21\n3,sms,x,2026-11-20\n"
    )
    config = '[contacts]\nquiet_period = "3 days"\n'
    ids, removed = planned(tmp_path, customers, config=config, contacts=contacts)
    assert ids == [] and removed == {("C1", "quiet_period"), ("3", "quiet_period")}


def test_ids_channels_and_rules_match_however_they_are_spelled(tmp_path):
    rules = SMS_RULES + "  cap 1 per 30 days\n"
    config = (
        '[channels.sms]\nconsent = "sms_opt_in"\ncap = { count = 1, per = "7 days" }\n'
        '[channels.email]\nconsent = "email_opt_in"\n'
    )
    customers = write_csv(tmp_path / "c.csv", [customer(f"C{i}", **WINBACK) for i in (1, 2, 3)])
    contacts = tmp_path / "contacts.csv"
    contacts.write_text(
        "customer_id,channel,rule,sent_at\n"
        '" C1 ", SMS ,other,2026-11-20\n'  # the sms channel's cap
        '"C2\t",Email," winback ",2026-11-01\n'  # the rule's cap, on another channel
        "C3,\u3000sms\u3000,other,2026-11-01\n"  # sms, but outside the channel's 7 days
    )
    ids, removed = planned(tmp_path, customers, rules, config, contacts=contacts)
    assert ids == ["C3"] and removed == {("C1", "channel_cap"), ("C2", "rule_cap")}


def test_configured_channel_names_match_the_history_in_any_case(tmp_path):
    customers = write_csv(tmp_path / "c.csv", [customer("C1", **WINBACK)])
    contacts = tmp_path / "contacts.csv"
    for configured, written in (("SMS", "sms"), ("sms", "SMS"), ("sms", "Sms")):
        rules = (
            f"rule winback\n  when stage = sleeping\n  then send winback_coupon via {configured}\n"
        )
        cap = '{ count = 1, per = "7 days" }'
        config = f'[channels.{configured}]\nconsent = "sms_opt_in"\ncap = {cap}\n'
        contacts.write_text(f"customer_id,channel,rule,sent_at\nC1,{written},other,2026-11-21\n")
        ids, removed = planned(tmp_path, customers, rules, config, contacts=contacts)
        assert ids == [] and removed == {("C1", "channel_cap")}, (configured, written)


def test_duplicates_are_found_on_the_normalised_id(tmp_path):
    path = write_csv(tmp_path / "c.csv", [customer("C1"), customer("C2"), customer(" C1\t")])
    assert "row 1: column customer_id: the id `C1` is on 2 rows (1, 3)" in bad_data(path)


def test_an_id_of_blanks_only_is_empty(tmp_path):
    path = write_csv(tmp_path / "c.csv", [customer("C1"), customer(" \u3000 ")])
    assert "row 2: column customer_id: empty" in bad_data(path)


# ---------------------------------------------------------------- numbers and dates


def test_nan_infinities_and_misspelled_numbers_are_bad_data(tmp_path):
    """Issue 8: `spend_12m = nan` made a customer a top spender in SQL and not in the
    reference evaluator."""
    wrong = {
        "nan": "is not a finite number",
        "NaN": "is not a finite number",
        "inf": "is not a finite number",
        "-Infinity": "is not a finite number",
        "1e999": "is not a finite number",
        "1_000": "is not a number",
        "+-5": "is not a number",
        "1,5": "is not a number",
        "0x10": "is not a number",
        "12abc": "is not a number",
        "١٢": "is not a number",
        "1e": "is not a number",
        "1e15": "is out of range (numbers lie between -10^15 and 10^15)",
        "2e300": "is out of range (numbers lie between -10^15 and 10^15)",
    }
    path = write_csv(
        tmp_path / "c.csv", [customer(f"C{i}", spend_12m=c) for i, c in enumerate(wrong)]
    )
    assert reasons(path) == {
        i: f"column spend_12m: `{cell}` {message}"
        for i, (cell, message) in enumerate(wrong.items(), 1)
    }
    path = write_csv(tmp_path / "d.csv", [customer("C1"), customer("C2", spend_12m="nan")])
    assert f"{path}: row 2: column spend_12m: `nan` is not a finite number" in bad_data(path)


def test_numbers_take_the_documented_spelling(tmp_path):
    spellings = {
        "12": 12,
        " 12 ": 12,
        "+1.5": 1.5,
        "-0": 0,
        ".5": 0.5,
        "5.": 5,
        "1e3": 1000,
        "1E-2": 0.01,
        "\u300012\u00a0": 12,
        "": None,
        " ": None,
    }
    path = write_csv(
        tmp_path / "c.csv", [customer(f"C{i}", orders_12m=c) for i, c in enumerate(spellings)]
    )
    con, _ = load_file(path)
    assert [r["orders_12m"] for r in table(con)] == list(spellings.values())


def test_special_misspelled_and_out_of_range_dates_are_bad_data(tmp_path):
    outside = "is outside the dates this engine takes (1900-01-01 to 2199-12-31)"
    wrong = {
        "epoch": "is not a date",
        "infinity": "is not a date",
        "-infinity": "is not a date",
        "2026-1-5": "is not a date",
        "2026/01/05": "is not a date",
        "20260105": "is not a date",
        "2026-02-30": "is not a date",
        "2026-11-18T25:00": "is not a date",
        "2026-11-18 20:00 +08:00": "is not a date",
        "2026-11-18T20:00:00z": "is not a date",
        "1899-12-31": outside,
        "2200-01-01": outside,
        "1900-01-01T00:00:00+09:00": outside,  # the 31st of December 1899 in Shanghai
    }
    path = write_csv(
        tmp_path / "c.csv", [customer(f"C{i}", birthday=c) for i, c in enumerate(wrong)]
    )
    spelled = "(YYYY-MM-DD, optionally with a time of day and a UTC offset)"
    assert reasons(path) == {
        i: f"column birthday: `{cell}` {message}" + (f" {spelled}" if message != outside else "")
        for i, (cell, message) in enumerate(wrong.items(), 1)
    }


def test_a_year_past_9999_is_bad_data_not_a_crash(tmp_path):
    """DuckDB reads `12026-11-18` as a date Python cannot hold; alone in a file it used to
    reach Python and end in an internal error."""
    path = write_csv(tmp_path / "c.csv", [customer("C1", birthday="12026-11-18")])
    assert "row 1: column birthday: `12026-11-18` is not a date" in bad_data(path)
    path = parquet_customers(tmp_path / "c.parquet", birthday="DATE '12026-11-18'")
    assert "row 1: column birthday: `12026-11-18` is outside the dates" in bad_data(path)


def test_dates_and_timestamps_take_the_shop_time_zone(tmp_path):
    days = {
        "2026-01-05": dt.date(2026, 1, 5),
        " 2026-01-05\t": dt.date(2026, 1, 5),
        "2026-01-05T23:59": dt.date(2026, 1, 5),  # no offset: shop-local, as written
        "2026-01-05 23:59:59.999999999": dt.date(2026, 1, 5),
        "2026-01-05T16:00:00Z": dt.date(2026, 1, 6),  # midnight in Shanghai
        "2026-01-05T15:59:59Z": dt.date(2026, 1, 5),
        "2026-01-05T23:30:00-01:00": dt.date(2026, 1, 6),
        "2026-01-06 07:59+08:00": dt.date(2026, 1, 6),
        "2026-01-06T00:30:00+0930": dt.date(2026, 1, 5),
        "2026-01-05T20:00-05": dt.date(2026, 1, 6),
        "1900-01-01": dt.date(1900, 1, 1),
    }
    rows = [customer(f"C{i}", last_contacted=c) for i, c in enumerate(days)]
    con, _ = load_file(write_csv(tmp_path / "c.csv", rows))
    assert [r["last_contacted"] for r in table(con)] == list(days.values())
    config = Config(timezone="America/New_York")
    con, _ = load_file(write_csv(tmp_path / "d.csv", rows), config=config)
    assert [r["last_contacted"] for r in table(con)][4:7] == [
        dt.date(2026, 1, 5),  # 11:00 in New York
        dt.date(2026, 1, 5),
        dt.date(2026, 1, 5),  # 19:30
    ]


def test_jsonl_numbers_and_dates_must_have_their_json_types(tmp_path):
    path = tmp_path / "c.jsonl"
    lines = [
        json.dumps(json_customer("C1", spend_12m="12")),
        '{"customer_id": "C2", "spend_12m": NaN}',
        '{"customer_id": "C3", "spend_12m": -Infinity}',
        json.dumps(json_customer("C4", last_order_date=20260401)),
        json.dumps(json_customer("C5", last_order_date="")),  # an empty string: missing
        json.dumps(json_customer("C6", spend_12m=12.5, last_order_date="2026-04-01T20:00Z")),
    ]
    path.write_text("\n".join(lines) + "\n")
    rejects = tmp_path / "rejects.csv"
    con, _ = load_file(path, rejects=rejects)
    reasons = {
        r[0]: r[1] for r in con.execute(f"SELECT row, reason FROM ({rejects_sql(con)})").fetchall()
    }
    assert reasons == {
        1: 'column spend_12m: `"12"` is not a number (a JSON number)',
        2: "column spend_12m: `NaN` is not a finite number",
        3: "column spend_12m: `-Infinity` is not a finite number",
        4: "column last_order_date: `20260401` is not a date (a JSON string YYYY-MM-DD, "
        "optionally with a time of day and a UTC offset)",
    }
    assert [(r["customer_id"], r["last_order_date"], r["spend_12m"]) for r in table(con)] == [
        ("C5", None, 100),
        ("C6", dt.date(2026, 4, 2), 12.5),
    ]


def test_parquet_values_are_judged_by_their_column_types(tmp_path):
    path = parquet_customers(
        tmp_path / "c.parquet",
        customer_id="12345::BIGINT",
        spend_12m="'nan'::DOUBLE",
        last_order_date="TIMESTAMPTZ '2026-04-01 20:00:00+00'",
        last_contacted="TIMESTAMP '2026-11-18 23:00:00'",
    )
    assert "row 1: column spend_12m: `nan` is not a finite number" in bad_data(path)
    path = parquet_customers(
        tmp_path / "d.parquet",
        customer_id="12345::BIGINT",
        last_order_date="TIMESTAMPTZ '2026-04-01 20:00:00+00'",
        last_contacted="TIMESTAMP '2026-11-18 23:00:00'",
    )
    (row,) = table(load_file(path)[0])
    assert (row["customer_id"], row["last_order_date"], row["last_contacted"]) == (
        "12345",
        dt.date(2026, 4, 2),  # an instant: 04:00 on the 2nd in Shanghai
        dt.date(2026, 11, 18),  # no zone: shop-local
    )
    path = parquet_customers(tmp_path / "e.parquet", orders_12m="'3'", sms_opt_in="'true'")
    assert (
        "row 1: column orders_12m: `3` is not a number: the column's type is VARCHAR; "
        "column sms_opt_in: `true` is not true or false: the column's type is VARCHAR"
    ) in bad_data(path)


def test_activity_dates_after_the_as_of_date_are_bad_data_naming_it(tmp_path):
    path = write_csv(
        tmp_path / "c.csv", [customer("C1"), customer("C2", last_order_date="2026-11-23")]
    )
    assert "row 2: column last_order_date: `2026-11-23` is after the as-of date 2026-11-22" in (
        bad_data(path)
    )
    path = write_csv(tmp_path / "d.csv", [customer("C1", last_contacted="2026-11-22T16:00:00Z")])
    assert "is after the as-of date 2026-11-22" in bad_data(path)  # the 23rd in Shanghai


# ---------------------------------------------------------------- optional columns


def test_a_declared_field_that_is_not_needed_may_be_absent(tmp_path):
    columns = [c for c in COLUMNS if c not in ("city", "birthday", "household_id")]
    path = write_csv(tmp_path / "c.csv", [customer("C1")], columns)
    assert "missing columns household_id, city, birthday" in bad_data(path)
    needed = set(COLUMNS) - {"city", "birthday", "household_id"}
    con, _ = load_file(path, needed=needed)
    (row,) = table(con)
    assert (row["city"], row["birthday"], row["household_id"]) == (None, None, None)


def test_a_needed_field_must_be_present(tmp_path):
    columns = [c for c in COLUMNS if c != "city"]
    path = write_csv(tmp_path / "c.csv", [customer("C1")], columns)
    assert f"{path}: missing column city" in bad_data(path, needed={"city"})
    jsonl = write_jsonl(tmp_path / "c.jsonl", [{"customer_id": "C1"}])
    assert "missing column city (no object has the key)" in bad_data(jsonl, needed={"city"})
    jsonl = write_jsonl(
        tmp_path / "d.jsonl", [{"customer_id": "C1"}, {"customer_id": "C2", "city": None}]
    )
    assert [r["city"] for r in table(load_file(jsonl, needed={"city"})[0])] == [None, None]


def test_the_id_is_always_needed(tmp_path):
    path = write_csv(tmp_path / "c.csv", [customer("C1")], ["city"])
    assert f"{path}: missing column customer_id" in bad_data(path, needed=())


# ---------------------------------------------------------------- hostile files

HEADER = ",".join(COLUMNS)
GOOD = "C{},,,,,,2026-04-01,1,100,2,true,true,"


def lines(*rows) -> str:
    return HEADER + "\n" + "".join(r + "\n" for r in rows)


def hostile(run_cli, tmp_path, name, content, *extra):
    """Plan a hostile file: never a traceback or an internal error, exit 0, 1 or 2."""
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    rules = write_rules(tmp_path / "rules", SMS_RULES)
    result, out = plan(run_cli, tmp_path, rules, path, *extra)
    assert result.exit_code in (0, 1, 2)
    assert "Traceback" not in result.output and "internal error" not in result.output
    return result, out, path


def test_an_export_with_only_a_header_plans_nobody(run_cli, tmp_path):
    result, out, _ = hostile(run_cli, tmp_path, "c.csv", lines())
    assert result.exit_code == 0 and "0 customers read" in result.output
    assert out.read_text() == ""


def test_a_zero_byte_csv_is_bad_data(run_cli, tmp_path):
    result, out, path = hostile(run_cli, tmp_path, "c.csv", b"")
    assert result.exit_code == 1
    assert f"{path}: the file is empty: a CSV export needs a header row" in result.output
    assert not out.exists()


def test_an_empty_jsonl_file_has_no_customers(run_cli, tmp_path):
    for content in (b"", b"\n\n  \n"):
        result, out, _ = hostile(run_cli, tmp_path, "c.jsonl", content)
        assert result.exit_code == 0 and "0 customers read" in result.output
        assert out.read_text() == ""


def test_every_row_rejected_stops_or_plans_nobody(run_cli, tmp_path):
    content = lines("C1,,,,,,2026-04-01,x,100,2,true,true,", "C2,,,,,,nope,1,100,2,true,true,")
    result, out, _ = hostile(run_cli, tmp_path, "c.csv", content)
    assert (
        result.exit_code == 1 and "row 1: column orders_12m: `x` is not a number" in result.output
    )
    assert "(and 1 more bad row)" in result.output and not out.exists()
    rejects = tmp_path / "rejects.csv"
    result, out, _ = hostile(run_cli, tmp_path, "c.csv", content, "--rejects", rejects)
    assert result.exit_code == 0 and "0 customers read; 2 rows rejected" in result.output
    assert out.read_text() == ""
    with rejects.open(encoding="utf-8-sig") as handle:
        assert [r["row"] for r in csv.DictReader(handle)] == ["1", "2"]


def test_a_gbk_file_is_not_utf8_and_says_where(run_cli, tmp_path):
    content = lines(GOOD.format(1), "C2,,上海,,,,2026-04-01,1,100,2,true,true,").encode("gbk")
    result, out, path = hostile(run_cli, tmp_path, "c.csv", content)
    offset = content.index("上海".encode("gbk"))
    assert result.exit_code == 1
    assert f"{path}: not UTF-8: line 3 (byte {offset}) has `\\xc9`" in result.output
    assert not out.exists()
    result, out, path = hostile(
        run_cli, tmp_path, "c.csv", content, "--rejects", tmp_path / "r.csv"
    )
    assert result.exit_code == 1 and "not UTF-8" in result.output  # rows cannot be carried over


def test_a_utf8_bom_before_the_header_loads_normally(run_cli, tmp_path):
    content = lines(GOOD.format(1), "C2,,上海,,,,2026-04-01,1,100,2,true,true,")
    result, out, _ = hostile(run_cli, tmp_path, "c.csv", b"\xef\xbb\xbf" + content.encode())
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["customer_id"] for line in out.read_text().splitlines()] == [
        "C1",
        "C2",
    ]


def test_ragged_rows_are_named_and_can_be_set_aside(run_cli, tmp_path):
    content = lines(
        GOOD.format(1),
        "C2,,,",  # too few cells
        GOOD.format(3) + ",extra",  # too many
        GOOD.format(4),
        "C5,,,,,,2026-04-01,1,lots,2,true,true,",  # a bad value after them: still row 5
    )
    result, out, path = hostile(run_cli, tmp_path, "c.csv", content)
    assert result.exit_code == 1
    assert f"{path}: row 2: has 4 cells, the header has 13 (and 2 more bad rows)" in result.output
    rejects = tmp_path / "rejects.csv"
    result, out, _ = hostile(run_cli, tmp_path, "c.csv", content, "--rejects", rejects)
    assert result.exit_code == 0, result.output
    with rejects.open(encoding="utf-8-sig") as handle:
        rows = [(r["row"], r["reason"], r["record"]) for r in csv.DictReader(handle)]
    assert rows[:2] == [
        ("2", "has 4 cells, the header has 13", '["C2", "", "", ""]'),
        (
            "3",
            "has 14 cells, the header has 13",
            json.dumps((GOOD.format(3) + ",extra").split(",")),
        ),
    ]
    assert rows[2][:2] == ("5", "column spend_12m: `lots` is not a number")
    assert [json.loads(line)["customer_id"] for line in out.read_text().splitlines()] == [
        "C1",
        "C4",
    ]


def test_a_quoted_cell_over_several_lines_is_one_row(run_cli, tmp_path):
    content = lines(
        'C1,,"Shang\nhai",,,,2026-04-01,1,100,2,true,true,',
        "C2,,,,,,2026-04-01,1,lots,2,true,true,",
    )
    result, _, path = hostile(run_cli, tmp_path, "c.csv", content)
    assert f"{path}: row 2: column spend_12m: `lots`" in result.output
    con, _ = load_file(write_csv(tmp_path / "ok.csv", [customer("C1", city="Shang\nhai")]))
    assert table(con)[0]["city"] == "Shang\nhai"


def test_a_column_named_twice_in_the_header_is_bad_data(run_cli, tmp_path):
    content = "customer_id," + HEADER + "\nC1," + GOOD.format(1) + "\n"
    result, out, path = hostile(run_cli, tmp_path, "c.csv", content)
    assert result.exit_code == 1
    assert f"{path}: header: column customer_id appears twice (columns 1 and 2)" in result.output
    # An extra column the engine does not read may repeat.
    content = HEADER + ",note,note\n" + GOOD.format(1) + ",a,b\n"
    result, out, _ = hostile(run_cli, tmp_path, "c.csv", content)
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["customer_id"] == "C1"


def test_a_cell_of_megabytes_beside_a_ragged_row_is_read(tmp_path):
    """DuckDB refuses lines over 2 MB and Python's csv module cells over 128 kB by default:
    neither limit may turn a long note into an unreadable file."""
    path = tmp_path / "c.csv"
    path.write_text(lines("C1,,x" + "y" * 3_000_000 + ",,,,2026-04-01,1,100,2,true,true,", "C2,,"))
    assert reasons(path) == {2: "has 3 cells, the header has 13"}
    con, _ = load_file(path, rejects=tmp_path / "rejects.csv")
    assert len(table(con)[0]["city"]) == 3_000_001


def test_jsonl_lines_that_are_not_json_objects_are_bad_rows(run_cli, tmp_path):
    good = json.dumps(json_customer("C1"))
    content = (
        "\n".join(
            [
                good,
                "[1, 2]",
                '"C2"',
                "not json at all",
                '{"customer_id": "C3", "customer_id": "C4"}',
                "",
                json.dumps(json_customer("C5")),
            ]
        )
        + "\n"
    )
    result, out, path = hostile(run_cli, tmp_path, "c.jsonl", content)
    assert result.exit_code == 1
    assert f"{path}: row 2: is not a JSON object (and 3 more bad rows)" in result.output
    rejects = tmp_path / "rejects.csv"
    result, out, path = hostile(run_cli, tmp_path, "c.jsonl", content, "--rejects", rejects)
    assert result.exit_code == 0, result.output
    with rejects.open(encoding="utf-8-sig") as handle:
        assert [(r["row"], r["reason"]) for r in csv.DictReader(handle)] == [
            ("2", "is not a JSON object"),
            ("3", "is not a JSON object"),
            ("4", "is not valid JSON"),
            ("5", "has a key more than once"),
        ]
    assert [json.loads(line)["customer_id"] for line in out.read_text().splitlines()] == [
        "C1",
        "C5",
    ]


def test_row_numbers_are_right_deep_into_large_files(tmp_path):
    """Rows are counted in file order on every path: DuckDB reads in parallel, and turns an
    `IN` list of five or more constants into a join that does not keep the order (the row
    with `lots` below was reported as row 20000)."""
    full = "C{0:07d},H{0:06d},Shanghai,apparel,1990-05-05,2025-01-02,2026-04-01,1,100.5,2,true,,"
    rows = [full.format(i) for i in range(1, 100_001)]
    rows[99_998] = rows[99_998].replace("100.5", "lots")
    path = tmp_path / "c.csv"
    path.write_text(lines(*rows))
    assert "row 99999: column spend_12m: `lots` is not a number" in bad_data(path)
    rows[29_999] = "C30000,,,"
    path.write_text(lines(*rows))
    rejects = tmp_path / "rejects.csv"
    con, stats = load_file(path, rejects=rejects)
    found = con.execute(f"SELECT row, reason FROM ({rejects_sql(con)})").fetchall()
    assert found == [
        (30000, "has 4 cells, the header has 13"),
        (99999, "column spend_12m: `lots` is not a number"),
    ]
    assert stats.customers == 99_998
    objects = [json.dumps(json_customer(f"C{i}")) for i in range(1, 40_001)]
    objects[33_332] = json.dumps(json_customer("C33333", spend_12m="lots"))
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join(objects) + "\n")
    assert 'row 33333: column spend_12m: `"lots"` is not a number' in bad_data(path)


def test_hostile_files_never_crash_a_real_process(tmp_path):
    """The same files through the installed command, as an operator runs it."""
    import subprocess
    import sys

    rules = write_rules(tmp_path / "rules", SMS_RULES)
    files = {
        "zero.csv": b"",
        "header.csv": lines().encode(),
        "gbk.csv": lines("C1,,上海,,,,,0,0,0,true,true,").encode("gbk"),
        "ragged.csv": lines("C1,,").encode(),
        "array.jsonl": b"[1]\n",
        "trunc.parquet": b"PAR1\x00\x00",
        "folder.csv": None,
    }
    for name, content in files.items():
        path = tmp_path / name
        if content is None:
            path.mkdir()
        else:
            path.write_bytes(content)
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "retentionrules",
                "plan",
                "--rules",
                str(rules),
                "--customers",
                str(path),
                "--as-of",
                "2026-11-22",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode in (0, 1), (name, done.stderr)
        assert "Traceback" not in done.stderr and "internal error" not in done.stderr, name


# ---------------------------------------------------------------- the documented spellings, fuzzed

BLANKS = " \t\n\v\f\r\u00a0\u3000"  # docs/engine.md
NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
DATE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:[T ]([01][0-9]|2[0-3]):([0-5][0-9])(?::([0-5][0-9])(?:\.([0-9]{1,9}))?)?"
    r"(Z|[+-](?:[01][0-9]|2[0-3])(?::?[0-5][0-9])?)?)?"
)
SPELLINGS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
BAD = object()


def documented_number(cell):
    text = cell.strip(BLANKS)
    if not text:
        return None
    if not NUMBER.fullmatch(text):
        return BAD
    value = float(text)
    return value if abs(value) < 1e15 else BAD  # also NaN and the infinities


def documented_bool(cell):
    text = cell.strip(BLANKS).lower()
    return None if not text else SPELLINGS.get(text, BAD)


def documented_date(cell, zone="Asia/Shanghai"):
    text = cell.strip(BLANKS)
    if not text:
        return None
    match = DATE.fullmatch(text)
    if not match:
        return BAD
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    try:
        moment = dt.datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0")[:6].ljust(6, "0")),
        )
    except ValueError:
        return BAD
    if offset:
        sign, digits = (1, "0000") if offset == "Z" else (1 if offset[0] == "+" else -1, offset[1:])
        digits = digits.replace(":", "").ljust(4, "0")
        delta = dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        moment = moment.replace(tzinfo=dt.timezone(sign * delta))
        moment = moment.astimezone(zoneinfo.ZoneInfo(zone))
    day_ = moment.date()
    return day_ if dt.date(1900, 1, 1) <= day_ <= dt.date(2199, 12, 31) else BAD


PIECES = [
    "0",
    "1",
    "7",
    "12",
    "2026",
    "-",
    "+",
    ".",
    "e",
    "E",
    "_",
    " ",
    "\t",
    "\u3000",
    "\u00a0",
    "\v",
    "nan",
    "inf",
    "Infinity",
    "true",
    "False",
    "YES",
    "no",
    "t",
    "T",
    ":",
    "Z",
    "+08:00",
    "01",
    "2026-11-18",
    "2026-11-18T20:00",
    ":00",
    "/",
    "epoch",
    "x",
    "1e999",
    "١",
]


def spelled_number(rng):
    sign = rng.choice(["", "", "-", "+"])
    whole = rng.choice(["", "0", "7", "12", "2026", "00120"])
    point = rng.choice(["", "", ".", "." + rng.choice(["5", "25", "000", "1234567"])])
    exponent = rng.choice(["", "", "", "e3", "E-2", "e+10", "e999", "e-400"])
    return sign + whole + point + exponent


def spelled_bool(rng):
    word = rng.choice(["true", "false", "yes", "no", "1", "0", "t", "y", "on", "2"])
    return rng.choice([word, word.upper(), word.capitalize()])


def spelled_date(rng):
    day = dt.date(1899, 12, 20) + dt.timedelta(days=rng.randrange(300 * 366))
    text = rng.choice([day.isoformat(), "2026-02-29", "2028-02-29", "2026-11-18", "2026-1-05"])
    if rng.random() < 0.6:
        text += rng.choice(["T", " "]) + f"{rng.randrange(25):02}:{rng.randrange(61):02}"
        text += rng.choice(["", f":{rng.randrange(61):02}", ":59.9999999"])
        text += rng.choice(["", "Z", "+08:00", "-05:30", "+0930", "-11", "+14:00", " +08:00"])
    return text


def fuzzed_cells(rng, count, spelled):
    """Cells: mostly documented spellings with random damage, some random pieces."""
    cells = set()
    while len(cells) < count:
        if rng.random() < 0.3:
            cell = "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 4)))
        else:
            cell = spelled(rng)
            if rng.random() < 0.3:  # damage: a character inserted or removed
                at = rng.randrange(len(cell) + 1)
                cell = cell[:at] + rng.choice(["", "", "x", "_", " ", "0", "-"]) + cell[at + 1 :]
            if rng.random() < 0.2:
                cell = rng.choice(["", " ", "\t", "\u3000"]) + cell + rng.choice(["", " ", "\v"])
        cells.add(cell)
    return sorted(cells)


FUZZ_CONFIG = Config.model_validate(
    {"customers": {"fields": {**STANDARD_FIELDS, "score": "number", "seen": "date"}}}
)


def cheap_pass(path):
    """What the cheap first pass makes of a CSV file: per row, its values and whether it would
    send the file to the exact pass (loader internals, real DuckDB, real file)."""
    from retentionrules import loader

    con = connect()
    columns = loader._customer_columns(FUZZ_CONFIG, Inputs(path), AS_OF, None)
    source, _ = loader._csv_source(path, columns)
    context = loader._Context(FUZZ_CONFIG.timezone, AS_OF)
    loader._create(con, "cheap", source, columns, context, exact=False)
    return table(con, "cheap")


def test_csv_cells_are_read_exactly_as_documented(tmp_path):
    """Seeded fuzz: every cell of a number, bool and date column is accepted with the value
    docs/engine.md gives it, or is bad data. The cheap first pass over valid files uses DuckDB's
    casts, which take more than the documented spellings: each row it would keep without the
    exact pass has the documented value, and every bad cell sends the file to the exact pass."""
    rng = random.Random(8)
    kinds = {
        "score": (documented_number, spelled_number),
        "sms_opt_in": (documented_bool, spelled_bool),
        "seen": (documented_date, spelled_date),
    }
    good_cells = bad_cells = 0
    for field, (documented, spelled) in kinds.items():
        cells = fuzzed_cells(rng, 300, spelled)
        rows = [customer(f"C{i}", **{field: c}) for i, c in enumerate(cells)]
        path = write_csv(tmp_path / "c.csv", rows, [*COLUMNS, "score", "seen"])
        for cell, row in zip(cells, cheap_pass(path), strict=True):
            value = row[field]
            if isinstance(value, str) or (
                isinstance(value, dt.date)
                and not dt.date(1900, 1, 1) <= value <= dt.date(2199, 12, 31)
            ):
                continue  # out of range (Python has no year 12026): the range check catches it
            if not row["__suspect"]:
                assert documented(cell) is not BAD, (field, cell)
                assert value == documented(cell), (field, cell)
        rejects = tmp_path / "rejects.csv"
        con, _ = load_file(path, config=FUZZ_CONFIG, rejects=rejects)
        kept = {r["customer_id"]: r[field] for r in table(con)}
        rejected = dict(con.execute(f"SELECT row, reason FROM ({rejects_sql(con)})").fetchall())
        for i, cell in enumerate(cells):
            if documented(cell) is BAD:
                assert rejected[i + 1].startswith(f"column {field}: `"), (field, cell)
                bad_cells += 1
            else:
                assert kept[f"C{i}"] == documented(cell), (field, cell)
                good_cells += 1
    assert good_cells > 250 and bad_cells > 250  # both sides are really tested


QUIET_CONFIG = """
[customers]
household = ""
birthday = ""
[customers.fields]
customer_id = "string"
sms_opt_in = "bool"
total_orders = "number"
last_contacted = "date"
[channels.sms]
consent = "sms_opt_in"
[contacts]
quiet_period = "3 days"
"""


def test_the_quiet_period_is_never_silently_off_for_want_of_last_contacted(run_cli, tmp_path):
    """Without a contact history, the export's last_contacted is what the quiet period reads:
    a header spelling it differently used to switch the quiet period off without a word."""
    rules = write_rules(
        tmp_path / "r", "rule sms_all\n  when total_orders >= 0\n  then send hello via sms\n",
        QUIET_CONFIG,
    )  # fmt: skip
    customers = tmp_path / "c.csv"
    customers.write_text(
        "customer_id,sms_opt_in,total_orders,Last_Contacted,first_order_date,last_order_date,"
        "orders_12m,spend_12m\nC1,true,1,2026-11-21,,,0,0\n"
    )
    result, out = plan(run_cli, tmp_path, rules, customers)
    assert result.exit_code == 1 and not out.exists()
    assert "missing column last_contacted (the header has `Last_Contacted`" in result.output
    assert "the quiet period (3 days) reads it" in result.output
    history = tmp_path / "contacts.csv"  # with a contact history it is not needed
    history.write_text("customer_id,channel,rule,sent_at\nC1,sms,sms_all,2026-11-21\n")
    result, out = plan(run_cli, tmp_path, rules, customers, "--contacts", history)
    assert result.exit_code == 0, result.output
    assert out.read_text() == ""  # contacted yesterday: held back by the quiet period


def test_scoring_columns_are_needed_even_when_the_schema_does_not_declare_them(run_cli, tmp_path):
    """A customer with 40 orders must not pass for `potential` because the export lacks the
    columns scoring reads."""
    rules = write_rules(
        tmp_path / "r", "rule first\n  when stage = potential\n  then send coupon via sms\n",
        QUIET_CONFIG,
    )  # fmt: skip
    customers = tmp_path / "c.csv"
    customers.write_text("customer_id,sms_opt_in,total_orders,last_contacted\nC1,true,40,\n")
    result, out = plan(run_cli, tmp_path, rules, customers)
    assert result.exit_code == 1 and not out.exists()
    assert "missing columns first_order_date, last_order_date, orders_12m, spend_12m" in (
        result.output
    )
