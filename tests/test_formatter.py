"""fmt: the canonical layout never changes meaning, keeps every comment, and keeps each `# noqa`
covering the same warnings."""

from decimal import Decimal

import pytest

from retentionrules import ast
from retentionrules.api import check_sources, format_source
from retentionrules.config import Config
from retentionrules.formatter import format_file
from retentionrules.parser import parse


def fmt(source: str) -> str:
    formatted, errors = format_source(source)
    assert errors == [], errors
    assert format_source(formatted) == (formatted, [])  # idempotent
    return formatted


def statements(source: str) -> tuple[ast.Statement, ...]:
    result = parse(source)
    assert result.diagnostics == ()
    return result.file.statements


def warnings(source: str) -> list[str]:
    return sorted(d.code for d in check_sources({"r.rules": source}, Config()).diagnostics)


# ---------------------------------------------------------------- numbers and text


@pytest.mark.parametrize(
    "number",
    [
        "123456789012345678901234567890",
        "0.000000000000000000000000000001",
        "98765432109876543210.12345678901234567890123",
        "9" * 400,
    ],
)
def test_fmt_keeps_every_digit_of_a_number(number):
    source = f"when spend_12m > {number} then send x with n = -{number}\n"
    formatted = fmt(source)
    assert formatted == source
    assert statements(formatted) == statements(source)


def test_fmt_keeps_every_digit_of_whole_numbers_beyond_python_int_printing():
    """str(int) refuses more than 4,300 digits; fmt must not."""
    big = "7" * 5000
    source = f"rule r\n  when tier = G\n  then send x\n  priority {big}\n  max {big} per run\n"
    assert fmt(source) == source


def test_fmt_drops_only_zeros_that_do_not_change_a_number():
    formatted = fmt("when a > 007.50 then send x with n = 0.0, m = -0, h = 10\n  holdout 12.50%")
    assert formatted == "when a > 7.5 then send x with n = 0, m = 0, h = 10\n  holdout 12.5%\n"


@pytest.mark.parametrize(
    "value",
    [
        'say "hi"',
        "it's",
        "back\\slash\\",
        "tab\there",
        "line\nfeed and carriage\rreturn",
        "nul\x00 vt\x0b ff\x0c nel\x85",
        "line\u2028separator\u2029",
        "bidi \u202eoverride\u202c",
        "上海 北京 😀",
        "a#noqa # noqa",
        "'\"\\'\\\"",
        "",
    ],
)
def test_text_with_any_character_round_trips(value):
    rule = ast.Rule(
        "r",
        value,
        (
            ast.When(ast.Compare("=", ast.Name("city"), ast.String(value))),
            ast.Then(ast.Action("send", "x", None, (ast.Param("t", ast.String(value)),))),
        ),
    )
    text = format_file(ast.RuleFile("r.rules", (rule,)), "")
    assert statements(text) == (rule,)
    assert parse(text).file.comments == ()
    assert fmt(text) == text


def test_single_quoted_text_with_escapes_keeps_its_value():
    source = "when city = 'it\\'s \"x\" \\\\ \\t' then send x\n"
    formatted = fmt(source)
    assert formatted == 'when city = "it\'s \\"x\\" \\\\ \\t" then send x\n'
    assert statements(formatted) == statements(source)


# ---------------------------------------------------------------- layout


def test_a_one_liner_with_a_second_when_keeps_its_when_then_head():
    """The second `when` (an RR102 error for the checker) once went into the head: `when a when b`,
    which does not parse."""
    formatted = fmt("when tier = G then send x\n  when tier = B\n")
    assert formatted == "when tier = G then send x\n  when tier = B\n"


def test_fmt_output_parses_to_the_same_statements_for_any_layout():
    source = (
        "rule\n  r\n  'd'\n    then\n  send\n  a  b\n  when (tier)>=G\n  max 5 per\n"
        "  run priority 2\n"
        "segment\tsa=not(tier=G)or\n\tstage=lost\n"
        "when -(-spend_12m)--1>0 then tag t\n"
    )
    formatted = fmt(source)
    assert formatted == (
        'rule r "d"\n  when tier >= G\n  then send a_b\n  priority 2\n  max 5 per run\n\n'
        "segment sa = not tier = G or stage = lost\n\n"
        "when --spend_12m - -1 > 0 then tag t\n"
    )
    order = lambda c: ast.CLAUSE_ORDER.index(type(c))  # noqa: E731
    (before, *_), (after, *_) = statements(source), statements(formatted)
    assert sorted(before.clauses, key=order) == list(after.clauses)


def test_fmt_writes_lf_line_ends_and_keeps_a_byte_order_mark():
    assert format_source("\ufeffrule r\r\n  when tier = G\r\n  then send x\r\n")[0] == (
        "\ufeffrule r\n  when tier = G\n  then send x\n"
    )
    assert format_source("rule r\r  when tier = G\r  then send x")[0] == (
        "rule r\n  when tier = G\n  then send x\n"
    )
    assert format_source("\ufeff")[0] == "\ufeff"


