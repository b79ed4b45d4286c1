"""Customer, order and contact exports -> validated, typed DuckDB tables.

Every cell is read as text and converted against the declared schema, so a bad value is found
with its file, row and column instead of being guessed at. By default the first bad row stops the
run before anything is written; with a rejects file the bad rows go there with their reason and
the run goes on. Nothing is dropped silently.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from . import types as t
from .config import Config
from .errors import DataError
from .sql import ident, literal

SQL_TYPES = {
    t.Kind.NUMBER: "DOUBLE",
    t.Kind.STRING: "VARCHAR",
    t.Kind.BOOL: "BOOLEAN",
    t.Kind.DATE: "DATE",
    t.Kind.ANNIVERSARY: "DATE",
    t.Kind.ENUM: "VARCHAR",
}
ORDER_FIELDS = ("first_order_date", "last_order_date", "orders_12m", "spend_12m", "total_orders")
NON_NEGATIVE = ("orders_12m", "spend_12m", "total_orders")
ROW = "__row"
PROBLEM = "__problem"


def connect() -> duckdb.DuckDBPyConnection:
    """An in-memory database for one run. DuckDB's own progress bar is off: it would write into
    stdout, which may be carrying JSON; the CLI shows its own on a terminal."""
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    return con


@dataclass(frozen=True)
class Inputs:
    customers: Path
    orders: Path | None = None
    contacts: Path | None = None

    def files(self) -> list[Path]:
        return [p for p in (self.customers, self.orders, self.contacts) if p is not None]


@dataclass
class LoadStats:
    customers: int = 0
    rejected: dict[str, int] = field(default_factory=dict)  # file -> bad rows set aside
    orders: int = 0
    contacts: int = 0

    @property
    def total_rejected(self) -> int:
        return sum(self.rejected.values())


@dataclass(frozen=True)
class _Column:
    """One column to convert: where it comes from, what it must be, and extra validity rules."""

    name: str
    source: str
    type: t.Type
    required: bool = True  # the file must have the column
    non_negative: bool = False
    not_empty: bool = False  # every row must have a value


def _reader(path: Path) -> str:
    """A DuckDB table function reading `path` with every column as text."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    quoted = literal(str(path))
    if suffix in (".csv", ".txt", ".tsv"):
        return f"read_csv({quoted}, all_varchar = true, header = true)"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return f"read_json({quoted}, format = 'newline_delimited')"
    if suffix == ".parquet":
        return f"read_parquet({quoted})"
    raise DataError(f"{path}: unknown file type {suffix!r}; use .csv, .jsonl or .parquet")


def _raw_view(con: duckdb.DuckDBPyConnection, name: str, path: Path) -> list[str]:
    """A view of the file with a row number (1 = first data row); returns the column names."""
    try:
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW {ident(name)} AS "
            f"SELECT row_number() OVER () AS {ROW}, * FROM {_reader(path)}"
        )
        cursor = con.execute(f"SELECT * FROM {ident(name)} LIMIT 0")
        return [column[0] for column in cursor.description if column[0] != ROW]
    except duckdb.Error as error:
        raise DataError(f"{path}: cannot read: {_first_line(error)}") from None


def _first_line(error: Exception) -> str:
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def _text(column: _Column) -> str:
    """The cell as text, NULL when empty. Text is kept as written; numbers and dates are trimmed."""
    raw = f"CAST({ident(column.source)} AS VARCHAR)"
    if SQL_TYPES[column.type.kind] == "VARCHAR":
        return f"NULLIF({raw}, '')"
    return f"NULLIF(trim({raw}), '')"


def _convert(column: _Column) -> tuple[str, str]:
    """The typed value and the problem text (NULL when fine) for one column."""
    text = _text(column)
    sql_type = SQL_TYPES[column.type.kind]
    value = text if sql_type == "VARCHAR" else f"TRY_CAST({text} AS {sql_type})"
    if column.type.kind is t.Kind.DATE or column.type.kind is t.Kind.ANNIVERSARY:
        value = f"TRY_CAST(TRY_CAST({text} AS TIMESTAMP) AS DATE)"
    checks = [f"WHEN {text} IS NOT NULL AND {value} IS NULL THEN 'is not {_a(column.type)}'"]
    if column.type.kind is t.Kind.ENUM:
        values = ", ".join(literal(v) for v in column.type.values)
        checks = [
            f"WHEN {text} IS NOT NULL AND {text} NOT IN ({values}) "
            f"THEN 'is not one of {', '.join(column.type.values)}'"
        ]
    if column.non_negative:
        checks.append(f"WHEN {value} < 0 THEN 'is negative'")
    problem = f"CASE {' '.join(checks)} END"
    described = f"'column {column.name}: `' || {text} || '` ' || {problem}"
    return value, f"CASE WHEN {problem} IS NOT NULL THEN {described} END"


def _a(type_: t.Type) -> str:
    return {
        "number": "a number",
        "bool": "true or false",
        "date": "a date (YYYY-MM-DD)",
        "anniversary": "a date (YYYY-MM-DD)",
    }.get(type_.kind.value, type_.kind.value)


