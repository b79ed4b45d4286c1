"""The Python API the command line is a thin layer over, as a notebook user calls it: paths as
text, the as-of date as ISO text, one rule folder on its own; wrong types are usage errors that
say what was expected, never an AttributeError from deep inside."""

import datetime as dt

import pytest

from retentionrules.engine import explain, run_plan, score
from retentionrules.errors import UsageError
from retentionrules.loader import Inputs

from .conftest import ROOT

SHOP = ROOT / "examples"


def test_a_notebook_call_with_text_paths_plans_as_the_command_line_does(tmp_path, run_cli):
    out = tmp_path / "api.csv"
    result = run_plan(
        str(SHOP / "rules"),  # one folder, not a list of its letters
        Inputs(str(SHOP / "customers.csv")),
        "2026-11-22",
        out=str(out),
        config_path=str(SHOP / "retentionrules.toml"),
    )
    assert result.meta["as_of"] == "2026-11-22"
    cli = tmp_path / "cli.csv"
    args = ("--customers", SHOP / "customers.csv", "--as-of", "2026-11-22", "--out", cli)
    assert run_cli("plan", "--rules", SHOP / "rules", *args).exit_code == 0
    assert out.read_bytes() == cli.read_bytes()


def test_a_datetime_as_of_is_its_date():
    inputs = Inputs(SHOP / "customers.csv")
    at_ten = run_plan([SHOP / "rules"], inputs, dt.datetime(2026, 11, 22, 10, 30))
    assert at_ten.meta["plan_id"] == run_plan([SHOP / "rules"], inputs, dt.date(2026, 11, 22)).meta[
        "plan_id"
    ]


def test_score_and_explain_take_text_too(tmp_path):
    scored = score(Inputs(str(SHOP / "customers.csv")), "2026-11-22", out=str(tmp_path / "s.csv"))
    assert scored.stats.customers == 300 and (tmp_path / "s.csv").exists()
    (found,) = explain(str(SHOP / "rules"), Inputs(str(SHOP / "customers.csv")), "C0000001")
    assert found.customer == "C0000001"  # one id on its own, not eight one-letter ids


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: Inputs(5), "Inputs.customers: a path to a file, not int"),
        (lambda: Inputs(SHOP / "customers.csv", orders=b"o.csv"), "Inputs.orders: a path"),
        (
            lambda: run_plan([SHOP / "rules"], Inputs(SHOP / "customers.csv"), "22/11/2026"),
            "give a date as YYYY-MM-DD",
        ),
        (
            lambda: run_plan([SHOP / "rules"], Inputs(SHOP / "customers.csv"), 20261122),
            "a date or YYYY-MM-DD text, not int",
        ),
        (
            lambda: run_plan([SHOP / "rules"], Inputs(SHOP / "customers.csv"), out=3),
            "out: a path, not int",
        ),
        (lambda: run_plan(None, Inputs(SHOP / "customers.csv")), "a path or a list of paths"),
        (lambda: run_plan(5, Inputs(SHOP / "customers.csv")), "not int"),
        (lambda: run_plan([None], Inputs(SHOP / "customers.csv")), "rule path: a path, not"),
        (lambda: run_plan(SHOP / "rules", 3.5), "or the customer export.s path, not float"),
        (lambda: explain(SHOP / "rules", SHOP / "customers.csv", None), "an id or a list"),
        (lambda: explain(SHOP / "rules", SHOP / "customers.csv", [b"C1"]), "not bytes"),
        (lambda: run_plan(SHOP / "rules", SHOP / "customers.csv", "20261122"), "YYYY-MM-DD"),
        (lambda: run_plan(SHOP / "rules", SHOP / "customers.csv", "2026-W47-7"), "YYYY-MM-DD"),
    ],
)
def test_wrong_types_from_python_are_usage_errors_that_say_what_was_expected(call, message):
    with pytest.raises(UsageError, match=message):
        call()


def test_a_moment_with_a_time_zone_is_taken_on_the_shops_calendar():
    """20:00 UTC on the 22nd is already the 23rd in Shanghai, the demo shop's zone."""
    moment = dt.datetime(2026, 11, 22, 20, 0, tzinfo=dt.timezone.utc)
    result = run_plan(SHOP / "rules", SHOP / "customers.csv", moment)
    assert result.meta["as_of"] == "2026-11-23"


def test_the_customer_export_alone_may_stand_for_the_inputs_and_an_id_may_be_a_number():
    planned = run_plan(SHOP / "rules", str(SHOP / "customers.csv"), "2026-11-22")
    assert planned.meta["customers"] == 300
    with pytest.raises(UsageError, match="customer '7' is not in"):
        explain(SHOP / "rules", SHOP / "customers.csv", 7, "2026-11-22")
