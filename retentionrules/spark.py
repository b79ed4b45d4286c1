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

import dataclasses
import datetime as dt
import os
import re
import tempfile
import uuid
import warnings
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
from sqlglot import exp

from . import types as t
from .config import Config
from .dialects import parse, render
from .errors import DataError, UsageError, spark_cause
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
    _format,
    _key_sql,
    _line_columns,
    _require,
    _Source,
    channel_key,
    create_sql,
    product_columns,
)
from .output import digest_text
from .sql import ident, literal

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

INSTALL = "pip install 'retentionrules[spark]'"
# What DuckDB's semantics need of a session: ANSI mode off (an index past a list's end and a
# division by zero give NULL, not an error), UTC (instants are converted to the shop's zone
# explicitly), column names compared exactly (`Tier` is not `tier`).
SETTINGS = {
    "spark.sql.ansi.enabled": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.caseSensitive": "true",
}


LOG = Path(__file__).with_name("spark-log4j2.properties")  # errors only, no task stacks
_RUN = "spark.retentionrules.run"  # set in a run's own session (`run_session`)
_BASE: SparkSession | None = None  # the session the last run's own came from


def session(master: str | None = None) -> SparkSession:
    """The Spark session of this process: the active one (spark-submit, a notebook), else one
    built for `master` (default `local[*]`)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise UsageError(f"--engine spark needs PySpark: {INSTALL}") from None
    # PySpark warns on pandas 3 when a DataFrame is made from Python rows; the engine makes
    # two small ones (no pandas involved), and the warning would reach every user's terminal.
    warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas", FutureWarning)
    global _BASE
    spark = SparkSession.getActiveSession()
    if spark is not None and spark.conf.get(_RUN, None) and _BASE is not None:
        return _BASE  # a run's own session, made active by PySpark: the session it came from
    if spark is None:
        remote = os.environ.get("SPARK_REMOTE")
        if remote and master:
            raise UsageError(
                f"--spark-master {master!r} and SPARK_REMOTE={remote!r} name two Sparks: "
                "leave --spark-master out to use Spark Connect, or unset SPARK_REMOTE"
            )
        builder = SparkSession.builder.appName("retentionrules")
        if not remote:  # Spark Connect's server has its own master, log and settings
            master = master or os.environ.get("MASTER", "local[*]")
            builder = builder.master(master).config("spark.ui.showConsoleProgress", "false")
            if not os.environ.get("SPARK_CONF_DIR"):  # the user's own log settings, else ours
                builder = builder.config(
                    "spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={LOG}"
                )
            if master.startswith("local"):  # one machine: few, larger tasks
                builder = builder.config("spark.sql.shuffle.partitions", "4")
                builder = builder.config("spark.ui.enabled", "false")
                if not os.environ.get("SPARK_CONF_DIR"):  # the driver is the executor too
                    builder = builder.config("spark.driver.memory", local_memory())
        spark = builder.getOrCreate()
        if not remote:
            spark.sparkContext.setLogLevel("ERROR")
    _BASE = spark
    return spark


def local_memory() -> str:
    """The memory of a local Spark (the driver runs the tasks too): half the machine's, as
    `spark.driver.memory` says it. Spark's own default, 1 GB, stops a plan of a few million
    customers (`AGGREGATE_OUT_OF_MEMORY`); half leaves the rest to the OS's file cache and to
    the driver's DuckDB, which writes the plan."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: Spark's default
        return "1g"
    return f"{max(1024, total // 2 // 2**20)}m"


def run_session(base: SparkSession) -> SparkSession:
    """A session of the run's own beside `base` (`newSession`: the same cluster and catalogue,
    its own settings and temporary views), so that a run neither changes the settings of the
    user's session nor replaces its temporary views (the run's are named `customers`,
    `orders`...). Under Spark Connect the run uses `base` itself, and sets `SETTINGS` on it
    (docs/engine.md says so): there a new session cannot read back what it checkpointed
    (PySpark 4.3: `DATAFRAME_NOT_FOUND`), and the run stores its tables by checkpoints."""
    own = base if type(base).__module__.startswith("pyspark.sql.connect") else base.newSession()
    for key, value in {**SETTINGS, _RUN: "true"}.items():
        own.conf.set(key, value)
    return own


def _spark_type(type_: Any) -> str:
    return str(type_.simpleString())


