"""Apache Spark as the engine's second executor (`--engine spark`).

The pipeline is the same: the loader's conversion and validation SQL, the derived fields, the
compiled rules and the policies are the SQL the DuckDB engine runs, rendered for Spark by
`dialects.to_spark`. `SparkConnection` takes the statements the pipeline issues (queries and
`CREATE TEMP TABLE|VIEW ... AS`) and runs them as Spark temporary views; a stored table is
checkpointed, so later statements read it instead of recomputing it.

The plan's rows are written by the same writer as DuckDB's (`output.Outputs`): the winners are
streamed to the driver in input order (`toLocalIterator`, one partition at a time, never the
whole plan at once) into a local DuckDB table, from which the plan file is written exactly as
the DuckDB engine writes it.
"""

from __future__ import annotations

import codecs
import contextlib
import dataclasses
import datetime as dt
import os
import re
import tempfile
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import duckdb
from sqlglot import exp

from . import types as t
from .config import Config
from .dialects import parse, render
from .errors import DataError, UsageError
from .loader import (
    PROBLEM,
    PRODUCT_KEY,
    PRODUCTS,
    ROW,
    TABLE_PREFIX,
    Inputs,
    LoadStats,
    RowKey,
    _check_timezone,
    _Column,
    _Context,
    _csv_header,
    _customer_columns,
    _delimiter,
    _first_non_utf8,
    _format,
    _key_sql,
    _line_columns,
    _require,
    _require_keys,
    _Source,
    channel_key,
    create_sql,
    product_columns,
)
from .sql import ident, literal

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

INSTALL = "pip install 'retentionrules[spark]'"
_SESSION: SparkSession | None = None


def session(master: str | None = None) -> SparkSession:
    """The Spark session of this process: the active one (spark-submit, a notebook), else one
    built for `master` (default `local[*]`). DuckDB's semantics need two settings: ANSI mode off
    (an index past a list's end and a division by zero give NULL, not an error) and the session
    time zone UTC (instants are converted to the shop's zone explicitly)."""
    global _SESSION
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise UsageError(f"--engine spark needs PySpark: {INSTALL}") from None
    spark = SparkSession.getActiveSession()
    if spark is None:
        builder = SparkSession.builder.appName("retentionrules")
        if master:
            builder = builder.master(master)
        elif not os.environ.get("SPARK_REMOTE"):
            builder = builder.master(os.environ.get("MASTER", "local[*]"))
        builder = builder.config("spark.ui.showConsoleProgress", "false")
        if (master or "local").startswith("local"):  # one machine: few, larger tasks
            builder = builder.config("spark.sql.shuffle.partitions", "4")
            builder = builder.config("spark.ui.enabled", "false")
        spark = builder.getOrCreate()
        spark.sparkContext.setLogLevel("ERROR")
    spark.conf.set("spark.sql.ansi.enabled", "false")
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    spark.conf.set("spark.sql.caseSensitive", "true")
    _SESSION = spark
    return spark


def _spark_type(type_: Any) -> str:
    return str(type_.simpleString())


def _bind(sql: str, parameters: Sequence[object]) -> str:
    """`?` placeholders replaced by literals (only `explain`'s lookups by id use them)."""
    values = iter(parameters)
    return re.sub(r"\?", lambda _m: literal(next(values)), sql) if parameters else sql


