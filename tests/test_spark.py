"""Apache Spark as a second engine (`--engine spark`): the same plan, byte for byte, with the
same plan id, and the same derived fields as DuckDB; the compiled rules agree with the Python
interpreter on Spark too. Spark runs in local mode, one session for the whole test session."""

import csv
import datetime as dt
import json
import re
import subprocess
import sys

import pyspark  # noqa: F401 - the test extra installs it: without it these tests must fail
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retentionrules.api import check_sources
from retentionrules.compiler import compile_conditions, with_layers
from retentionrules.config import STANDARD_FIELDS, Config
from retentionrules.derive import DERIVED, create_derived
from retentionrules.engine import run_plan, score
from retentionrules.interpreter import evaluate
from retentionrules.loader import ORDER_FIELDS, Inputs
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
    """The demo's exports in, the plan out, both as CSV, or both as JSON lines: customers,
    orders (with lines), products and a contact history (JSON lines only: ids as numbers,
    channels in capitals, a null rule, instants, a contact after the as-of date)."""
    inputs = DEMO
    if suffix == ".jsonl":
        contacts = tmp_path / "contacts.jsonl"
        contacts.write_text(
            '{"customer_id": "C0000001", "channel": "SMS", "rule": "winback", '
            '"sent_at": "2026-11-18T20:00:00Z"}\n'
            '{"customer_id": 7, "channel": "email", "rule": null, "sent_at": "2026-11-20"}\n'
            "\n"
            '{"customer_id": "C0000003", "channel": "phone", "sent_at": "2026-12-01 09:00"}\n',
            encoding="utf-8",
        )
        inputs = Inputs(
            as_jsonl(EXAMPLES / "customers.csv", tmp_path / "customers.jsonl"),
            as_jsonl(EXAMPLES / "orders.csv", tmp_path / "orders.ndjson"),
            contacts,
            products=as_jsonl(EXAMPLES / "products.csv", tmp_path / "products.json"),
        )
    duck, on_spark = tmp_path / f"duckdb{suffix}", tmp_path / f"spark{suffix}"
    a = run_plan([EXAMPLES / "rules"], inputs, AS_OF_DATE, out=duck)
    b = run_plan([EXAMPLES / "rules"], inputs, AS_OF_DATE, out=on_spark, engine="spark")
    assert a.meta == b.meta
    assert a.stats == b.stats
    assert a.plan.counts == b.plan.counts
    assert duck.read_bytes() == on_spark.read_bytes()
    assert len(duck.read_bytes().splitlines()) > 50  # the demo plans dozens of actions


def as_jsonl(source, target):
    """A CSV export as JSON lines, as DuckDB writes them (typed values: numbers, booleans,
    dates as strings)."""
    import duckdb

    duckdb.connect().execute(
        f"COPY (SELECT * FROM read_csv('{source}')) TO '{target}' (FORMAT JSON)"
    )
    return target


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


# ---------------------------------------------------------------- JSON lines inputs


def standard_row(customer_id, key=None, value=None):
    """A line of the standard customer export whose `key` has the JSON text `value`."""
    row = {
        **dict.fromkeys(STANDARD_FIELDS),
        "customer_id": customer_id,
        "orders_12m": 1,
        "spend_12m": 100,
        "total_orders": 2,
        "last_order_date": "2026-04-01",
        "sms_opt_in": True,
    }
    row.pop(key, None)
    text = json.dumps(row, ensure_ascii=False)
    return text if key is None else f"{text[:-1]}, {json.dumps(key)}: {value}}}"


def customer_of(line):
    try:
        value = json.loads(line)
    except ValueError:  # DuckDB reads some lines Python does not (`{"a": 1,}`)
        found = re.search(r'"customer_id": "([^"]*)"', line)
        return found and found.group(1)
    return value.get("customer_id") if isinstance(value, dict) else None


