"""Rule-test results for people (text), tools (json), CI (junit) and pull requests (github)."""

from __future__ import annotations

import json
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from .testing import CaseResult, TestRun


def render_run(run: TestRun, fmt: str) -> str:
    return {"text": _text, "json": _json, "junit": _junit, "github": _github}[fmt](run)


def _explain(result: CaseResult) -> list[str]:
    lines = []
    for trace in result.traces:
        lines.append(f"      {'✓' if trace.matched else '✗'} {trace.rule}: {trace.outcome}")
        lines.extend(
            f"          {'true ' if value else 'false'}  {text}" for text, value in trace.conditions
        )
    return lines


def _text(run: TestRun) -> str:
    out = []
    for result in run.results:
        case = result.case
        out.append(f"{'PASS' if result.passed else 'FAIL'}  {case.path}:{case.line}  {case.name}")
        if result.passed:
            continue
        for failure in result.failures:
            out.append(f"    {failure}")
        expected = case.expect if case.expect is not None else "(not asserted)"
        out.append(f"    expected actions: {expected or 'none'}")
        out.append(f"    actual actions:   {[_brief(a) for a in result.actual] or 'none'}")
        out.append("    trace:")
        out.extend(_explain(result))
    out.append(_coverage_text(run))
    passed = len(run.results) - run.failed
    out.append(f"{passed} passed, {run.failed} failed")
    return "\n".join(out)


def _brief(action: dict[str, Any]) -> dict[str, Any]:
    return {k: action[k] for k in ("rule", "action", "template", "channel", "parameters")}


def _coverage_text(run: TestRun) -> str:
    missing = [r for r in run.rules if r not in run.fired]
    lines = [
        f"rule coverage: {run.coverage:.0f}% ({len(run.rules) - len(missing)} of {len(run.rules)} "
        "rules fired in at least one case)"
    ]
    lines += [f"    never fired: {name}" for name in missing]
    return "\n".join(lines)


def _json(run: TestRun) -> str:
    return json.dumps(
        {
            "passed": len(run.results) - run.failed,
            "failed": run.failed,
            "coverage": round(run.coverage, 2),
            "rules_fired": sorted(run.fired),
            "rules_never_fired": [r for r in run.rules if r not in run.fired],
            "cases": [
                {
                    "name": r.case.name,
                    "file": r.case.path,
                    "line": r.case.line,
                    "passed": r.passed,
                    "failures": r.failures,
                    "actual": [_brief(a) for a in r.actual],
                    "expected": r.case.expect,
                    "expected_removed": r.case.expect_removed,
                }
                for r in run.results
            ],
        },
        ensure_ascii=False,
        indent=2,
        default=str,
    )


def _junit(run: TestRun) -> str:
    cases = []
    for result in run.results:
        attrs = f"classname={quoteattr(result.case.path)} name={quoteattr(result.case.name)}"
        if result.passed:
            cases.append(f"  <testcase {attrs}/>")
            continue
        detail = escape("\n".join([*result.failures, *_explain(result)]))
        cases.append(
            f"  <testcase {attrs}>\n    <failure message={quoteattr(result.failures[0])}>"
            f"{detail}</failure>\n  </testcase>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<testsuite name="retentionrules" tests="{len(run.results)}" failures="{run.failed}">\n'
        + "\n".join(cases)
        + "\n</testsuite>"
    )


def _github(run: TestRun) -> str:
    lines = []
    for result in run.results:
        if not result.passed:
            message = "; ".join(result.failures).replace("%", "%25").replace("\n", "%0A")
            lines.append(
                f"::error file={result.case.path},line={result.case.line},"
                f"title={result.case.name}::{message}"
            )
    lines.append(
        f"::notice title=rule coverage::{run.coverage:.0f}% of rules fired; "
        f"{len(run.results) - run.failed} passed, {run.failed} failed"
    )
    return "\n".join(lines)
