"""`retentionrules test`: cases pass and fail as a real plan would, coverage is enforced,
and broken test files give diagnostics, never tracebacks."""

import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

import pytest

from retentionrules import testing
from retentionrules.api import check_paths
from retentionrules.errors import DataError

from .conftest import DEEP_TOML, ROOT, write_rules

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
        (
            'contacts = [{ channel = "sms", sent_at = "soon" }]',
            "3:42",
            "is text, not a date or time",
        ),
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


# ---------------------------------------------------------------- review findings (issue 8)


def run_case(run_cli, project, case, config=None, *args):
    """One case, as the only case of the project's test file, run through `retentionrules test`."""
    if config is not None:
        (project / "retentionrules.toml").write_text(config, encoding="utf-8")
    write_tests(project, f"as_of = 2026-11-22\n[[case]]\n{case}\n")
    return run_cli("test", project, *args)


def assert_rr400(result, where, message):
    assert result.exit_code == 2, result.output
    assert f"r.test.toml:{where}: RR400 error: case `case 1`: {message}" in result.output
    assert "Traceback" not in result.output and "internal error" not in result.output


def test_a_derived_number_beyond_the_data_limits_is_rr400_at_the_value_not_a_crash(
    run_cli, project
):
    """1e300 days used to end `test` with DuckDB's "out of range for INT64", exit 2."""
    case = 'derived = { days_since_last_order = 1e300 }\nexpect = "none"'
    result = run_case(run_cli, project, case)
    assert_rr400(result, "3:37", "days_since_last_order: 1e+300 is out of range")
    assert "between -10^15 and 10^15" in result.output


@pytest.mark.parametrize(
    ("values", "where", "message"),
    [
        ("derived = { days_since_last_order = 30.4 }", "3:37", "days_since_last_order: 30.4 is"),
        ("derived = { days_to_birthday = 1.5 }", "3:32", "days_to_birthday: 1.5 is not a whole"),
        ("derived = { recency_score = 2.5 }", "3:29", "recency_score: 2.5 is not a whole number"),
        ("derived = { rfm_score = -1e15 }", "3:25", "rfm_score: -1000000000000000.0 is out of"),
        ("customer = { orders_12m = -1 }", "3:27", "orders_12m: -1 is negative"),
        ("customer = { spend_12m = 1e15 }", "3:26", "spend_12m: 1000000000000000.0 is out of"),
    ],
)
def test_a_fraction_for_a_whole_number_field_or_a_number_beyond_the_limits_is_rr400(
    run_cli, project, values, where, message
):
    """30.4 days used to be rounded to 30 where it is stored: `between 7 and 30` passed."""
    (project / "r.rules").write_text(
        "rule winback\n  when days_since_last_order between 7 and 30\n  then send winback\n"
        "rule vip\n  when tier = P\n  then call care\n"
    )
    result = run_case(run_cli, project, f'{values}\nexpect = {{ rule = "winback" }}')
    assert_rr400(result, where, message)


def test_a_whole_number_written_with_a_point_is_taken(run_cli, project):
    (project / "r.rules").write_text(
        "rule winback\n  when days_since_last_order between 7 and 30\n  then send winback\n"
    )
    result = run_case(
        run_cli,
        project,
        'customer = { sms_opt_in = true }\nderived = { days_since_last_order = 30.0 }\n'
        'expect = { rule = "winback" }',
    )
    assert result.exit_code == 0, result.output


def test_a_case_with_an_empty_expect_removed_expects_nothing_and_is_rr400(run_cli, project):
    """It printed PASS: it asserted nothing at all."""
    write_tests(
        project,
        'as_of = 2026-11-22\n[[case]]\nname = "idle"\ncustomer = { sms_opt_in = true }\n'
        "expect_removed = []\n",
    )
    result = run_cli("test", project)
    assert result.exit_code == 2, result.output
    assert "r.test.toml:3:8: RR400 error: case `idle`: expects nothing" in result.output
    assert "PASS" not in result.output