def test_fmt_refuses_a_file_with_a_reserved_word_as_a_name():
    """It once wrote `then send x_rule_b`."""
    formatted, errors = format_source("when tier = G then send x\n  rule b\n")
    assert formatted is None
    assert [(d.code, d.span.line) for d in errors] == [("RR100", 2)]


# ---------------------------------------------------------------- comments and noqa


def test_fmt_keeps_every_comment():
    source = (
        "# head\n\nrule r  # one\n  # own\n  when tier = G  # two\n     and stage = lost  # three\n"
        "  then send x\n# tail\n"
    )
    formatted = fmt(source)
    assert formatted == (
        "# head\n\nrule r  # one\n  # own\n  # three\n  when tier = G and stage = lost  # two\n"
        "  then send x\n\n# tail\n"
    )


def test_fmt_keeps_a_noqa_that_lands_on_a_line_with_another_comment():
    """Two trailing comments beside one logical line: the noqa is appended, not moved above (where
    it would cover nothing)."""
    source = (
        "rule r\n  when tier >= G  # why\n   and tier = B  # noqa: RR301\n  then send x\n"
    )
    formatted = fmt(source)
    assert "  when tier >= G and tier = B  # why  # noqa: RR301\n" in formatted
    assert warnings(source) == warnings(formatted) == []


def test_fmt_keeps_the_noqa_of_a_one_liner_whose_when_and_then_were_on_two_lines():
    source = "when tier = G  # noqa: RR300\n  then send x\n"
    assert warnings(source) == []
    formatted = fmt(source)
    assert formatted == "when tier = G then send x  # noqa: RR300\n"
    assert warnings(formatted) == []


def test_fmt_keeps_the_noqa_of_a_clause_spread_over_several_lines():
    source = "rule r\n  when tier >= G and   # noqa: RR301\n    tier = B\n  then send x\n"
    assert warnings(source) == []
    formatted = fmt(source)
    assert formatted == "rule r\n  when tier >= G and tier = B  # noqa: RR301\n  then send x\n"
    assert warnings(formatted) == []


def test_fmt_keeps_a_noqa_beside_the_last_of_several_clauses_on_one_line():
    """`# noqa` is beside the last logical line on its physical line: here `then`, so the RR301
    of the `when` is reported before and after formatting alike."""
    source = "rule r when tier >= G and tier = B then send x  # noqa: RR301\n"
    assert warnings(source) == ["RR301"]
    formatted = fmt(source)
    assert formatted == "rule r\n  when tier >= G and tier = B\n  then send x  # noqa: RR301\n"
    assert warnings(formatted) == ["RR301"]


def test_an_own_line_noqa_stays_on_its_own_line_and_covers_nothing():
    source = "# noqa\nwhen tier = G then send x\n  # noqa: RR300\n"
    assert warnings(source) == ["RR300"]
    formatted = fmt(source)
    assert formatted == "# noqa\nwhen tier = G then send x\n\n# noqa: RR300\n"
    assert warnings(formatted) == ["RR300"]


def test_decimal_values_survive_fmt_exactly():
    (rule,) = statements(fmt("when a = 1.000000000000000000000000000000001 then send y"))
    assert rule.clause(ast.When).condition.right.value == Decimal(
        "1.000000000000000000000000000000001"
    )


def test_fmt_formats_the_text_it_checks_when_a_file_starts_with_two_byte_order_marks():
    """Found by the fuzzer: fmt dropped both marks before parsing, check only one."""
    source = "\ufeff\ufeffrule r\n  when tier = G\n  then send x\n"
    assert fmt(source) == "\ufeffrule r\n  when tier = G\n  then send x\n"
    assert statements(fmt(source)) == statements(source)


def test_fmt_never_deletes_an_indented_rule_at_the_top_of_a_file():
    """fmt once wrote an empty file for `  when tier = G then send x`."""
    formatted, errors = format_source("  when tier = G then send x\n")
    assert formatted is None
    assert [(d.code, d.span.line, d.span.column) for d in errors] == [("RR100", 1, 3)]


@pytest.mark.parametrize(
    "second, kept_beside",
    [
        ("# noqa: RR301", True),
        ("# NOQA", True),
        ("# noqa -- reviewed", False),  # silences nothing: an ordinary comment
        ("# see the noqa docs", False),
        ("# noqa: RR301x", False),
    ],
)
def test_fmt_keeps_beside_its_line_exactly_the_comments_the_checker_reads_as_noqa(
    second, kept_beside
):
    """Whether a comment holds a noqa was decided twice: fmt kept every comment containing the
    word beside its line, the checker read a stricter grammar. Now both ask noqa_codes."""
    source = f"rule r\n  when tier >= G  # why\n   and tier = B  {second}\n  then send x\n"
    formatted = fmt(source)
    clause = "  when tier >= G and tier = B  # why"
    if kept_beside:
        assert f"{clause}  {second}\n" in formatted
    else:
        assert f"  {second}\n{clause}\n" in formatted
    assert warnings(source) == warnings(formatted)

