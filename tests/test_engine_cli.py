"""plan, explain and score from the command line, on the demo shop."""

import csv
import json

from .conftest import ROOT

SHOP = ROOT / "examples"
DERIVED_FIELDS = (
    "recency_score",
    "frequency_score",
    "monetary_score",
    "rfm_score",
    "tier",
    "stage",
    "days_since_last_order",
    "days_since_first_order",
    "days_since_last_contact",
    "days_to_birthday",
    "avg_order_value",
    # from order lines and the catalogue: shown, missing, without them
    "next_runout_date",
    "days_to_runout",
    "runout_sku",
    "runout_category",
    "next_warranty_end",
    "days_to_warranty_end",
    "warranty_sku",
    # the demo shop's [calendar]: its named dates, in the order declared
    "spring_festival",
    "mid_autumn",
    "member_day",
    "double_11",
)
DEMO = ("--rules", SHOP / "rules", "--customers", SHOP / "customers.csv", "--as-of", "2026-11-22")


def test_demo_shop_plans_end_to_end(run_cli, tmp_path):
    out = tmp_path / "plan.jsonl"
    result = run_cli("plan", *DEMO, "--out", out)
    assert result.exit_code == 0, result.output
    for rule in ("vip_call", "winback_gold", "first_order", "total"):
        assert rule in result.output
    assert f"wrote {out}" in result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows and len({r["customer_id"] for r in rows}) == len(rows)  # one action each


def test_plan_summary_as_json_counts_every_step(run_cli):
    summary = json.loads(run_cli("plan", *DEMO, "--format", "json").output)
    first_order = next(r for r in summary["rules"] if r["rule"] == "first_order")
    steps = [
        first_order[s] for s in ("matched", "consent", "caps", "priority", "household", "volume")
    ]
    assert steps == sorted(steps, reverse=True) and first_order["volume"] <= 20
    assert first_order["sent"] + first_order["holdout"] == first_order["volume"]


def test_explain_traces_each_rule(run_cli):
    result = run_cli("explain", "C0000003", *DEMO)
    assert result.exit_code == 0, result.output
    assert "customer C0000003" in result.output
    assert "silent_care: planned" in result.output
    assert "true   stage = silent" in result.output
    payload = json.loads(run_cli("explain", "C0000003", *DEMO, "--format", "json").output)
    (trace,) = [t for t in payload[0]["rules"] if t["rule"] == "silent_care"]
    assert trace["matched"] and trace["outcome"] == "planned"


def test_explain_unknown_customer_is_a_usage_error(run_cli):
    result = run_cli("explain", "NOBODY", *DEMO)
    assert result.exit_code == 2 and "NOBODY" in result.output