class SparkConnection:
    """The subset of DuckDB's connection the pipeline uses, over a Spark session: `execute` a
    statement (rendered for Spark), then `fetchone` / `fetchall` / `description` its result."""

    def __init__(self, spark: SparkSession) -> None:
        self.spark = spark
        self.schemas: dict[str, dict[str, str]] = {}
        self.frames: dict[str, DataFrame] = {}
        self._result: DataFrame | None = None

    def register(self, name: str, frame: DataFrame, store: bool = False) -> DataFrame:
        """`frame` as the temporary view `name`; stored (checkpointed) when `store`."""
        if store:
            frame = frame.localCheckpoint(eager=True)
        frame.createOrReplaceTempView(name)
        self.frames[name] = frame
        self.schemas[name] = {f.name: _spark_type(f.dataType) for f in frame.schema.fields}
        return frame

    def sql(self, query: str | exp.Expr) -> DataFrame:
        tree = parse(query) if isinstance(query, str) else query
        return self.spark.sql(render(tree, self.schemas))

    def execute(self, statement: str, parameters: Sequence[object] = ()) -> SparkConnection:
        tree = parse(_bind(statement, parameters))
        self._result = None
        for table in tree.find_all(exp.Table):  # DuckDB's catalogue: the views made here
            if isinstance(table.this, exp.Anonymous) and table.this.name == "duckdb_tables":
                names = [(name,) for name in self.schemas]
                frame = self.spark.createDataFrame(names, "table_name string")
                frame.createOrReplaceTempView("__tables")
                table.replace(exp.to_table("__tables"))
        if isinstance(tree, exp.Create) and isinstance(tree.expression, exp.Query):
            name = tree.this.name if isinstance(tree.this, exp.Table) else tree.this.this.name
            kind = str(tree.args.get("kind", "")).upper()
            self.register(name, self.sql(tree.expression), store=kind == "TABLE")
        elif isinstance(tree, exp.Drop):  # sqlglot keeps the dropped names in `tables`
            for table in tree.args.get("tables") or [tree.this]:
                self.spark.catalog.dropTempView(table.name)  # False, quietly, when not there
                self.schemas.pop(table.name, None)
                self.frames.pop(table.name, None)
        else:
            self._result = self.sql(tree)
        return self

    def fetchall(self) -> list[tuple[Any, ...]]:
        assert self._result is not None
        return [tuple(row) for row in self._result.collect()]

    def fetchone(self) -> tuple[Any, ...] | None:
        assert self._result is not None
        rows = self._result.take(1)
        return tuple(rows[0]) if rows else None

    @property
    def description(self) -> list[tuple[str]]:
        assert self._result is not None
        return [(name,) for name in self._result.columns]


def plain(value: object) -> object:
    """A value read from Spark as DuckDB's Python client gives it (dates stay dates)."""
    return value.date() if isinstance(value, dt.datetime) else value


# ---------------------------------------------------------------- loading

_NATIVE = {  # Spark's column types as the loader's conversions name DuckDB's
    "string": "VARCHAR",
    "boolean": "BOOLEAN",
    "tinyint": "TINYINT",
    "smallint": "SMALLINT",
    "int": "INTEGER",
    "bigint": "BIGINT",
    "float": "FLOAT",
    "double": "DOUBLE",
    "date": "DATE",
    "timestamp": "TIMESTAMP WITH TIME ZONE",  # an instant, shown in the session's zone
    "timestamp_ntz": "TIMESTAMP",
}


def _native_type(spark_type: str) -> str:
    if spark_type.startswith("decimal"):
        return spark_type.upper()
    return _NATIVE.get(spark_type, spark_type.upper())


def refusals(inputs: Inputs, rejects: Path | None) -> None:
    """What this engine cannot do yet, said before a session starts (a JVM takes seconds):
    `--rejects`, a catalogue table without a name."""
    if rejects is not None:
        raise UsageError("--rejects is not available with --engine spark yet: use DuckDB")
    for path in (inputs.customers, inputs.orders, inputs.contacts, inputs.products):
        text = "" if path is None else str(path)
        if text.startswith(TABLE_PREFIX) and not text.removeprefix(TABLE_PREFIX).strip():
            raise UsageError(f"{text!r}: name the table, as in {TABLE_PREFIX}db.customers")


