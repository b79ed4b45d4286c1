"""Properties that must hold for any input, not only the examples we thought of."""

import datetime as dt
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retentionrules import ast
from retentionrules.api import check_sources, format_source
from retentionrules.config import Config
from retentionrules.formatter import format_file
from retentionrules.parser import parse

CONFIG = Config()
NAMES = [
    "tier",
    "stage",
    "city",
    "spend_12m",
    "birthday",
    "a",
    "b2",
    "城市",
    "G",
    "sleeping",
    "x_y",
]
FRAGMENTS = [
    "rule ",
    "segment ",
    "when ",
    " then ",
    "send ",
    "call ",
    "tag ",
    " via ",
    " with ",
    " and ",
    " or ",
    "not ",
    " in ",
    "[",
    "]",
    "(",
    ")",
    ", ",
    " = ",
    " != ",
    " >= ",
    " < ",
    " between ",
    " is missing",
    " is present",
    " contains ",
    " starts with ",
    " within ",
    " next ",
    " before ",
    " after ",
    " ago",
    "bought ",
    "units bought ",
    " days",
    " months",
    "priority ",
    "cap ",
    " per ",
    "holdout ",
    "%",
    "once per household",
    "max ",
    " run",
    "\n",
    "\n  ",
    "# noqa: RR300",
    "#c",
    '"t"',
    "'u'",
    "2026-11-22",
    "2026-02-30",
    "7",
    "1.5",
    "-",
    "+",
    "*",
    "/",
    "\t",
    "\r\n",
    "\u2028",
    "上海",
    *NAMES,
]
rule_like_text = st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.one_of(rule_like_text, st.text(max_size=200)))
def test_random_text_yields_diagnostics_never_exceptions(text):
    report = check_sources({"r.rules": text}, CONFIG)
    for diagnostic in report.diagnostics:
        assert diagnostic.code and diagnostic.message


@settings(max_examples=300, deadline=None)
@given(rule_like_text)
def test_fmt_is_idempotent_on_anything_that_parses(text):
    formatted, _ = format_source(text)
    if formatted is not None:
        again, _ = format_source(formatted)
        assert again == formatted
        strip = lambda t: parse(t).file.statements  # noqa: E731 - spans are not compared
        assert strip(formatted) == strip(text)


# ---------------------------------------------------------------- random syntax trees

names = st.sampled_from(NAMES).map(ast.Name)
literals = st.one_of(
    st.decimals(min_value=0, max_value=10**6, places=2, allow_nan=False).map(ast.Number),
    st.text(max_size=8).map(ast.String),
    st.booleans().map(ast.Bool),
    st.dates(dt.date(1900, 1, 1), dt.date(2100, 12, 31)).map(ast.Date),
    st.builds(ast.Duration, st.integers(0, 999), st.sampled_from(["day", "week", "month", "year"])),
)


def _flat(kind):
    def build(operands):
        flat = []
        for o in operands:
            flat.extend(o.operands if isinstance(o, kind) else (o,))
        return kind(tuple(flat))

    return build


def _extend(inner):
    pair = st.tuples(inner, inner)
    return st.one_of(
        pair.map(_flat(ast.And)),
        pair.map(_flat(ast.Or)),
        inner.map(ast.Not),
        inner.map(ast.Neg),
        st.builds(ast.Compare, st.sampled_from(["=", "!=", "<", "<=", ">", ">="]), inner, inner),
        st.builds(ast.Arith, st.sampled_from(["+", "-", "*", "/"]), inner, inner),
        st.builds(ast.In, inner, st.lists(inner, max_size=3).map(tuple), st.booleans()),
        st.builds(ast.Between, inner, inner, inner),
        st.builds(ast.IsMissing, inner, st.booleans()),
        st.builds(ast.Contains, inner, inner),
        st.builds(ast.StartsWith, inner, inner),
        st.builds(ast.Within, inner, inner, st.booleans()),
        st.builds(
            ast.BeforeAfter, inner, st.sampled_from(["before", "after"]), inner, st.booleans()
        ),
    )


expressions = st.recursive(st.one_of(names, literals), _extend, max_leaves=8)
params = st.lists(
    st.builds(
        ast.Param,
        st.sampled_from(["amount", "code", "n"]),
        st.one_of(
            literals.filter(lambda n: not isinstance(n, ast.Duration)),
            st.decimals(-100, -1, places=0).map(ast.Number),
            names,
        ),
    ),
    max_size=3,
    unique_by=lambda p: p.name,
).map(tuple)
actions = st.builds(
    ast.Action,
    st.sampled_from(["send", "call", "tag"]),
    st.sampled_from(["x", "w_c"]),
    st.none() | st.sampled_from(["sms", "email"]),
    params,
)
clauses = st.lists(
    st.one_of(
        st.integers(0, 999).map(ast.Priority),
        st.builds(
            ast.Cap, st.integers(1, 9), st.builds(ast.Duration, st.integers(0, 99), st.just("day"))
        ),
        st.decimals(0, 100, places=1).map(ast.Holdout),
        st.just(ast.OncePerHousehold()),
        st.integers(1, 10**6).map(ast.MaxPerRun),
    ),
    max_size=3,
    unique_by=type,
)
rules = st.builds(
    lambda name, description, when, then, rest: ast.Rule(
        name, description if name else None, (ast.When(when), ast.Then(then), *rest)
    ),
    st.none() | st.sampled_from(["r1", "winback", "规则"]),
    st.none() | st.text(max_size=10),
    expressions,
    actions,
    clauses,
)
segments = st.builds(ast.Segment, st.sampled_from(["s1", "best"]), expressions)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(rules, segments), min_size=1, max_size=4).map(tuple))
def test_printing_any_tree_and_parsing_it_gives_the_same_tree(statements):
    rule_file = ast.RuleFile("r.rules", statements)
    text = format_file(rule_file, "")
    result = parse(text)
    assert result.diagnostics == (), text
    assert _canonical(result.file.statements) == _canonical(statements), text
    assert format_source(text)[0] == text


def _canonical(statements):
    """Clause order is layout, not meaning: compare clauses as sets."""
    order = lambda clause: ast.CLAUSE_ORDER.index(type(clause))  # noqa: E731
    return [
        ast.Rule(s.name, s.description, tuple(sorted(s.clauses, key=order)))
        if isinstance(s, ast.Rule)
        else s
        for s in statements
    ]


def test_decimal_literals_keep_their_value():
    rule = parse("when x = 1.50 then send y").file.statements[0]
    assert rule.clause(ast.When).condition.right.value == Decimal("1.5")