def _bind(sql: str, parameters: Sequence[object]) -> str:
    """`?` placeholders replaced by literals (only `explain`'s lookups by id use them)."""
    values = iter(parameters)
    return re.sub(r"\?", lambda _m: literal(next(values)), sql) if parameters else sql


class SparkConnection:
    """The subset of DuckDB's connection the pipeline uses, over a Spark session: `execute` a
    statement (rendered for Spark), then `fetchone` / `fetchall` / `description` its result."""

    def __init__(self, base: SparkSession) -> None:
        self.base = base  # the user's session: `table:NAME` is looked up in its catalogue
        self.spark = run_session(base)
        self.digests: dict[str, str] = {}  # `table:NAME` -> the digest of its rows
        self.shared: list[str] = []  # global temporary views handed over from `base`
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

    def unshare(self) -> None:
        """Drop the global temporary views `_table` made (the inputs are stored by now)."""
        while self.shared:
            self.base.catalog.dropGlobalTempView(self.shared.pop())

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


_JSON_LINES = (
    "{path}: --engine spark reads CSV, Parquet and catalogue tables (table:db.name); convert "
    "JSON lines to one of them, or use DuckDB"
)


def refusals(inputs: Inputs, rejects: Path | None) -> None:
    """What this engine cannot do yet, said before a session starts (a JVM takes seconds):
    JSON lines inputs, `--rejects`, a catalogue table without a name."""
    if rejects is not None:
        raise UsageError("--rejects is not available with --engine spark yet: use DuckDB")
    for path in (inputs.customers, inputs.orders, inputs.contacts, inputs.products):
        text = "" if path is None else str(path)
        if text.startswith(TABLE_PREFIX):
            if not text.removeprefix(TABLE_PREFIX).strip():
                raise UsageError(f"{text!r}: name the table, as in {TABLE_PREFIX}db.customers")
        elif path is not None and path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
            raise UsageError(_JSON_LINES.format(path=path))


def _source(sc: SparkConnection, raw: str, where: str | Path, columns: list[_Column]) -> _Source:
    """The input as a Spark view of raw cells with `__row` (the input order), described as the
    loader's conversions read it: CSV cells are text, Parquet and catalogue columns native."""
    from pyspark.sql import functions as F

    spark = sc.spark
    text = str(where)
    if text.startswith(TABLE_PREFIX):
        frame = _table(sc, text.removeprefix(TABLE_PREFIX))
        sc.digests[text] = rows_digest(frame)
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
        if fmt != "parquet":  # JSON lines: `refusals` said so before Spark started
            raise UsageError(_JSON_LINES.format(path=path))
        try:  # the footer is read here: a file that is not Parquet fails now, as on DuckDB
            frame = spark.read.parquet(text)
        except Exception as error:
            if type(error).__module__.split(".")[0] not in ("py4j", "pyspark"):
                raise
            raise DataError(f"{path}: cannot read: {spark_cause(str(error))}") from None
        kind = "native"
    frame = frame.withColumn("__row", F.monotonically_increasing_id() + 1)
    sc.register(raw, frame)
    types = {f.name: _native_type(_spark_type(f.dataType)) for f in frame.schema.fields}
    types.pop("__row")
    _require(Path(text), columns, list(types))
    cells = {name: ident(name) for name in types}
    return _Source(Path(text), kind, ident(raw), cells, "NULL", types=types, row="__row")


def quoted(name: str) -> str:
    """A name as Spark's own parser reads it from the DataFrame API (`spark.table`, `F.col`):
    in backquotes, a backquote doubled; the SQL statements are quoted by `sql.ident` and
    rendered by `dialects`."""
    return "`" + name.replace("`", "``") + "`"


def _table(sc: SparkConnection, name: str) -> DataFrame:
    """A table of the user's catalogue (`table:NAME`) as the run's session reads it. A temporary
    view of the user's session is not visible from the run's own: it is handed over as a global
    temporary view of the run's (dropped once the inputs are loaded, `SparkConnection.unshare`)."""
    if not sc.base.catalog.tableExists(name):
        raise DataError(f"{TABLE_PREFIX}{name}: no such table or view in the Spark catalogue")
    if sc.spark is sc.base:
        return sc.spark.table(name)
    shared = f"retentionrules_{uuid.uuid4().hex}"
    sc.base.table(name).createGlobalTempView(shared)
    sc.shared.append(shared)
    database = sc.base.conf.get("spark.sql.globalTempDatabase") or "global_temp"
    return sc.spark.table(f"{quoted(database)}.{quoted(shared)}")


