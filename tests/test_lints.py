"""Lints: contradictions, shadowed rules, unused segments, unnamed rules; `# noqa` silences them.
They never raise, and they claim only what the evaluators confirm."""

import datetime as dt
import sys

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from retentionrules.api import check_sources
from retentionrules.config import Config
from retentionrules.derive import fields_sql
from retentionrules.engine import run_plan
from retentionrules.interpreter import evaluate
from retentionrules.loader import Inputs

from .conftest import write_csv, write_rules

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


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


# ---------------------------------------------------------------- relative and fixed dates


def test_relative_and_fixed_dates_on_one_field_never_crash_the_lints(run_cli, tmp_path):
    """`check` crashed: the algebra compared `within 30 days` (days from the as-of date) with
    `after 2026-03-01` (a date) when it tested whether one rule shadows the other."""
    two_rules = rule("recent", "last_order_date within 30 days") + rule(
        "spring", "last_order_date after 2026-03-01"
    )
    assert codes(two_rules) == []
    path = tmp_path / "r.rules"
    path.write_text(two_rules, encoding="utf-8")
    result = run_cli("check", path)
    assert result.exit_code == 0, result.output
    relative = ["within 30 days", "within next 2 weeks", "before 10 days ago", "after 3 days ago"]
    fixed = ["after 2026-03-01", "before 2026-03-01", "= 2026-03-01", ">= 2026-03-01"]
    for a in relative + fixed:
        for b in relative + fixed:
            source = rule("a", f"last_order_date {a}") + rule("b", f"last_order_date {b}")
            codes(source)  # never raises
            codes(rule("c", f"last_order_date {a} and last_order_date {b}"))


def test_each_kind_of_date_still_proves_its_own_contradictions():
    assert codes(rule("r", "last_order_date within 10 days and last_order_date after 2026-03-01"
                      " and last_order_date before 20 days ago")) == ["RR301"]
    assert codes(rule("r", "last_order_date within 10 days and last_order_date > 2026-03-01"
                      " and last_order_date < 2026-02-01")) == ["RR301"]
    assert codes(rule("r", "last_order_date within 10 days and last_order_date after 2026-03-01")
                 ) == []


def test_shadowing_through_a_window_of_days_from_the_as_of_date():
    source = rule("broad", "last_order_date within 30 days", "  priority 5\n") + rule(
        "narrow", "last_order_date within 7 days and tier >= G"
    )
    assert codes(source) == ["RR302"]


def test_a_winner_on_a_capped_channel_does_not_shadow_a_rule_on_another_channel():
    """Its channel cap can hold the winner back while the later rule's channel is free."""
    config = Config.model_validate(
        {
            "channels": {
                "sms": {"consent": "sms_opt_in"},
                "push": {"requires_consent": False, "cap": {"count": 1, "per": "7 days"}},
                "phone": {"requires_consent": False},
            }
        }
    )
    capped = (
        "rule broad\n  when stage = sleeping\n  then send x via push\n  priority 5\n"
        + rule("narrow", "stage = sleeping and tier >= G")
    )
    assert [d.code for d in check_sources({"r.rules": capped}, config).diagnostics] == []
    free = capped.replace("via push", "via phone")
    assert [d.code for d in check_sources({"r.rules": free}, config).diagnostics] == ["RR302"]


def test_a_quiet_period_lets_a_later_tag_through_so_no_shadowing_is_claimed():
    quiet = Config.model_validate({"contacts": {"quiet_period": "3 days"}})
    source = (
        "rule callback\n  when stage = sleeping\n  then call care via phone\n  priority 5\n"
        "rule mark\n  when stage = sleeping and tier >= G\n  then tag sleeping_gold\n"
    )
    assert [d.code for d in check_sources({"r.rules": source}, quiet).diagnostics] == []
    assert codes(source) == ["RR302"]  # without a quiet period the call always wins


def test_segments_are_read_through_once_each():
    """Thirty segments each using the previous one twice: 2**30 conjuncts if expanded."""
    lines = ["segment s0 = tier >= G"]
    lines += [f"segment s{i} = s{i - 1} and s{i - 1}" for i in range(1, 31)]
    source = "\n".join(lines) + "\n" + rule("never", "s30 and tier = B")
    source += rule("broad", "s30", "  priority 9\n") + rule("narrow", "s30 and stage = lost")
    assert codes(source) == ["RR301", "RR302"]


# ---------------------------------------------------------------- the property