def test_score_writes_derived_fields_and_prints_distribution(run_cli, tmp_path):
    out = tmp_path / "scores.csv"
    result = run_cli(
        "score",
        "--customers",
        SHOP / "customers.csv",
        "--config",
        SHOP / "retentionrules.toml",
        "--as-of",
        "2026-11-22",
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output
    assert "customers by tier and stage" in result.output
    with out.open(encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 300
    with (SHOP / "customers.csv").open() as handle:
        given = next(csv.reader(handle))
    contact_details = ["phone", "email"]  # read by `send` alone, never written by score
    kept = [name for name in given if name not in contact_details]
    assert list(rows[0]) == kept + list(DERIVED_FIELDS)  # and no helper columns


def test_explain_shows_the_fields_people_know(run_cli):
    (explained,) = json.loads(run_cli("explain", "C0000003", *DEMO, "--format", "json").output)
    assert list(explained["fields"])[-len(DERIVED_FIELDS) :] == list(DERIVED_FIELDS)
    assert not [name for name in explained["fields"] if "#" in name]


def test_bad_as_of_is_a_usage_error(run_cli):
    result = run_cli(
        "plan",
        "--rules",
        SHOP / "rules",
        "--customers",
        SHOP / "customers.csv",
        "--as-of",
        "22/11/2026",
    )
    assert result.exit_code == 2 and "--as-of" in result.output


def test_ctrl_c_during_a_plan_exits_130_without_an_internal_error(tmp_path):
    """Ctrl-C inside a DuckDB query reaches us as DuckDB's own error, not KeyboardInterrupt."""
    import signal
    import subprocess
    import sys
    import time

    from .conftest import customer, write_csv

    rows = [
        customer(f"C{i:07d}", last_order_date="2026-01-01", orders_12m=1) for i in range(200_000)
    ]
    data = write_csv(tmp_path / "c.csv", rows)
    command = [sys.executable, "-m", "retentionrules", "plan", "--rules", SHOP / "rules"]
    command += ["--customers", data, "--as-of", "2026-11-22", "--out", tmp_path / "p.csv"]
    for delay in (0.3, 0.6, 0.9):
        run = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        run.send_signal(signal.SIGINT)
        _, err = run.communicate(timeout=60)
        if run.returncode == 0:
            continue  # finished before the signal: nothing to see
        assert "internal error" not in err and "Traceback" not in err
        if run.returncode == -signal.SIGINT:
            continue  # still starting Python: it died of the signal, as a shell expects
        assert run.returncode == 130, err
        assert "interrupted" in err


def test_explain_finds_an_id_typed_with_blanks_around_it(run_cli):
    result = run_cli("explain", " C0000003 ", *DEMO)
    assert result.exit_code == 0, result.output
    assert "customer C0000003" in result.output


def test_an_as_of_date_outside_the_range_is_a_usage_error_from_python_too(tmp_path):
    import datetime as dt

    import pytest

    from retentionrules.engine import run_plan, score
    from retentionrules.errors import UsageError
    from retentionrules.loader import Inputs

    inputs = Inputs(SHOP / "customers.csv")
    for day in (dt.date(1, 1, 1), dt.date(9999, 12, 31), dt.date(1899, 12, 31)):
        with pytest.raises(UsageError, match="outside the supported range"):
            run_plan([SHOP / "rules"], inputs, day)
        with pytest.raises(UsageError, match="outside the supported range"):
            score(inputs, day)


def test_paths_and_data_that_look_like_markup_print_as_they_are(run_cli, tmp_path):
    """Paths and data went through rich markup: `--out '[/i]x.csv'` crashed after the plan was
    written (MarkupError), `[x]` vanished from a path, a city `[/bold] ...` crashed explain."""
    (tmp_path / "[").mkdir()
    out, suppressed = tmp_path / "[/i]x.csv", tmp_path / "[red]s[x].csv"
    result = run_cli("plan", *DEMO, "--out", out, "--suppressed", suppressed)
    assert result.exit_code == 0, result.output
    assert f"wrote {out}\n" in result.output and f"wrote {suppressed}\n" in result.output
    rows = list(csv.reader((SHOP / "customers.csv").open(encoding="utf-8")))
    city = rows[0].index("city")
    rows[1][city] = "[/bold] [red]Shanghai"
    customers = tmp_path / "[b]customers.csv"
    with customers.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    shop = ("--rules", SHOP / "rules", "--customers", customers, "--as-of", "2026-11-22")
    explained = run_cli("explain", rows[1][0], *shop)
    assert explained.exit_code == 0, explained.output
    assert "[/bold] [red]Shanghai" in explained.output
    bad = list(rows[2])
    bad[0], bad[rows[0].index("first_order_date")] = "[i]BAD", "soon"
    with customers.open("a", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerow(bad)  # rejected: the summary names the file it came from
    planned = run_cli("plan", *shop, "--rejects", tmp_path / "r.csv")
    assert planned.exit_code == 0 and f"from {customers}" in planned.output


def test_a_plan_of_an_export_with_no_rows_prints_zero_counts(run_cli, tmp_path):
    """A customer export with its header and no rows crashed the summary after the plan was
    written (TypeError: None + int): DuckDB's count_if over no rows is NULL, not 0."""
    customers = tmp_path / "c.csv"
    customers.write_text((SHOP / "customers.csv").read_text().splitlines()[0] + "\n")
    shop = ("--rules", SHOP / "rules", "--customers", customers, "--as-of", "2026-11-22")
    result = run_cli("plan", *shop, "--out", tmp_path / "p.jsonl")
    assert result.exit_code == 0, result.output
    assert "0 customers read; 0 rows rejected" in result.output
    summary = json.loads(run_cli("plan", *shop, "--format", "json").output)
    assert all(value == 0 for r in summary["rules"] for value in r.values() if value != r["rule"])
