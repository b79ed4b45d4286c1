"""The command line: exit codes CI relies on, machine formats, fmt's modes, no tracebacks."""

import json
import subprocess
import sys

import pytest

from .conftest import ROOT

TYPO = "rule winback\n  when stge = sleeping\n  then send winback_coupon\n"


@pytest.fixture
def typo_file(tmp_path):
    path = tmp_path / "typo.rules"
    path.write_text(TYPO, encoding="utf-8")
    return path


def test_clean_rules_exit_0(run_cli):
    result = run_cli("check", ROOT / "rules", ROOT / "examples")
    assert result.exit_code == 0, result.output
    assert "0 errors" in result.output


def test_typo_shows_line_column_caret_and_suggestion(run_cli, typo_file):
    result = run_cli("check", typo_file)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == f"{typo_file}:2:8: RR200 error: unknown field or segment `stge`"
    assert lines[1:3] == ["      when stge = sleeping", "           ^^^^"]
    assert "did you mean `stage`?" in lines[3]


def test_json_format(run_cli, typo_file):
    result = run_cli("check", "--format", "json", typo_file)
    payload = json.loads(result.output)
    (diagnostic,) = payload["diagnostics"]
    assert diagnostic["code"] == "RR200" and diagnostic["line"] == 2 and diagnostic["column"] == 8


def test_github_annotations(run_cli, typo_file):
    result = run_cli("check", "--format", "github", typo_file)
    assert result.output.startswith(f"::error file={typo_file},line=2,col=8,")
    assert "title=RR200::unknown field or segment `stge`" in result.output


def test_sarif(run_cli, typo_file):
    log = json.loads(run_cli("check", "--format", "sarif", typo_file).output)
    (result,) = log["runs"][0]["results"]
    assert result["ruleId"] == "RR200"
    assert result["locations"][0]["physicalLocation"]["region"]["startLine"] == 2


def test_warnings_fail_only_with_strict(run_cli, tmp_path):
    path = tmp_path / "one.rules"
    path.write_text("when stage = sleeping and tier >= G then send winback coupon\n")
    assert run_cli("check", path).exit_code == 0
    assert run_cli("check", "--strict", path).exit_code == 1


def test_usage_errors_exit_2(run_cli, tmp_path):
    assert run_cli("check", tmp_path / "missing.rules").exit_code == 2
    assert run_cli("check", tmp_path).exit_code == 2  # no rule files in it
    bad_config = tmp_path / "bad.toml"
    bad_config.write_text("[channels.sms]\ncost = -1\n")
    (tmp_path / "r.rules").write_text(TYPO)
    result = run_cli("check", "--config", bad_config, tmp_path / "r.rules")
    assert result.exit_code == 2 and "channels.sms" in result.output


def test_config_found_next_to_rules(run_cli, tmp_path):
    (tmp_path / "retentionrules.toml").write_text('default_channel = "email"\n')
    (tmp_path / "r.rules").write_text("rule r\n  when tier = P\n  then send x via sms\n")
    assert run_cli("check", tmp_path).exit_code == 0
    (tmp_path / "retentionrules.toml").write_text('default_channel = "fax"\n')
    assert run_cli("check", tmp_path).exit_code == 2


def test_fmt_check_diff_and_write(run_cli, tmp_path):
    path = tmp_path / "r.rules"
    path.write_text("rule  r\n  then send x\n  when tier=P   # keep me\n")
    result = run_cli("fmt", "--check", path)
    assert result.exit_code == 1 and f"would reformat {path}" in result.output
    diff = run_cli("fmt", "--diff", path)
    assert diff.exit_code == 1 and "+  when tier = P  # keep me" in diff.output
    assert path.read_text() == "rule  r\n  then send x\n  when tier=P   # keep me\n"
    assert run_cli("fmt", path).exit_code == 0
    assert path.read_text() == "rule r\n  when tier = P  # keep me\n  then send x\n"
    assert run_cli("fmt", "--check", path).exit_code == 0


def test_fmt_refuses_broken_files(run_cli, tmp_path):
    path = tmp_path / "r.rules"
    path.write_text("rule r\n  when tier = = P\n")
    result = run_cli("fmt", path)
    assert result.exit_code == 1 and "RR100" in result.output
    assert path.read_text() == "rule r\n  when tier = = P\n"


def test_repository_rules_are_formatted(run_cli):
    assert run_cli("fmt", "--check", ROOT / "rules", ROOT / "examples").exit_code == 0


def test_console_script_never_prints_a_traceback(tmp_path):
    path = tmp_path / "bin.rules"
    path.write_bytes(b"\xff\xfe\x00rule")
    result = subprocess.run(
        [sys.executable, "-m", "retentionrules", "check", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert "RR001" in result.stdout