def test_expect_none_beside_an_empty_expect_removed_still_asserts_no_action(run_cli, project):
    case = 'derived = {{ stage = "{stage}" }}\nexpect = []\nexpect_removed = []'
    quiet = run_case(run_cli, project, case.format(stage="lost"))
    assert quiet.exit_code == 0, quiet.output
    sleeping = run_case(
        run_cli, project, "customer = { email_opt_in = true }\n" + case.format(stage="sleeping")
    )
    assert sleeping.exit_code == 1, sleeping.output
    assert "expected no action, got {rule = 'winback'" in sleeping.output


@DEEP_TOML
def test_a_test_file_nested_thousands_deep_is_rr400_not_a_recursion_error(
    run_cli, project, value
):
    write_tests(project, f'as_of = 2026-11-22\n[[case]]\nexpect = "none"\nname = {value}\n')
    result = run_cli("test", project)
    assert result.exit_code == 2, result.output[:2000]
    assert "r.test.toml:1:1: RR400 error: not readable: arrays or tables nested too deeply" in (
        result.output
    )
    assert "RecursionError" not in result.output and "internal error" not in result.output


BROKEN_TESTS = 'as_of = 2026-11-22\n[[case]]\nexpect = { rule = "winbak" }\n'
BROKEN_RULES = "rule stray\n  when stag = sleeping\n  then tag t\n"


@pytest.mark.parametrize("broken", ["test file", "rule file"])
def test_a_broken_file_is_reported_on_stdout_in_the_ci_format_asked_for(run_cli, project, broken):
    """Nothing reached stdout: no annotations on the pull request, an empty JUnit file."""
    write_tests(project, PASSING if broken == "rule file" else BROKEN_TESTS)
    if broken == "rule file":
        (project / "s.rules").write_text(BROKEN_RULES)
    name, line, column, code = (
        ("s.rules", 2, 8, "RR200") if broken == "rule file" else ("r.test.toml", 3, 19, "RR400")
    )
    path = str(project / name)

    github = run_cli("test", project, "--format", "github")
    assert github.exit_code == 2
    assert github.stdout.startswith(f"::error file={path.replace(':', '%3A')},line={line},")
    assert f"title={code}::" in github.stdout

    data = run_cli("test", project, "--format", "json")
    assert data.exit_code == 2
    (problem,) = json.loads(data.stdout)["diagnostics"]
    assert (problem["path"], problem["line"], problem["column"]) == (path, line, column)
    assert problem["code"] == code and problem["severity"] == "error"

    junit = run_cli("test", project, "--format", "junit")
    assert junit.exit_code == 2
    suite = ET.fromstring(junit.stdout)
    assert (suite.get("tests"), suite.get("errors"), suite.get("failures")) == ("1", "1", "0")
    error = suite.find("testcase/error")
    assert error is not None and error.get("type") == code
    assert suite.find("testcase").get("name") == f"{path}:{line}:{column}"


INJECTION = (
    'name = "ok\\n::warning::second"\nderived = { stage = "lost" }\nexpect = { rule = "winback" }'
)


def test_a_case_name_cannot_inject_a_workflow_command_in_github_output(run_cli, project):
    """A line break in the name started a second workflow command, `::warning::second`."""
    result = run_case(run_cli, project, INJECTION, None, "--format", "github")
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"::error file={project / 'r.test.toml'},line=3,")
    assert ",title=ok%0A%3A%3Awarning%3A%3Asecond::expected {rule = 'winback'}" in lines[0]
    assert [line[:9] for line in lines] == ["::error f", "::notice "]


def test_a_case_name_in_a_broken_test_file_cannot_inject_a_workflow_command(run_cli, project):
    case = INJECTION.replace('"winback"', '"winbak"')
    result = run_case(run_cli, project, case, None, "--format", "github")
    assert result.exit_code == 2
    (line,) = result.stdout.splitlines()
    assert "::case `ok%0A::warning::second`: unknown rule `winbak`" in line
    for output in (result.stdout, result.stderr):  # people read stderr in the same CI log
        assert not any(line.startswith("::warning") for line in output.splitlines())


CONTROLS = 'name = "bell\\u0007 escape\\u001b[31m start\\u0001 line\\nbreak"'


