"""`retentionrules diff`: the exact customers a rule change adds, and --fail-over for CI."""

import csv
import json
import shutil

from .conftest import ROOT

SHOP = ROOT / "examples"
DATA = ("--customers", SHOP / "customers.csv", "--as-of", "2026-11-22")


def planned(run_cli, rules, out):
    assert run_cli("plan", "--rules", rules, *DATA, "--out", out).exit_code == 0
    with out.open() as handle:
        return {row["customer_id"]: row["rule"] for row in csv.DictReader(handle)}


def test_issue_4_widened_winback_reports_exact_added_customers(run_cli, tmp_path):
    shop = tmp_path / "shop"
    shutil.copytree(SHOP, shop)
    rules = shop / "rules" / "shop.rules"
    text = rules.read_text(encoding="utf-8")
    rules.write_text(
        text.replace("when stage = sleeping and tier >= G", "when stage = sleeping and tier >= S"),
        encoding="utf-8",
    )
    before = planned(run_cli, SHOP / "rules", tmp_path / "before.csv")
    after = planned(run_cli, shop / "rules", tmp_path / "after.csv")
    gained = sorted(
        c for c, rule in after.items() if rule == "winback_gold" and before.get(c) != "winback_gold"
    )
    assert gained  # the widened condition reaches silver members
    result = run_cli("diff", SHOP / "rules", shop / "rules", *DATA, "--format", "json")
    assert result.exit_code == 0, result.output
    impact = {r["rule"]: r for r in json.loads(result.output)["rules"]}
    assert impact["winback_gold"]["added"] == gained
    assert impact["winback_gold"]["moved_in"] == {"winback_silver": len(gained)}
    assert impact["winback_silver"]["removed"] == gained
    assert impact["vip_call"]["moved"] == 0
    over = run_cli("diff", SHOP / "rules", shop / "rules", *DATA, "--fail-over", "10%")
    assert over.exit_code == 1 and "rule winback_gold" in over.output
    within = run_cli("diff", SHOP / "rules", shop / "rules", *DATA, "--fail-over", str(len(gained)))
    assert within.exit_code == 0


def test_markdown_fits_a_pull_request_comment(run_cli):
    result = run_cli("diff", SHOP / "rules", SHOP / "rules", *DATA, "--format", "markdown")
    assert result.exit_code == 0
    assert result.output.startswith("### Audience impact")
    assert "| `winback_gold` | 2 | 2 | +0 | -0 |" in result.output


def test_git_revision_as_the_old_side(run_cli):
    result = run_cli("diff", "HEAD:examples/rules", SHOP / "rules", *DATA, "--format", "json")
    assert result.exit_code == 0, result.output
    assert all(r["moved"] == 0 for r in json.loads(result.output)["rules"])


def test_bad_fail_over_and_bad_revision_are_usage_errors(run_cli):
    assert (
        run_cli("diff", SHOP / "rules", SHOP / "rules", *DATA, "--fail-over", "lots").exit_code == 2
    )
    assert run_cli("diff", "no-such-rev:examples/rules", SHOP / "rules", *DATA).exit_code == 2
