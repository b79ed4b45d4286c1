"""Checker: names resolve, types are enforced, the typed rule set carries the rules' meaning."""

import datetime as dt

import pytest

from retentionrules import ir
from retentionrules import types as t
from retentionrules.api import check_sources
from retentionrules.config import Config
from retentionrules.timeutil import Duration


def check(source: str, config: Config | None = None):
    return check_sources({"r.rules": source}, config or Config())


def codes(source: str, config: Config | None = None) -> list[str]:
    return [d.code for d in check(source, config).diagnostics]


def rule(source: str) -> ir.Rule:
    report = check(source)
    assert report.ok, report.diagnostics
    return report.ruleset.rules[0]


def test_bare_enum_values_become_ranked_constants():
    condition = rule("rule r\n  when tier >= G\n  then send x").condition
    assert condition == ir.Compare(
        ">=", ir.Field("tier", Config().tier_type()), ir.Const("G", Config().tier_type())
    )


def test_enum_value_on_the_left_is_resolved_too():
    assert rule("rule r\n  when G <= tier\n  then send x").condition.left.value == "G"


def test_segments_are_inlined_and_named():
    r = rule("segment best = tier = P\nrule r\n  when best and stage = active\n  then send x")
    assert isinstance(r.condition.operands[0], ir.SegmentRef)
    assert r.condition.operands[0].name == "best"


def test_within_lowers_to_dates_relative_to_the_as_of_date():
    r = rule("rule r\n  when last_order_date within 30 days\n  then send x")
    low, high = r.condition.operands
    assert low.right == ir.RelativeDate(Duration(30, "day"), -1)
    assert high.right == ir.RelativeDate(Duration(0, "day"), 0)


def test_anniversaries_compare_their_next_occurrence():
    r = rule("rule r\n  when birthday within 7 days\n  then send x")
    assert isinstance(r.condition.left, ir.NextAnniversary)


def test_rule_defaults_and_channels():
    r = rule("when tier = P then call vip")
    assert (r.priority, r.action.channel, r.holdout, r.cap) == (0, "phone", 0, None)
    assert rule("when tier = P then send x").action.channel == "sms"
    assert rule("when tier = P then tag vip").action.channel is None


@pytest.mark.parametrize(
    "condition",
    [
        "stage > 5",
        'birthday = "x"',
        "tier",
        "city + 1 > 2",
        'spend_12m contains "a"',
        "sms_opt_in > true",
        "days_since_last_order within 3 days",
        "city before 2026-01-01",
    ],
)
def test_type_mismatches(condition):
    assert "RR202" in codes(f"rule r\n  when {condition}\n  then send x")


def test_unknown_field_suggests_the_closest_name():
    (diagnostic,) = check("rule r\n  when stge = sleeping\n  then send x").diagnostics
    assert diagnostic.code == "RR200" and diagnostic.hint == "did you mean `stage`?"
    assert (diagnostic.span.line, diagnostic.span.column) == (2, 8)


def test_unknown_enum_value_lists_valid_ones():
    (diagnostic,) = check("rule r\n  when stage = sleepy\n  then send x").diagnostics
    assert diagnostic.code == "RR201"
    assert "potential, active, silent, sleeping, lost" in diagnostic.message


def test_all_errors_in_a_file_are_reported():
    source = (
        "rule a\n  when stge = 1\n  then send x\nrule b\n  when tier > 5\n  then send x via fax\n"
        "rule c\n  when ok\n"
    )
    assert codes(source) == ["RR200", "RR202", "RR205", "RR103", "RR200"]


def test_rules_with_errors_stay_out_of_the_rule_set():
    report = check(
        "rule good\n  when tier = P\n  then send x\nrule bad\n  when nope\n  then send x"
    )
    assert [r.name for r in report.ruleset.rules] == ["good"]


def test_declared_enum_fields_from_configuration():
    fields = {**Config().customers.fields, "membership": ["basic", "plus", "premium"]}
    config = Config.model_validate({"customers": {"fields": fields}})
    assert codes("rule r\n  when membership >= plus\n  then send x", config) == []
    assert codes("rule r\n  when membership = gold\n  then send x", config) == ["RR201"]


def test_dates_and_anniversaries_are_comparable():
    r = rule("rule r\n  when birthday = 1990-05-01 or last_order_date > 2026-01-01\n  then send x")
    assert r.condition.operands[1].right == ir.Const(dt.date(2026, 1, 1), t.DATE)


def test_one_liner_names_are_stable_across_layout():
    first = rule("when stage = sleeping and tier >= G then send winback coupon").name
    again = rule("when   stage = sleeping\n    and tier >= G\n  then send winback_coupon").name
    assert first == again and first.startswith("send_winback_coupon_")