def per_row(spark, path, config, fields):
    """Each row's (problem, values) on both engines: DuckDB's rejects and loaded rows, and the
    same conversion SQL run on Spark, row by row (so one pass checks a whole table)."""
    from retentionrules import spark as on_spark
    from retentionrules.loader import (
        _Context,
        _customer_columns,
        connect,
        create_sql,
        load,
        rejects_sql,
    )

    names = ", ".join(f'"{f}"' for f in fields)
    con = connect()
    load(con, config, Inputs(path), AS_OF_DATE, rejects=path.with_name("rejects.csv"))
    duck = {row: (reason, None) for row, reason in con.execute(
        f"SELECT row, reason FROM ({rejects_sql(con)})").fetchall()}
    loaded = con.execute(f"SELECT customer_id, {names} FROM customers").fetchall()
    ids = [customer_of(line) for line in path.read_text(encoding="utf-8").split("\n")
           if line.strip()]  # not splitlines: U+2028 is no line break in JSON lines
    for customer_id, *values in loaded:
        duck[ids.index(customer_id) + 1] = (None, tuple(values))
    sc = SparkConnection(spark)
    columns = _customer_columns(config, Inputs(path), AS_OF_DATE, None)
    source = on_spark._source(sc, "raw_t", path, columns)
    with on_spark._conf(spark, "spark.sql.codegen.wholeStage", "false"):
        sc.execute(create_sql("t", source, columns, _Context(config.timezone, AS_OF_DATE), True))
    rows = sc.execute(f"SELECT __problem, {names} FROM t ORDER BY __row").fetchall()
    spark_rows = {
        i: (problem, None if problem else tuple(plain(v) for v in values))
        for i, (problem, *values) in enumerate(rows, 1)
    }
    return duck, spark_rows  # fmt: skip