def test_control_characters_in_a_case_name_are_escaped_in_text_and_junit(run_cli, project):
    failing = f'{CONTROLS}\nderived = {{ stage = "lost" }}\nexpect = {{ rule = "winback" }}'
    text = run_case(run_cli, project, failing)
    assert text.exit_code == 1
    shown = "bell\\u0007 escape\\u001b[31m start\\u0001 line\\u000abreak"
    assert f"FAIL  {project / 'r.test.toml'}:3  {shown}\n" in text.output
    assert not any(c in text.output for c in "\x07\x1b\x01")
    junit = run_case(run_cli, project, failing, None, "--format", "junit")
    assert junit.exit_code == 1
    (case,) = ET.fromstring(junit.stdout)  # \x01 is not XML: it made the report unreadable
    assert case.get("name") == "bell\\u0007 escape\\u001b[31m start\\u0001 line\nbreak"
    broken = run_case(run_cli, project, CONTROLS + '\nexpect = { rule = "winbak" }')
    assert broken.exit_code == 2
    assert f"case `{shown}`: unknown rule `winbak`" in broken.stderr
    assert not any(c in broken.stderr for c in "\x07\x1b\x01")


TEMPORARY = ("customers.csv", "contacts.csv", "--rejects", "row 1", tempfile.gettempdir() + "/tmp")


@pytest.mark.parametrize(
    ("case", "where", "message"),
    [
        ("customer = { spend_12m = 1e300 }", "3:26", "spend_12m: 1e+300 is out of range"),
        ("customer = { total_orders = -3 }", "3:29", "total_orders: -3 is negative"),
        (
            "customer = { last_order_date = 2026-12-01 }",
            "3:32",
            "last_order_date: 2026-12-01 is after the as-of date 2026-11-22",
        ),
        ('customer = { customer_id = "  " }', "3:28", "customer_id: an id is never blank"),
        (
            'contacts = [{ channel = "sms", sent_at = 2199-12-31T23:00:00-05:00 }]',
            "3:42",
            "sent_at 2199-12-31T23:00:00-05:00 (2200-01-01 in the shop's time zone, "
            "Asia/Shanghai) is outside the dates data may carry (1900-01-01 to 2199-12-31)",
        ),
    ],
)
def test_data_the_loader_would_refuse_is_rr400_at_the_value_never_a_temporary_file(
    run_cli, project, case, where, message
):
    """These were reported at the case's name, column 1, as `customers.csv: row 1` (a temporary
    file) with advice to pass --rejects."""
    result = run_case(run_cli, project, case + '\nexpect = "none"', 'timezone = "Asia/Shanghai"')
    assert_rr400(result, where, message)
    assert not any(word in result.output for word in TEMPORARY)


def test_the_same_time_in_range_in_the_shops_zone_is_taken(run_cli, project):
    case = 'contacts = [{ channel = "sms", sent_at = 2199-12-31T23:00:00+08:00 }]\nexpect = "none"'
    assert run_case(run_cli, project, case, 'timezone = "Asia/Shanghai"').exit_code == 0


def test_data_only_the_loader_refuses_names_the_case_and_field_at_the_value(tmp_path):
    """The backstop for what the reader might let through: the loader's own message, without
    the temporary file it was written to or the --rejects advice."""
    folder = write_rules(tmp_path / "rules", RULES)
    write_tests(
        folder,
        'as_of = 2026-11-22\n[[case]]\nname = "negative"\n'
        'customer = { spend_12m = 5 }\nexpect = "none"\n',
    )
    report = check_paths([folder])
    reader = testing._Reader(report.ruleset)
    (case,) = reader.read(folder / "r.test.toml")
    case.customer["spend_12m"] = -5  # as if the reader had let it through
    temporary = tmp_path / "temporary"
    temporary.mkdir()
    with pytest.raises(DataError) as refused:
        testing._plan_case(case, report.ruleset, temporary)
    assert "--rejects" in str(refused.value) and str(temporary) in str(refused.value)
    problem = testing._refused(case, refused.value, temporary)
    assert problem.message == (
        "case `negative`: the customer is not valid: spend_12m: `-5` is negative"
    )
    assert (problem.span.line, problem.span.column) == (4, 26)
    assert problem.code == "RR400" and problem.path == str(folder / "r.test.toml")


