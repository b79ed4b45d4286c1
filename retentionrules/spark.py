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
import csv
import dataclasses
import datetime as dt
import os
import re
import uuid
import warnings
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import duckdb
from sqlglot import exp

from . import types as t
from .config import Config
from .dialects import parse, render
from .errors import DataError, UsageError, from_spark, spark_cause
from .loader import (
    PROBLEM,
    PRODUCT_KEY,
    PRODUCTS,
    ROW,
    TABLE_PREFIX,
    UNKNOWN_HISTORY,
    Inputs,
    LoadStats,
    RowKey,
    _check_timezone,
    _Column,
    _Context,
    _csv_header,
    _csv_source,
    _customer_columns,
    _delimiter,
    _first_non_utf8,
    _format,
    _key_sql,
    _line_columns,
    _not_utf8,
    _parquet_source,
    _require,
    _require_keys,
    _rewrite_csv,
    _Source,
    _unreadable_owners,
    bad_rows,
    channel_key,
    create_sql,
    is_url,
    owned_reason,
    owned_rows,
    private_folder,
    product_columns,
    repeated_reason,
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
    remote = os.environ.get("SPARK_REMOTE")
    if remote and master:
        raise UsageError(
            f"--spark-master {master!r} and SPARK_REMOTE={remote!r} name two Sparks: "
            "leave --spark-master out to use Spark Connect, or unset SPARK_REMOTE"
        )
    spark = SparkSession.getActiveSession()
    if spark is not None and spark.conf.get(_RUN, None) and _BASE is not None:
        return _BASE  # a run's own session, made active by PySpark: the session it came from
    if spark is None:
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


def refusals(inputs: Inputs, rejects: Path | None) -> None:
    """What this engine cannot do yet, said before a session starts (a JVM takes seconds):
    a catalogue table without a name, `--rejects` with a URL input (the rejects' records are
    read back from the file on this machine)."""
    for role, url in inputs.urls.items():
        if rejects is not None:
            raise UsageError(
                f"--{role} {url}: --rejects reads the bad rows back from the file on this "
                "machine, which cannot open a URL: copy the file here, or fix the data"
            )
    for path in (inputs.customers, inputs.orders, inputs.contacts, inputs.products):
        text = "" if path is None else str(path)
        if text.startswith(TABLE_PREFIX) and not text.removeprefix(TABLE_PREFIX).strip():
            raise UsageError(f"{text!r}: name the table, as in {TABLE_PREFIX}db.customers")


_REJECTS = "rejects_inputs"  # the rows set aside (--rejects), from every input
_IRREGULAR = "__irregular"  # a CSV row Spark may have read otherwise than RFC 4180 says
_CORRUPT = "__corrupt"  # Spark's text of a CSV row with too many or too few cells
_SUSPECT_CHARACTERS = ('"', "\r", "\ufffd")  # a quote, a carriage return, U+FFFD


def _url_header(sc: SparkConnection, url: str, sep: str) -> list[str]:
    """The header row of a CSV file at a URL, read by Spark (the driver cannot open it)."""
    try:
        first = sc.spark.read.csv(url, header=False, sep=sep, escape='"', multiLine=True).first()
    except Exception as error:
        if not from_spark(error):
            raise
        raise DataError(f"{url}: cannot read: {spark_cause(str(error))}") from None
    if first is None:
        raise DataError(f"{url}: the file is empty: a CSV export needs a header row")
    header = ["" if cell is None else str(cell) for cell in first]
    return [header[0].removeprefix("\ufeff"), *header[1:]] if header else header


def _csv_frame(sc: SparkConnection, path: str, schema: str, sep: str) -> DataFrame:
    return sc.spark.read.csv(
        path,
        schema=schema,
        header=True,
        multiLine=True,  # one task reads the file: quoted line breaks are safe, rows in order
        escape='"',
        sep=sep,
        enforceSchema=True,
        mode="PERMISSIVE",
        columnNameOfCorruptRecord=_CORRUPT,
        ignoreLeadingWhiteSpace=False,
        ignoreTrailingWhiteSpace=False,
    )


def _source(sc: SparkConnection, raw: str, where: str | Path, columns: list[_Column]) -> _Source:
    """The input as a Spark view of raw cells with `__row` (the input order), described as the
    loader's conversions read it: CSV cells are text, JSON lines values JSON text, Parquet and
    catalogue columns native.

    A CSV row Spark's parser may have read otherwise than DuckDB (too many or too few cells, a
    quote, a carriage return or U+FFFD, which is what Spark reads for a byte that is not UTF-8,
    in any cell) is marked `_IRREGULAR` (`structural`): `_typed` then re-reads the file as
    DuckDB does."""
    from pyspark.sql import functions as F

    spark = sc.spark
    text = str(where)
    if text.startswith(TABLE_PREFIX):
        frame = _table(sc, text.removeprefix(TABLE_PREFIX))
        sc.digests[text] = rows_digest(frame)
        kind = "native"
    else:
        path = Path(where)  # a URL's only for its suffix: Spark reads `text`, as written
        url = is_url(where)
        if not url and path.exists() and not path.is_file():
            raise DataError(f"{path}: not a file")
        if not url and not path.exists():
            raise DataError(f"{path}: no such file")
        fmt = _format(path)
        if fmt == "csv":
            # the header's names, checked as DuckDB checks them (a URL's header read by Spark)
            header = _url_header(sc, text, _delimiter(path)) if url else None
            duck, header = _csv_source(path, columns, header)
            _require(path, columns, header)
            names = [f"c{i}" for i in range(len(header))]
            schema = ", ".join(f"{c} string" for c in [*names, _CORRUPT])
            frame = _csv_frame(sc, text, schema, _delimiter(path))
            frame = frame.withColumn(ROW, F.monotonically_increasing_id() + 1)
            if url:  # no file to hash on this machine: its header and rows, in their order
                sc.digests[text] = digest_text(*header, rows_digest(frame))
            sc.register(raw, frame)
            joined = f"concat_ws('', {', '.join(names)})"
            odd = " OR ".join(f"instr({joined}, {literal(c)}) > 0" for c in _SUSPECT_CHARACTERS)
            structural = f"CASE WHEN {_CORRUPT} IS NOT NULL OR {odd} THEN '{_IRREGULAR}' END"
            return _Source(
                path, "text", ident(raw), duck.cells, "NULL", structural=structural, row=ROW
            )
        if fmt == "jsonl":
            return _jsonl_source(sc, raw, where, columns)
        try:  # the footer is read here: a file that is not Parquet fails now, as on DuckDB
            frame = spark.read.parquet(text)
        except Exception as error:
            if not from_spark(error):
                raise
            raise DataError(f"{text}: cannot read: {spark_cause(str(error))}") from None
        if url:  # its rows in the order Spark reads them (`__row` is in each row's digest)
            sc.digests[text] = rows_digest(frame.withColumn(ROW, F.monotonically_increasing_id()))
        kind = "native"
    frame = frame.withColumn(ROW, F.monotonically_increasing_id() + 1)
    sc.register(raw, frame)
    types = {f.name: _native_type(_spark_type(f.dataType)) for f in frame.schema.fields}
    types.pop(ROW)
    _require(Path(text), columns, list(types))
    cells = {name: ident(name) for name in types}
    return _Source(Path(text), kind, ident(raw), cells, "NULL", types=types, row=ROW)


def _reread(sc: SparkConnection, raw: str, source: _Source, folder: Path) -> _Source:
    """A CSV file Spark read irregularly, read as DuckDB reads it then: stopped at the first
    byte that is not UTF-8; else re-read row by row by the loader's own `_rewrite_csv` (rows
    with too many or too few cells become problems, the others go to a clean file, which Spark
    reads with their row numbers; on a cluster, which cannot read the driver's disk, the driver
    sends them)."""
    path = source.path
    if not path.is_file():  # a path only Spark reads: stop rather than go on with wrong cells
        raise DataError(
            f"{path}: rows Spark's CSV reader may not read as RFC 4180 says (a row with too many "
            "or too few cells, a quote or a carriage return inside a cell, or a byte that is not "
            "UTF-8); the driver cannot open the file to read them exactly: fix the file, or "
            "copy it here"
        )
    if _first_non_utf8(path)[2] != "an unreadable byte":
        raise _not_utf8(path)
    clean, problems = folder / "rows.csv", folder / "problems.csv"
    with problems.open("w", encoding="utf-8", newline="") as handle:
        _rewrite_csv(path, clean, csv.writer(handle))
    with problems.open(encoding="utf-8", newline="") as handle:
        found = [(int(row), reason, record) for row, reason, record in csv.reader(handle)]
    width = len(_csv_header(path))
    schema = ", ".join([f"{ROW} bigint", *(f"c{i} string" for i in range(width))])
    if _local_master(sc.spark):  # the executors read the driver's disk
        frame = _csv_frame(sc, str(clean), schema, ",").drop(_CORRUPT)
    else:  # the good rows sent from the driver, which has read them (an empty cell: NULL)
        with clean.open(encoding="utf-8", newline="") as handle:
            rows = csv.reader(handle)
            next(rows)
            good = [(int(row), *(cell or None for cell in cells)) for row, *cells in rows]
        frame = sc.spark.createDataFrame(good, schema)
    sc.register(raw, frame)
    sc.register(
        f"{raw}_problems",
        sc.spark.createDataFrame(found, "row bigint, reason string, record string"),
    )
    return dataclasses.replace(
        source, structural="NULL", problems=ident(f"{raw}_problems"), restructure=False
    )


def _exact_rows(sc: SparkConnection, table: str, raw: str) -> None:
    """`__row` as the row's number (1, 2, ...) in `table` and its source view `raw`: Spark's ids
    are consecutive within a partition only (a CSV file is one; a Parquet file may be several).
    Only counts per partition come to the driver."""
    part = f"floor(({ROW} - 1) / {1 << 33})"
    starts = sc.execute(
        f"SELECT {part} AS p, count(*), min({ROW}) FROM {ident(raw)} GROUP BY 1 ORDER BY 1"
    ).fetchall()
    shift, before = [], 0
    for p, count, first in starts:
        shift.append(f"WHEN {int(p)} THEN {before + 1 - int(first)}")
        before += int(count)
    if all(item.endswith(" THEN 0") for item in shift):
        return
    exact = f"{ROW} + CASE {part} {' '.join(shift)} END"
    for name in (raw, table):
        columns = ", ".join(ident(c) for c in sc.schemas[name] if c != ROW)
        sc.execute(
            f"CREATE OR REPLACE TEMP {'TABLE' if name == table else 'VIEW'} {ident(name)} AS "
            f"SELECT {exact} AS {ROW}, {columns} FROM {ident(name)}"
        )


def _mark(sc: SparkConnection, table: str, reason: str, relation: str | None = None,
          on: str = "") -> None:  # fmt: skip
    """`UPDATE table AS c SET __problem = concat_ws('; ', __problem, reason) [FROM relation AS o
    WHERE on]`, as Spark can: the table made again, with the rows `on` matches marked (at most
    one row of `relation` matches a row of the table)."""
    name = ident(table)
    columns = ", ".join(f"c.{ident(col)}" for col in sc.schemas[table] if col != PROBLEM)
    if relation is None:
        joined, matched = f"{name} AS c", on
    else:
        joined = f"{name} AS c LEFT JOIN (SELECT *, TRUE AS __matched FROM {relation}) AS o ON {on}"
        matched = "o.__matched"
    sc.execute(
        f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT {columns}, CASE WHEN {matched} "
        f"THEN concat_ws('; ', c.{PROBLEM}, {reason}) ELSE c.{PROBLEM} END AS {PROBLEM} "
        f"FROM {joined}"
    )


def _mark_duplicates(sc: SparkConnection, table: str, key: str | RowKey) -> None:
    """Every row of a repeated id, naming the first five rows of that id (`loader`'s message):
    windows partitioned by the id."""
    keyed = f"(SELECT {ROW}, {_key_sql(key)} AS id FROM {ident(table)})"
    shown = "o.id"  # a RowKey shows itself
    if not isinstance(key, RowKey):
        shown = f"{literal(f'column {key}: the id `')} || o.id || '`'"
    first = ", ".join(
        f"CAST(max(CASE WHEN k = {k} THEN {ROW} END) AS VARCHAR)" for k in range(1, 6)
    )
    ranked = (
        f"SELECT {ROW}, id, row_number() OVER (PARTITION BY id ORDER BY {ROW}) AS k "
        f"FROM {keyed} WHERE id IS NOT NULL"
    )
    listed = (
        f"SELECT id, count(*) AS n, concat_ws(', ', {first}) "
        f"|| CASE WHEN count(*) > 5 THEN ', ...' ELSE '' END AS listed "
        f"FROM ({ranked}) GROUP BY id HAVING count(*) > 1"
    )
    repeated = f"(SELECT k.{ROW}, g.id, g.n, g.listed FROM {keyed} AS k JOIN ({listed}) AS g " \
        "ON g.id = k.id)"  # fmt: skip
    _mark(sc, table, repeated_reason(shown, "o.n", "o.listed"), repeated, f"o.{ROW} = c.{ROW}")


def _owners_view(sc: SparkConnection, name: str, rows: list[list[str]], schema: str) -> str:
    sc.register(name, sc.spark.createDataFrame(rows, schema))
    return ident(name)


def _records(sc: SparkConnection, table: str, source: _Source, raw: str) -> list[tuple[Any, ...]]:
    """The bad rows of `table` as the rejects file has them (file, row, reason, record), the
    records made by DuckDB's own SQL (`loader`'s `source.record`) on the driver, from the bad
    rows' cells streamed from Spark: byte for byte what the DuckDB engine writes."""
    path = source.path
    local = duckdb.connect()
    bad = f"SELECT {ROW} FROM {ident(table)} WHERE {PROBLEM} IS NOT NULL"
    reasons = f"(SELECT {ROW}, {PROBLEM} AS reason FROM {ident(table)} WHERE {PROBLEM} IS NOT NULL)"
    if source.kind == "text":
        duck, header = _csv_source(path, [])
        cells = ", ".join(f"r.c{i}" for i in range(len(header)))
        fetch(sc, f"SELECT r.{ROW}, b.reason, {cells} FROM {ident(raw)} AS r JOIN {reasons} "
              f"AS b ON b.{ROW} = r.{ROW}", local, "bad")  # fmt: skip
        record, relation = duck.record, "bad"
    else:
        fetch(sc, f"SELECT {ROW}, reason FROM {reasons}", local, "reasons")
        if source.kind == "json":  # the line as written (not JSON: its text as a JSON string)
            fetch(sc, f"SELECT {ROW}, __record AS record FROM {ident(raw)} WHERE {ROW} IN ({bad})",
                  local, "records")  # fmt: skip
            record = "record"
        elif str(source.path).startswith(TABLE_PREFIX):  # no file: Spark's JSON of the row
            from pyspark.sql import functions as F

            frame = sc.frames[raw]
            row = F.struct(*(F.col(quoted(c)) for c in frame.columns if c != ROW))
            json = F.to_json(row, {"ignoreNullFields": "false"}).alias("record")
            sc.register("__records", frame.select(F.col(ROW), json))
            fetch(sc, f"SELECT {ROW}, record FROM __records WHERE {ROW} IN ({bad})", local,
                  "records")  # fmt: skip
            record = "record"
        else:  # a Parquet file: DuckDB reads the bad rows as the DuckDB engine does
            types = _parquet_source(local, path).types
            pairs = ", ".join(f"{literal(n)}: {ident(n)}" for n in types)
            local.execute(
                f"CREATE TABLE records AS SELECT file_row_number + 1 AS {ROW}, "
                f"CAST(to_json({{{pairs}}}) AS VARCHAR) AS record FROM read_parquet("
                f"{literal(str(path))}, file_row_number = true) "
                f"WHERE file_row_number + 1 IN (SELECT {ROW} FROM reasons)"
            )
            record = "record"
        local.execute(
            f"CREATE TABLE bad AS SELECT {ROW}, reason, record FROM reasons JOIN records "
            f"USING ({ROW})"
        )
        relation = "bad"
    rows = [
        tuple(row)
        for row in local.execute(
            f"SELECT {literal(str(path))} AS file, {ROW} AS row, reason, {record} AS record "
            f"FROM {relation}"
        ).fetchall()
    ]
    local.close()
    return rows


def quoted(name: str) -> str:
    """A name as Spark's own parser reads it from the DataFrame API (`spark.table`, `F.col`):
    in backquotes, a backquote doubled; the SQL statements are quoted by `sql.ident` and
    rendered by `dialects`."""
    return "`" + name.replace("`", "``") + "`"


def _table(sc: SparkConnection, name: str) -> DataFrame:
    """A table of the user's catalogue (`table:NAME`) as the run's session reads it. A temporary
    view of the user's session is not visible from the run's own: it is handed over as a global
    temporary view of the run's (dropped once the inputs are loaded, `SparkConnection.unshare`)."""
    try:
        found = sc.base.catalog.tableExists(name)
    except Exception as error:  # a name Spark's parser refuses (`a;b`, `a.b.c.d`)
        if not from_spark(error):
            raise
        raise UsageError(
            f"{TABLE_PREFIX}{name}: not a table name Spark reads ({spark_cause(str(error))}); "
            f"write {TABLE_PREFIX}NAME or {TABLE_PREFIX}DATABASE.NAME"
        ) from None
    if not found:
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


def _jsonl_source(
    sc: SparkConnection, raw: str, where: str | Path, columns: list[_Column]
) -> _Source:
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

    spark, path = sc.spark, Path(where)  # a URL read as written (`where`), never as `path`
    spark.conf.set("spark.sql.variant.allowDuplicateKeys", "true")
    try:  # a lone CR is JSON's blank, not a line end
        lines = spark.read.text(str(where), lineSep="\n")
    except Exception as error:
        if not from_spark(error):
            raise
        raise DataError(f"{where}: cannot read: {spark_cause(str(error))}") from None
    if not is_url(where) and lines.where(~F.is_valid_utf8("value")).take(1):
        _check_utf8(path)  # Spark keeps the bytes as they are: name the first bad one
    first = F.monotonically_increasing_id() == 0  # the first line: a byte order mark is not content
    text = F.when(first, F.regexp_replace("value", "^\ufeff", "")).otherwise(F.col("value"))
    text = F.regexp_replace(text, "\r$", "")  # a CRLF line's end, as DuckDB reads it
    lines = lines.select(text.alias("line")).where(~F.col("line").rlike("^[ \t\r]*$"))
    # numbered after blank lines are left out: consecutive within a partition, as `_exact_rows`
    # needs to make them the rows' numbers (DuckDB does not count blank lines)
    lines = lines.withColumn("__row", F.monotonically_increasing_id() + 1)
    if is_url(where):  # no file to hash on this machine: its lines, in their order
        sc.digests[str(where)] = rows_digest(lines)
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
def _conf(spark: SparkSession, settings: Mapping[str, str]) -> Iterator[None]:
    """Settings of the session changed for the statements run inside, then restored."""
    before: dict[str, str | None] = {key: spark.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, was in before.items():
            if was is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, was)


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


def _convert(
    sc: SparkConnection, table: str, source: _Source, columns: list[_Column], context: _Context
) -> None:
    """`table` converted from `source` by the loader's SQL. A stage of JSON conversions
    outgrows Java's 64 KB for a method: Spark would print the compiler's failure, then run it
    without whole-stage code generation, as it is run here at once."""
    statement = create_sql(table, source, columns, context, exact=True)
    if source.kind == "json":
        with _conf(sc.spark, {"spark.sql.codegen.wholeStage": "false"}):
            sc.execute(statement)
    else:
        sc.execute(statement)


def _typed(
    sc: SparkConnection,
    table: str,
    where: str | Path,
    columns: list[_Column],
    key: str | RowKey | None,
    context: _Context,
    rejects: Path | None = None,
    stats: LoadStats | None = None,
) -> int:
    """The table `table` from an input, converted and checked by the loader's own SQL; bad rows
    are found as DuckDB finds them (`loader._settle`), then the first stops the run, or, with
    `rejects`, they are set aside in `rejects_<table>`. Returns the rows kept."""
    stats = stats if stats is not None else LoadStats()
    raw = f"raw_{table}"
    name = ident(table)
    source = _source(sc, raw, where, columns)
    with private_folder() as folder:
        _convert(sc, table, source, columns, context)
        if source.kind == "json":  # no header: a key no object has is a missing column
            _require_keys(cast("duckdb.DuckDBPyConnection", sc), table, source, columns)
        keyed = f"count({_key_sql(key)}) - count(DISTINCT {_key_sql(key)})" if key else "0"
        counts = (
            f"SELECT count(CASE WHEN {PROBLEM} IS NOT NULL THEN 1 END), {keyed}, "
            f"count(CASE WHEN {PROBLEM} = '{_IRREGULAR}' THEN 1 END) FROM {name}"
        )
        found = sc.execute(counts).fetchone()
        bad, repeats, irregular = found if found else (0, 0, 0)
        if irregular:
            source = _reread(sc, raw, source, Path(folder))
            _convert(sc, table, source, columns, context)
        if isinstance(key, RowKey):
            _mark(sc, table, literal(key.missing), on=f"{key.sql} IS NULL")
        if irregular or isinstance(key, RowKey):
            found = sc.execute(counts).fetchone()
            bad, repeats, irregular = found if found else (0, 0, 0)
        structural = 0
        if source.problems is not None:
            counted = sc.execute(f"SELECT count(*) FROM {source.problems}").fetchone()
            structural = int(counted[0]) if counted else 0
        if bad or repeats or structural:
            if source.kind != "text":  # a CSV file is read by one task: its ids count rows
                _exact_rows(sc, table, raw)
            if repeats:
                assert key is not None
                _mark_duplicates(sc, table, key)
            _reject(sc, table, source, raw, rejects, stats, columns)
        kept = ", ".join(ident(c.name) for c in columns)
        sc.execute(
            f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT {ROW}, {kept} FROM {name}"
            + (f" WHERE {PROBLEM} IS NULL" if bad or repeats or structural else "")
        )
        for view in (raw, f"{raw}_problems"):
            sc.spark.catalog.dropTempView(view)
            sc.schemas.pop(view, None)
            sc.frames.pop(view, None)
    count = sc.execute(f"SELECT count(*) FROM {name}").fetchone()
    return int(count[0]) if count else 0


def _reject(
    sc: SparkConnection,
    table: str,
    source: _Source,
    raw: str,
    rejects: Path | None,
    stats: LoadStats,
    columns: list[_Column],
) -> None:
    """`loader._reject` on Spark: the same owners read from broken rows, the same first bad
    row and count, the same rejects rows and `unknown_history`."""
    name = ident(table)
    owner = next((c for c in columns if c.key and c.not_empty), None)
    owners: dict[str, list[int]] = {}
    if owner is not None and table in ("customers", "contacts"):
        owners, unknown = _unreadable_owners(sc, table, source, owner)  # type: ignore[arg-type]
        if table == "customers":
            stats.unreadable_customers = unknown
            if owners:
                owned = _owners_view(sc, "__owned", owned_rows(owners), "id string, listed string")
                k = ident(owner.name)
                reason = owned_reason(owner.name, f"c.{k}", "o.listed")
                _mark(sc, table, reason, owned, f"c.{k} = o.id")
        else:
            stats.unreadable_contacts = unknown
    found = f"SELECT {ROW} AS row, {PROBLEM} AS reason FROM {name} WHERE {PROBLEM} IS NOT NULL"
    if source.problems is not None:
        found += f" UNION ALL SELECT row, reason FROM {source.problems}"
    counted = sc.execute(f"SELECT count(*), min(row), min_by(reason, row) FROM ({found})")
    count, first_row, reason = counted.fetchone() or (0, 0, "")
    if rejects is None:
        raise bad_rows(source.path, int(first_row), reason, int(count))
    stats.rejected[str(source.path)] = count
    rows = _records(sc, table, source, raw)
    if source.problems is not None:  # rows the re-read could not use: a few, on the driver
        problems = sc.execute(f"SELECT row, reason, record FROM {source.problems}").fetchall()
        rows += [(str(source.path), *problem) for problem in problems]
    # One view for every input's rejects (`loader.rejects_sql` reads each `rejects_*`): Spark 4.0
    # fails to plan that query's UNION ALL of two local relations under an ORDER BY.
    if _REJECTS in sc.schemas:
        rows = sc.execute(f"SELECT * FROM {_REJECTS}").fetchall() + rows
    schema = "file string, row bigint, reason string, record string"
    sc.register(_REJECTS, sc.spark.createDataFrame(rows, schema))
    if table == "contacts":  # whose history is incomplete: the planner holds them back
        ids = _owners_view(sc, "__owned", [[found] for found in owners], "customer_id string")
        sc.execute(
            f"CREATE OR REPLACE TEMP TABLE {UNKNOWN_HISTORY} AS SELECT DISTINCT customer_id FROM ("
            f"SELECT customer_id FROM {name} WHERE {PROBLEM} IS NOT NULL "
            f"AND customer_id IS NOT NULL UNION ALL SELECT customer_id FROM {ids})"
        )
        held = sc.execute(f"SELECT count(*) FROM {UNKNOWN_HISTORY}").fetchone()
        stats.unknown_history = int(held[0]) if held else 0
    sc.execute("DROP TABLE IF EXISTS __owned")


def load(
    sc: SparkConnection,
    config: Config,
    inputs: Inputs,
    as_of: dt.date,
    rejects: Path | None = None,
    needed: Collection[str] | Mapping[str, str | None] | None = None,
) -> LoadStats:
    """`loader.load` on Spark: the same tables (`customers`, `orders`, `contacts`, `products`)
    from the same conversion SQL; each table keeps `__row`, its input order. The views handed
    over from the user's session are dropped however the loading ends (they are the whole
    application's)."""
    try:
        return _load(sc, config, inputs, as_of, rejects, needed)
    finally:
        sc.unshare()


def _load(
    sc: SparkConnection,
    config: Config,
    inputs: Inputs,
    as_of: dt.date,
    rejects: Path | None,
    needed: Collection[str] | Mapping[str, str | None] | None,
) -> LoadStats:
    refusals(inputs, rejects)
    _check_timezone(duckdb.connect(), config)
    context = _Context(config.timezone, as_of)
    stats = LoadStats()
    columns = _customer_columns(config, inputs, as_of, needed)
    stats.customers = _typed(
        sc, "customers", inputs.where("customers"), columns, config.customers.id, context,
        rejects, stats,
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
        stats.orders = _typed(
            sc, "orders", inputs.where("orders"), order_columns, None, context, rejects, stats
        )
    histories = []
    if inputs.contacts is not None:
        stats.contacts = _typed(
            sc, "contacts", inputs.where("contacts"), contact_columns, None, context, rejects,
            stats,
        )
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
        products = None if inputs.products is None else inputs.where("products")
        _catalogue(sc, config, products, rejects, stats, context)
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
    sc: SparkConnection,
    config: Config,
    path: str | Path | None,
    rejects: Path | None,
    stats: LoadStats,
    context: _Context,
) -> None:
    """`products`: the file's rows and the configuration's entries the file does not give."""
    rows = [list(r) for r in config.products.rows()]
    schema = "sku string, category string, days_per_unit double, warranty_days double"
    sc.register("__configured", sc.spark.createDataFrame(rows, schema))
    columns = "sku, category, days_per_unit, warranty_days"
    if path is not None:
        _typed(sc, PRODUCTS, path, product_columns(), PRODUCT_KEY, context, rejects, stats)
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
    with private_folder() as folder:
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
    settings = {
        "spark.sql.shuffle.partitions": str(max(1, -(-rows // STREAMED_ROWS))),
        "spark.sql.adaptive.coalescePartitions.enabled": "false",
    }
    with _conf(sc.spark, settings):
        frame = sc.sql(query)
        types = {f.name: _spark_type(f.dataType) for f in frame.schema.fields}
        with path.open("w", encoding="utf-8", newline="") as handle:
            for row in frame.toLocalIterator():
                handle.write(",".join(_cell(v) for v in row) + "\n")
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