def _source(sc: SparkConnection, raw: str, where: str | Path, columns: list[_Column]) -> _Source:
    """The input as a Spark view of raw cells with `__row` (the input order), described as the
    loader's conversions read it: CSV cells are text, JSON lines values JSON text, Parquet and
    catalogue columns native."""
    from pyspark.sql import functions as F

    spark = sc.spark
    text = str(where)
    if text.startswith(TABLE_PREFIX):
        frame = spark.table(text.removeprefix(TABLE_PREFIX))
        kind = "native"
    else:
        path = Path(where)
        if path.exists() and not path.is_file():
            raise DataError(f"{path}: not a file")
        if "://" not in text and not path.exists():
            raise DataError(f"{path}: no such file")
        fmt = _format(path)
        if fmt == "csv":
            header = _csv_header(path)
            _require(path, columns, header)
            schema = ", ".join(f"c{i} string" for i in range(len(header)))
            frame = spark.read.csv(
                text,
                schema=schema,
                header=True,
                multiLine=True,
                escape='"',
                sep=_delimiter(path),
                enforceSchema=True,
                mode="PERMISSIVE",
                ignoreLeadingWhiteSpace=False,
                ignoreTrailingWhiteSpace=False,
            )
            frame = frame.withColumn("__row", F.monotonically_increasing_id() + 1)
            sc.register(raw, frame)
            cells = {name: ident(f"c{i}") for i, name in enumerate(header)}
            return _Source(path, "text", ident(raw), cells, "NULL", row="__row")
        if fmt == "jsonl":
            return _jsonl_source(sc, raw, path, columns)
        frame = spark.read.parquet(text)
        kind = "native"
    frame = frame.withColumn("__row", F.monotonically_increasing_id() + 1)
    sc.register(raw, frame)
    types = {f.name: _native_type(_spark_type(f.dataType)) for f in frame.schema.fields}
    types.pop("__row")
    _require(Path(text), columns, list(types))
    cells = {name: ident(name) for name in types}
    return _Source(Path(text), kind, ident(raw), cells, "NULL", types=types, row="__row")


def _jsonl_source(sc: SparkConnection, raw: str, path: Path, columns: list[_Column]) -> _Source:
    """JSON lines as the view `raw`: per line (`__row`, the input order; blank lines skipped, as
    DuckDB skips them) what is wrong with its structure (`__structural`, DuckDB's reasons), and
    each key the engine reads as the JSON text of its value (`k0`, `k1`...: NULL when the
    key is absent, `null` when it is null), so that the loader's own conversions (`_from_json`,
    with `json_type` rendered by `dialects`) read it as DuckDB reads its JSON values.

    A line is parsed by Spark's JSON parser into a VARIANT twice, inside two arrays: `[line
    ,0]` must have 2 elements and `[line ,1,1]` 3, which holds only when the line is exactly one
    JSON value (Spark's parser ignores what follows a complete value; a line cannot hold the
    line break before the second part, nor close both arrays alike). Duplicate keys are allowed
    in the parse and found by `json_object_keys`, as DuckDB finds them (`json_keys`)."""
    from pyspark.sql import functions as F

    spark = sc.spark
    spark.conf.set("spark.sql.variant.allowDuplicateKeys", "true")
    lines = spark.read.text(str(path), lineSep="\n")  # a lone CR is JSON's blank, not a line end
    lines = lines.withColumn("__row", F.monotonically_increasing_id() + 1)
    first = F.col("__row") == 1  # the file's first line: a byte order mark is not content
    text = F.when(first, F.regexp_replace("value", "^\ufeff", "")).otherwise(F.col("value"))
    lines = lines.select(text.alias("line"), "__row").where(~F.col("line").rlike("^[ \t\r]*$"))
    if "://" not in str(path) and lines.where(~F.is_valid_utf8("line")).take(1):
        _check_utf8(path)  # Spark keeps the bytes as they are: name the first bad one
    line = F.col("line")
    one = F.try_parse_json(F.concat(F.lit("["), line, F.lit("\n,0]")))
    two = F.try_parse_json(F.concat(F.lit("["), line, F.lit("\n,1,1]")))
    valid = (F.size(F.try_variant_get(one, "$", "array<variant>")) == 2) & (
        F.size(F.try_variant_get(two, "$", "array<variant>")) == 3
    )
    lines = lines.select(
        "__row",
        "line",
        valid.alias("__valid"),
        F.when(valid, F.try_variant_get(one, "$[0]", "map<string,variant>")).alias("__obj"),
    )
    found = F.json_object_keys(line)
    structural = (
        F.when(~F.col("__valid"), F.lit("is not valid JSON"))
        .when(F.col("__obj").isNull(), F.lit("is not a JSON object"))
        .when(F.size(found) != F.size(F.array_distinct(found)), F.lit("has a key more than once"))
    )
    as_string = F.regexp_extract(F.to_json(F.array(line)), r"^\[(.*)\]$", 1)
    names = list(dict.fromkeys(c.source for c in columns))
    frame = lines.select(
        "__row",
        "__obj",
        line.alias("__line"),
        structural.alias("__structural"),
        F.when(F.col("__valid"), line).otherwise(as_string).alias("__record"),
    )
    keys = {f"k{i}": key for i, key in enumerate(names)}
    frame = _json_texts(frame, keys)
    frame = frame.select("__row", "__structural", "__record", *keys)
    sc.register(raw, frame)
    cells = {key: ident(f"k{i}") for i, key in enumerate(names)}
    return _Source(
        path, "json", ident(raw), cells, "__record", structural="__structural", row="__row"
    )


