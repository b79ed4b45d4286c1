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

import datetime as dt
import os
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from .dialects import parse, render
from .errors import UsageError
from .sql import literal

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
        spark = builder.getOrCreate()
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

    def sql(self, query: str | exp.Expression) -> DataFrame:
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
        elif isinstance(tree, exp.Drop):
            name = tree.this.name
            self.spark.catalog.dropTempView(name)
            self.schemas.pop(name, None)
            self.frames.pop(name, None)
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
