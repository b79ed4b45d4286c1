"""The pre-commit hooks as pre-commit runs them: the hook's `entry`, then the changed files that
match its `files` pattern. `retentionrules-check` checks the whole project of each changed
file, so that a rule using a segment defined in another file passes."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

from .conftest import ROOT, write_rules


def hook(name: str) -> tuple[list[str], re.Pattern[str]]:
    """The entry and `files` pattern of a hook in .pre-commit-hooks.yaml (read as text: the
    file is flat, one `key: value` a line, and the tests need no YAML library)."""
    text = (ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8")
    block = re.split(rf"^- id: {re.escape(name)}$", text, flags=re.M)[1].split("\n- id: ")[0]
    entry = re.search(r"^  entry: (.+)$", block, re.M)
    files = re.search(r"^  files: (.+)$", block, re.M)
    assert entry and files
    return shlex.split(entry.group(1)), re.compile(files.group(1))


def run_hook(name: str, changed: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    entry, files = hook(name)
    assert entry[0] == "retentionrules"
    matched = [path for path in changed if files.search(path)]
    return subprocess.run(
        [sys.executable, "-m", "retentionrules", *entry[1:], *matched],
        capture_output=True, text=True, cwd=cwd, timeout=120,
    )  # fmt: skip


SEGMENTS = "segment high_value = tier >= G\n"
RULES = "rule winback\n  when stage = sleeping and high_value\n  then send winback_coupon\n"


def test_the_check_hook_passes_a_rule_using_a_segment_of_another_file(tmp_path):
    project = write_rules(tmp_path / "rules", RULES)
    (project / "segments.rules").write_text(SEGMENTS, encoding="utf-8")
    result = run_hook("retentionrules-check", ["rules/r.rules"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 errors, 0 warnings in 2 files" in result.stdout


def test_the_check_hook_still_fails_a_real_error_in_the_changed_files_project(tmp_path):
    project = write_rules(tmp_path / "rules", RULES.replace("high_value", "high_valu"))
    (project / "segments.rules").write_text(SEGMENTS, encoding="utf-8")
    result = run_hook("retentionrules-check", ["rules/segments.rules"], tmp_path)
    assert result.returncode == 1
    assert "rules/r.rules:2:29: RR200 error: unknown field or segment `high_valu`" in result.stdout


def test_a_changed_configuration_checks_its_project(tmp_path):
    project = write_rules(tmp_path / "shop", RULES, '[stages]\nactive = "200 days"\n')
    (project / "segments.rules").write_text(SEGMENTS, encoding="utf-8")
    changed = ["shop/retentionrules.toml", "README.md"]
    result = run_hook("retentionrules-check", changed, tmp_path)
    assert result.returncode == 2
    assert (
        "shop/retentionrules.toml:2:10: stages.active: active (200 days) must be shorter than "
        "silent (180 days, the default)"
    ) in result.stderr


def test_check_project_takes_each_files_project_once(run_cli, tmp_path, monkeypatch):
    """Two projects' changed files: each checked whole, under its own configuration."""
    for name in ("a", "b"):
        project = write_rules(tmp_path / name, RULES)
        (project / "segments.rules").write_text(SEGMENTS, encoding="utf-8")
        (project / "sub").mkdir()
        (project / "sub" / "more.rules").write_text(
            "rule more\n  when high_value\n  then tag hv\n", encoding="utf-8"
        )
    monkeypatch.chdir(tmp_path)
    alone = run_cli("check", "a/sub/more.rules", "b/r.rules")
    assert alone.exit_code == 1  # each file on its own does not know the segment
    whole = run_cli("check", "--project", "a/sub/more.rules", "a/r.rules", "b/r.rules")
    assert whole.exit_code == 0, whole.output
    assert "0 errors, 0 warnings in 6 files" in whole.output


def test_check_project_names_files_as_they_were_given(run_cli, tmp_path, monkeypatch):
    """Relative paths in, relative paths out: a CI annotation (`--format github`) names the file
    in the repository, never the runner's absolute path."""
    project = write_rules(tmp_path / "shop", "rule r\n  when stge = sleeping\n  then tag x\n")
    (project / "other.rules").write_text("rule s\n  when tier = G\n  then tag y\n")
    monkeypatch.chdir(tmp_path)
    result = run_cli("check", "--project", "shop/other.rules", "--format", "github")
    assert result.exit_code == 1
    assert "::error file=shop/r.rules,line=2," in result.output
    assert str(tmp_path) not in result.output
