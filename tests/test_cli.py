"""The command line: exit codes CI relies on, machine formats, fmt's modes, no tracebacks."""

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

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


def test_ctrl_c_while_the_command_loads_ends_quietly_with_130():
    """A Ctrl-C while the command's modules load (the first fraction of a second, before any
    command runs) printed a Python traceback. Seeded instants once Typer has begun to load."""
    rng = random.Random(7)
    for _ in range(8):
        process = subprocess.Popen(
            [sys.executable, "-X", "importtime", "-m", "retentionrules", "check", ROOT / "rules"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stderr is not None
        seen = []
        for line in process.stderr:
            seen.append(line)
            if "typer.colors" in line:  # among the first of Typer's modules
                break
        time.sleep(rng.uniform(0, 0.015))
        process.send_signal(signal.SIGINT)
        _, rest = process.communicate(timeout=60)
        err = "".join(seen) + rest
        assert "Traceback" not in err, err
        assert process.returncode == 130, err
        assert err.rstrip().endswith("retentionrules: interrupted")


def test_fmt_diff_is_a_patch_that_applies(run_cli, tmp_path, monkeypatch):
    """`str.splitlines` cut lines at U+2028 in a comment: the hunk counted four lines in a file of
    three, and `git apply` refused it. A file without a final line end is marked as such."""
    original = "rule r # a\u2028b\n    when tier = G\n  then send x  # no line end"
    monkeypatch.chdir(tmp_path)
    path = Path("ls.rules")
    path.write_text(original, encoding="utf-8")
    diff = run_cli("fmt", "--diff", path)
    assert diff.exit_code == 1
    assert "@@ -1,3 +1,3 @@" in diff.output
    assert "\\ No newline at end of file\n" in diff.output
    (tmp_path / "change.patch").write_text(diff.output, encoding="utf-8")
    subprocess.run(["git", "apply", "change.patch"], check=True, capture_output=True)
    assert run_cli("fmt", "--check", path).exit_code == 0  # the patch did what fmt does


def test_fmt_leaves_a_read_only_file_alone_and_formats_the_others(run_cli, tmp_path):
    """fmt renamed over a 0444 file (the rename only needs the folder); and one file it could not
    write stopped it: the files after it were neither formatted nor reported."""
    unformatted = "rule  r\n  then send x\n  when tier=P\n"
    files = [tmp_path / f"{name}.rules" for name in ("a", "b", "c")]
    for path in files:
        path.write_text(unformatted)
    files[0].chmod(0o444)
    files[1].chmod(0o444)
    result = run_cli("fmt", tmp_path)
    assert result.exit_code == 2
    for path in files[:2]:
        assert f"{path}: the file is read-only (mode 0444); left as it is" in result.output
        assert path.read_text() == unformatted
    assert f"reformatted {files[2]}" in result.output
    assert files[2].read_text() == "rule r\n  when tier = P\n  then send x\n"


def test_fmt_never_overwrites_a_save_made_while_it_worked(tmp_path):
    """An editor's save between fmt's read and its rename was lost. fmt reads every file first,
    then formats them one by one: the second file is saved anew the moment the first one's
    private folder appears (fmt has read both and is about to write the first)."""
    rules = "".join(f"rule r{i}\n  then send x\n  when tier=P\n" for i in range(1500))
    first, second = tmp_path / "a.rules", tmp_path / "b.rules"
    first.write_text(rules)
    second.write_text(rules)
    process = subprocess.Popen(
        [sys.executable, "-m", "retentionrules", "fmt", first, second],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not any(p.name.startswith(".retentionrules-tmp-") for p in tmp_path.iterdir()):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.0003)
    saved = "rule mine\n  when tier = P\n  then send y\n"
    second.write_text(saved)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 2, out + err
    assert f"{second}: the file changed while fmt was formatting it" in err
    assert second.read_text() == saved
    assert f"reformatted {first}" in out and first.read_text().startswith("rule r0\n  when")


def test_a_signal_while_duckdb_loads_never_aborts_the_process(tmp_path):
    """DuckDB's extension aborts the process (a core dump, "Critical nanobind error") when any
    exception is raised in Python code it runs while it loads: a Ctrl-C or SIGTERM then killed
    the run with SIGABRT. The signal waits until it has loaded. `atexit` is imported from inside
    its initialisation: the signal is sent at seeded instants right after."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.rules").write_text("rule r\n  when total_orders = 0\n  then send x via email\n")
    customers = tmp_path / "c.csv"
    customers.write_text("customer_id\nC1\n")
    rng = random.Random(6)
    for number in (signal.SIGTERM, signal.SIGINT) * 6:
        process = subprocess.Popen(
            [sys.executable, "-X", "importtime", "-m", "retentionrules", "plan", "--rules",
             rules, "--customers", customers, "--as-of", "2026-11-22"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert process.stderr is not None
        seen = []
        for line in process.stderr:
            seen.append(line)
            if line.rstrip().endswith(" atexit"):
                break
        time.sleep(rng.uniform(0, 0.008))
        process.send_signal(number)
        _, rest = process.communicate(timeout=60)
        err = "".join(seen) + rest
        assert "Critical" not in err and "Traceback" not in err, err
        assert process.returncode == 128 + number, err


def test_the_console_script_builds_only_the_command_it_runs_yet_reads_as_the_whole_app():
    """`main` builds only the command named (start-up); help, `--version`, sub-groups and a
    misspelt command must read as they do from the whole app."""
    import subprocess
    import sys

    def run(code: str, *args: str) -> tuple[int, str]:
        done = subprocess.run(
            [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT
        )
        return done.returncode, done.stdout + done.stderr

    lean = "import sys; sys.argv[0] = 'retentionrules'; from retentionrules.cli import main; main()"
    whole = "from retentionrules.cli import app; app(prog_name='retentionrules')"
    for args in (["--help"], ["plan", "--help"], ["ledger", "--help"], ["nosuch"], ["plan"]):
        assert run(lean, *args) == run(whole, *args), args
    assert run(lean, "--version")[1].startswith("retentionrules ")


def test_ci_runs_the_readmes_test_command_as_written():
    """The README's second quick-start command is what CI runs: the one cannot drift from the
    other (a fresh machine needs the same system packages CI installs)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Quick start", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    commands = block.strip().splitlines()
    assert len(commands) == 2  # one to plan the demo shop, one to run every test
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert commands[1] in ci
