"""The shop's calendar: `[calendar]` named dates as date fields, their next occurrence on or after
the as-of date, read the same by both evaluators, with configuration errors at line:col."""

import datetime as dt
import json
import re

import duckdb
import pytest

from retentionrules.api import check_sources
from retentionrules.config import Config, ConfigError, load_config
from retentionrules.derive import DERIVED, create_derived, customer_fields
from retentionrules.loader import Inputs, load
from retentionrules.shopcalendar import parse_named_date

from .conftest import customer, write_csv, write_rules
from .test_evaluators import agree

D = dt.date
CALENDAR = """\
[calendar]
double_11 = "11-11"
leap_day = "02-29"
member_day = { day = 30 }
month_end = { day = 31 }
first_of_month = { day = 1 }
new_year = { holiday = "new_year" }
spring_festival_eve = { holiday = "spring_festival_eve" }
spring_festival = { holiday = "spring_festival" }
lantern = { holiday = "lantern" }
qingming = { holiday = "qingming" }
labour_day = { holiday = "labour_day" }
dragon_boat = { holiday = "dragon_boat" }
mid_autumn = { holiday = "中秋节" }
national_day = { holiday = "national_day" }
"""

# Checked by hand against the published calendars (State Council notices; lunar dates from the
# almanac): the festival's own day, on or after the as-of date.
CASES = [
    # Spring Festival 2027 and 2028, on the day itself, the day after (next year's)
    ("spring_festival", D(2027, 1, 1), D(2027, 2, 6)),
    ("spring_festival", D(2027, 2, 6), D(2027, 2, 6)),
    ("spring_festival", D(2027, 2, 7), D(2028, 1, 26)),
    ("spring_festival", D(2026, 12, 31), D(2027, 2, 6)),
    ("spring_festival", D(2028, 1, 26), D(2028, 1, 26)),
    ("spring_festival", D(2028, 1, 27), D(2029, 2, 13)),
    ("spring_festival_eve", D(2027, 1, 1), D(2027, 2, 5)),
    ("spring_festival_eve", D(2027, 2, 6), D(2028, 1, 25)),
    ("lantern", D(2027, 2, 7), D(2027, 2, 20)),
    ("lantern", D(2027, 2, 21), D(2028, 2, 9)),
    # Mid-Autumn across years; 2028's falls on National Day itself
    ("mid_autumn", D(2026, 1, 1), D(2026, 9, 25)),
    ("mid_autumn", D(2026, 9, 26), D(2027, 9, 15)),
    ("mid_autumn", D(2028, 1, 1), D(2028, 10, 3)),
    # Dragon Boat across years
    ("dragon_boat", D(2026, 1, 1), D(2026, 6, 19)),
    ("dragon_boat", D(2026, 6, 19), D(2026, 6, 19)),
    ("dragon_boat", D(2026, 6, 20), D(2027, 6, 9)),
    ("dragon_boat", D(2028, 1, 1), D(2028, 5, 28)),
    ("qingming", D(2027, 1, 1), D(2027, 4, 5)),
    ("qingming", D(2028, 1, 1), D(2028, 4, 4)),
    ("labour_day", D(2027, 5, 2), D(2028, 5, 1)),
    ("national_day", D(2027, 10, 1), D(2027, 10, 1)),
    ("national_day", D(2027, 10, 2), D(2028, 10, 1)),
    ("new_year", D(2026, 12, 31), D(2027, 1, 1)),
    # yearly: 11-11 on 11-11 and after it; 29 February on the 28th in other years
    ("double_11", D(2026, 11, 11), D(2026, 11, 11)),
    ("double_11", D(2026, 11, 12), D(2027, 11, 11)),
    ("leap_day", D(2027, 1, 1), D(2027, 2, 28)),
    ("leap_day", D(2027, 3, 1), D(2028, 2, 29)),
    ("leap_day", D(2028, 2, 29), D(2028, 2, 29)),
    # monthly: the 30th in February is its last day
    ("member_day", D(2027, 1, 30), D(2027, 1, 30)),
    ("member_day", D(2027, 1, 31), D(2027, 2, 28)),
    ("member_day", D(2028, 2, 1), D(2028, 2, 29)),
    ("member_day", D(2027, 2, 28), D(2027, 2, 28)),
    ("member_day", D(2027, 3, 1), D(2027, 3, 30)),
    ("month_end", D(2027, 4, 1), D(2027, 4, 30)),
    ("month_end", D(2027, 12, 31), D(2027, 12, 31)),
    ("first_of_month", D(2027, 12, 2), D(2028, 1, 1)),
    # outside the years a holiday is statutory (the People's Republic's calendar from 1950;
    # Qingming, Dragon Boat and Mid-Autumn from 2008): missing
    ("spring_festival", D(1900, 1, 1), None),
    ("qingming", D(2000, 1, 1), None),
    ("qingming", D(2007, 6, 1), D(2008, 4, 4)),
]


