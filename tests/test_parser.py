"""Parser: every construct of the language parses to the AST, with true positions."""

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path

import pytest

from retentionrules import ast
from retentionrules.parser import RESERVED, _Builder, _lark, normalize, parse


def only(source: str) -> ast.Statement:
    result = parse(source)
    assert result.diagnostics == ()
    (statement,) = result.file.statements
    return statement


def condition(text: str) -> ast.Expr:
    rule = only(f"when {text} then send x")
    return rule.clause(ast.When).condition


def test_named_rule_with_every_clause():
    rule = only(
        'rule winback_gold "Win back"\n'
        "  when stage = sleeping\n"
        '  then send winback_coupon via sms with amount = 50, code = "W", until = 2026-12-31\n'
        "  priority 80\n  cap 1 per 30 days\n  holdout 12.5%\n  once per household\n"
        "  max 5000 per run\n"
    )
    assert rule.name == "winback_gold" and rule.description == "Win back"
    action = rule.clause(ast.Then).action
    assert (action.kind, action.template, action.channel) == ("send", "winback_coupon", "sms")
    assert [p.name for p in action.params] == ["amount", "code", "until"]
    assert rule.clause(ast.Priority).value == 80
    assert rule.clause(ast.Cap) == ast.Cap(1, ast.Duration(30, "day"))
    assert rule.clause(ast.Holdout).percent == Decimal("12.5")
    assert rule.clause(ast.OncePerHousehold) is not None
    assert rule.clause(ast.MaxPerRun).count == 5000


def test_one_liner_with_multi_word_template():
    rule = only("when stage = sleeping and tier >= G then send winback coupon")
    assert rule.name is None
    assert rule.clause(ast.Then).action.template == "winback_coupon"


def test_call_and_tag_actions():
    assert only("when a then call vip care").clause(ast.Then).action.kind == "call"
    assert only("when a then tag at_risk").clause(ast.Then).action == ast.Action("tag", "at_risk")


def test_conditions_of_every_kind():
    assert condition("x in [1, 2]") == ast.In(ast.Name("x"), (ast.Number(1), ast.Number(2)))
    assert condition("x not in []") == ast.In(ast.Name("x"), (), negated=True)
    assert condition("x between 1 and 5") == ast.Between(
        ast.Name("x"), ast.Number(1), ast.Number(5)
    )
    assert condition("x is missing") == ast.IsMissing(ast.Name("x"))
    assert condition("x is present") == ast.IsMissing(ast.Name("x"), negated=True)
    assert condition('x contains "a"') == ast.Contains(ast.Name("x"), ast.String("a"))
    assert condition('x starts with "a"') == ast.StartsWith(ast.Name("x"), ast.String("a"))
    assert condition("x within 7 days") == ast.Within(ast.Name("x"), ast.Duration(7, "day"))
    assert condition("x within next 3 months").upcoming
    assert condition("x before 90 days ago") == ast.BeforeAfter(
        ast.Name("x"), "before", ast.Duration(90, "day"), ago=True
    )
    assert condition("x after 2026-01-01").point == ast.Date(dt.date(2026, 1, 1))


def test_precedence_and_flattening():
    assert condition("a or b and not c") == ast.Or(
        (ast.Name("a"), ast.And((ast.Name("b"), ast.Not(ast.Name("c")))))
    )
    assert condition("(a and b) and c") == ast.And((ast.Name("a"), ast.Name("b"), ast.Name("c")))
    assert condition("x + 2 * 3 > -y") == ast.Compare(
        ">",
        ast.Arith("+", ast.Name("x"), ast.Arith("*", ast.Number(2), ast.Number(3))),
        ast.Neg(ast.Name("y")),
    )


def test_unicode_names_and_strings():
    assert condition('城市 = "上海"') == ast.Compare("=", ast.Name("城市"), ast.String("上海"))


def test_spans_point_into_the_file():
    result = parse("# comment\n\nrule r\n  when   stage = lost\n  then send x\n")
    rule = result.file.statements[0]
    when = rule.clause(ast.When)
    assert (when.span.line, when.span.column) == (4, 3)
    assert (when.condition.span.line, when.condition.span.column) == (4, 10)
    assert result.file.comments[0].span.line == 1


