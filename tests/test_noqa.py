"""`# noqa`: it silences warnings only, only as a real comment, only on the logical line it is
written beside."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retentionrules.api import check_sources
from retentionrules.config import Config
from retentionrules.diagnostics import EVERY_CODE, noqa_codes

from .conftest import customer, write_csv, write_rules


def reported(source: str) -> list[tuple[str, int]]:
    report = check_sources({"r.rules": source}, Config())
    return [(d.code, d.span.line) for d in report.diagnostics]


def test_noqa_never_silences_an_error():
    assert reported("when tier = Gold then send x  # noqa") == [("RR201", 1)]
    assert reported("when tier = Gold then send x  # noqa: RR201, RR300") == [("RR201", 1)]


def test_noqa_inside_quoted_text_is_not_a_comment():
    """`"a#noqa"` once silenced the line's errors, and the broken rule left the plan silently."""
    source = 'when city = "a#noqa" and tier = Gold then send x\n'
    assert reported(source) == [("RR300", 1), ("RR201", 1)]
    assert reported("when city = 'x # noqa' then send x") == [("RR300", 1)]


def test_a_rule_with_an_error_behind_a_noqa_stops_the_plan(tmp_path, run_cli):
    rules = write_rules(tmp_path / "rules", 'when city = "a#noqa" and tier = Gold then send x\n')
    customers = write_csv(tmp_path / "c.csv", [customer("C1")])
    result = run_cli("plan", "--rules", rules, "--customers", customers, "--as-of", "2026-11-22")
    assert result.exit_code == 1
    assert "RR201" in result.output and "nothing was run" in result.output


def test_noqa_silences_the_codes_it_lists():
    assert reported("when tier = G then send x  # noqa: RR300") == []
    assert reported("when tier = G then send x  # NOQA:rr300") == []
    assert reported("when tier = G then send x  # noqa: RR301 RR300") == []
    assert reported("when tier = G then send x  # noqa: RR301") == [("RR300", 1)]
    assert reported("when tier = G then send x  #noqa") == []


def test_a_noqa_whose_codes_are_misspelled_silences_nothing():
    assert reported("when tier = G then send x  # noqa: RR3OO") == [("RR300", 1)]
    assert reported("when tier = G then send x  # noqa:") == [("RR300", 1)]
    assert reported("when tier = G then send x  # noqaRR300") == [("RR300", 1)]


def test_noqa_markers_are_found_anywhere_in_a_comment():
    assert noqa_codes("# why  # noqa: RR300") == {"RR300"}
    assert noqa_codes("# noqa: RR300  # noqa: RR302, rr303") == {"RR300", "RR302", "RR303"}
    assert noqa_codes("# noqa: RR300  # noqa") == EVERY_CODE
    assert noqa_codes("# this is not noqa") == frozenset()


def test_an_own_line_noqa_covers_nothing():
    assert reported("# noqa\nwhen tier = G then send x\n") == [("RR300", 2)]
    assert reported("when tier = G\n  # noqa\n  then send x\n") == [("RR300", 1)]


def test_noqa_covers_the_whole_logical_line_it_is_beside():
    # a one-liner's head on two lines: RR300 is reported at its start
    assert reported("when tier = G\n  then send x  # noqa: RR300\n") == []
    # a clause on several lines: RR301 is reported at the condition
    contradiction = "rule r\n  when tier >= G and\n    tier = B  # noqa: RR301\n  then send x\n"
    assert reported(contradiction) == []
    # but not the logical line before or after it
    assert reported("rule r\n  when tier >= G and tier = B\n  then send x  # noqa: RR301\n") == [
        ("RR301", 2)
    ]


def test_noqa_on_a_line_shared_by_several_clauses_is_beside_the_last():
    assert reported("rule r when tier >= G and tier = B then send x  # noqa: RR301") == [
        ("RR301", 1)
    ]
    assert reported("rule r then send x when tier >= G and tier = B  # noqa: RR301") == []


def test_the_example_in_the_language_reference_holds():
    source = (
        "when tier = G then send x  # noqa: RR300\n"
        "rule r  # noqa: RR302\n"
        "  when tier >= G and        # noqa: RR301\n"
        "       tier = B\n"
        "  then send y\n"
    )
    assert reported(source) == []
    assert reported(source.replace("# noqa", "# no")) == [("RR300", 1), ("RR301", 3)]


def test_noqa_covers_a_segment_and_a_rule_header():
    assert reported("segment s = tier = G  # noqa: RR303\n") == []
    assert reported("segment s = tier = G\n  and stage = lost  # noqa: RR303\n") == []
    shadowed = (
        "rule a\n  when stage = sleeping\n  then send x\n  priority 90\n"
        "rule b  # noqa: RR302\n  when stage = sleeping and tier >= G\n  then send y\n"
    )
    assert reported(shadowed) == []
    assert reported(shadowed.replace("# noqa: RR302", "")) == [("RR302", 5)]


def test_a_broken_statement_does_not_borrow_the_noqa_scope_of_the_one_before():
    source = "when tier = G then send x\nrule  # noqa\n"
    assert [code for code, _ in reported(source)] == ["RR300", "RR100"]


CONTRADICTION = "rule r\n  when tier >= G and tier = B  {}\n  then send x\n"


@pytest.mark.parametrize(
    "marker",
    [
        "# noqa RR302",  # no colon
        "# noqa=RR301",
        "# noqa -- reviewed",
        "# noqa: RR301x",  # not a whole code
        "# noqa: RR301,",  # a list that does not end in a code
        "# noqa: , RR301",
        "# noqa: RR301 -- reviewed",
        "# noqa:",
        "# noqaRR301",
        "# no qa",
    ],
)
def test_a_noqa_that_is_not_exactly_the_grammar_silences_nothing(marker):
    """`# noqa RR302`, `# noqa=RR302`, `# noqa -- reviewed` silenced every warning, and
    `# noqa: RR301x` silenced RR301. A marker is a bare `noqa` or `noqa:` and whole codes."""
    assert noqa_codes(marker) == frozenset()
    assert reported(CONTRADICTION.format(marker)) == [("RR301", 2)]


@pytest.mark.parametrize(
    "marker, codes",
    [
        ("# noqa", EVERY_CODE),
        ("#noqa", EVERY_CODE),
        ("#  NoQA  ", EVERY_CODE),
        ("# noqa  # reviewed with the team", EVERY_CODE),
        ("# noqa: RR301", {"RR301"}),
        ("# noqa:RR301,RR302", {"RR301", "RR302"}),
        ("# noqa : rr301 , RR302  RR303", {"RR301", "RR302", "RR303"}),
        ("# noqa: RR301  # reviewed", {"RR301"}),
        ("# reviewed  # noqa: RR301", {"RR301"}),
    ],
)
def test_noqa_follows_its_grammar_exactly(marker, codes):
    assert noqa_codes(marker) == codes
    assert reported(CONTRADICTION.format(marker)) == []


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.text(alphabet=st.sampled_from(list(" \t:,=-Rr0123456789xqoaNn")), max_size=14))
def test_a_bare_noqa_silences_everything_only_when_nothing_follows_it(tail):
    """Whatever follows `# noqa` (no further `#` here): every warning only for blanks, listed
    codes only for a colon and whole codes, else nothing."""
    codes = noqa_codes("# noqa" + tail)
    if not tail.strip():
        assert codes == EVERY_CODE
    elif codes:
        assert codes != EVERY_CODE and tail.lstrip().startswith(":")
        listed = tail.strip().lstrip(":").replace(",", " ").split()
        assert codes == {code.upper() for code in listed}
