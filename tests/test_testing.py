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
            'as_of = 2026-11-22\n[[case]]\nexpect_removed = { rule = "vip", reason = "tired" }\n',
            "unknown reason `tired`",
        ),
        (  # a reason says nothing about an action that happened: it would test nothing
            'as_of = 2026-11-22\n[[case]]\nexpect = { rule = "vip", reason = "consent" }\n',
            "unknown key `reason`",
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


TWO_CASES = """as_of = 2026-11-22

[[case]]
name = "fine"
derived = { stage = "sleeping", tier = "G" }
expect = { rule = "winback" }

[[case]]
name = "typo"
derived = { stage = "sleeping", tier = "Gold" }
expect = "none"
"""


def test_a_wrong_enum_value_is_rr400_at_its_own_case_never_a_silent_pass(run_cli, project):
    """`expect = "none"` with `tier = "Gold"` used to pass: no rule matched a tier that is none."""
    write_tests(project, TWO_CASES)
    result = run_cli("test", project)
    assert result.exit_code == 2, result.output
    assert "r.test.toml:10:40: RR400 error: case `typo`: tier: " in result.output
    assert '"Gold" is not a tier; valid values: B, S, G, P' in result.output
    assert "passed" not in result.output


@pytest.mark.parametrize(
    ("case", "where", "message"),
    [
        ('customer = { spend_12m = "ten" }', "3:26", 'spend_12m: "ten" is not a number'),
        ("customer = { spend_12m = nan }", "3:26", "spend_12m: nan is not a finite number"),
        ("customer = { sms_opt_in = 1 }", "3:27", "sms_opt_in: 1 is not true or false"),
        ('customer = { birthday = "1990-01-01" }', "3:25", "is text, not a date"),
        ("customer = { birthday = 1066-10-14 }", "3:25", "outside the dates data may carry"),
        ("customer = { city = 3 }", "3:21", "city: 3 is not text"),
        ('derived = { stage = "asleep" }', "3:21", "is not a stage"),
        ("derived = { rfm_score = true }", "3:25", "rfm_score: true is not a number"),
        ("derived = { tier_x = 1 }", "3:13", "unknown derived field `tier_x`"),
        ('contacts = [{ channel = "sms" }]', "3:13", "a contact needs `sent_at`"),
        ('contacts = [{ channel = "fax", sent_at = 2026-11-20 }]', "3:25", "unknown channel `fax`"),
        ("contacts = [{ sent_at = 2026-11-20, when = 1 }]", "3:37", "unknown contact key `when`"),
        ('contacts = [{ channel = "sms", sent_at = "soon" }]', "3:42", "is text, not a date or time"),
        ("as_of = 0001-01-01", "3:9", "as_of 0001-01-01 is outside the dates"),
        ('expect_removed = { reason = "consent" }', "3:18", "names its `rule`"),
        ("expect = {}", "3:10", "names at least the rule"),
        ('expect = { rule = "vip", action = "mail" }', "3:35", "unknown action `mail`"),
        ('expect = { rule = "vip", parameters = 5 }', "3:39", "`parameters` must be a table"),
    ],
)
def test_each_bad_value_in_a_case_is_rr400_at_its_line_and_column(
    run_cli, project, case, where, message
):
    text = f"as_of = 2026-11-22\n[[case]]\n{case}\n"
    if "expect" not in case:
        text += 'expect = "none"\n'
    write_tests(project, text)
    result = run_cli("test", project)
    assert result.exit_code == 2, result.output
    assert f"r.test.toml:{where}: RR400 error: case `case 1`: " in result.output
    assert message in result.output
    assert "Traceback" not in result.output and "internal error" not in result.output


def test_bad_defaults_are_reported_where_the_default_is_written(run_cli, project):
    write_tests(
        project,
        'as_of = 2026-11-22\n[defaults]\ncustomer = { email_opt_in = "yes" }\n'
        '[[case]]\nderived = { stage = "sleeping" }\nexpect = { rule = "winback" }\n',
    )
    result = run_cli("test", project)
    assert result.exit_code == 2
    assert (
        'r.test.toml:3:29: RR400 error: email_opt_in: "yes" is not true or false' in result.output
    )


def test_a_contact_timestamp_is_taken_in_the_shops_time_zone(run_cli, project):
    """20:00 UTC on the 18th is the 19th in Asia/Shanghai: inside the 3-day quiet period."""
    (project / "retentionrules.toml").write_text('[contacts]\nquiet_period = "3 days"\n')
    write_tests(
        project,
        PASSING + '\n[[case]]\nname = "quiet"\nderived = { stage = "sleeping" }\n'
        'contacts = [{ channel = "email", sent_at = 2026-11-18T20:00:00Z }]\nexpect = "none"\n'
        'expect_removed = { rule = "winback", reason = "quiet_period" }\n',
    )
    result = run_cli("test", project)
    assert result.exit_code == 0, result.output


def test_a_test_file_with_a_bom_or_in_gbk_never_crashes(run_cli, project):
    (project / "r.test.toml").write_bytes("\ufeff".encode() + PASSING.encode())
    assert run_cli("test", project).exit_code == 0
    (project / "r.test.toml").write_bytes(
        PASSING.replace("sleeping customers", "沉睡客户").encode("gbk")
    )
    result = run_cli("test", project)
    assert result.exit_code == 2 and "not UTF-8" in result.output, result.output