HOLDOUT_RULES = (
    "rule a\n  when stage = sleeping\n  then send c via email\n  holdout 100%\n"
    "rule b\n  when stage = lost\n  then tag lost\n"
)
HELD = 'customer = { email_opt_in = true }\nderived = { stage = "sleeping" }\n'


def test_a_held_out_action_does_not_satisfy_expect(run_cli, project):
    """It satisfied both `expect` and `expect_removed ... holdout`: a held-out action is never
    sent, so expecting it to be sent must fail."""
    (project / "r.rules").write_text(HOLDOUT_RULES)
    result = run_case(run_cli, project, HELD + 'expect = { rule = "a" }')
    assert result.exit_code == 1, result.output
    assert "expected {rule = 'a'}" in result.output and "actual actions:   none" in result.output
    assert "a: planned as holdout (not sent)" in result.output


def test_a_held_out_action_is_expected_as_a_removal_and_is_not_coverage(run_cli, project):
    (project / "r.rules").write_text(HOLDOUT_RULES)
    case = HELD + 'expect = "none"\nexpect_removed = { rule = "a", reason = "holdout" }'
    result = run_case(run_cli, project, case)
    assert result.exit_code == 0, result.output
    assert "rule coverage: 0% (0 of 2 rules" in result.output
    assert "never fired: a" in result.output
    assert run_case(run_cli, project, case, None, "--min-coverage", "50").exit_code == 1


@pytest.mark.parametrize(
    ("text", "where", "message", "hint"),
    [
        (
            'as_of = "2026-11-22"\n[[case]]\nexpect = "none"\n',
            "1:9",
            'as_of "2026-11-22" is text, not a date',
            "write the date without quotes: as_of = 2026-11-22",
        ),
        (
            '[[case]]\nas_of = "2026-11-22"\nexpect = "none"\n',
            "2:9",
            'case `case 1`: as_of "2026-11-22" is text, not a date',
            "write the date without quotes: as_of = 2026-11-22",
        ),
        (
            'as_of = 2026-11-22\n[[case]]\nexpect = "none"\n'
            'contacts = [{ channel = "sms", sent_at = "2026-11-20" }]\n',
            "4:42",
            'case `case 1`: sent_at "2026-11-20" is text, not a date or time',
            "write the date without quotes: sent_at = 2026-11-20",
        ),
        (
            'as_of = 2026-11-22\n[[case]]\nexpect = "none"\n'
            'customer = { birthday = "1990-11-25" }\n',
            "4:25",
            'case `case 1`: birthday: "1990-11-25" is text, not a date',
            "write the date without quotes",
        ),
    ],
)
def test_a_quoted_date_is_refused_everywhere_with_the_same_hint(
    run_cli, project, text, where, message, hint
):
    """as_of and sent_at took "2026-11-22" in quotes while customer dates refused it."""
    write_tests(project, text)
    result = run_cli("test", project)
    assert result.exit_code == 2, result.output
    assert f"r.test.toml:{where}: RR400 error: {message}" in result.output
    assert f"hint: {hint}" in result.output


PARAMETERS = (
    "rule winback\n  when stage = sleeping\n"
    "  then send winback_coupon via email with amount = 1, vip = true, until = 2026-12-31, "
    "code = W1\n"
)


@pytest.mark.parametrize(
    ("expected", "passes"),
    [
        ("amount = 1, vip = true, until = 2026-12-31, code = 'W1'", True),
        ("amount = 1.0, vip = true, until = '2026-12-31', code = 'W1'", True),
        ("amount = true, vip = true, until = '2026-12-31', code = 'W1'", False),
        ("amount = 1, vip = 1, until = '2026-12-31', code = 'W1'", False),
        ("amount = '1', vip = true, until = '2026-12-31', code = 'W1'", False),
        ("amount = 1, vip = true, until = 2026-12-30, code = 'W1'", False),
        ("amount = 1, vip = true, until = 2026-12-31", False),  # parameters are compared whole
    ],
)
def test_expected_parameters_match_only_values_of_their_own_type(
    run_cli, project, expected, passes
):
    """`amount = 5` never equals true, `true` never equals 1; a date equals its ISO text."""
    (project / "r.rules").write_text(PARAMETERS)
    case = HELD + f"expect = {{ rule = 'winback', parameters = {{ {expected} }} }}"
    result = run_case(run_cli, project, case)
    assert result.exit_code == (0 if passes else 1), result.output