LINT_CONFIG = """
[contacts]
quiet_period = "3 days"
[channels.sms]
consent = "sms_opt_in"
cap = { count = 1, per = "7 days" }
[channels.email]
consent = "email_opt_in"
[channels.phone]
requires_consent = false
[channels.push]
requires_consent = false
cap = { count = 1, per = "30 days" }
"""
LINT_AS_OF = [dt.date(2026, 11, 22), dt.date(2027, 3, 1), dt.date(2026, 3, 31)]
DAYS = st.sampled_from([0, 1, 7, 30, 90, 270])
LINT_DATES = st.dates(dt.date(2025, 12, 1), dt.date(2027, 4, 1))
NUMBER_TESTS = st.tuples(
    st.sampled_from(["spend_12m", "orders_12m", "days_since_last_order", "rfm_score"]),
    st.sampled_from(["=", "!=", "<", "<=", ">", ">="]),
    st.sampled_from(["0", "1", "3", "90", "300", "500.5", "2000"]),
).map(" ".join)
ATOMS = st.one_of(
    st.tuples(st.sampled_from(["=", "!=", "<", "<=", ">", ">="]), st.sampled_from("BSGP")).map(
        lambda t: f"tier {t[0]} {t[1]}"
    ),
    st.tuples(
        st.sampled_from(["=", "!=", "<=", ">="]),
        st.sampled_from(["potential", "active", "silent", "sleeping", "lost"]),
    ).map(lambda t: f"stage {t[0]} {t[1]}"),
    st.lists(st.sampled_from("BSGP"), max_size=3).map(lambda v: f"tier in [{', '.join(v)}]"),
    NUMBER_TESTS,
    st.tuples(NUMBER_TESTS, NUMBER_TESTS).map(lambda t: f"({t[0]} or {t[1]})"),
    st.tuples(st.sampled_from(["last_order_date", "first_order_date"]), DAYS).map(
        lambda t: f"{t[0]} within {t[1]} days"
    ),
    st.tuples(st.sampled_from(["before", "after"]), DAYS, st.sampled_from(["days", "weeks"])).map(
        lambda t: f"last_order_date {t[0]} {t[1]} {t[2]} ago"
    ),
    st.tuples(st.sampled_from(["before", "after", "=", ">=", "<="]), LINT_DATES).map(
        lambda t: f"last_order_date {t[0]} {t[1].isoformat()}"
    ),
    st.sampled_from(
        [
            "last_order_date is missing",
            "last_order_date is present",
            "tier is missing",
            "sms_opt_in",
            "sms_opt_in = false",
            'city = "Xian"',
            'city != "Xian"',
            'city contains "an"',
            "not (tier >= G)",
            "birthday within 30 days",
            "last_order_date within 1 month",
        ]
    ),
)
SEGMENT_NAMES = ["g0", "g1", "g2"]


BROAD = st.sampled_from(
    [
        "tier >= B",
        "tier in [S, G, P]",
        "stage != lost",
        "stage <= silent",
        "spend_12m >= 0",
        "days_since_last_order < 300",
        "last_order_date is present",
        "last_order_date within 400 days",
        "last_order_date after 2025-12-01",
        "sms_opt_in",
    ]
)


@st.composite
def rule_sets(draw):
    """Segments (each may use the ones before it) and rules over them, on every kind of
    channel, with and without caps, at a few priorities. Rules take most of their tests from a
    small shared pool of tests many customers pass, and the first two are a broad rule and a
    narrower one: conditions often imply one another, and the rules they shadow would match."""
    pool = draw(st.lists(st.one_of(BROAD, BROAD, ATOMS), min_size=1, max_size=3))
    lines = []
    for i, name in enumerate(SEGMENT_NAMES):
        uses = st.sampled_from(SEGMENT_NAMES[:i] or ["tier >= B"])
        parts = draw(st.lists(st.one_of(st.sampled_from(pool), uses), min_size=1, max_size=2))
        lines.append(f"segment {name} = {' and '.join(parts)}")
    tests = st.one_of(st.sampled_from(pool), ATOMS, BROAD, st.sampled_from(SEGMENT_NAMES))
    broad = draw(st.lists(tests, min_size=1, max_size=2))
    conditions = [broad, [*broad, draw(tests)]]
    conditions += draw(st.lists(st.lists(tests, min_size=1, max_size=3), max_size=3))
    for i, parts in enumerate(conditions):
        channel = draw(st.sampled_from(["sms", "email", "phone", "push", None]))
        action = f"send m{i} via {channel}" if channel else f"tag m{i}"
        lines.append(f"rule r{i}\n  when {' and '.join(parts)}\n  then {action}")
        lines.append(f"  priority {draw(st.integers(0, 2))}")
        if draw(st.booleans()):
            lines.append("  cap 1 per 7 days")
    return "\n".join(lines) + "\n"


lint_customers = st.lists(
    st.fixed_dictionaries(
        {
            "city": st.sampled_from(["", "Xian", "Shanghai"]),
            "birthday": st.one_of(st.just(""), LINT_DATES.map(str)),
            "first_order_date": st.one_of(st.just(""), LINT_DATES.map(str)),
            "last_order_date": st.one_of(st.just(""), LINT_DATES.map(str)),
            "orders_12m": st.sampled_from(["", "0", "1", "3", "6", "90"]),
            "spend_12m": st.sampled_from(["", "0", "1", "300", "500.5", "2000", "9000"]),
            "total_orders": st.sampled_from(["", "0", "3", "30"]),
            "sms_opt_in": st.sampled_from(["true", "false", ""]),
            "email_opt_in": st.sampled_from(["true", "false"]),
        }
    ),
    min_size=3,
    max_size=10,
)