@contextlib.contextmanager
def _conf(spark: SparkSession, key: str, value: str) -> Iterator[None]:
    """A setting of the session changed for the statements run inside, then restored."""
    before = spark.conf.get(key, None)
    spark.conf.set(key, value)
    try:
        yield
    finally:
        if before is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, before)


def _check_utf8(path: Path) -> None:
    """The first byte of the file that is not UTF-8, named as the DuckDB engine names it."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with path.open("rb") as handle:
            while block := handle.read(1 << 20):
                decoder.decode(block)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        line, offset, sample = _first_non_utf8(path)
        raise DataError(
            f"{path}: not UTF-8: line {line} (byte {offset}) has {sample}; save the file as "
            "UTF-8 and run again"
        ) from None


def _json_texts(frame: DataFrame, keys: dict[str, str]) -> DataFrame:
    """`frame` with, for each name in `keys`, the value of that key of the object `__obj` (a
    map of VARIANTs) as the JSON text DuckDB gives it, NULL when the key is absent: strings,
    booleans, null, objects and arrays as `to_json` writes them; an integer as its digits; a
    number with a fraction or an exponent as DuckDB writes a double (`_DOUBLE_TEXT`).

    The VARIANT keeps `3.0` as a decimal of scale 0: a whole decimal that fits a BIGINT was
    written with a fraction (else it would be a BIGINT); for a larger one, the line's own
    spelling of the value (`from_json` as text) says whether it was. Computed a step at a time,
    each step reading the columns of the one before (one expression would repeat its parts),
    as Spark SQL over the columns made here: the keys, from the configuration, are given to
    Spark as values (`getItem`, a schema's field), never as SQL."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    frame = frame.select(
        "*", *(F.col("__obj").getItem(k).alias(f"__v_{n}") for n, k in keys.items())
    )
    frame = _sql_steps(frame, list(keys), _JSON_STEPS)
    spelled = {  # only where a whole decimal beyond BIGINT leaves it open
        n: F.when(
            F.col(f"__open_{n}"),
            F.from_json(F.col("__line"), StructType([StructField(k, StringType())])).getField(k),
        ).alias(f"__spelled_{n}")
        for n, k in keys.items()
    }
    frame = frame.select("*", *spelled.values())
    return _sql_steps(frame, list(keys), _DOUBLE_TEXT + _JSON_TEXT)


