"""`retentionrules test`: cases pass and fail as a real plan would, coverage is enforced,
and broken test files give diagnostics, never tracebacks."""

import json
import xml.etree.ElementTree as ET

import pytest

from .conftest import ROOT, write_rules

RULES = (
    "rule winback\n  when stage = sleeping\n  then send winback_coupon via email with amount = 5\n"
    "rule vip\n  when tier = P\n  then call care\n  priority 9\n"
)
PASSING = """as_of = 2026-11-22
[defaults]
customer = { email_opt_in = true }

[[case]]
name = "sleeping customers get the win-back email"
derived = { stage = "sleeping" }
expect = { rule = "winback", action = "send", channel = "email", parameters = { amount = 5 } }
"""


@pytest.fixture
def project(tmp_path):
    folder = write_rules(tmp_path / "rules", RULES)
    return folder


def write_tests(folder, text):
    (folder / "r.test.toml").write_text(text, encoding="utf-8")


def test_repository_rule_tests_pass_with_full_coverage(run_cli):
    for folder in (ROOT / "rules", ROOT / "examples"):
        result = run_cli("test", folder, "--min-coverage", "100")
        assert result.exit_code == 0, result.output
        assert "rule coverage: 100%" in result.output


def test_passing_case_and_coverage_threshold(run_cli, project):
    write_tests(project, PASSING)
    result = run_cli("test", project)
    assert result.exit_code == 0, result.output
    assert "1 passed, 0 failed" in result.output
    assert "rule coverage: 50% (1 of 2" in result.output and "never fired: vip" in result.output
    below = run_cli("test", project, "--min-coverage", "100")
    assert below.exit_code == 1 and "below --min-coverage 100%" in below.output


def test_failing_case_shows_expected_actual_and_trace(run_cli, project):
    write_tests(project, PASSING.replace("amount = 5", "amount = 6"))
    result = run_cli("test", project)
    assert result.exit_code == 1
    assert "FAIL  " + str(project / "r.test.toml") + ":6  sleeping customers" in result.output
    assert "0 passed, 1 failed" in result.output
    expected = "{rule = 'winback', action = 'send', channel = 'email', parameters = {'amount': 6}}"
    assert f"expected {expected}" in result.output
    assert "actual actions:   [{'rule': 'winback'" in result.output
    assert "✓ winback: planned" in result.output and "true   stage = sleeping" in result.output


def test_expected_removals(run_cli, project):
    write_tests(
        project,
        """as_of = 2026-11-22
[[case]]
name = "no consent, no email"
derived = { stage = "sleeping" }
expect = "none"
expect_removed = { rule = "winback", reason = "consent" }
""",
    )
    assert run_cli("test", project).exit_code == 0


def test_machine_formats(run_cli, project):
    write_tests(
        project,
        PASSING
        + PASSING.split("[defaults]")[0].replace("as_of = 2026-11-22", "")
        + '[[case]]\nname = "fails"\nderived = { stage = "lost" }\nexpect = { rule = "winback" }\n',
    )
    payload = json.loads(run_cli("test", project, "--format", "json").output)
    assert (payload["passed"], payload["failed"]) == (1, 1)
    suite = ET.fromstring(run_cli("test", project, "--format", "junit").output)
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    github = run_cli("test", project, "--format", "github").output
    assert "::error file=" in github and "title=fails::expected {rule = 'winback'}" in github


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("as_of = 2026-11-22\n[[case]\nname = 'x'\n", "not valid TOML"),
        (
            'as_of = 2026-11-22\n[[case]]\ncustomer = { spend = 1 }\nexpect = "none"\n',
            "unknown customer field `spend`",
        ),
        ('as_of = 2026-11-22\n[[case]]\nexpect = { rule = "winbak" }\n', "unknown rule `winbak`"),
        ('[[case]]\nexpect = "none"\n', "no as-of date"),
        (
            'as_of = 2026-11-22\n[[case]]\nexpect = { rule = "vip", reason = "tired" }\n',
            "unknown reason `tired`",
        ),
    ],
)
def test_broken_test_files_give_diagnostics_and_exit_2(run_cli, project, text, message):
    write_tests(project, text)
    result = run_cli("test", project)
    assert result.exit_code == 2
    assert "r.test.toml:" in result.output and "RR400" in result.output and message in result.output
    assert "Traceback" not in result.output


def test_no_test_files_is_a_usage_error(run_cli, project):
    assert run_cli("test", project).exit_code == 2