def config_of(tmp_path, text: str = CALENDAR) -> Config:
    path = tmp_path / "retentionrules.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def named_dates(tmp_path, config: Config, as_of: dt.date) -> dict:
    con = duckdb.connect()
    load(con, config, Inputs(write_csv(tmp_path / "c.csv", [customer("C1")])), as_of)
    create_derived(con, config, as_of, orders=False, contacts=False)
    fields = customer_fields(con, config, "C1")
    assert fields is not None
    return {name: fields[name] for name in config.calendar}


@pytest.mark.parametrize(("name", "as_of", "expected"), CASES)
def test_each_named_date_is_its_next_occurrence_on_or_after_the_as_of_date(
    tmp_path, name, as_of, expected
):
    config = config_of(tmp_path)
    assert config.calendar[name].next_on_or_after(as_of) == expected
    assert named_dates(tmp_path, config, as_of)[name] == expected  # the derived table's column


def test_named_dates_are_date_fields_the_same_for_every_customer(tmp_path):
    config = config_of(tmp_path)
    assert config.field_types()["spring_festival"] == config.field_types()["last_order_date"]
    con = duckdb.connect()
    rows = [customer(f"C{i}") for i in range(3)]
    load(con, config, Inputs(write_csv(tmp_path / "c.csv", rows)), D(2027, 1, 29))
    create_derived(con, config, D(2027, 1, 29), orders=False, contacts=False)
    described = con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {DERIVED})")
    types = dict(described.fetchall())
    assert types["spring_festival"] == types["member_day"] == "DATE"
    values = con.execute(f"SELECT DISTINCT spring_festival, member_day FROM {DERIVED}").fetchall()
    assert values == [(D(2027, 2, 6), D(2027, 1, 30))]


def test_a_named_date_after_the_last_plannable_date_is_missing_like_a_runout(tmp_path):
    """On 2199-12-31 the next member day and Double 11 fall in 2200, past the dates data and
    plans may carry: missing, as run-out and warranty dates beyond it are."""
    config = config_of(tmp_path)
    found = named_dates(tmp_path, config, D(2199, 12, 31))
    assert found["member_day"] is None and found["double_11"] is None
    assert found["month_end"] == D(2199, 12, 31)  # today still counts


def test_without_a_calendar_nothing_changes(tmp_path):
    """No named date, no column, no `calendar` key in the configuration a plan's header and
    digest carry: plans made before calendars keep their ids."""
    config = Config()
    assert "calendar" not in config.model_dump(mode="json")
    assert "calendar" not in config.model_dump_json()
    assert not {"spring_festival", "member_day"} & set(config.field_types())


def test_a_calendar_survives_the_plan_header_round_trip(tmp_path):
    """`send` reads the configuration back from a plan's header."""
    config = config_of(tmp_path)
    header = json.loads(json.dumps(config.model_dump(mode="json")))
    assert header["calendar"]["double_11"] == "11-11"
    assert header["calendar"]["member_day"] == {"day": 30}
    assert header["calendar"]["mid_autumn"] == {"holiday": "mid_autumn"}
    assert Config.model_validate(header).calendar == config.calendar


