"""The language's limits, end to end: every command answers hostile sizes with a result or a
diagnostic at the offending statement (exit 0, 1 or 2), never an internal error; realistic sizes
simply work; beyond a documented limit the diagnostic names it."""

import subprocess
import sys

import pytest

from .conftest import customer, write_csv, write_rules

PASSING_TEST = """as_of = 2026-11-22
[[case]]
name = "a platinum customer is tagged"
customer = { spend_12m = 9000 }
derived = { tier = "P" }
expect = { rule = "r" }
"""


def project(tmp_path, condition: str, extra: str = "") -> tuple:
    """A project whose one rule tags platinum customers who also satisfy `condition` (which every
    customer of the export does), with a passing rule test and a small export."""
    rules = write_rules(
        tmp_path / "rules", f"rule r\n  when tier = P and ({condition})\n  then tag t\n{extra}"
    )
    (rules / "r.test.toml").write_text(PASSING_TEST, encoding="utf-8")
    platinum = dict(orders_12m=12, spend_12m=9000, total_orders=30, last_order_date="2026-11-01")
    bronze = dict(orders_12m=1, spend_12m=10, total_orders=1, last_order_date="2025-01-01")
    rows = [customer("C1", **platinum), customer("C2", **bronze)]
    return rules, write_csv(tmp_path / "customers.csv", rows)


def every_command(run_cli, rules, customers, tmp_path) -> dict[str, object]:
    plan = tmp_path / "plan.jsonl"
    common = ["--rules", rules, "--customers", customers, "--as-of", "2026-11-22"]
    results = {
        "check": run_cli("check", rules),
        "fmt": run_cli("fmt", "--check", rules),
        "plan": run_cli("plan", *common, "--out", plan),
        "explain": run_cli("explain", "C1", *common),
        "test": run_cli("test", rules),
    }
    for command, result in results.items():
        assert result.exit_code in (0, 1, 2), (command, result.output)
        assert "internal error" not in result.output, (command, result.output)
    return results


# Each is the condition of a rule that holds for every customer, nested as deep as it says.
REALISTIC = {
    "700 nots": "not " * 700 + "tier = P",
    "2,000 parentheses": "(" * 2000 + "tier = P" + ")" * 2000,
    "a 600-term sum": " + ".join(["spend_12m"] * 600) + " > 0",
    "300 nested divisions": "(" + "spend_12m / (" * 300 + "1" + ")" * 300 + ") is present",
    "400 minus signs": "-" * 400 + "spend_12m != 0",
}


@pytest.mark.parametrize("condition", REALISTIC.values(), ids=REALISTIC.keys())
def test_deep_but_realistic_conditions_work_in_every_command(run_cli, tmp_path, condition):
    rules, customers = project(tmp_path, condition)
    results = every_command(run_cli, rules, customers, tmp_path)
    for command in ("check", "plan", "explain", "test"):
        assert results[command].exit_code == 0, (command, results[command].output)
    assert '"customer_id":"C1"' in (tmp_path / "plan.jsonl").read_text(encoding="utf-8")
    assert "✓ r: planned" in results["explain"].output


BEYOND = {
    "1,001 nots": ("not " * 1001 + "tier = B", "RR100", 1, "at most 1,000"),
    "a 1,200-term sum": (" + ".join(["spend_12m"] * 1200) + " > 0", "RR100", 1, "at most 1,000"),
    "10,000 parentheses around 2,000 nots": (
        "(" * 10_000 + "not " * 2000 + "tier = B" + ")" * 10_000,
        "RR100",
        1,
        "at most 1,000",
    ),
    "a 400-digit number": ("spend_12m < " + "9" * 400, "RR101", 2, "400 significant digits"),
    "a 5,000-digit number": ("spend_12m < " + "9" * 5000, "RR101", 2, "5,000 significant"),
    "16 decimals": ("spend_12m > 0.0000000000000001", "RR101", 2, "16 digits after the point"),
    "999999999999 days": ("last_order_date within 999999999999 days", "RR101", 2, "365,000 days"),
    "9999999 months ago": ("last_order_date before 9999999 months ago", "RR101", 2, "12,000"),
}


@pytest.mark.parametrize("case", BEYOND.values(), ids=BEYOND.keys())
def test_beyond_a_limit_every_command_names_it_at_the_statement(run_cli, tmp_path, case):
    condition, code, line, words = case
    rules, customers = project(tmp_path, condition)
    results = every_command(run_cli, rules, customers, tmp_path)
    check = results["check"]
    assert check.exit_code == 1
    assert f"r.rules:{line}:" in check.output and f"{code} error" in check.output, check.output
    assert words in check.output
    assert results["plan"].exit_code == 1 and "nothing was run" in results["plan"].output
    assert not (tmp_path / "plan.jsonl").exists()


