"""Golden files: the exact text users see for every diagnostic code, and fmt's canonical layout.

Regenerate after an intended change with `UPDATE_GOLDEN=1 pytest tests/test_golden.py` and review
the diff like any other change.
"""

import os
from pathlib import Path

import pytest

from retentionrules.api import check_paths, check_sources, format_source
from retentionrules.config import Config
from retentionrules.diagnostics import Code
from retentionrules.render import render_text
from retentionrules.testing import run_tests

from .conftest import GOLDEN

UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
CASES = sorted(p.name for p in (GOLDEN / "diagnostics").iterdir())
FMT_CASES = sorted((GOLDEN / "fmt").glob("*.rules"))
WIDE_CASES = sorted((GOLDEN / "fullwidth").glob("*.rules"))


def compare(expected_file: Path, actual: str) -> None:
    if UPDATE:
        expected_file.write_text(actual, encoding="utf-8")
    assert actual == expected_file.read_text(encoding="utf-8")


def test_every_code_has_a_golden_case():
    assert sorted(c.value for c in Code) == CASES


@pytest.mark.parametrize("code", CASES)
def test_diagnostic_golden(code, monkeypatch):
    folder = GOLDEN / "diagnostics" / code
    monkeypatch.chdir(folder)
    report = check_paths(["input.rules"])
    diagnostics, sources = report.diagnostics, report.sources
    tests = Path("input.test.toml")
    if tests.exists():  # a problem in a rule-test file, found by `retentionrules test`
        tested = run_tests(report, [tests])
        diagnostics, sources = tested.problems, tested.sources
    assert code in {d.code for d in diagnostics}
    compare(folder / "expected.txt", render_text(diagnostics, sources) + "\n")


@pytest.mark.parametrize("case", FMT_CASES, ids=lambda p: p.stem)
def test_fmt_golden(case):
    source = case.read_text(encoding="utf-8")
    formatted, errors = format_source(source, str(case))
    assert errors == []
    compare(case.with_suffix(".expected"), formatted)
    assert format_source(formatted)[0] == formatted
    assert reported(formatted) == reported(source)  # the same noqa comments silence the same


def reported(text: str) -> list[str]:
    return sorted(d.code for d in check_sources({"r.rules": text}, Config()).diagnostics)


def test_language_reference_documents_every_code():
    reference = (GOLDEN.parent.parent / "docs" / "language.md").read_text(encoding="utf-8")
    assert [c.value for c in Code if f"| {c.value} |" not in reference] == []


@pytest.mark.parametrize("case", WIDE_CASES, ids=lambda p: p.stem)
def test_full_width_punctuation_and_wide_text_golden(case, monkeypatch):
    """Chinese text before the problem: the caret stays under it (wide characters take two
    columns); full-width punctuation gets the ASCII character to use instead."""
    monkeypatch.chdir(case.parent)
    report = check_paths([case.name])
    compare(case.with_suffix(".expected"), render_text(report.diagnostics, report.sources) + "\n")


def test_full_width_punctuation_hints_name_the_ascii_character():
    from retentionrules.parser import ascii_for

    table = {"“": '"', "”": '"', "，": ",", "＞": ">", "＜": "<", "（": "(", "）": ")",
             "＝": "=", "！": "!", "［": "[", "］": "]", "、": ",", "。": ".", "３": "3",
             "a": None, "上": None, "→": None}  # fmt: skip
    assert {c: ascii_for(c) for c in table} == table