_JSON_STEPS = [
    [
        "schema_of_variant(__v_{n}) AS __kind_{n}",
        "to_json(__v_{n}) AS __json_{n}",
        "try_variant_get(__v_{n}, '$', 'double') AS __double_{n}",
        "try_variant_get(__v_{n}, '$', 'bigint') AS __long_{n}",
    ],
    ["__kind_{n} LIKE 'DECIMAL(%,0)' AND __long_{n} IS NULL AS __open_{n}"],
]
# A double as DuckDB's JSON writes it: the shortest digits, in plain notation from 1e-6 up to
# 1e21 (`.0` when whole: `100000000000000000000.0`, `0.000001`), else as `1.5e-7`, `1e21`. The
# digits are Java's (`Double.toString`: `1.0E20`, `123.45`), laid out again; the value is
# 0.SIG x 10^point; an infinity as Java writes it.
_DOUBLE_TEXT = [
    ["CAST(__double_{n} AS STRING) AS __shown_{n}"],
    [
        "regexp_extract(__shown_{n}, '^-?([0-9]+)', 1) AS __whole_{n}",
        "regexp_extract(__shown_{n}, '^-?[0-9]+[.]([0-9]*)', 1) AS __fraction_{n}",
        "coalesce(CAST(regexp_extract(__shown_{n}, 'E(-?[0-9]+)$', 1) AS INT), 0) AS __power_{n}",
    ],
    ["concat(__whole_{n}, __fraction_{n}) AS __given_{n}"],
    ["regexp_replace(__given_{n}, '^0+', '') AS __unled_{n}"],
    [
        "regexp_replace(__unled_{n}, '0+$', '') AS __sig_{n}",
        "length(__whole_{n}) + __power_{n} - (length(__given_{n}) - length(__unled_{n})) "
        "AS __point_{n}",
    ],
    ["length(__sig_{n}) AS __size_{n}"],
    [
        "CASE WHEN NOT __shown_{n} RLIKE '^-?[0-9]' THEN __shown_{n} "
        "ELSE concat(CASE WHEN startswith(__shown_{n}, '-') THEN '-' ELSE '' END, "
        "CASE WHEN __size_{n} = 0 THEN '0.0' "
        "WHEN __point_{n} >= __size_{n} AND __point_{n} <= 21 "
        "THEN concat(__sig_{n}, repeat('0', __point_{n} - __size_{n}), '.0') "
        "WHEN __point_{n} > 0 AND __point_{n} <= 21 THEN concat(substr(__sig_{n}, 1, __point_{n}), "
        "'.', substr(__sig_{n}, __point_{n} + 1)) "
        "WHEN __point_{n} > -6 AND __point_{n} <= 0 "
        "THEN concat('0.', repeat('0', -__point_{n}), __sig_{n}) "
        "ELSE concat(substr(__sig_{n}, 1, 1), CASE WHEN __size_{n} > 1 "
        "THEN concat('.', substr(__sig_{n}, 2)) ELSE '' END, 'e', CAST(__point_{n} - 1 AS STRING)) "
        "END) END AS __text_{n}"
    ],
]
_JSON_TEXT = [
    [
        "CASE WHEN __v_{n} IS NULL THEN NULL "
        "WHEN __kind_{n} = 'BIGINT' OR __open_{n} AND NOT coalesce(__spelled_{n} RLIKE '[.eE]', "
        "FALSE) THEN __json_{n} "
        "WHEN __kind_{n} = 'DOUBLE' OR startswith(__kind_{n}, 'DECIMAL(') THEN __text_{n} "
        "ELSE __json_{n} END AS {n}"
    ],
]


def _sql_steps(frame: DataFrame, names: list[str], steps: list[list[str]]) -> DataFrame:
    """Each step's columns (Spark SQL, `{n}` standing for a name) added for every name, a
    select a step."""
    for step in steps:
        frame = frame.selectExpr("*", *(column.format(n=n) for n in names for column in step))
    return frame


