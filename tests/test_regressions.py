"""Regression tests, each named after the issue it came from."""

from retentionrules.api import check_sources
from retentionrules.config import Config


def test_issue_2_design_card_one_liner_checks_clean_and_is_named():
    report = check_sources(
        {"r.rules": "when stage = sleeping and tier >= G then send winback coupon\n"}, Config()
    )
    assert report.ok
    (rule,) = report.ruleset.rules
    assert rule.action.template == "winback_coupon" and rule.action.channel == "sms"
    assert [d.code for d in report.diagnostics] == ["RR300"]
    assert rule.name in report.diagnostics[0].message
