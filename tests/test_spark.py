"""Apache Spark as a second engine (`--engine spark`): the same plan, byte for byte, with the
same plan id, and the same derived fields as DuckDB; the compiled rules agree with the Python
interpreter on Spark too. Spark runs in local mode, one session for the whole test session."""

import csv
import datetime as dt
import subprocess
import sys

import pyspark  # noqa: F401 - the test extra installs it: without it these tests must fail
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retentionrules.api import check_sources
from retentionrules.compiler import compile_conditions, with_layers
from retentionrules.derive import DERIVED, create_derived
from retentionrules.engine import run_plan, score
from retentionrules.interpreter import evaluate
from retentionrules.loader import Inputs
from retentionrules.spark import SparkConnection, load, plain, session

from .conftest import ROOT, write_csv
from .test_evaluators import AS_OF, CONFIG, conditions, customers, happened

EXAMPLES = ROOT / "examples"
JOB = ROOT / "bench" / "standard_job"
DEMO = Inputs(
    EXAMPLES / "customers.csv", EXAMPLES / "orders.csv", products=EXAMPLES / "products.csv"
)
AS_OF_DATE = dt.date(2026, 11, 22)


@pytest.fixture(scope="session")
def spark():
    """One local Spark session for every test here: two cores, few shuffle partitions."""
    spark = session("local[2]")
    spark.conf.set("spark.sql.shuffle.partitions", "4")
    return spark


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_demo_shop_plan_is_byte_identical_on_spark(spark, tmp_path, suffix):
    duck, on_spark = tmp_path / f"duckdb{suffix}", tmp_path / f"spark{suffix}"
    a = run_plan([EXAMPLES / "rules"], DEMO, AS_OF_DATE, out=duck)
    b = run_plan([EXAMPLES / "rules"], DEMO, AS_OF_DATE, out=on_spark, engine="spark")
    assert a.meta["plan_id"] == b.meta["plan_id"]
    assert a.plan.counts == b.plan.counts
    assert duck.read_bytes() == on_spark.read_bytes()
    assert len(duck.read_bytes().splitlines()) > 50  # the demo plans dozens of actions


def test_standard_job_plan_is_byte_identical_on_spark(spark, tmp_path):
    """The plan, its header and the suppressed pairs (`--suppressed`: each customer's removals
    walked rule by rule, which Spark does with one generator) are the same on both engines."""
    customers = tmp_path / "c.csv"
    subprocess.run([sys.executable, JOB / "gen_customers.py", "2000", customers], check=True)
    duck, on_spark = tmp_path / "duckdb.csv", tmp_path / "spark.csv"
    removed = {engine: tmp_path / f"suppressed-{engine}.csv" for engine in ("duckdb", "spark")}
    a = run_plan([JOB], Inputs(customers), AS_OF_DATE, out=duck, suppressed=removed["duckdb"])
    b = run_plan(
        [JOB], Inputs(customers), AS_OF_DATE, out=on_spark, suppressed=removed["spark"],
        engine="spark",
    )  # fmt: skip
    assert a.meta == b.meta
    assert duck.read_bytes() == on_spark.read_bytes()
    assert a.plan.actions > 1000
    assert removed["duckdb"].read_bytes() == removed["spark"].read_bytes()
    with removed["duckdb"].open(encoding="utf-8-sig", newline="") as handle:
        reasons = {row["reason"] for row in csv.DictReader(handle)}
    assert {"consent", "priority", "quiet_period"} <= reasons  # every kind of walk is compared


def test_demo_shop_scores_are_identical_on_spark(spark, tmp_path):
    duck, on_spark = tmp_path / "duckdb.csv", tmp_path / "spark.csv"
    a = score(DEMO, AS_OF_DATE, out=duck, config_path=EXAMPLES / "retentionrules.toml")
    b = score(
        DEMO, AS_OF_DATE, out=on_spark, config_path=EXAMPLES / "retentionrules.toml",
        engine="spark",
    )
    assert a.distribution == b.distribution
    assert duck.read_bytes() == on_spark.read_bytes()


@settings(max_examples=4, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(conditions, min_size=1, max_size=4), customers, AS_OF)
def test_sql_on_spark_and_interpreter_agree(spark, tmp_path_factory, texts, rows, as_of):
    """The agreement property of tests/test_evaluators.py, with the SQL run on Spark."""
    source = "".join(f"rule r{i}\n  when {text}\n  then tag t\n" for i, text in enumerate(texts))
    report = check_sources({"r.rules": source}, CONFIG)
    assert report.ok, (source, report.diagnostics)
    rows = happened(rows, as_of)
    path = write_csv(
        tmp_path_factory.mktemp("spark") / "c.csv",
        [{**row, "customer_id": f"C{i}"} for i, row in enumerate(rows)],
    )
    con = SparkConnection(spark)
    load(con, CONFIG, Inputs(path), as_of)
    create_derived(con, CONFIG, as_of, orders=False, contacts=False)
    compiled = compile_conditions([r.condition for r in report.ruleset.rules], as_of)
    columns = ", ".join(f"{sql} AS r{i}" for i, sql in enumerate(compiled.conditions))
    cursor = con.execute(f"SELECT *, {columns} FROM {with_layers(DERIVED, compiled.layers)}")
    names = [d[0] for d in cursor.description]
    for values in cursor.fetchall():
        row = {name: plain(value) for name, value in zip(names, values, strict=True)}
        for i, rule in enumerate(report.ruleset.rules):
            assert row[f"r{i}"] == evaluate(rule.condition, row, as_of), (texts[i], row)