def _typed(
    sc: SparkConnection,
    table: str,
    where: str | Path,
    columns: list[_Column],
    key: str | RowKey | None,
    context: _Context,
) -> int:
    """The table `table` from an input, converted and checked by the loader's own SQL; the
    first bad row stops the run (as in DuckDB without --rejects). Returns its row count."""
    source = _source(sc, f"raw_{table}", where, columns)
    if source.kind == "json":  # a stage of JSON conversions outgrows Java's 64 KB for a method
        with _conf(sc.spark, "spark.sql.codegen.wholeStage", "false"):
            sc.execute(create_sql(table, source, columns, context, exact=True))
    else:
        sc.execute(create_sql(table, source, columns, context, exact=True))
    if source.kind == "json":  # no header: a key no object has is a missing column
        _require_keys(cast("duckdb.DuckDBPyConnection", sc), table, source, columns)
    name = ident(table)
    missing = (
        f"WHEN {key.sql} IS NULL THEN {literal(key.missing)} " if isinstance(key, RowKey) else ""
    )
    problem = f"CASE {missing}ELSE {PROBLEM} END" if missing else PROBLEM
    keyed = _key_sql(key) if key is not None else "NULL"
    bad = sc.execute(f"""
        SELECT __row, reason FROM (
            SELECT {ROW} AS __row, {problem} AS reason FROM {name}
            UNION ALL
            SELECT d.{ROW}, {literal("the id `") if not isinstance(key, RowKey) else "''"}
                || d.id || {"'`'" if not isinstance(key, RowKey) else "''"} || ' is on '
                || g.n || ' rows: which is right cannot be told'
            FROM (SELECT {ROW}, {keyed} AS id FROM {name}) d
            JOIN (SELECT {keyed} AS id, count(*) AS n FROM {name} GROUP BY 1
                HAVING count(*) > 1) g ON g.id = d.id
        ) WHERE reason IS NOT NULL ORDER BY __row LIMIT 2""").fetchall()
    if bad:
        first, reason = bad[0]
        number = sc.execute(f"SELECT count(*) FROM {name} WHERE {ROW} <= {int(first)}").fetchone()
        row = number[0] if number else first
        if isinstance(key, str) and "is on" in reason and not reason.startswith("column"):
            reason = f"column {key}: {reason}"
        more = " (and more bad rows)" if len(bad) > 1 else ""
        raise DataError(
            f"{where}: row {row}: {reason}{more}; nothing was written. Fix the data "
            "(--rejects, which sets bad rows aside, is not available with --engine spark)"
        )
    kept = ", ".join(ident(c.name) for c in columns)
    sc.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT {ROW}, {kept} FROM {name}")
    sc.spark.catalog.dropTempView(f"raw_{table}")
    count = sc.execute(f"SELECT count(*) FROM {name}").fetchone()
    return int(count[0]) if count else 0


def load(
    sc: SparkConnection,
    config: Config,
    inputs: Inputs,
    as_of: dt.date,
    rejects: Path | None = None,
    needed: Collection[str] | Mapping[str, str | None] | None = None,
) -> LoadStats:
    """`loader.load` on Spark: the same tables (`customers`, `orders`, `contacts`, `products`)
    from the same conversion SQL; each table keeps `__row`, its input order."""
    refusals(inputs, rejects)
    _check_timezone(duckdb.connect(), config)
    context = _Context(config.timezone, as_of)
    stats = LoadStats()
    columns = _customer_columns(config, inputs, as_of, needed)
    stats.customers = _typed(
        sc, "customers", inputs.customers, columns, config.customers.id, context
    )
    o, c = config.orders, config.contacts
    contact_columns = [
        _Column("customer_id", c.customer, t.STRING, key=True, not_empty=True),
        _Column("channel", c.channel, t.STRING, channel=True),
        _Column("rule", c.rule, t.STRING, key=True),
        _Column("sent_at", c.sent_at, t.DATE, not_empty=True),
    ]
    if inputs.orders is not None:
        order_columns = [
            _Column("customer_id", o.customer, t.STRING, key=True, not_empty=True),
            _Column("order_date", o.date, t.DATE, not_empty=True),
            _Column("amount", o.amount, t.NUMBER),
            *_line_columns(config),
        ]
        stats.orders = _typed(sc, "orders", inputs.orders, order_columns, None, context)
    histories = []
    if inputs.contacts is not None:
        stats.contacts = _typed(sc, "contacts", inputs.contacts, contact_columns, None, context)
        histories.append("contacts")
    if inputs.ledger is not None:
        standard = [dataclasses.replace(col, source=col.name) for col in contact_columns]
        stats.ledger_contacts = _typed(sc, "ledger", inputs.ledger, standard, None, context)
        stats.contacts += stats.ledger_contacts
        histories.append("ledger")
    if histories:
        union = " UNION ALL ".join(f"SELECT * FROM {name}" for name in histories)
        sc.execute(f"CREATE OR REPLACE TEMP TABLE contacts AS {union}")
    stats.order_lines = inputs.orders is not None and o.lines
    if inputs.products is not None or config.products.rows() or stats.order_lines:
        _catalogue(sc, config, inputs.products, stats, context)
    if histories:
        day = literal(as_of)
        found = sc.execute(f"SELECT count(*) FROM contacts WHERE sent_at > {day}").fetchone()
        stats.future_contacts = int(found[0]) if found else 0
        if stats.future_contacts:
            sc.execute(
                f"CREATE OR REPLACE TEMP TABLE contacts AS SELECT * FROM contacts "
                f"WHERE NOT sent_at > {day}"
            )
        known = ", ".join(channel_key(literal(name)) for name in config.channels) or "NULL"
        stats.unconfigured_channels = dict(
            sc.execute(
                f"SELECT coalesce(channel, ''), count(*) FROM contacts WHERE channel IS NULL "
                f"OR channel NOT IN ({known}) GROUP BY 1 ORDER BY count(*) DESC, 1"
            ).fetchall()
        )
    return stats


