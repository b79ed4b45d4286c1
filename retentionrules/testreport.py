"""Rule-test results for people (text), tools (json), CI (junit) and pull requests (github)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from .diagnostics import Diagnostic
from .engine import test_line
from .render import escape_controls, escape_github, render_github, render_json, render_text
from .testing import CaseResult, TestRun

# Characters XML 1.0 cannot hold at all, not even as a character reference: a case name with
# one (TOML allows "\u0001") would make the whole JUnit report unreadable.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def render_run(run: TestRun, fmt: str) -> str:
    return {"text": _text, "json": _json, "junit": _junit, "github": _github}[fmt](run)


def render_problems(diagnostics: Sequence[Diagnostic], sources: dict[str, str], fmt: str) -> str:
    """Broken rule or test files, in the format asked for: so that CI still gets annotations
    (github), data (json) or a JUnit report with an error per problem (junit), not an empty
    file."""
    if fmt == "junit":
        return _junit_problems(diagnostics)
    return {"text": render_text, "json": render_json, "github": render_github}[fmt](
        diagnostics, sources
    )


def _xml(text: str) -> str:
    return _NOT_XML.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _explain(result: CaseResult) -> list[str]:
    lines = []
    for trace in result.traces:
        lines.append(f"      {'✓' if trace.matched else '✗'} {trace.rule}: {trace.outcome}")
        lines.extend(f"          {test_line(test)}" for test in trace.conditions)
    return lines


def _text(run: TestRun) -> str:
    """One line per case, and for a failure what was expected, what happened and the trace;
    each line with its control characters escaped (a case name, a file name or a rule's text
    may hold a line break or an escape sequence)."""
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
    out.extend(_coverage_text(run))
    passed = len(run.results) - run.failed
    out.append(f"{passed} passed, {run.failed} failed")
    return "\n".join(escape_controls(line) for line in out)


def _brief(action: dict[str, Any]) -> dict[str, Any]:
    return {k: action[k] for k in ("rule", "action", "template", "channel", "parameters")}


def _coverage_text(run: TestRun) -> list[str]:
    missing = [r for r in run.rules if r not in run.fired]
    lines = [
        f"rule coverage: {run.coverage:.0f}% ({len(run.rules) - len(missing)} of {len(run.rules)} "
        "rules fired in at least one case)"
    ]
    lines += [f"    never fired: {name}" for name in missing]
    return lines


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
        path, name = quoteattr(_xml(result.case.path)), quoteattr(_xml(result.case.name))
        attrs = f"classname={path} name={name}"
        if result.passed:
            cases.append(f"  <testcase {attrs}/>")
            continue
        detail = escape(_xml("\n".join([*result.failures, *_explain(result)])))
        cases.append(
            f"  <testcase {attrs}>\n    <failure message={quoteattr(_xml(result.failures[0]))}>"
            f"{detail}</failure>\n  </testcase>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<testsuite name="retentionrules" tests="{len(run.results)}" failures="{run.failed}">\n'
        + "\n".join(cases)
        + "\n</testsuite>"
    )


def _junit_problems(diagnostics: Sequence[Diagnostic]) -> str:
    """A suite with an error per problem: the tests could not run."""
    errors = [d for d in diagnostics if d.is_error]
    cases = []
    for d in errors:
        where = f"{d.path}:{d.span.line}:{d.span.column}" if d.span.line else d.path
        message = f"{d.code} {d.message}"
        detail = message + (f"\nhint: {d.hint}" if d.hint else "")
        cases.append(
            f"  <testcase classname={quoteattr(_xml(d.path))} name={quoteattr(_xml(where))}>\n"
            f"    <error type={quoteattr(str(d.code))} message={quoteattr(_xml(message))}>"
            f"{escape(_xml(detail))}</error>\n  </testcase>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<testsuite name="retentionrules" tests="{len(errors)}" failures="0" '
        f'errors="{len(errors)}">\n' + "\n".join(cases) + "\n</testsuite>"
    )


def render_stopped(message: str, fmt: str) -> str:
    """The tests could not start (a usage error: rules of a test file's project not given, a
    broken configuration): said in the format asked for, so that CI shows why, not an empty or
    unreadable report."""
    if fmt == "junit":
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<testsuite name="retentionrules" tests="1" failures="0" errors="1">\n'
            '  <testcase classname="retentionrules" name="retentionrules test">\n'
            f'    <error type="usage" message={quoteattr(_xml(message.splitlines()[0]))}>'
            f"{escape(_xml(message))}</error>\n  </testcase>\n</testsuite>"
        )
    if fmt == "github":
        return f"::error title=retentionrules test::{escape_github(message)}"
    return json.dumps({"error": message}, ensure_ascii=False, indent=2)


def _github(run: TestRun) -> str:
    lines = []
    for result in run.results:
        if not result.passed:
            case = result.case
            lines.append(
                f"::error file={escape_github(case.path, True)},line={case.line},"
                f"title={escape_github(case.name, True)}::"
                f"{escape_github('; '.join(result.failures))}"
            )
    lines.append(
        f"::notice title=rule coverage::{run.coverage:.0f}% of rules fired; "
        f"{len(run.results) - run.failed} passed, {run.failed} failed"
    )
    return "\n".join(lines)
