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


# ---------------------------------------------------------------- limits


def test_nesting_is_measured_before_anything_recurses_and_reported_at_the_statement():
    source = "rule ok\n  when tier = P\n  then tag t\nrule deep\n  when " + "not " * 5000
    (diagnostic,) = check(source + "tier = G\n  then tag t\n").diagnostics
    assert (diagnostic.code, diagnostic.span.line, diagnostic.span.column) == ("RR100", 4, 1)
    assert diagnostic.message == "this statement nests 5,001 levels deep; at most 1,000 are allowed"
    assert "segment" in diagnostic.hint


def test_nesting_counts_operators_not_parentheses_nor_chains_of_one_operator():
    at_limit = "not " * 999 + "tier = G"  # 999 `not` and one `=`
    assert codes(f"rule r\n  when {at_limit}\n  then tag t") == []
    assert codes(f"rule r\n  when not {at_limit}\n  then tag t") == ["RR100"]
    parenthesised = "(" * 5000 + at_limit + ")" * 5000
    assert codes(f"rule r\n  when {parenthesised}\n  then tag t") == []
    one_chain = " and ".join(["(tier = G"] * 3000) + ")" * 3000
    assert codes(f"rule r\n  when {one_chain}\n  then tag t") == []


def test_a_segment_s_levels_do_not_count_where_it_is_used():
    deep = "not " * 998 + "tier = G"
    report = check(f"segment s = {deep}\nrule r\n  when not not s\n  then tag t")
    assert report.ok and report.diagnostics == []


@pytest.mark.parametrize(
    "number, problem",
    [
        ("1234567890123456", "has 16 significant digits; at most 15 are allowed"),
        ("9" * 400, "has 400 significant digits; at most 15 are allowed"),
        ("0.0000000000000001", "has 16 digits after the point; at most 15 are allowed"),
        ("1000000000000000", "has 16 significant digits; at most 15 are allowed"),
    ],
)
def test_numbers_beyond_fifteen_digits_are_rr101_where_they_are_written(number, problem):
    in_condition = f"  when spend_12m > {number}"
    in_parameter = f"  when tier = P\n  then send x with a = {number}"
    for line in (in_condition, in_parameter):
        source = f"rule r\n{line}\n" + ("" if "then" in line else "  then tag t\n")
        (diagnostic,) = check(source).diagnostics
        assert diagnostic.code == "RR101" and diagnostic.message == f"this number {problem}"
        assert diagnostic.span.line == (2 if "when spend" in line else 3)


def test_fifteen_digit_numbers_are_kept_exactly():
    r = rule("rule r\n  when spend_12m > 999999999999999 and spend_12m < 0.000000000000001\n"
             "  then send x with big = -999999999999999, small = 0.000000000000001")
    assert [c.right.value for c in r.condition.operands] == [999999999999999.0, 1e-15]
    assert dict(r.action.params) == {"big": -999999999999999, "small": 1e-15}


@pytest.mark.parametrize(
    "window, limit",
    [
        ("365001 days", "365,000 days"),
        ("52001 weeks", "52,000 weeks"),
        ("12001 months", "12,000 months"),
        ("1001 years", "1,000 years"),
        ("999999999999 days", "365,000 days"),
        ("9" * 5000 + " days", "365,000 days"),
    ],
)
def test_durations_beyond_about_a_thousand_years_are_rr101(window, limit):
    for condition in (
        f"last_order_date within {window}",
        f"last_order_date within next {window}",
        f"last_order_date before {window} ago",
        f"birthday within {window}",
    ):
        (diagnostic,) = check(f"rule r\n  when {condition}\n  then tag t").diagnostics
        assert diagnostic.code == "RR101" and limit in diagnostic.message, condition
    capped = f"rule r\n  when tier = P\n  then tag t\n  cap 1 per {window}"
    (diagnostic,) = check(capped).diagnostics
    assert diagnostic.code == "RR101" and (diagnostic.span.line, diagnostic.span.column) == (4, 13)


def test_the_longest_durations_are_accepted():
    for window in ("365000 days", "52000 weeks", "12000 months", "1000 years"):
        r = rule(f"rule r\n  when last_order_date within {window}\n  then tag t\n"
                 f"  cap 1 per {window}")
        assert r.cap == (1, Duration.parse(window))


def test_durations_in_the_configuration_obey_the_same_limit():
    with pytest.raises(ValueError, match="at most 365,000 days"):
        Config.model_validate({"contacts": {"quiet_period": "999999999 days"}})


def test_segments_are_checked_after_the_ones_they_use_whatever_their_order():
    lines = [f"segment s{i} = s{i + 1} or tier = G" for i in range(99)] + ["segment s99 = tier = P"]
    report = check("\n".join(lines) + "\nrule r\n  when s0\n  then tag t")
    assert report.ok, report.diagnostics
    condition = report.ruleset.rules[0].condition
    assert isinstance(condition, ir.SegmentRef) and condition.name == "s0"
    used = ir.segments_used([condition])
    assert [s.name for s in used] == [f"s{i}" for i in range(99, -1, -1)]


def test_a_segment_named_like_an_enumeration_value_is_not_a_use_of_itself():
    report = check("segment G = tier = G\nrule r\n  when G and stage = active\n  then tag t")
    assert report.ok and report.diagnostics == []


def test_a_long_cycle_is_reported_once_without_recursing():
    lines = [f"segment c{i} = c{(i + 1) % 3000} and tier = G" for i in range(3000)]
    report = check("\n".join(lines) + "\nrule r\n  when c7\n  then tag t")
    (diagnostic,) = report.diagnostics
    assert diagnostic.code == "RR204" and diagnostic.span.line == 1
    assert diagnostic.message.startswith("segments refer to each other in a cycle: c0 -> c1 -> ")
    assert diagnostic.message.endswith("c2999 -> c0")


def test_a_chain_of_a_hundred_segments_is_allowed_and_one_more_is_rr209():
    lines = ["segment s1 = tier = P"]
    lines += [f"segment s{i} = s{i - 1} and tier = P" for i in range(2, 102)]
    rules = "rule r\n  when s100\n  then tag t\nrule q\n  when s101\n  then tag q"
    source = "\n".join(lines) + "\n" + rules
    report = check(source)
    (diagnostic,) = [d for d in report.diagnostics if d.is_error]
    assert diagnostic.code == "RR209" and diagnostic.span.line == 101
    assert [r.name for r in report.ruleset.rules] == ["r"]


def test_a_one_liner_with_a_priority_of_thousands_of_digits_is_rr101_not_a_crash():
    """Its derived name comes from its printed text, and Python refuses to print a whole
    number of more than 4,300 digits: the clause beyond the limit is left out of the name."""
    source = "when tier = G then send x\n  priority " + "9" * 5000 + "\n  max 5 per run"
    assert codes(source) == ["RR300", "RR101"]
    capped = "when tier = G then send x\n  cap " + "9" * 5000 + " per 1 day"
    assert codes(capped) == ["RR300", "RR101"]