def test_an_expected_parameter_that_no_plan_can_hold_is_rr400(run_cli, project):
    (project / "r.rules").write_text(PARAMETERS)
    case = HELD + "expect = { rule = 'winback', parameters = { until = 2026-12-31T10:00:00 } }"
    result = run_case(run_cli, project, case)
    assert_rr400(
        result, "5:53", "parameter `until`: 2026-12-31T10:00:00 is not a number, text, true/false"
    )
    assert "hint: a plan's parameters are numbers, text (dates too) and true or false" in (
        result.output
    )


# ---------------------------------------------------------------- hostile test files


def test_a_fifo_named_like_a_test_file_is_rr400_never_a_hang(project):
    """The reader refused it, then the CLI read every test file again to show the problems
    under their lines: opening the FIFO waited for a writer for ever (/dev/zero: memory)."""
    write_tests(project, PASSING)
    os.mkfifo(project / "pipe.test.toml")
    done = subprocess.run(
        [sys.executable, "-m", "retentionrules", "test", project, "--format", "junit"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert f"{project / 'pipe.test.toml'}:1:1: RR400 error: cannot read: not a regular file" in (
        done.stderr
    )
    assert ET.fromstring(done.stdout).get("errors") == "1"


def test_a_symbolic_link_loop_named_like_a_test_file_is_rr400_not_a_crash(run_cli, project):
    write_tests(project, PASSING)
    (project / "loop.test.toml").symlink_to("loop.test.toml")
    result = run_cli("test", project)
    assert result.exit_code == 2, result.output
    assert "loop.test.toml:1:1: RR400 error: cannot read: Too many levels of symbolic links" in (
        result.output
    )
    assert "internal error" not in result.output


def test_a_folder_named_like_a_test_file_is_searched_not_read(run_cli, project):
    write_tests(project, PASSING)
    (project / "more.test.toml").mkdir()
    result = run_cli("test", project)
    assert result.exit_code == 0, result.output
    assert "1 passed, 0 failed" in result.output


@pytest.mark.parametrize("text", ["", "as_of = 2026-11-22\n", "case = []\n"])
def test_a_test_file_without_cases_is_rr400_not_a_silent_pass(run_cli, project, text):
    """It printed "0 passed, 0 failed" and exit 0: a file that tests nothing."""
    write_tests(project, text)
    result = run_cli("test", project)
    assert result.exit_code == 2, result.output
    assert "r.test.toml:1:1: RR400 error: no cases: this test file tests nothing" in result.output


def test_a_number_of_thousands_of_digits_in_a_test_file_is_rr400_at_the_number(run_cli, project):
    """Beyond Python's 4,300 digits tomllib fails with a plain ValueError (an internal error);
    beyond a double's range math.isfinite failed."""
    digits = "9" * 5000
    result = run_case(run_cli, project, f"customer = {{ spend_12m = {digits} }}")
    assert result.exit_code == 2, result.output[:2000]
    assert "r.test.toml:3:26: RR400 error: not readable: a number with more than 4,300 digits" in (
        result.output
    )
    big = digits[:400]  # beyond a double's range
    huge = run_case(run_cli, project, f'customer = {{ spend_12m = {big} }}\nexpect = "none"')
    assert_rr400(huge, "3:26", f"spend_12m: {big} is out of range")
    case = HELD + f"expect = {{ rule = 'winback', parameters = {{ amount = -{big} }} }}"
    expected = run_case(run_cli, project, case)  # a number no plan holds: a failure, not a crash
    assert expected.exit_code == 1, expected.output
    assert "internal error" not in expected.output


def test_the_readme_shows_what_testing_the_demo_shop_prints():
    """A new user runs the README's `test` command and must see what it shows."""
    import subprocess
    import sys

    from .conftest import ROOT

    command = "test examples/ --min-coverage 100"
    done = subprocess.run(
        [sys.executable, "-m", "retentionrules", *command.split()],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"$ retentionrules {command}\n{done.stdout}```" in readme