@pytest.mark.parametrize(
    "clause, column, words",
    [
        ("cap 1 per 100000 years", 13, "a duration may be at most 1,000 years"),
        ("priority " + "9" * 30, 3, "a priority may have at most 15 digits"),
        ("cap " + "9" * 16 + " per 1 day", 3, "a cap may have at most 15 digits"),
        ("max " + "9" * 300 + " per run", 3, "a volume limit may have at most 15 digits"),
        ("holdout 1.00000000000000001%", 3, "18 significant digits"),
    ],
)
def test_huge_clauses_are_rr101_in_every_command(run_cli, tmp_path, clause, column, words):
    rules, customers = project(tmp_path, "tier = P", extra=f"  {clause}\n")
    check = every_command(run_cli, rules, customers, tmp_path)["check"]
    assert check.exit_code == 1
    assert f"r.rules:4:{column}: RR101 error" in check.output and words in check.output


@pytest.mark.parametrize("as_of", ["0001-01-01", "9999-12-31", "1899-12-31", "2200-01-01"])
def test_as_of_outside_the_documented_range_is_a_usage_error(run_cli, tmp_path, as_of):
    rules, customers = project(tmp_path, "tier = P")
    for command in (
        ["plan", "--rules", rules, "--customers", customers],
        ["explain", "C1", "--rules", rules, "--customers", customers],
        ["score", "--customers", customers, "--config", rules / "retentionrules.toml"],
        ["diff", rules, rules, "--customers", customers],
    ):
        result = run_cli(*command, "--as-of", as_of)
        assert result.exit_code == 2, (command, result.output)
        assert "outside the supported range 1900-01-01 to 2199-12-31" in result.output


LONGEST = (
    "last_order_date within 365000 days or last_order_date within next 52000 weeks "
    "or last_order_date before 12000 months ago or last_order_date after 1000 years ago "
    "or birthday within 1000 years"
)


@pytest.mark.parametrize("as_of", ["1900-01-01", "2199-12-31"])
def test_the_longest_durations_at_the_ends_of_the_as_of_range_plan(run_cli, tmp_path, as_of):
    rules, _ = project(tmp_path, LONGEST, extra="  cap 1 per 1000 years\n")
    platinum = dict(orders_12m=12, spend_12m=9000, total_orders=30, last_order_date=as_of)
    customers = write_csv(tmp_path / "then.csv", [customer("C1", **platinum)])  # no later orders
    result = run_cli(
        "plan", "--rules", rules, "--customers", customers, "--as-of", as_of, "--format", "json"
    )
    assert result.exit_code == 0, result.output


def chain(operator: str, length: int) -> str:
    lines = ["segment s0 = tier = P"]
    lines += [f"segment s{i} = s{i - 1} {operator} s{i - 1}" for i in range(1, length + 1)]
    return "\n".join(lines) + f"\nrule r\n  when s{length}\n  then tag t\n"


@pytest.mark.parametrize("operator", ["and", "or"])
def test_thirty_segments_each_using_the_previous_twice_check_and_plan(tmp_path, operator):
    """Compiled naively, the condition would be 2**30 tests: this would never finish."""
    rules = write_rules(tmp_path / "rules", chain(operator, 30))
    customers = write_csv(tmp_path / "customers.csv", [customer("C1", spend_12m=9000)])
    for command in (
        ["check", rules],
        ["plan", "--rules", rules, "--customers", customers, "--as-of", "2026-11-22"],
        ["explain", "C1", "--rules", rules, "--customers", customers, "--as-of", "2026-11-22"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "retentionrules", *map(str, command)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr


def test_a_chain_of_more_than_100_segments_is_rr209_and_long_chains_never_recurse(
    run_cli, tmp_path
):
    rules, customers = project(tmp_path, "tier = P")
    lines = [f"segment s{i} = s{i + 1} and tier >= B" for i in range(3000)] + [
        "segment s3000 = tier = P",
        "segment loop0 = loop2999",
    ]
    lines += [f"segment loop{i} = loop{i - 1} or tier = P" for i in range(1, 3000)]
    (rules / "r.rules").write_text(
        "\n".join(lines) + "\nrule r\n  when s0 and s2950\n  then tag t\n"
        "rule q\n  when loop5\n  then tag q\n",
        encoding="utf-8",
    )
    check = run_cli("check", rules)
    assert check.exit_code == 1
    assert check.output.count("RR209 error") == 1
    assert "segment `s2900` ends a chain of 101" in check.output
    assert check.output.count("RR204 error") == 1
    assert "loop0 -> loop2999 -> loop2998" in check.output
    plan = run_cli("plan", "--rules", rules, "--customers", customers, "--as-of", "2026-11-22")
    assert plan.exit_code == 1 and "nothing was run" in plan.output