NOT_TEXT = "is not text (a JSON string or a whole number)"
NOT_DATE = (
    "is not a date (a JSON string YYYY-MM-DD, optionally with a time of day and a UTC offset)"
)
# (key, the value's JSON text, the value read or what is wrong with it): checked by hand against
# docs/engine.md's "Values" table; both engines must give exactly this.
JSON_VALUES = [
    ("household_id", '"H1"', "H1"),
    ("household_id", "3", "3"),
    ("household_id", "3.0", "3"),
    ("household_id", "-0", "0"),
    ("household_id", '" H 7 "', "H 7"),
    ("household_id", '""', None),
    ("household_id", "null", None),
    ("household_id", "12345678901234567890", "12345678901234567890"),
    ("household_id", "9007199254740992.0", "9007199254740992"),
    ("household_id", "9007199254740993.0", "9007199254740992"),  # the nearest double: 2^53
    ("household_id", "9007199254740994.0", f"`9007199254740994.0` {NOT_TEXT}"),
    ("household_id", "12345678901234567890.0", f"`12345678901234567000.0` {NOT_TEXT}"),
    ("household_id", "-9223372036854775809", f"`-9223372036854775809` {NOT_TEXT}"),
    ("household_id", "18446744073709551616", f"`18446744073709551616` {NOT_TEXT}"),
    ("household_id", "1.5", f"`1.5` {NOT_TEXT}"),
    ("household_id", "true", f"`true` {NOT_TEXT}"),
    ("household_id", '{"x": [1, "y"]}', f'`{{"x":[1,"y"]}}` {NOT_TEXT}'),
    ("household_id", "[]", f"`[]` {NOT_TEXT}"),
    ("city", '"caf\\u00e9 \\"x\\""', 'café "x"'),
    ("city", '"  two  "', "  two  "),
    ("city", '"\\ud83d\\ude00\\t"', "\U0001f600\t"),
    ("city", '"a\\/b"', "a/b"),
    ("city", "7", "7"),
    ("sms_opt_in", "true", True),
    ("sms_opt_in", "false", False),
    ("sms_opt_in", "null", None),
    ("sms_opt_in", '"true"', '`"true"` is not true or false (a JSON boolean)'),
    ("sms_opt_in", "1", "`1` is not true or false (a JSON boolean)"),
    ("spend_12m", "12", 12.0),
    ("spend_12m", "0.1", 0.1),
    ("spend_12m", "1E2", 100.0),
    ("spend_12m", "2.5E-2", 0.025),
    ("spend_12m", "-0", 0.0),
    ("spend_12m", "1e-7", 1e-7),
    ("spend_12m", "-5", "`-5` is negative"),
    ("spend_12m", "-0.5e-5", "`-0.000005` is negative"),
    ("spend_12m", "-0.5e-6", "`-5e-7` is negative"),
    ("spend_12m", "-1.5e-7", "`-1.5e-7` is negative"),
    ("spend_12m", '"12"', '`"12"` is not a number (a JSON number)'),
    ("spend_12m", "false", "`false` is not a number (a JSON number)"),
    ("spend_12m", "1e15", "`1000000000000000.0` is out of range (numbers lie between -10^15 "
     "and 10^15)"),
    ("spend_12m", "123456789012345678", "`123456789012345678` is out of range (numbers lie "
     "between -10^15 and 10^15)"),
    ("spend_12m", "1.5e20", "`150000000000000000000.0` is out of range (numbers lie between "
     "-10^15 and 10^15)"),
    ("spend_12m", "1e21", "`1e21` is out of range (numbers lie between -10^15 and 10^15)"),
    ("spend_12m", "2.5E+300", "`2.5e300` is out of range (numbers lie between -10^15 and "
     "10^15)"),
    ("last_order_date", '"2026-04-01"', dt.date(2026, 4, 1)),
    ("last_order_date", '"2026-04-01 23:59:59.123456789"', dt.date(2026, 4, 1)),
    ("last_order_date", '"2026-04-01T20:00Z"', dt.date(2026, 4, 2)),  # in Shanghai
    ("last_order_date", '"2026-04-01T20:00-03"', dt.date(2026, 4, 2)),
    ("last_order_date", '"2026-04-01 20:00+0800"', dt.date(2026, 4, 1)),
    ("last_order_date", '" 2026-04-01 "', dt.date(2026, 4, 1)),
    ("last_order_date", '" "', None),
    ("last_order_date", '"2026-02-30"', f'`"2026-02-30"` {NOT_DATE}'),
    ("last_order_date", '"2026/04/01"', f'`"2026/04/01"` {NOT_DATE}'),
    ("last_order_date", "20260401", f"`20260401` {NOT_DATE}"),
    ("last_order_date", '"2026-12-01"', '`"2026-12-01"` is after the as-of date 2026-11-22'),
    ("last_order_date", '"1899-12-31"', '`"1899-12-31"` is outside the dates this engine '
     "takes (1900-01-01 to 2199-12-31)"),
]  # fmt: skip
# Whole lines, and what is wrong with them (None: nothing).
JSON_LINES = [
    ("not json", "is not valid JSON"),
    ("[1, 2]", "is not a JSON object"),
    ('"S1"', "is not a JSON object"),
    ("null", "is not a JSON object"),
    ("{}", "column customer_id: empty"),
    ('{"customer_id": "S2", "customer_id": "S3"}', "has a key more than once"),
    ('{"customer_id": "S4", "\\u0063ustomer_id": "S5"}', "has a key more than once"),
    ('{"customer_id": "S6"} x', "is not valid JSON"),
    ('{"customer_id": "S7"}{}', "is not valid JSON"),
    ('{"customer_id": "S8"}],[1', "is not valid JSON"),
    ('{"customer_id": "S9"},0]', "is not valid JSON"),
    ('{"customer_id": "S10"},1,1]', "is not valid JSON"),
    ('{"customer_id": "S11"', "is not valid JSON"),
    ('{"customer_id": "S12", "city": "a\tb"}', "is not valid JSON"),  # a raw tab in a string
    ('{"customer_id": "S13", "city": "\\ud800"}', "is not valid JSON"),  # half a surrogate
    ("{'customer_id': 'S14'}", "is not valid JSON"),
    ('{"customer_id": "S15", "spend_12m": 01}', "is not valid JSON"),
    ('{"customer_id": "S16", "note": {"x": 1, "x": 2}}', None),  # only the top level counts
    ('  {"customer_id": "S17"}\t\r', None),
    ('{"customer_id": "S18", "city": "\u2028\u00a0"}', None),
]


DIFFERENT_LINES = [  # docs/engine.md, "What is the same, what differs"
    '{"customer_id": "D1", "city": "x",}',
    '{"customer_id": "D2", "spend_12m": NaN}',
    standard_row("D3", "spend_12m", "-1e400"),
    standard_row("D4", "sms_opt_in", "-0.0"),
    standard_row("D5", "city", '{"x": 1, "x": 2}'),
]
JSON_FIELDS = ["household_id", "city", "sms_opt_in", "spend_12m", "last_order_date"]