def _typed_table(
    con: duckdb.DuckDBPyConnection,
    table: str,
    path: Path,
    columns: list[_Column],
    key: str | None,
    rejects: Path | None,
    stats: LoadStats,
) -> None:
    """Create `table` from the file: converted columns, bad rows stopped at or set aside."""
    raw = f"raw_{table}"
    header = _header(con, path)
    fast = header is not None and not _missing(columns, header)
    if fast and _fast_load(con, table, path, header, columns, key):
        return
    header = _raw_view(con, raw, path)
    present = set(header)
    missing = _missing(columns, header)
    if missing:
        names = ", ".join(missing)
        raise DataError(f"{path}: missing column{'s' * (len(missing) > 1)} {names}")
    selected, problems = [], []
    for column in columns:
        if column.source not in present:
            selected.append(f"CAST(NULL AS {SQL_TYPES[column.type.kind]}) AS {ident(column.name)}")
            continue
        value, problem = _convert(column)
        selected.append(f"{value} AS {ident(column.name)}")
        if column.not_empty:
            problems.append(
                f"CASE WHEN {_text(column)} IS NULL THEN 'column {column.name}: empty' END"
            )
        problems.append(problem)
    try:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {ident(table)} AS SELECT {ROW}, {', '.join(selected)}, "
            f"concat_ws('; ', {', '.join(problems)}) AS {PROBLEM} FROM {ident(raw)}"
        )
    except duckdb.Error as error:
        raise DataError(f"{path}: cannot read: {_first_line(error)}") from None
    if key is not None:
        _mark_duplicates(con, table, key)
    bad = con.execute(
        f"SELECT count(*), min({ROW}) FROM {ident(table)} WHERE {PROBLEM} <> ''"
    ).fetchone()
    if bad[0]:
        _reject(con, table, raw, path, rejects, bad, stats)
    con.execute(f"ALTER TABLE {ident(table)} DROP COLUMN {PROBLEM}")
    con.execute(f"ALTER TABLE {ident(table)} DROP COLUMN {ROW}")


def _missing(columns: list[_Column], header: list[str]) -> list[str]:
    return [c.source for c in columns if c.required and c.source not in header]


def _native_reader(path: Path) -> str:
    quoted = literal(str(path))
    if path.suffix.lower() == ".parquet":
        return f"read_parquet({quoted})"
    return f"read_json({quoted}, format = 'newline_delimited')"


