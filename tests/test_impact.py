"""`retentionrules diff`: the exact customers a rule change adds, and --fail-over for CI."""

import csv
import json
import shutil
import tempfile

import pytest

from .conftest import ROOT, git

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




@pytest.fixture
def repo(tmp_path):
    """A real git repository holding the demo shop under shop/, committed once."""
    shutil.copytree(SHOP, tmp_path / "shop")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "shop")
    return tmp_path


def test_revision_path_is_read_from_the_repository_top_unless_it_starts_with_dot(
    run_cli, repo, monkeypatch
):
    monkeypatch.chdir(repo / "shop")  # as git does: REV:PATH from the top, REV:./PATH from here
    rules = repo / "shop" / "rules"
    for old in ("HEAD:shop/rules", "HEAD:./rules"):
        result = run_cli("diff", old, rules, *DATA, "--format", "json")
        assert result.exit_code == 0, (old, result.output)
        assert all(r["moved"] == 0 for r in json.loads(result.output)["rules"])
    wrong = run_cli("diff", "HEAD:rules", rules, *DATA)  # there is no rules/ at the top
    assert wrong.exit_code == 2
    assert "HEAD:rules: rules is not in the repository at HEAD (read from the repository's top " \
        "folder" in wrong.output and "write HEAD:./PATH for a path from the current folder" in (
        wrong.output
    )


def test_a_broken_rule_at_a_revision_is_named_by_revision_never_a_temporary_path(
    run_cli, repo, monkeypatch
):
    rules = repo / "shop" / "rules" / "shop.rules"
    good = rules.read_text(encoding="utf-8")
    rules.write_text(good + "\nrule broken\n  when stage = sleepy\n  then tag x\n", "utf-8")
    git(repo, "commit", "-qam", "broken")
    rules.write_text(good, "utf-8")
    monkeypatch.chdir(repo)
    result = run_cli("diff", "HEAD:shop/rules", repo / "shop" / "rules", *DATA)
    assert result.exit_code == 1
    assert "HEAD:shop/rules/shop.rules:" in result.output and "sleepy" in result.output
    assert tempfile.gettempdir() not in result.output.replace(str(repo), "")


def test_nested_projects_at_a_revision_are_refused_as_in_the_working_tree(
    run_cli, repo, monkeypatch
):
    nested = repo / "shop" / "rules" / "team"
    nested.mkdir()
    (nested / "retentionrules.toml").write_text('timezone = "UTC"\n', "utf-8")
    (nested / "team.rules").write_text("rule team_tag\n  when tier = P\n  then tag vip\n", "utf-8")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "a nested project")
    monkeypatch.chdir(repo)
    now = run_cli("diff", repo / "shop" / "rules", repo / "shop" / "rules", *DATA)
    assert now.exit_code == 2 and "different projects" in now.output
    shutil.rmtree(nested)  # the new side is one project again; the revision still holds two
    then = run_cli("diff", "HEAD:shop/rules", repo / "shop" / "rules", *DATA)
    assert then.exit_code == 2 and "different projects" in then.output
    assert "HEAD:shop/rules/team/retentionrules.toml" in then.output
    assert tempfile.gettempdir() not in then.output.replace(str(repo), "")


def test_a_revision_without_configuration_never_uses_one_outside_the_repository(
    run_cli, tmp_path, monkeypatch
):
    """The copy of the old rules sits in a temporary folder: a retentionrules.toml above that
    folder (or anywhere outside the revision) must not become their configuration."""
    repo = tmp_path / "repo"
    (repo / "rules").mkdir(parents=True)
    (repo / "rules" / "a.rules").write_text(
        "rule a\n  when stage = sleeping\n  then send winback_coupon via email\n", "utf-8"
    )
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "rules without configuration")
    temporary = tmp_path / "tmp"  # where the copy goes, under a stray configuration
    temporary.mkdir()
    (temporary / "retentionrules.toml").write_text(
        '[channels.email]\nconsent = "email_opt_in"\ncost = 99\n', "utf-8"
    )
    monkeypatch.setenv("TMPDIR", str(temporary))
    tempfile.tempdir = None  # read TMPDIR again
    monkeypatch.chdir(repo)
    try:
        result = run_cli("diff", "HEAD:rules", repo / "rules", *DATA, "--format", "json")
    finally:
        tempfile.tempdir = None
    assert result.exit_code == 0, result.output
    rules = json.loads(result.output)["rules"]
    assert rules[0]["cost_before"] == rules[0]["cost_after"]
