"""Parser: every construct of the language parses to the AST, with true positions."""

import datetime as dt
from decimal import Decimal

from retentionrules import ast
from retentionrules.parser import parse


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