def test_every_broken_statement_is_reported():
    result = parse(
        "rule a\n  when x = = 1\n  then send y\n\nrule b\n  when x >\n  then send y\n"
        "rule c\n  when ok\n  then send z\n"
    )
    assert [(d.code, d.span.line) for d in result.diagnostics] == [("RR100", 2), ("RR100", 7)]
    assert [s.name for s in result.file.statements] == ["c"]


def test_unindented_continuation_gets_a_hint():
    (diagnostic,) = parse("rule a\nwhen x = 1\n  then send y\nthen send z").diagnostics
    assert diagnostic.span.line == 4
    assert "indent" in diagnostic.hint


def test_invalid_numbers_and_dates():
    result = parse("rule a\n  when d = 2026-02-30\n  then send y\n  priority 1.5\n")
    assert [d.code for d in result.diagnostics] == ["RR101", "RR101"]


def test_a_damaged_parser_cache_is_rebuilt_not_an_error(tmp_path, monkeypatch):
    """The built parser is cached between runs; a half-written or foreign cache must not matter."""
    from retentionrules import parser

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cache = tmp_path / "retentionrules" / "grammar.lark.cache"
    cache.parent.mkdir()
    for damage in (b"not a cache", b""):
        cache.write_bytes(damage)
        parser._lark.cache_clear()
        try:
            assert only("when stage = sleeping then send x")
        finally:
            parser._lark.cache_clear()
        assert cache.read_bytes() != damage  # rebuilt and saved again


# ---------------------------------------------------------------- reserved words

# A NAME position, with `{w}` where the word goes. Where the grammar can take a keyword at that
# spot, it lexes it as one (a different syntax error, or a different statement), so those words
# are left out of that position.
NAME_POSITIONS = {
    "rule name": ("rule {w}\n  when sms_opt_in\n  then send x\n", set()),
    "segment name": ("segment {w} = sms_opt_in\n", set()),
    "template word": ("when sms_opt_in then send {w}\n", set()),
    "later template word": (
        "when sms_opt_in then send x {w} y\n",
        {"via", "with", "when", "then", "priority", "cap", "holdout", "once", "max"},
    ),
    "channel": ("when sms_opt_in then send x via {w}\n", set()),
    "parameter name": ("when sms_opt_in then send x with a = 1, {w} = 2\n", set()),
    "bare parameter value": ("when sms_opt_in then send x with a = {w}\n", {"true", "false"}),
    "field": ("when {w} = 1 then send x\n", {"not", "true", "false", "bought"}),
    "enumeration value": (
        "when tier in [G, {w}] then send x\n",
        {"not", "true", "false", "bought"},
    ),
}


@pytest.mark.parametrize("position", NAME_POSITIONS)
def test_a_reserved_word_is_never_a_name(position):
    template, keywords_there = NAME_POSITIONS[position]
    column = template.index("{w}") + 1
    for word in sorted(RESERVED - keywords_there):
        result = parse(template.format(w=word))
        assert result.file.statements == (), word  # the statement is left out, not misread
        (diagnostic,) = result.diagnostics
        assert diagnostic.code == "RR100", word
        assert (diagnostic.span.line, diagnostic.span.column) == (1, column), word
        assert diagnostic.span.end_column == column + len(word)
        assert f"`{word}` is a reserved word" in diagnostic.message
        assert diagnostic.hint


def test_a_keyword_on_an_indented_line_is_not_glued_to_the_template():
    """`then send x` followed by an indented `rule b` was the template `x_rule_b`."""
    (diagnostic,) = parse("when tier = G then send x\n  rule b\n").diagnostics
    assert (diagnostic.code, diagnostic.span.line, diagnostic.span.column) == ("RR100", 2, 3)
    assert "beginning of a line" in diagnostic.hint


def test_names_that_contain_reserved_words_are_ordinary_names():
    rule = only("rule rule_b\n  when max_spend = Run and runs > 1\n  then send when_x with Max = 1")
    assert rule.name == "rule_b"
    assert rule.clause(ast.Then).action == ast.Action(
        "send", "when_x", None, (ast.Param("Max", ast.Number(1)),)
    )