def test_missing_pyspark_is_a_usage_error_naming_the_extra(tmp_path):
    """Without PySpark the command says what to install (exit 2), never a traceback."""
    blocker = tmp_path / "pyspark"
    blocker.mkdir()
    (blocker / "__init__.py").write_text("raise ImportError('no pyspark here')\n")
    run = subprocess.run(
        [sys.executable, "-m", "retentionrules", "score", "--customers",
         str(EXAMPLES / "customers.csv"), "--as-of", "2026-11-22", "--engine", "spark"],
        capture_output=True, text=True, cwd=ROOT,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert run.returncode == 2, run.stderr
    assert "pip install 'retentionrules[spark]'" in run.stderr
    assert "Traceback" not in run.stderr


def test_a_spark_failure_is_one_line_for_people_not_a_java_stack(run_cli, spark, monkeypatch):
    """What Spark's own failures print: the deepest cause, exit 2, no frames. (A plan that lost
    a task's result, as 10,000,000 customers did on one machine, fails this way: injected here,
    after the real session loaded the data.)"""
    from pyspark.errors import PySparkException

    from retentionrules import engine
    from retentionrules.cli import spark_cause

    stack = (
        "An error occurred while calling o120.getResult.\n"
        ": org.apache.spark.SparkException: Exception thrown in awaitResult: \n"
        "\tat org.apache.spark.util.SparkThreadUtils$.awaitResult(SparkThreadUtils.scala:70)\n"
        "Caused by: org.apache.spark.SparkException: Job aborted due to stage failure: "
        "TaskResultLost (result lost from block manager)\n"
        "\tat org.apache.spark.scheduler.DAGScheduler.abortStage(DAGScheduler.scala:4560)\n"
    )
    assert spark_cause(stack) == "Job aborted due to stage failure: TaskResultLost (result lost " \
        "from block manager)"
    assert spark_cause("no class here: just words") == "no class here: just words"

    def fail(*args, **kwargs):
        raise PySparkException(message=stack)

    monkeypatch.setattr(engine, "build_plan", fail)
    result = run_cli(
        "plan", "--rules", EXAMPLES / "rules", "--customers", EXAMPLES / "customers.csv",
        "--as-of", "2026-11-22", "--engine", "spark",
    )  # fmt: skip
    assert result.exit_code == 2
    cause = "Job aborted due to stage failure: TaskResultLost"
    assert f"Spark stopped the run: {cause}" in result.output
    assert "\tat org.apache" not in result.output and "internal error" not in result.output


def test_a_table_of_the_spark_catalogue_plans_as_its_file_does(spark, tmp_path):
    """`--customers table:NAME` reads a table (here a view) of the session's catalogue: the same
    actions as DuckDB planning the Parquet file the table was made from. Only the plan id
    differs: a table's digest is its name's (its rows are the cluster's)."""
    import json

    import duckdb

    parquet = tmp_path / "customers.parquet"
    source = EXAMPLES / "customers.csv"
    duckdb.connect().execute(
        f"COPY (SELECT * FROM read_csv('{source}')) TO '{parquet}' (FORMAT PARQUET)"
    )
    spark.read.parquet(str(parquet)).createOrReplaceTempView("demo_customers")
    duck, on_spark = tmp_path / "duckdb.jsonl", tmp_path / "spark.jsonl"
    a = run_plan([EXAMPLES / "rules"], Inputs(parquet), AS_OF_DATE, out=duck, use_ledger=False)
    b = run_plan(
        [EXAMPLES / "rules"], Inputs("table:demo_customers"), AS_OF_DATE, out=on_spark,
        use_ledger=False, engine="spark",
    )  # fmt: skip

    def actions(path):
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        return [{k: v for k, v in row.items() if k != "plan_id"} for row in rows]

    assert actions(duck) == actions(on_spark) and len(actions(duck)) > 50
    assert a.plan.counts == b.plan.counts
    assert a.meta["plan_id"] != b.meta["plan_id"]


@pytest.mark.parametrize("master", ["nonsense", "local[0]", "local[abc]", ""])
def test_a_spark_master_spark_cannot_take_is_a_usage_error_before_spark_starts(run_cli, master):
    result = run_cli(
        "plan", "--rules", EXAMPLES / "rules", "--customers", EXAMPLES / "customers.csv",
        "--as-of", "2026-11-22", "--engine", "spark", "--spark-master", master,
    )  # fmt: skip
    assert result.exit_code == 2
    assert f"--spark-master {master!r}: expected local, local[N]" in result.output


@pytest.mark.parametrize(
    "args, said",
    [
        (["--customers", EXAMPLES / "customers.csv", "--rejects", "r.csv"], "--rejects is not"),
        (["--customers", EXAMPLES / "x.jsonl"], "convert JSON lines"),
        (["--customers", "table:"], "name the table"),
    ],
)
def test_what_spark_cannot_do_yet_is_said_before_spark_starts(run_cli, monkeypatch, args, said):
    """Usage errors, at once: not after the seconds a JVM takes to start (the session is never
    asked for)."""
    from retentionrules import spark

    def no_session(master):
        raise AssertionError("Spark was started before the usage error")

    monkeypatch.setattr(spark, "session", no_session)
    result = run_cli(
        "plan", "--rules", EXAMPLES / "rules", *args, "--as-of", "2026-11-22",
        "--engine", "spark", "--spark-master", "local[1]",
    )  # fmt: skip
    assert result.exit_code == 2 and said in result.output, result.output