@pytest.mark.parametrize(
    ("entry", "where", "message"),
    [
        ('cny = { holiday = "spring_festivl" }', "2:19", "did you mean 'spring_festival'?"),
        ('mid = { holiday = "中秋" }', "2:19", "did you mean '中秋节'?"),
        ("member_day = { day = 32 }", "2:22", "day must be a whole number from 1 to 31"),
        ("member_day = { day = true }", "2:22", "day must be a whole number from 1 to 31"),
        ('x = "02-30"', "2:5", "'02-30' is not a day of the year"),
        ('x = "11/11"', "2:5", 'is not a month and day like "11-11"'),
        ("x = 5", "2:5", 'a named date is "MM-DD" (every year)'),
        ("x = { month = 3 }", "2:7", "unknown key 'month'"),
        ('tier = "11-11"', "2:1", "'tier' is already the field 'tier'"),
        ('Stage = "11-11"', "2:1", "names are compared without case"),
        ('when = "11-11"', "2:1", "'when' is a reserved word of the rule language"),
        ('"1x" = "11-11"', "2:1", "'1x' cannot be a field name"),
        ('__row = "11-11"', "2:1", "'__row' cannot be a field name"),
        ('a = "01-01"\nA = "01-02"', "3:1", "'A' is already the named date 'a'"),
    ],
)
def test_a_bad_calendar_is_a_configuration_error_at_line_and_column(
    tmp_path, entry, where, message
):
    with pytest.raises(ConfigError) as caught:
        config_of(tmp_path, f"[calendar]\n{entry}\n")
    text = str(caught.value)
    assert text.startswith(f"{tmp_path / 'retentionrules.toml'}:{where}: "), text
    assert message in text, text


def test_check_reports_a_bad_calendar_with_exit_2(run_cli, tmp_path):
    rules = write_rules(
        tmp_path / "r",
        "rule x\n  when total_orders = 0\n  then tag t\n",
        '[calendar]\nbig_sale = "06-18"\ncny = { holiday = "springfestival" }\n',
    )
    result = run_cli("check", rules)
    assert result.exit_code == 2, result.output
    assert "retentionrules.toml:3:19: calendar.cny.holiday: unknown holiday" in result.output
    assert "Traceback" not in result.output


def test_a_holiday_is_named_in_chinese_or_english_alike():
    assert parse_named_date({"holiday": "春节"}) == parse_named_date({"holiday": "spring_festival"})
    assert parse_named_date({"holiday": "除夕"}).holiday == "spring_festival_eve"


def test_rules_use_named_dates_with_within_next(tmp_path):
    config = config_of(tmp_path)
    source = (
        "rule cny\n  when spring_festival within next 14 days\n  then tag greet\n"
        "rule member_day\n  when member_day within next 0 days\n  then tag today\n"
        "rule member_eve\n  when member_day within next 1 day\n  then tag eve\n"
    )
    report = check_sources({"r.rules": source}, config)
    assert report.ok and not report.diagnostics, report.diagnostics
    bad = check_sources({"r.rules": "when double_11 > 5 then tag t\n"}, config)
    assert [d.code.name for d in bad.diagnostics if d.severity.name == "ERROR"] == ["RR202"]


def test_an_unconfigured_holiday_is_unknown_with_a_hint_to_name_it():
    report = check_sources(
        {"r.rules": "rule r\n  when spring_festival within next 14 days\n  then tag t\n"}, Config()
    )
    (problem,) = report.diagnostics
    assert problem.code.name == "RR200"
    assert problem.hint is not None and '{ holiday = "spring_festival" }' in problem.hint
    assert "[calendar]" in problem.hint