def test_the_reserved_words_are_the_grammars_words_and_the_documented_ones():
    grammar_words = set()
    for terminal in _lark().terminals:
        if re.fullmatch(r"\(\?:[a-z|]+\)|[a-z]+", terminal.pattern.value):
            grammar_words.update(re.findall(r"[a-z]+", terminal.pattern.value))
    assert grammar_words == RESERVED
    reference = (Path(__file__).parent.parent / "docs" / "language.md").read_text("utf-8")
    listed = re.search(r"Reserved words are never names: (.*?)\.", reference, re.S).group(1)
    documented = set(re.findall(r"`([^`]+)`", listed))
    words = set(" ".join(documented).split())
    for unit in ("day", "week", "month", "year"):
        words.discard(f"{unit}(s)")
        words |= {unit, f"{unit}s"}
    assert words == RESERVED


def test_every_kind_of_tree_the_grammar_builds_has_a_builder():
    """Lark hands an unknown tree kind through untouched: a grammar rule without a builder method
    would put a lark.Tree into the syntax tree."""
    needed = set()
    for rule in _lark().rules:
        name = str(rule.alias or rule.origin.name)
        kept = [s for s in rule.expansion if not getattr(s, "filter_out", False)]
        if name.startswith("_") or (rule.options.expand1 and len(kept) == 1 and not rule.alias):
            continue  # inlined by Lark
        needed.add(name)
    assert needed - set(dir(_Builder)) == set()


# ---------------------------------------------------------------- the text of a file


def test_a_byte_order_mark_and_crlf_line_ends_are_read_as_editors_show_them():
    result = parse("\ufeffrule r  # c\r\n  when tier = G\r\n  then send x\r\n")
    assert result.diagnostics == ()
    rule = result.file.statements[0]
    assert (rule.span.line, rule.span.column) == (1, 1)
    assert (rule.clause(ast.When).span.line, rule.clause(ast.When).span.column) == (2, 3)
    assert [c.text for c in result.file.comments] == ["# c"]


def test_a_lone_carriage_return_ends_a_line():
    result = parse("rule r\r  when tier = G\r  then send x\r")
    assert result.diagnostics == ()
    assert result.file.statements[0].clause(ast.Then).span.line == 3


def test_an_invisible_character_is_named_in_the_error():
    (diagnostic,) = parse("when tier\u3000= G then send x").diagnostics
    assert "U+3000 (IDEOGRAPHIC SPACE)" in diagnostic.message
    (diagnostic,) = parse("when tier = G\u202e then send x").diagnostics
    assert "U+202E (RIGHT-TO-LEFT OVERRIDE)" in diagnostic.message


def test_a_negative_parameter_keeps_every_digit():
    rule = only("when a then send x with n = -123456789012345678901234567890.5")
    (param,) = rule.clause(ast.Then).action.params
    assert param.value == ast.Number(Decimal("-123456789012345678901234567890.5"))


def test_normalizing_twice_changes_nothing():
    """Found by the fuzzer: a file starting with two byte order marks lost one per normalization,
    so `fmt` (which normalized before parsing) formatted another text than it checked."""
    for text in ("\ufeff\ufeffrule r\r\n  when a\r\r\n  then send x", "\r\n\r", "\ufeff"):
        once = normalize(text)
        assert normalize(once) == once
        assert parse(text) == parse(once)


def test_indented_code_before_the_first_statement_is_an_error_not_skipped():
    """An indented first rule was parsed as nothing: check passed and the plan lacked the rule."""
    (diagnostic,) = parse("# rules\n  when tier = G then send x\n").diagnostics
    assert (diagnostic.code, diagnostic.span.line, diagnostic.span.column) == ("RR100", 2, 3)
    assert "remove the indentation" in diagnostic.hint
    result = parse("\twhen tier = G then send x\nrule r\n  when tier = G\n  then send y\n")
    assert [(d.code, d.span.line) for d in result.diagnostics] == [("RR100", 1)]
    assert [s.name for s in result.file.statements] == ["r"]
    assert parse("  # only a comment\n\nrule r\n  when a\n  then send y\n").diagnostics == ()
