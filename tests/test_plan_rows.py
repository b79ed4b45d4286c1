"""The Python API returns the plan's rows, not only counts: `result.plan.rows()` (a list of
dicts, exactly the plan file's rows), `.to_arrow()` and `.to_pandas()` where pyarrow and pandas
are installed, and a clear ImportError that says how to get them where they are not."""

from __future__ import annotations

import json
import sys

import pytest

from retentionrules.engine import run_plan
from retentionrules.loader import Inputs

from .conftest import ROOT

SHOP = ROOT / "examples"
INPUTS = Inputs(SHOP / "customers.csv", orders=SHOP / "orders.csv", products=SHOP / "products.csv")


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    out = tmp_path_factory.mktemp("plan") / "plan.jsonl"
    result = run_plan(SHOP / "rules", INPUTS, "2026-11-22", out=out)
    written = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    return result, written


def test_plan_rows_are_the_plan_files_rows(planned):
    result, written = planned
    rows = result.plan.rows()
    assert rows == written
    assert len(rows) == result.plan.actions == 94
    assert rows[0]["plan_id"] == result.meta["plan_id"]
    assert isinstance(rows[0]["parameters"], dict)


def test_plan_rows_without_an_output_file(planned):
    """No --out: the rows are read from DuckDB, the same as written."""
    _, written = planned
    alone = run_plan(SHOP / "rules", INPUTS, "2026-11-22")
    assert alone.plan.rows() == written


def test_to_arrow_has_the_plan_rows(planned):
    result, written = planned
    table = result.plan.to_arrow()
    assert table.num_rows == len(written)
    assert table.column("customer_id").to_pylist() == [r["customer_id"] for r in written]
    params = [json.loads(p) for p in table.column("parameters").to_pylist()]
    assert params == [r["parameters"] for r in written]


def test_to_pandas_has_the_plan_rows(planned):
    result, written = planned
    frame = result.plan.to_pandas()
    assert list(frame["rule"]) == [r["rule"] for r in written]
    assert list(frame.columns) == list(written[0])


@pytest.mark.parametrize("method, module", [("to_arrow", "pyarrow"), ("to_pandas", "pandas")])
def test_without_the_library_the_error_says_how_to_get_it(planned, monkeypatch, method, module):
    """As on a machine without it: importing the module fails (None in sys.modules is how
    Python marks a module that cannot be imported)."""
    result, _ = planned
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ImportError, match=rf"Plan.{method}\(\) needs {module}, which is not "
                       rf"installed: pip install {module}"):  # fmt: skip
        getattr(result.plan, method)()
