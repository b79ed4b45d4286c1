"""Bad data: a message naming file, row and column, and nothing written; or, with --rejects,
the bad rows set aside with their reason and counted. Nothing is dropped silently."""

import csv
import json

import pytest

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


def test_duplicate_ids_name_the_first_row(run_cli, shop):
    tmp_path, rules, rows = shop
    rows[3]["customer_id"] = "C2"
    customers = write_csv(tmp_path / "customers.csv", rows)
    result, out = plan(run_cli, tmp_path, rules, customers)
    assert result.exit_code == 1
    assert "row 4: column customer_id: duplicate id `C2` (first at row 2)" in result.output
    assert not out.exists()


def test_missing_required_column(run_cli, shop):
    tmp_path, rules, rows = shop
    customers = write_csv(
        tmp_path / "customers.csv", rows, [c for c in COLUMNS if c != "sms_opt_in"]
    )
    result, out = plan(run_cli, tmp_path, rules, customers)
    assert result.exit_code == 1 and f"{customers}: missing column sms_opt_in" in result.output
    assert not out.exists()


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
    assert summary["rejected"] == {str(customers): 2}
    assert summary["customers"] == 2
    with rejects.open() as handle:
        rejected = list(csv.DictReader(handle))
    assert [(r["row"], r["reason"]) for r in rejected] == [
        ("2", "column spend_12m: `lots` is not a number"),
        ("4", "column customer_id: duplicate id `C1` (first at row 1)"),
    ]
    record = json.loads(rejected[0]["record"])  # the row as the file has it, nothing added
    assert list(record) == COLUMNS and (record["customer_id"], record["spend_12m"]) == (
        "C2",
        "lots",
    )
    planned = [json.loads(line)["customer_id"] for line in out.read_text().splitlines()]
    assert planned == ["C1", "C3"]


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
