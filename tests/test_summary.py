"""The terminal summary of a plan, as a new user reads it: what each step removed, a legend,
`planned` (a plan is a dry run), tags as tags, checker warnings before the table, and every cap
that was not applied named. The demo shop's summary is a golden file, and the README shows
exactly that text.

Regenerate after an intended change with `UPDATE_GOLDEN=1 pytest tests/test_summary.py`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from .conftest import GOLDEN, ROOT

UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
QUICK_START = (
    "plan --rules examples/rules --customers examples/customers.csv --orders examples/orders.csv "
    "--products examples/products.csv --as-of 2026-11-22 --out demo-plan.jsonl"
)


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The command as a person runs it, output in a pipe (tables at the width CI logs get)."""
    return subprocess.run(
        [sys.executable, "-m", "retentionrules", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def shown(text: str) -> str:
    """Output as a transcript shows it: without the blanks rich pads a centred title with."""
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"


def demo_summary(tmp_path: Path) -> str:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    result = run(tmp_path, *QUICK_START.split())
    assert result.returncode == 0, result.stderr
    return shown(result.stdout)


def test_demo_shop_summary_matches_its_golden_file_and_the_readme(tmp_path):
    summary = demo_summary(tmp_path)
    golden = GOLDEN / "summary" / "demo.txt"
    if UPDATE:
        golden.write_text(summary, encoding="utf-8")
    assert summary == golden.read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"$ retentionrules {QUICK_START}\n{summary}" in readme


def test_summary_shows_removals_that_add_up_to_what_is_planned(tmp_path):
    """matched minus every step's removals is planned, row by row: the numbers under consent,
    caps... are what that step took away, never what it kept."""
    lines = demo_summary(tmp_path).splitlines()
    header = next(line for line in lines if "┃ rule" in line)
    names = [cell.strip() for cell in header.strip("┃").split("┃")]
    assert names == [
        "rule", "action", "matched", "consent", "caps", "priority", "household", "volume",
        "holdout", "planned", "cost",
    ]  # fmt: skip
    rows = [
        [cell.strip() for cell in line.strip("│").split("│")]
        for line in lines
        if line.startswith("│")
    ]
    assert rows and rows[-1][0] == "total"
    for row in rows:
        matched, *removed, planned = (int(v) for v in row[2:10])
        assert all(n <= 0 for n in removed), row
        assert matched + sum(removed) == planned, row
    winback_silver = next(r for r in rows if r[0] == "winback_silver")
    assert winback_silver[1:10] == ["send via sms", "13", "-3", "-1", "-2", "0", "0", "0", "7"]
    assert any(line.startswith("matched: ") for line in lines)  # the legend
    assert not any(" sent " in line for line in lines if line.startswith("┃"))


def write_project(root: Path, rules: str, channels: str = "") -> Path:
    (root / "rules").mkdir(parents=True)
    (root / "rules" / "r.rules").write_text(rules, encoding="utf-8")
    config = (ROOT / "examples" / "retentionrules.toml").read_text(encoding="utf-8")
    (root / "retentionrules.toml").write_text(config + channels, encoding="utf-8")
    return root


SHADOWED = """\
rule lapsed "A label for lapsed customers"
  when stage = lost
  then tag lapsed_2026
  priority 10

rule winback "Win back"
  when stage = sleeping
  then send winback_coupon via sms with amount = 5
  priority 80

rule winback_gold "Never fires: winback takes every customer first"
  when stage = sleeping and tier >= G
  then send winback_coupon via sms with amount = 50
  priority 70

rule care "Care message"
  when stage = silent
  then send care_message via email
  priority 60
  cap 1 per 30 days
"""


def plan_summary(root: Path) -> str:
    shop = ROOT / "examples"
    result = run(root, "plan", "--rules", "rules", "--customers", str(shop / "customers.csv"),
                 "--as-of", "2026-11-22")  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_checker_warnings_are_printed_before_the_plan(tmp_path):
    out = plan_summary(write_project(tmp_path, SHADOWED))
    warning = out.index("RR302 warning: rule `winback_gold` never fires")
    assert warning < out.index("customers removed by each step") < out.index("│ total")


def test_a_tag_shows_as_a_tag_not_as_a_message(tmp_path):
    out = plan_summary(write_project(tmp_path, SHADOWED))
    (row,) = [line for line in out.splitlines() if line.startswith("│ lapsed ")]
    assert "│ tag lapsed_2026 │" in row and row.rstrip().endswith("│ 0.00 │")
    assert "(a tag is a label: sent to nobody)" in out


def test_the_caps_note_names_every_cap_not_applied(tmp_path):
    """Without a contact history no cap can count: each rule's and each channel's is named."""
    capped = '\n[channels.email.cap]\ncount = 10\nper = "40 days"\n'
    config_text = (ROOT / "examples" / "retentionrules.toml").read_text(encoding="utf-8")
    assert "[channels.email.cap]" not in config_text
    out = plan_summary(write_project(tmp_path, SHADOWED, capped))
    assert (
        "note: no contact history given (--contacts): these caps were not applied: "
        "rule care (1 per 30 days), channel email (10 per 40 days)"
    ) in " ".join(out.split())