@pytest.fixture(scope="module")
def json_table(spark, tmp_path_factory):
    """Every line of the tables below in one file, read once by each engine, row by row."""
    lines = [standard_row(f"V{i}", key, value) for i, (key, value, _) in enumerate(JSON_VALUES)]
    lines += [line for line, _ in JSON_LINES] + DIFFERENT_LINES
    path = tmp_path_factory.mktemp("json") / "c.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return per_row(spark, path, Config(), JSON_FIELDS)


def test_json_values_read_the_same_on_spark_as_on_duckdb(json_table):
    """The hand-checked table: each value, good or bad, per field type, gives the same value or
    the same reason on both engines; and so does each line that is not a usable object."""
    duck, on_spark = json_table
    for row, (key, value, expected) in enumerate(JSON_VALUES, 1):
        reason, values = duck[row]
        got = values[JSON_FIELDS.index(key)] if values else reason.removeprefix(f"column {key}: ")
        assert got == expected, (key, value)
        assert on_spark[row] == duck[row], (key, value)
    for row, (line, expected) in enumerate(JSON_LINES, len(JSON_VALUES) + 1):
        assert duck[row][0] == on_spark[row][0] == expected, line
        assert duck[row] == on_spark[row], line


def test_what_json_spark_reads_differently_is_what_docs_engine_md_says(json_table):
    """The documented differences, exactly: DuckDB's JSON reader takes a trailing comma and
    NaN / Infinity (then not a finite number), Spark's parser refuses them; a number beyond a
    double's range is shown as Java's infinity, not as written; a negative zero with a fraction
    is shown without its sign, a nested key given twice once."""
    duck, on_spark = json_table
    rows = range(len(JSON_VALUES) + len(JSON_LINES) + 1, len(duck) + 1)
    assert [duck[i][0] for i in rows] == [
        None,
        "column spend_12m: `NaN` is not a finite number",
        "column spend_12m: `-1e400` is not a finite number",
        "column sms_opt_in: `-0.0` is not true or false (a JSON boolean)",
        f'column city: `{{"x":1,"x":2}}` {NOT_TEXT}',
    ]
    assert [on_spark[i][0] for i in rows] == [
        "is not valid JSON",
        "is not valid JSON",
        "column spend_12m: `-Infinity` is not a finite number",
        "column sms_opt_in: `0.0` is not true or false (a JSON boolean)",
        f'column city: `{{"x":2}}` {NOT_TEXT}',
    ]


def first_bad_row(path, config=None, engine="duckdb"):
    """The run's outcome on an engine: the customers loaded, or the bad-data message up to
    "; nothing was written" (the hint after it names --rejects, which Spark has not yet)."""
    from retentionrules import spark as on_spark
    from retentionrules.errors import DataError
    from retentionrules.loader import connect, load

    config = config or Config()
    try:
        if engine == "duckdb":
            con = connect()
            load(con, config, Inputs(path), AS_OF_DATE)
            query = "SELECT * FROM customers"  # a table keeps the file's order
        else:
            con = SparkConnection(on_spark.session())
            on_spark.load(con, config, Inputs(path), AS_OF_DATE)
            query = "SELECT * EXCLUDE (__row) FROM customers ORDER BY __row"
        cursor = con.execute(query)
        names = [d[0] for d in cursor.description]
        return [{n: plain(v) for n, v in zip(names, row, strict=True)} for row in cursor.fetchall()]
    except DataError as error:
        message = str(error).split("; nothing was written")[0]
        return re.sub(r" \(and (\d+ )?more bad rows?\)$", " (and more bad rows)", message)