def _catalogue(
    sc: SparkConnection, config: Config, path: Path | None, stats: LoadStats, context: _Context
) -> None:
    """`products`: the file's rows and the configuration's entries the file does not give."""
    rows = [list(r) for r in config.products.rows()]
    schema = "sku string, category string, days_per_unit double, warranty_days double"
    sc.register("__configured", sc.spark.createDataFrame(rows, schema))
    columns = "sku, category, days_per_unit, warranty_days"
    if path is not None:
        _typed(sc, PRODUCTS, path, product_columns(), PRODUCT_KEY, context)
        sc.execute(f"""
            CREATE OR REPLACE TEMP TABLE products AS
            SELECT {columns} FROM products UNION ALL
            SELECT * FROM __configured AS g WHERE NOT EXISTS (
                SELECT 1 FROM products AS f WHERE CASE WHEN g.sku IS NOT NULL THEN f.sku = g.sku
                    ELSE f.sku IS NULL AND f.category = g.category END)""")
    else:
        sc.execute("CREATE OR REPLACE TEMP TABLE products AS SELECT * FROM __configured")
    found = sc.execute("SELECT count(*) FROM products").fetchone()
    stats.products = int(found[0]) if found else 0


# ---------------------------------------------------------------- to the driver

_LOCAL_TYPES = {"string": "VARCHAR", "timestamp": "TIMESTAMP", "timestamp_ntz": "TIMESTAMP"}


def fetch(sc: SparkConnection, query: str, local: duckdb.DuckDBPyConnection, table: str) -> None:
    """The rows of `query` (its order kept) into the DuckDB table `table` of `local`, streamed
    partition by partition (`toLocalIterator`), through a private CSV file: DuckDB writes the
    outputs from there with the same code as for its own plan."""
    frame = sc.sql(query)
    types = {f.name: _spark_type(f.dataType) for f in frame.schema.fields}
    declared = {
        name: _LOCAL_TYPES.get(kind, _native_type(kind).replace(" WITH TIME ZONE", ""))
        for name, kind in types.items()
    }
    with tempfile.TemporaryDirectory(prefix="retentionrules-spark-") as folder:
        path = Path(folder) / "rows.csv"
        with path.open("w", encoding="utf-8", newline="") as handle:
            for row in frame.toLocalIterator():
                handle.write(",".join(_cell(v) for v in row) + "\n")
        spec = "{" + ", ".join(f"{literal(n)}: {literal(k)}" for n, k in declared.items()) + "}"
        local.execute(
            f"CREATE OR REPLACE TABLE {ident(table)} AS SELECT * FROM read_csv("
            f"{literal(str(path))}, header = false, columns = {spec}, quote = '\"', "
            "escape = '\"', allow_quoted_nulls = false, auto_detect = false)"
        )


def _cell(value: object) -> str:
    """A value as the private CSV file carries it: NULL as nothing, text always quoted (so an
    empty text is not NULL), numbers exact (`repr`), dates in ISO form."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return '"' + str(value).replace('"', '""') + '"'