def _header(con: duckdb.DuckDBPyConnection, path: Path) -> list[str] | None:
    """The column names, without scanning the file: a CSV's first line, Parquet's metadata."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            with path.open(encoding="utf-8", newline="") as handle:
                return next(csv.reader(handle), None)
        if suffix in (".parquet", ".jsonl", ".ndjson", ".json"):
            return [
                row[0]
                for row in con.execute(f"DESCRIBE SELECT * FROM {_native_reader(path)}").fetchall()
            ]
    except (OSError, UnicodeDecodeError, csv.Error, duckdb.Error):
        pass  # the slow path reads it again and says what is wrong
    return None


def _fast_load(
    con, table: str, path: Path, header: list[str], columns: list[_Column], key: str | None
) -> bool:
    """The common case, valid data: let DuckDB convert while it reads (CSV with declared column
    types, Parquet and JSON lines from their own types).

    Any problem (a value that does not convert, a negative amount, an unknown enumeration value,
    an empty or repeated id) returns False, and the caller takes the slow path, which reads every
    cell as text and finds each bad row with its reason.
    """
    quoted = literal(str(path))
    csv_file = path.suffix.lower() == ".csv"
    if csv_file:
        declared = {c.source: SQL_TYPES[c.type.kind] for c in columns}
        types = ", ".join(
            f"{literal(name)}: {literal(declared.get(name, 'VARCHAR'))}" for name in header
        )
        source = (
            f"read_csv({quoted}, header = true, delim = ',', quote = '\"', escape = '\"', "
            f"columns = {{{types}}})"
        )
    else:
        source = _native_reader(path)
    selected = []
    for column in columns:
        sql_type = SQL_TYPES[column.type.kind]
        name = ident(column.source)
        if column.source not in header:
            value = f"CAST(NULL AS {sql_type})"
        elif sql_type == "VARCHAR":
            value = f"NULLIF(CAST({name} AS VARCHAR), '')"
        else:
            value = name if csv_file else f"CAST({name} AS {sql_type})"
        selected.append(f"{value} AS {ident(column.name)}")
    try:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {ident(table)} AS SELECT {', '.join(selected)} "
            f"FROM {source}"
        )
    except duckdb.Error:
        return False
    checks = ["0"]
    for column in columns:
        name = ident(column.name)
        if column.not_empty:
            checks.append(f"count(*) FILTER (WHERE {name} IS NULL)")
        if column.non_negative:
            checks.append(f"count(*) FILTER (WHERE {name} < 0)")
        if column.type.kind is t.Kind.ENUM:
            values = ", ".join(literal(v) for v in column.type.values)
            checks.append(f"count(*) FILTER (WHERE {name} NOT IN ({values}))")
    if key is not None:
        checks.append(f"count({ident(key)}) - count(DISTINCT {ident(key)})")
    problems = con.execute(f"SELECT {' + '.join(checks)} FROM {ident(table)}").fetchone()[0]
    return problems == 0


def _mark_duplicates(con: duckdb.DuckDBPyConnection, table: str, key: str) -> None:
    """Every repeat of an id after its first row is a bad row naming the first one."""
    distinct, total = con.execute(
        f"SELECT count(DISTINCT {ident(key)}), count({ident(key)}) FROM {ident(table)}"
    ).fetchone()
    if distinct == total:
        return
    con.execute(f"""
        UPDATE {ident(table)} AS c SET {PROBLEM} = concat_ws('; ', NULLIF(c.{PROBLEM}, ''),
            'column {key}: duplicate id `' || c.{ident(key)}
                || '` (first at row ' || d.first || ')')
        FROM (SELECT {ident(key)} AS id, min({ROW}) AS first FROM {ident(table)}
              GROUP BY 1 HAVING count(*) > 1) AS d
        WHERE c.{ident(key)} = d.id AND c.{ROW} > d.first
    """)


def _reject(con, table, raw, path, rejects, bad, stats) -> None:
    count, first_row = bad
    if rejects is None:
        problem = con.execute(
            f"SELECT {PROBLEM} FROM {ident(table)} WHERE {ROW} = {first_row}"
        ).fetchone()[0]
        more = f" (and {count - 1} more bad row{'s' * (count > 2)})" if count > 1 else ""
        raise DataError(
            f"{path}: row {first_row}: {problem}{more}; nothing was written. "
            "Fix the data, or pass --rejects FILE to set bad rows aside"
        )
    stats.rejected[str(path)] = count
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE rejects_{table} AS "
        f"SELECT {literal(str(path))} AS file, r.{ROW} AS row, c.{PROBLEM} AS reason, "
        f"CAST(to_json(cells) AS VARCHAR) AS record "
        f"FROM {ident(raw)} r JOIN {ident(table)} c USING ({ROW}), "
        f"LATERAL (SELECT r.* EXCLUDE ({ROW})) cells WHERE c.{PROBLEM} <> ''"
    )
    con.execute(f"DELETE FROM {ident(table)} WHERE {PROBLEM} <> ''")


def rejects_sql(con: duckdb.DuckDBPyConnection) -> str | None:
    """All rows set aside, from every input file, in file and row order; None if there are none."""
    tables = [
        name
        for (name,) in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE table_name LIKE 'rejects_%'"
        ).fetchall()
    ]
    if not tables:
        return None
    union = " UNION ALL ".join(f"SELECT * FROM {ident(name)}" for name in tables)
    return f"SELECT * FROM ({union}) ORDER BY file, row"


def load(
    con: duckdb.DuckDBPyConnection, config: Config, inputs: Inputs, rejects: Path | None = None
) -> LoadStats:
    """Create the tables `customers` and, when given, `orders` and `contacts`."""
    stats = LoadStats()
    schema = config.customers
    declared = schema.types()
    optional = set(ORDER_FIELDS) if inputs.orders is not None else set()
    optional |= {"last_contacted"} if inputs.contacts is not None else set()
    columns = [
        _Column(
            name,
            name,
            type_,
            required=name not in optional and name != "last_contacted",
            non_negative=name in NON_NEGATIVE,
            not_empty=name == schema.id,
        )
        for name, type_ in declared.items()
    ]
    for name, type_ in t.ACTIVITY_FIELDS.items():
        if name not in declared:
            columns.append(
                _Column(
                    name,
                    name,
                    type_,
                    required=name in ORDER_FIELDS and not optional,
                    non_negative=name in NON_NEGATIVE,
                )
            )
    _typed_table(con, "customers", inputs.customers, columns, schema.id, rejects, stats)
    stats.customers = con.execute("SELECT count(*) FROM customers").fetchone()[0]
    o, c = config.orders, config.contacts
    histories = {
        "orders": (
            inputs.orders,
            [
                _Column("customer_id", o.customer, t.STRING, not_empty=True),
                _Column("order_date", o.date, t.DATE, not_empty=True),
                _Column("amount", o.amount, t.NUMBER, non_negative=True),
            ],
        ),
        "contacts": (
            inputs.contacts,
            [
                _Column("customer_id", c.customer, t.STRING, not_empty=True),
                _Column("channel", c.channel, t.STRING),
                _Column("rule", c.rule, t.STRING),
                _Column("sent_at", c.sent_at, t.DATE, not_empty=True),
            ],
        ),
    }
    for table, (path, table_columns) in histories.items():
        if path is not None:
            _typed_table(con, table, path, table_columns, None, rejects, stats)
            setattr(stats, table, con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    return stats