def test_json_lines_bad_rows_and_missing_keys_stop_the_run_alike(spark, tmp_path):
    """Rows numbered as DuckDB numbers them (a byte order mark, blank lines and CRLF are not
    rows), the first bad row named alike; a key no object has is a missing column; a file of
    blank lines has nobody in it; a byte that is not UTF-8 is named."""
    good = standard_row("C1")
    cases = {
        "rows.jsonl": "\ufeff" + good + "\r\n\r\n  \n" + standard_row("C2", "city", "1.5")
        + "\r\n" + "{]\n",
        "missing.jsonl": '{"customer_id": "C1"}\n{"customer_id": "C2", "city": null}\n',
        "blank.ndjson": "\n \t\r\n\n",
    }  # fmt: skip
    for name, content in cases.items():
        (tmp_path / name).write_text(content, encoding="utf-8")
    (tmp_path / "latin1.jsonl").write_bytes(good.encode() + b'\n{"city": "caf\xe9"}\n')
    outcomes = {}
    for path in sorted(tmp_path.iterdir()):
        outcomes[path.name] = first_bad_row(path)
        assert first_bad_row(path, engine="spark") == outcomes[path.name], path.name
    assert outcomes["rows.jsonl"] == (
        f"{tmp_path / 'rows.jsonl'}: row 2: column city: `1.5` {NOT_TEXT} (and more bad rows)"
    )
    assert "missing columns household_id, category, birthday" in outcomes["missing.jsonl"]
    assert outcomes["blank.ndjson"] == []
    assert "latin1.jsonl: not UTF-8: line 2 (byte 316) has `\\xe9`" in outcomes["latin1.jsonl"]


def test_json_keys_with_any_characters_are_keys_on_spark(spark, tmp_path):
    """Key names come from the configuration: quotes, dots, brackets, `$`, `~`, `/` and
    non-ASCII letters are quoted, never pasted into a path or into SQL."""
    odd = {"id": "id.x", "n": "it's [0]", "b": 'q"]$', "d": "é/~1 date", "s": "名 字"}
    config = Config.model_validate({
        "customers": {"id": odd["id"], "fields": {
            odd["id"]: "string", odd["n"]: "number", odd["b"]: "bool", odd["d"]: "date",
            odd["s"]: "string",
        }},
        "channels": {"sms": {"consent": odd["b"]}},
    })  # fmt: skip
    orders = dict.fromkeys(ORDER_FIELDS)  # the order fields: none here
    rows = [
        {odd["id"]: "A", odd["n"]: 1.5, odd["b"]: True, odd["d"]: "2026-01-02", odd["s"]: 3},
        {odd["id"]: "B", odd["n"]: None, "it's": 9, odd["s"]: "x", **orders},
    ]
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    outcome = first_bad_row(path, config)
    assert first_bad_row(path, config, engine="spark") == outcome, outcome
    assert not isinstance(outcome, str), outcome
    assert [tuple(row[odd[k]] for k in ("id", "n", "b", "d", "s")) for row in outcome] == [
        ("A", 1.5, True, dt.date(2026, 1, 2), "3"),
        ("B", None, None, None, "x"),
    ]


json_values = st.sampled_from([value for _, value, _ in JSON_VALUES] + ["1e400", "NaN"])
hostile_lines = st.sampled_from([line for line, _ in JSON_LINES] + ["", " ", "\r"])


@settings(max_examples=3, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(
    st.tuples(st.sampled_from(["household_id", "city", "sms_opt_in", "spend_12m",
                               "last_order_date", "birthday", "orders_12m"]), json_values),
    hostile_lines,
), min_size=0, max_size=8))  # fmt: skip
def test_random_json_lines_files_have_the_same_outcome_on_both_engines(
    spark, tmp_path_factory, lines
):
    """Random customer files of good, bad and hostile lines: the same customers, or the same
    first bad row. (Values whose message differs by design, in docs/engine.md, are left out of
    the messages compared: `1e400`, NaN.)"""
    path = tmp_path_factory.mktemp("fuzz") / "c.jsonl"
    text = [
        standard_row(f"F{i}", *line) if isinstance(line, tuple) else line
        for i, line in enumerate(lines)
    ]
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    duck, on_spark = first_bad_row(path), first_bad_row(path, engine="spark")
    if isinstance(duck, str) and ("1e400" in duck or "NaN" in duck):
        assert isinstance(on_spark, str) and on_spark.split(": row ")[0] == duck.split(": row ")[0]
    else:
        assert duck == on_spark
