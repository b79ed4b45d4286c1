"""Lints: contradictions, shadowed rules, unused segments, unnamed rules; `# noqa` silences them."""

from retentionrules.api import check_sources
from retentionrules.config import Config


def codes(source: str) -> list[str]:
    return [d.code for d in check_sources({"r.rules": source}, Config()).diagnostics]


def rule(name: str, condition: str, extra: str = "") -> str:
    return f"rule {name}\n  when {condition}\n  then send x via sms\n{extra}"


def test_contradictions_are_found():
    for condition in (
        "tier >= G and tier = B",
        "days_since_last_order < 10 and days_since_last_order > 20",
        'city = "a" and city = "b"',
        "tier is missing and tier = G",
        "stage in [active, silent] and stage = lost",
        "last_order_date within 10 days and last_order_date before 20 days ago",
    ):
        assert codes(rule("r", condition)) == ["RR301"], condition


def test_satisfiable_conditions_are_not_flagged():
    for condition in (
        "tier >= G and tier <= G",
        "days_since_last_order >= 10 and days_since_last_order <= 10",
        "tier != G and tier >= G",
        "stage = sleeping or stage = active",
        "last_order_date within 1 month and last_order_date before 20 days ago",
    ):
        assert codes(rule("r", condition)) == [], condition


def test_a_narrower_later_rule_is_shadowed():
    source = rule("broad", "stage = sleeping", "  priority 5\n") + rule(
        "narrow", "stage = sleeping and tier >= G"
    )
    assert codes(source) == ["RR302"]


def test_interval_implication_counts_as_shadowing():
    source = rule("a", "days_since_last_order > 10") + rule(
        "b", "days_since_last_order between 20 and 30"
    )
    assert codes(source) == ["RR302"]


def test_no_shadowing_when_the_later_rule_wins_or_consent_differs():
    higher = rule("broad", "stage = sleeping") + rule(
        "narrow", "tier >= G and stage = sleeping", "  priority 9\n"
    )
    assert codes(higher) == []
    other_channel = "rule broad\n  when stage = sleeping\n  then send x via email\n" + rule(
        "narrow", "stage = sleeping and tier >= G"
    )
    assert codes(other_channel) == []
    capped = rule("broad", "stage = sleeping", "  cap 1 per 7 days\n") + rule(
        "narrow", "stage = sleeping and tier >= G"
    )
    assert codes(capped) == []


def test_unused_segment_and_unnamed_rule():
    assert codes("segment s = tier = P\n" + rule("r", "tier = G")) == ["RR303"]
    assert codes("when tier = G then send x") == ["RR300"]


def test_noqa_silences_one_code_on_its_line():
    assert codes("when tier = G then send x  # noqa: RR300") == []
    assert codes("when tier = G then send x  # noqa: RR301") == ["RR300"]
    assert codes("when tier = G then send x  # noqa") == []