def rows_digest(frame: DataFrame) -> str:
    """A catalogue table's rows as one digest, for the plan id (a file's is its bytes'): the
    sha256 of each row's JSON text (column names with the values), summed lane by lane (four
    64-bit lanes) over the rows, with the row count and the schema. A table has no order of its
    own, so neither has its digest: the same rows in another order plan the same actions (ties
    are broken by id, never by position). Computed where the rows are; one pass over them."""
    from pyspark.sql import functions as F

    cells = F.struct(*(F.col(quoted(name)) for name in frame.columns))
    row = F.sha2(F.to_json(cells), 256)
    lanes = [
        F.sum(F.conv(F.substring(row, 1 + 16 * lane, 16), 16, 10).cast("decimal(38,0)"))
        for lane in range(4)
    ]
    found = frame.agg(F.count(F.lit(1)), *lanes).first()
    values = [] if found is None else [str(value) for value in found]
    return digest_text(frame.schema.simpleString(), *values)


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
    sc.execute(create_sql(table, source, columns, context, exact=True))
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
    sc.unshare()
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
    """The rows of `query` (its order kept) into the DuckDB table `table` of `local`, where the
    outputs are written from with the same code as the DuckDB engine's plan.

    Where the driver shares a disk with the executors (a `local` master), Spark writes the rows
    as Parquet files into a private folder, one file per partition of the ordered result, and
    DuckDB reads them back in partition order: no row passes through Python. Otherwise they are
    streamed to the driver (`_streamed`)."""
    with tempfile.TemporaryDirectory(prefix="retentionrules-spark-") as folder:
        if not _local_master(sc.spark):
            _streamed(sc, query, Path(folder) / "rows.csv", local, table)
            return
        sc.sql(query).write.parquet(str(Path(folder) / "rows"))
        # Part files are named by partition number (part-00000-...): in that order, the rows'.
        parts = sorted(
            (Path(folder) / "rows").glob("part-*.parquet"), key=lambda p: int(p.name.split("-")[1])
        )
        if not parts:  # no rows: the schema from the plain path
            _streamed(sc, query, Path(folder) / "rows.csv", local, table)
            return
        files = ", ".join(literal(str(p)) for p in parts)
        local.execute(
            f"CREATE OR REPLACE TABLE {ident(table)} AS SELECT * FROM read_parquet([{files}])"
        )


# At most this many rows in one partition streamed to the driver (about 50 MB of small rows).
STREAMED_ROWS = 250_000


def _local_master(spark: SparkSession) -> bool:
    """Whether the executors write where this process reads (Spark Connect: never assumed)."""
    try:
        return str(spark.sparkContext.master).startswith("local")
    except Exception:  # Spark Connect has no SparkContext in the client
        return False


def _streamed(
    sc: SparkConnection, query: str, path: Path, local: duckdb.DuckDBPyConnection, table: str
) -> None:
    """`fetch` through the driver: the rows, in order, a partition at a time (`toLocalIterator`,
    never the whole result at once) into a private CSV file, then into DuckDB. The ordered
    result is cut into partitions of at most about `STREAMED_ROWS` rows (a range partitioning:
    as many shuffle partitions as that needs, none merged by adaptive execution), so the
    driver's memory bounds a partition, not the plan."""
    rows = sc.sql(query).count()
    conf = sc.spark.conf
    settings = {
        "spark.sql.shuffle.partitions": str(max(1, -(-rows // STREAMED_ROWS))),
        "spark.sql.adaptive.coalescePartitions.enabled": "false",
    }
    saved: dict[str, str | None] = {key: conf.get(key, None) for key in settings}
    for key, value in settings.items():
        conf.set(key, value)
    try:
        frame = sc.sql(query)
        types = {f.name: _spark_type(f.dataType) for f in frame.schema.fields}
        with path.open("w", encoding="utf-8", newline="") as handle:
            for row in frame.toLocalIterator():
                handle.write(",".join(_cell(v) for v in row) + "\n")
    finally:
        for key, was in saved.items():
            if was is None:
                conf.unset(key)
            else:
                conf.set(key, was)
    declared = {
        name: _LOCAL_TYPES.get(kind, _native_type(kind).replace(" WITH TIME ZONE", ""))
        for name, kind in types.items()
    }
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