@pytest.mark.parametrize(
    ("as_of", "expected"),
    [
        (D(2027, 1, 22), [False, False, False, True]),  # 15 days before: no greeting yet
        (D(2027, 1, 23), [False, False, True, True]),  # 14 days before Spring Festival
        (D(2027, 1, 29), [False, True, True, True]),  # the day before member day
        (D(2027, 1, 30), [True, True, True, True]),  # member day itself
        (D(2027, 2, 6), [False, False, True, True]),  # Spring Festival itself
        (D(2027, 2, 7), [False, False, False, True]),  # the day after: next year's is far
    ],
)
def test_both_evaluators_plan_a_holiday_rule_the_same(tmp_path, as_of, expected):
    config = config_of(tmp_path)
    con = duckdb.connect()
    load(con, config, Inputs(write_csv(tmp_path / "c.csv", [customer("C1")])), as_of)
    create_derived(con, config, as_of, orders=False, contacts=False)
    source = (
        "rule today\n  when member_day within next 0 days and not (double_11 within 7 days)\n"
        "  then tag d\n"
        "rule eve\n  when member_day within next 1 day\n  then tag c\n"
        "rule cny\n  when spring_festival within next 14 days\n  then tag b\n"
        "rule known\n  when spring_festival is present\n  then tag a\n"
    )
    assert agree(source, con, DERIVED, as_of, config) == [expected]


def test_the_lints_assume_nothing_about_a_named_date(tmp_path):
    """A named date is one value for everyone, unknown to the checker: nothing is reported as
    never holding or shadowed unless it is so for every value."""
    config = config_of(tmp_path)
    source = (
        "rule eve\n  when member_day within next 1 day and not (member_day within next 0 days)\n"
        "  then tag eve\n"
        "rule greet\n  when spring_festival within next 14 days and mid_autumn within 30 days\n"
        "  then tag greet\n"
        "rule sale\n  when double_11 within next 3 days and double_11 after 2026-11-01\n"
        "  then tag sale\n"
    )
    report = check_sources({"r.rules": source}, config)
    assert report.ok and not report.diagnostics, report.diagnostics
    text = "rule r\n  when member_day within next 1 day and member_day before 3 days ago\n"
    never = check_sources({"r.rules": text + "  then tag t\n"}, config)
    assert [d.code.name for d in never.diagnostics] == ["RR301"]


def test_explain_and_score_show_the_date_each_named_date_resolved_to(run_cli, tmp_path):
    rules = write_rules(
        tmp_path / "r",
        "rule cny\n  when spring_festival within next 14 days\n  then tag greet\n",
        '[calendar]\nspring_festival = { holiday = "春节" }\nmember_day = { day = 30 }\n',
    )
    data = write_csv(tmp_path / "c.csv", [customer("C1")])
    result = run_cli(
        "explain", "C1", "--rules", rules, "--customers", data, "--as-of", "2027-01-29"
    )
    assert result.exit_code == 0, result.output
    assert re.search(r"spring_festival\s+2027-02-06", result.output), result.output
    assert re.search(r"member_day\s+2027-01-30", result.output), result.output
    out = tmp_path / "scores.csv"
    result = run_cli(
        "score", "--customers", data, "--as-of", "2027-02-07", "--out", out,
        "--config", rules / "retentionrules.toml",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    header, row = out.read_text().splitlines()[:2]
    values = dict(zip(header.split(","), row.split(","), strict=True))
    assert (values["spring_festival"], values["member_day"]) == ("2028-01-26", "2027-02-28")


def test_the_starter_configurations_calendar_resolves_the_dates_its_rules_count_down_to():
    from .conftest import ROOT

    config = load_config(ROOT / "rules" / "retentionrules.toml")
    assert set(config.calendar) == {
        "double_11", "big_sale_618", "member_day", "spring_festival", "mid_autumn", "dragon_boat",
    }  # fmt: skip
    resolved = {n: d.next_on_or_after(D(2027, 1, 29)) for n, d in config.calendar.items()}
    assert resolved["spring_festival"] == D(2027, 2, 6)
    assert resolved["big_sale_618"] == D(2027, 6, 18)
