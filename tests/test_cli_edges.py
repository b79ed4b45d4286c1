"""What a new user tries on the command line: `--version`, `--min-coverage 80%` (as `--fail-over
20%`), `diff main:rules` where the branch is called otherwise, and `--format junit` that is
valid XML even when the tests cannot start."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from retentionrules import __version__

from .conftest import ROOT, customer, git, write_csv, write_rules

SHOP = ROOT / "examples"


def test_version_prints_the_version(run_cli):
    result = run_cli("--version")
    assert result.exit_code == 0
    assert result.output == f"retentionrules {__version__}\n"


@pytest.mark.parametrize("given", ["80%", "80", " 80 %", "100%"])
def test_min_coverage_takes_a_percentage_with_or_without_the_sign(run_cli, given):
    result = run_cli("test", SHOP, "--min-coverage", given)
    assert result.exit_code == 0, result.output


def test_min_coverage_below_fails_with_the_sign_too(run_cli, tmp_path):
    rules = write_rules(tmp_path, "rule a\n  when stage = lost\n  then tag lost\n"
                        "rule b\n  when stage = active\n  then tag active\n")  # fmt: skip
    (rules / "r.test.toml").write_text(
        'as_of = 2026-11-22\n[[case]]\nname = "lost"\nderived = { stage = "lost" }\n'
        'expect = { rule = "a" }\n',
        encoding="utf-8",
    )
    result = run_cli("test", rules, "--min-coverage", "80%")
    assert result.exit_code == 1
    assert "rule coverage 50% is below --min-coverage 80%" in result.output


@pytest.mark.parametrize("given", ["101%", "-1", "abc", "nan", "%"])
def test_min_coverage_outside_0_to_100_is_a_usage_error(run_cli, given):
    result = run_cli("test", SHOP, "--min-coverage", given)
    assert result.exit_code == 2
    assert "give a percentage from 0 to 100, e.g. 80%" in result.output


def test_diff_against_a_branch_that_does_not_exist_names_the_branches_there_are(
    run_cli, tmp_path, monkeypatch
):
    repo = tmp_path / "repo"
    write_rules(repo / "rules", "rule a\n  when stage = lost\n  then tag lost\n")
    git(repo, "init", "-q", "-b", "trunk")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "rules")
    customers = write_csv(tmp_path / "c.csv", [customer("C1")])
    monkeypatch.chdir(repo)
    result = run_cli("diff", "main:rules", "rules", "--customers", customers)
    assert result.exit_code == 2
    assert (
        f"retentionrules: main:rules: the git repository at {repo} has no revision 'main' "
        "(its branches and tags: trunk; e.g. trunk:rules)"
    ) in result.output
    missing = run_cli("diff", "trunk:rulez", "rules", "--customers", customers)
    assert missing.exit_code == 2
    assert "trunk:rulez: rulez is not in the repository at trunk" in missing.output
    assert run_cli("diff", "trunk:rules", "rules", "--customers", customers).exit_code == 0


def test_junit_is_valid_xml_when_the_tests_cannot_start(run_cli, tmp_path):
    """A test file whose project's rules were not given: a usage error, and still a JUnit
    report with that error, which CI can read."""
    other = tmp_path / "other"
    other.mkdir()
    (other / "y.test.toml").write_text("as_of = 2026-11-22\n", encoding="utf-8")
    result = run_cli("test", SHOP, other / "y.test.toml", "--format", "junit")
    assert result.exit_code == 2
    xml = result.output[result.output.index("<?xml") :]
    suite = ET.fromstring(xml.split("</testsuite>")[0] + "</testsuite>")
    (error,) = suite.iter("error")
    assert suite.get("errors") == "1" and "no rules given for the project of" in error.text


@pytest.mark.parametrize(
    "text",
    [
        b'as_of = 2026-11-22\n[[case]\nname = "x"\n',  # not TOML
        b'as_of = 2026-11-22\n[[case]]\nname = "\xb3\xa4"\n',  # not UTF-8
        b'as_of = 2026-11-22\n[[case]]\nname = "a\x01 ]]> <x> &"\n',  # control character
        b'as_of = 2026-11-22\n[[case]]\nname = "]]> <x> &"\nexpect = { rule = "nope" }\n',
    ],
    ids=["toml", "utf-8", "control", "markup"],
)
def test_junit_is_valid_xml_when_a_test_file_is_broken(tmp_path, text):
    import subprocess
    import sys

    rules = write_rules(tmp_path, "rule a\n  when stage = lost\n  then tag lost\n")
    (rules / "r.test.toml").write_bytes(text)
    result = subprocess.run(
        [sys.executable, "-m", "retentionrules", "test", str(rules), "--format", "junit"],
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 2
    suite = ET.fromstring(result.stdout)  # stdout alone: the report CI saves
    assert int(suite.get("errors")) >= 1


def test_json_and_github_say_why_the_tests_cannot_start(run_cli, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "y.test.toml").write_text("as_of = 2026-11-22\n", encoding="utf-8")
    given = ("test", SHOP, other / "y.test.toml", "--format")
    shown = run_cli(*given, "json").output
    assert "no rules given" in json.loads(shown[: shown.rindex("}") + 1])["error"]
    assert "::error title=retentionrules test::no rules given" in run_cli(*given, "github").output