ROW = {
    "city": "Xian",
    "birthday": "",
    "first_order_date": "2026-01-01",
    "last_order_date": "2026-11-01",
    "orders_12m": "3",
    "spend_12m": "600",
    "total_orders": "3",
    "sms_opt_in": "true",
    "email_opt_in": "true",
}
BROAD_AND_NARROW = (
    "rule r0\n  when tier >= B\n  then {winner}\n  priority 1\n{cap}"
    "rule r1\n  when tier >= B and city = \"Xian\"\n  then {loser}\n"
)


@example(  # present, and within the window: satisfiable
    "rule r0\n  when last_order_date is present and last_order_date within 90 days\n"
    "  then tag a\n",
    [ROW],
    [],
    LINT_AS_OF[0],
)
@example(  # the winner's own cap holds it back: nothing shadowed
    BROAD_AND_NARROW.format(
        winner="send a via phone", cap="  cap 1 per 7 days\n", loser="send b via email"
    ),
    [ROW],
    [(0, "phone", 0, 5)],
    LINT_AS_OF[0],
)
@example(  # the winner's channel cap holds it back, not the later rule's channel
    BROAD_AND_NARROW.format(winner="send a via push", cap="", loser="send b via phone"),
    [ROW],
    [(0, "push", 2, 5)],
    LINT_AS_OF[0],
)
@example(  # the quiet period holds the winner back, never a tag
    BROAD_AND_NARROW.format(winner="send a via phone", cap="", loser="tag b"),
    [ROW],
    [(0, "email", 2, 1)],
    LINT_AS_OF[0],
)
@example(  # one channel, one gate: shadowed whatever the history
    BROAD_AND_NARROW.format(winner="send a via sms", cap="", loser="send b via sms"),
    [ROW, {**ROW, "sms_opt_in": "false"}],
    [(0, "push", 2, 5), (1, "sms", 2, 5)],
    LINT_AS_OF[0],
)
@settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    rule_sets(),
    lint_customers,
    st.lists(
        st.tuples(
            st.integers(0, 9),
            st.sampled_from(["push", "sms", "email", "phone"]),
            st.integers(0, 2),
            st.sampled_from([5, 1, 10, 60]),  # the simplest first: within caps, not quiet
        ),
        min_size=3,
        max_size=20,
    ),
    st.sampled_from(LINT_AS_OF),
)
def test_lints_never_raise_and_claim_only_what_the_evaluators_confirm(
    tmp_path_factory, source, rows, contacts, as_of
):
    """RR301: the reference interpreter satisfies the condition for no customer. RR302: the
    shadowed rule wins no customer in the real plan (consent, quiet period, caps included)."""
    config = Config.model_validate(tomllib.loads(LINT_CONFIG))
    report = check_sources({"r.rules": source}, config)
    assert report.ok, (source, report.diagnostics)
    never = {d.message.split("`")[1] for d in report.diagnostics if d.code == "RR301"}
    shadowed = {d.message.split("`")[1] for d in report.diagnostics if d.code == "RR302"}
    if not never and not shadowed:
        return
    folder = write_rules(tmp_path_factory.mktemp("lint") / "rules", source, LINT_CONFIG)
    happened = ("first_order_date", "last_order_date")  # later ones are bad data
    rows = [
        {k: min(v, str(as_of)) if k in happened and v else v for k, v in row.items()}
        for row in rows
    ]
    customers = write_csv(
        folder / "customers.csv", [{**row, "customer_id": f"C{i}"} for i, row in enumerate(rows)]
    )
    history = folder / "contacts.csv"
    history.write_text(
        "customer_id,channel,rule,sent_at\n"
        + "".join(
            f"C{c % len(rows)},{channel},r{r},{as_of - dt.timedelta(days=days)}\n"
            for c, channel, r, days in contacts
        ),
        encoding="utf-8",
    )
    result = run_plan([folder], Inputs(customers, contacts=history), as_of)
    cursor = result.plan.con.execute(fields_sql(config))
    columns = [d[0] for d in cursor.description]
    fields = [dict(zip(columns, values, strict=True)) for values in cursor.fetchall()]
    by_name = {r.name: r for r in result.plan.ruleset.rules}
    for name in never:
        for row in fields:
            assert not evaluate(by_name[name].condition, row, as_of), (source, name, row)
    for name in shadowed:
        assert next(c for c in result.plan.counts if c.rule == name).priority == 0, (source, name)
