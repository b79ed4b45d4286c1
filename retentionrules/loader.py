"""Customer, order and contact exports -> validated, typed DuckDB tables.

Each format is read by its own types, never by DuckDB's guesses: a CSV cell is text and must be
spelled as docs/engine.md says; a JSON lines value must have the JSON type the field asks for
(checked value by value, because DuckDB's type detection samples the file and then silently
converts what it did not sample); a Parquet column is judged by its declared type. Ids and
channel names are normalised once, here (`text_key`, `channel_key`), and the same helpers
normalise the names they are compared with, so a join can never miss because of spelling.

A bad value is found with its file, row and column. By default the first bad row stops the run
before anything is written; with a rejects file the bad rows go there with their reason and the
run goes on. Nothing is dropped silently.

Valid data takes one cheap pass per file: DuckDB's own casts (which take more than the
documented spellings) and a per-row flag for anything they might have taken wrongly, then one
aggregate of minima and maxima. Only a file with a flagged row, a value out of range or a
repeated id is read again, exactly, with the reason for every bad row and its row number (the
table's row ids, in file order). A file DuckDB cannot parse at all (a ragged row, a broken
quote, a line that is not JSON) is re-read in Python into a private temporary folder: the rows
it cannot use are named, the others go through the same exact conversion.
"""

from __future__ import annotations

import atexit
import codecs
import csv
import dataclasses
import datetime as dt
import functools
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _csv import Writer as _Writer

import duckdb

from . import types as t
from .config import BLANKS, MAX_PRODUCT_DAYS, Config
from .errors import DataError, UsageError
from .sql import ident, literal
from .timeutil import MAX_DATE, MIN_DATE

# Every blank is a control character or a space (code 32 or below) but these two.
_WIDE_BLANKS = ", ".join(str(ord(c)) for c in BLANKS if ord(c) > 32)
ORDER_FIELDS = ("first_order_date", "last_order_date", "orders_12m", "spend_12m", "total_orders")
NON_NEGATIVE = ("orders_12m", "spend_12m", "total_orders")
# Dates in the customer export that record something that already happened.
ACTIVITY_DATES = ("first_order_date", "last_order_date", "last_contacted")


# The spellings a text cell may take (docs/engine.md), as RE2 patterns; [0-9], not \d: digits
# from other scripts are not digits here.
NUMBER_PATTERN = r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?"
DATE_PATTERN = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
TIME_PATTERN = r"[T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,9})?)?"
OFFSET_PATTERN = r"(Z|[+-]([01][0-9]|2[0-3])(:?[0-5][0-9])?)"
# Numbers lie strictly between -10^15 and 10^15: sums and ratios of them stay finite, so no
# derived field or output ever holds an infinity.
NUMBER_LIMIT = "1e15"
NUMBER_RANGE = "numbers lie between -10^15 and 10^15"
BOOL_SPELLINGS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}

ROW = "__row"
PROBLEM = "__problem"
_JSON_NUMBER_TYPES = ("BIGINT", "UBIGINT", "DOUBLE")
_INTEGER_TYPES = {
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
}
_NAIVE_TIMESTAMPS = {"TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS", "DATETIME"}
_ZONED_TIMESTAMPS = {"TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ"}
# An input that is a table of the Spark catalogue, not a file: `table:db.customers` (--engine
# spark); its digest is its name's.
TABLE_PREFIX = "table:"
_CELL_LIMIT = 1 << 26  # 64 MB: a cell larger than this is not customer data
_CSV_BUFFER = 1 << 23  # 8 MB: what DuckDB reads of a CSV file at a time
_EXACT_DOUBLE = 2**53  # a whole number written as a float is an id only while it is exact


# A size as DuckDB's memory_limit takes it: a number and a unit, decimal (GB) or binary (GiB).
_SIZE = re.compile(r"(\d+(?:\.\d+)?) ?([KMGT]i?B|B)", re.IGNORECASE)


@dataclass(frozen=True)
class Resources:
    """What a run may take of the machine. `memory_limit` caps DuckDB's memory ("4GB"; None:
    DuckDB's default, 80% of the machine's); what does not fit is spilled to disk, in a folder of
    the run's own under `temp_dir` (None: the system's temporary folder), which DuckDB removes
    when the run ends. A folder of its own, never DuckDB's default `.tmp` in the current folder:
    two runs from one folder would share it, and a spill would land among the user's files."""

    memory_limit: str | None = None
    temp_dir: Path | None = None

    def __post_init__(self) -> None:
        limit = self.memory_limit
        size = _SIZE.fullmatch(limit) if isinstance(limit, str) else None
        if limit is not None and (size is None or float(size[1]) == 0):
            raise UsageError(
                f"--memory-limit: expected a size such as 4GB, 512MB or 2GiB, not {limit!r}"
            )
        if self.temp_dir is not None:
            if not isinstance(self.temp_dir, (str, os.PathLike)):
                raise UsageError(f"temp_dir: expected a path, not {type(self.temp_dir).__name__}")
            folder = Path(self.temp_dir)
            if not folder.is_dir():
                raise UsageError(f"--temp-dir {folder}: no such folder")
            object.__setattr__(self, "temp_dir", folder)


@functools.cache
def _sweep(parent: Path, kind: str = "spill") -> None:
    """Remove the `kind` folders (spill, rows) of runs that were killed (SIGKILL leaves them):
    ours (same owner), named for a process that no longer runs. A folder whose process runs, or
    that is not ours, is left alone. Once a process and folder: `test` connects once a case."""
    try:
        found = list(parent.glob(f"retentionrules-{kind}-*-*"))
    except OSError:
        return
    for folder in found:
        pid = folder.name.split("-")[2]
        try:
            if not pid.isdigit() or folder.stat().st_uid != os.getuid():
                continue
            os.kill(int(pid), 0)  # raises when no such process
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except OSError:  # PermissionError: the process runs, as another user
            continue


@contextmanager
def private_folder() -> Iterator[Path]:
    """A folder of this run's own for rows on their way (Spark's staged plan, a re-read file):
    private (0700: the rows hold customer ids), removed when the run is done, and, when a run
    was killed with SIGKILL, by the next run that makes one (`_sweep`)."""
    parent = Path(tempfile.gettempdir())
    _sweep(parent, "rows")
    folder = Path(tempfile.mkdtemp(prefix=f"retentionrules-rows-{os.getpid()}-", dir=parent))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _spill_folder(resources: Resources) -> Path:
    """The run's own folder for what DuckDB spills: made here, private to the user (0700: the
    spilled rows hold customer ids), removed when the process ends (DuckDB removes its files
    when the connection closes; a run killed with SIGKILL leaves the folder behind)."""
    parent = resources.temp_dir or Path(tempfile.gettempdir())
    _sweep(parent)
    try:
        folder = Path(tempfile.mkdtemp(prefix=f"retentionrules-spill-{os.getpid()}-", dir=parent))
    except OSError as error:
        raise UsageError(
            f"--temp-dir {parent}: cannot make a folder there to spill into: {error.strerror}"
        ) from None
    atexit.register(shutil.rmtree, folder, True)
    return folder


def connect(resources: Resources | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory database for one run, within `resources`. DuckDB's own progress bar is off:
    it would write into stdout, which may be carrying JSON; the CLI shows its own on a terminal."""
    resources = resources or Resources()
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute(f"SET temp_directory = {literal(str(_spill_folder(resources)))}")
    if resources.memory_limit is not None:
        try:
            con.execute(f"SET memory_limit = {literal(resources.memory_limit)}")
        except duckdb.Error as error:  # beyond what DuckDB counts ("999999999999TB")
            why = _first_line(error)
            raise UsageError(f"--memory-limit {resources.memory_limit}: {why}") from None
    return con


def one(
    con: duckdb.DuckDBPyConnection, query: str, parameters: Sequence[object] = ()
) -> tuple[Any, ...]:
    """The single row of a query that always has one (an aggregate without GROUP BY)."""
    row = con.execute(query, parameters).fetchone()
    if row is None:  # pragma: no cover - an aggregate always returns its row
        raise AssertionError(f"no row from {query[:80]}")
    return row


# A URL (`hdfs://nn/x.csv`, `s3a://bucket/x.parquet`, `file:///data/x.csv`): an input only
# Spark reads, kept as written (as a Path, `s3a://b/x` would become `s3a:/b/x`).
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(value: object) -> bool:
    return isinstance(value, str) and _URL.match(value) is not None


@dataclass(frozen=True)
class Inputs:
    """The files a run reads. Paths may be given as text too (from a notebook,
    `Inputs("customers.csv")`): each is made a Path here, and anything else is a usage error.
    A URL (`hdfs://...`; `--engine spark` only) is also kept as written, in `urls`."""

    customers: Path
    orders: Path | None = None
    contacts: Path | None = None
    # The product catalogue (sku, category, days_per_unit, warranty_days): with `[products]`
    # in the configuration, what run-out and warranty dates are computed from.
    products: Path | None = None
    # What the contact ledger holds, as a contact-history CSV with the standard column names
    # (history.ledger_history writes it): read like `contacts`, added to it.
    ledger: Path | None = None
    urls: dict[str, str] = field(default_factory=dict)  # role -> a URL as written

    @classmethod
    def given(
        cls, customers: str, orders: str | None, contacts: str | None, products: str | None
    ) -> Inputs:
        """The inputs as the command line gives them, as text (`__post_init__` makes paths)."""
        text: Any = (customers, orders, contacts, products)
        return cls(*text)

    def where(self, role: str) -> str | Path:
        """The input of `role` as its reader takes it: a URL as written, else the path."""
        path: Path = getattr(self, role)
        return self.urls.get(role, path)

    @property
    def has_contacts(self) -> bool:
        """A contact history was given: a file, the ledger, or both."""
        return self.contacts is not None or self.ledger is not None

    def __post_init__(self) -> None:
        for name in ("customers", "orders", "contacts", "ledger", "products"):
            value = getattr(self, name)
            if value is None and name != "customers":
                continue
            if not isinstance(value, (str, os.PathLike)) or isinstance(value, bytes):
                raise UsageError(f"Inputs.{name}: a path to a file, not {type(value).__name__}")
            if is_url(value):
                self.urls[name] = str(value)
            object.__setattr__(self, name, Path(value))

    def files(self) -> list[Path]:
        files = (self.customers, self.orders, self.contacts, self.products)
        return [p for p in files if p is not None]


@dataclass
class LoadStats:
    customers: int = 0
    rejected: dict[str, int] = field(default_factory=dict)  # file -> bad rows set aside
    orders: int = 0
    contacts: int = 0
    products: int = 0  # catalogue rows: the file's and the configuration's
    order_lines: bool = False  # the orders export has lines: run-out and warranty are derived
    # Contacts dated after the as-of date: they had not happened yet, so they are left out of
    # caps, quiet period and last_contacted (counted here so that the summary can say so).
    future_contacts: int = 0
    ledger_contacts: int = 0  # of `contacts`, those the ledger gave
    unknown_history: int = 0  # customers whose contact rows were set aside (--rejects)
    unreadable_contacts: int = 0  # contact rows set aside whose customer cannot even be told
    unreadable_customers: int = 0  # customer rows set aside without even a readable id
    # Contacts on a channel not configured under [channels] (a typo, or a channel under another
    # name): they count toward the quiet period and rule caps but toward no channel's cap.
    unconfigured_channels: dict[str, int] = field(default_factory=dict)

    @property
    def total_rejected(self) -> int:
        return sum(self.rejected.values())


# ---------------------------------------------------------------- normalisation


def _blank_end(text: str) -> str:
    """SQL: whether `text` may start or end with a blank (or is empty), told cheaply by the
    code of its first and last character.

    Comparisons, not a long `IN` list: DuckDB turns an `IN` list of five or more constants into
    a join, and a join does not keep the rows in file order.
    """
    first, last = f"ascii({text})", f"ascii(reverse({text}))"
    return (
        f"({first} <= 32 OR {first} IN ({_WIDE_BLANKS}) "
        f"OR {last} <= 32 OR {last} IN ({_WIDE_BLANKS}))"
    )


def trimmed(text: str) -> str:
    """SQL: `text` without surrounding BLANKS. Trimming a set of characters is slow in DuckDB;
    most values have no blank at either end."""
    return f"CASE WHEN {_blank_end(text)} THEN trim({text}, {literal(BLANKS)}) ELSE {text} END"


def any_of(value: str, options: list[str]) -> str:
    """SQL: whether `value` equals one of the SQL `options`, as comparisons (see `_blank_end`:
    an `IN` list may lose the row order)."""
    return (
        "(" + " OR ".join(f"{value} = {option}" for option in options) + ")" if options else "FALSE"
    )


def text_key(text: str) -> str:
    """SQL: an id as it is joined (customer, household, the customer of an order or contact, a
    contact's rule): the text without surrounding blanks; NULL (missing) when nothing is left.

    The one definition: every side of every join goes through it (or `channel_key`).
    """
    return f"NULLIF({trimmed(text)}, '')"


def channel_key(text: str) -> str:
    """SQL: a channel name as it is compared: an id, lower-cased (`SMS`, ` sms` are `sms`)."""
    return f"lower({text_key(text)})"


# ---------------------------------------------------------------- columns and sources


@dataclass(frozen=True)
class _Column:
    """One column to convert: where it comes from, what it must be, and extra validity rules."""

    name: str  # in the table
    source: str  # in the file
    type: t.Type
    required: bool = True  # the file must have the column
    key: bool = False  # an id: text_key
    channel: bool = False  # a channel name: channel_key
    not_empty: bool = False  # every row must have a value
    non_negative: bool = False
    positive: bool = False
    whole: bool = False  # a whole number
    at_most: float | None = None
    not_after: dt.date | None = None  # an activity date: not after the as-of date
    why: str | None = None  # why the run needs the column, for the message when it is missing
    # False: never read, always missing. Contact details (a channel's address field) are read
    # only by a command that asks for them by name (`send`), so that no other output can carry
    # them, even from an export that has them.
    read: bool = True


@dataclass
class _Source:
    """A file as a relation whose cells the conversions read.

    `kind` says what a cell is: "text" (CSV), "json" (a JSON value, NULL when the key is absent)
    or "native" (Parquet: a typed column, its type in `types`).
    """

    path: Path
    kind: str
    relation: str  # FROM clause
    cells: dict[str, str]  # file column -> SQL of its cell
    record: str  # SQL: the row as the file has it, as JSON text (for the rejects file)
    types: dict[str, str] = field(default_factory=dict)
    structural: str = "NULL"  # SQL: a problem of the whole row (JSON: not an object), or NULL
    row: str | None = None  # SQL of the row number when the relation carries it
    problems: str | None = None  # a relation of (row, reason, record) found while re-reading
    restructure: bool = True  # whether a parse failure is worth a re-read in Python


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt", ".tsv"):
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix == ".parquet":
        return "parquet"
    raise DataError(f"{path}: unknown file type {suffix!r}; use .csv, .jsonl or .parquet")


def _delimiter(path: Path) -> str:
    return "\t" if path.suffix.lower() == ".tsv" else ","


def _csv_read(
    path: Path, names: list[str], types: dict[str, str] | None = None, written: bool = False
) -> str:
    """DuckDB reading a CSV exactly as RFC 4180 says, every cell as text: no sniffing, no
    guessing, and a row with too many or too few cells is an error rather than padded. A file
    this module `written` itself may have lines as long as Python read them."""
    columns = ", ".join(f"{literal(n)}: {literal((types or {}).get(n, 'VARCHAR'))}" for n in names)
    # DuckDB's default buffer (32 MB a thread, more for a file read at once) alone can exceed a
    # small --memory-limit; 8 MB buffers hold any line its default 2 MB line limit allows.
    longer = f", max_line_size = {_CELL_LIMIT}" if written else f", buffer_size = {_CSV_BUFFER}"
    return (
        f"read_csv({literal(str(path))}, header = true, auto_detect = false, "
        f"delim = {literal(_delimiter(path))}, quote = '\"', escape = '\"', "
        f"strict_mode = true, null_padding = false{longer}, columns = {{{columns}}})"
    )


def _cell_name(index: int) -> str:
    """CSV columns are read by position: header names may repeat, be empty or hold quotes."""
    return f"c{index}"


def _csv_source(
    path: Path, columns: list[_Column], header: list[str] | None = None
) -> tuple[_Source, list[str]]:
    """A CSV file as DuckDB reads it; `header` when it was read already (by Spark, from a URL)."""
    header = _csv_header(path) if header is None else header
    read = {c.source for c in columns}
    seen: dict[str, int] = {}
    for index, name in enumerate(header):
        if name in read and name in seen:
            raise DataError(
                f"{path}: header: column {name} appears twice (columns {seen[name] + 1} and "
                f"{index + 1}); keep one"
            )
        seen.setdefault(name, index)
    names = [_cell_name(i) for i in range(len(header))]
    record = _csv_record(header, names)
    source = _Source(
        path,
        "text",
        _csv_read(path, names),
        {name: _cell_name(index) for name, index in seen.items()},
        record,
    )
    return source, header


def _csv_record(header: list[str], names: list[str]) -> str:
    """SQL: a CSV row as a JSON object of the header's names and the cells as text."""
    pairs = ", ".join(f"{literal(h)}, {n}" for h, n in zip(header, names, strict=True))
    return f"CAST(json_object({pairs}) AS VARCHAR)"


def _csv_header(path: Path) -> list[str]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            header = next(csv.reader(handle, delimiter=_delimiter(path)), None)
    except UnicodeDecodeError:
        raise _not_utf8(path) from None
    except csv.Error as error:
        raise DataError(f"{path}: header: cannot read: {error}") from None
    if not header:
        raise DataError(f"{path}: the file is empty: a CSV export needs a header row")
    return header


def _json_path(key: str) -> str:
    """A JSON pointer to `key`: quoting, not pasting, so any key name is just a key."""
    return "/" + key.replace("~", "~0").replace("/", "~1")


def _json_keys(columns: list[_Column]) -> list[str]:
    return list(dict.fromkeys(c.source for c in columns))


def _jsonl_relation(objects: str, keys: list[str], extra: str = "") -> str:
    """Each object (`__obj`) and the values of the keys the engine reads (`__cells`), parsed
    once per row."""
    paths = ", ".join(literal(_json_path(k)) for k in keys) or "'/'"
    return f"(SELECT {extra}json AS __obj, json_extract(json, [{paths}]) AS __cells FROM {objects})"


def _json_cells(keys: list[str]) -> dict[str, str]:
    return {key: f"__cells[{i + 1}]" for i, key in enumerate(keys)}


_JSON_STRUCTURE = (
    "CASE WHEN json_type(__obj) <> 'OBJECT' THEN 'is not a JSON object' "
    "WHEN len(json_keys(__obj)) <> len(list_distinct(json_keys(__obj))) "
    "THEN 'has a key more than once' END"
)


def _jsonl_source(path: Path, columns: list[_Column]) -> _Source:
    keys = _json_keys(columns)
    objects = f"read_ndjson_objects({literal(str(path))})"
    return _Source(
        path,
        "json",
        _jsonl_relation(objects, keys),
        _json_cells(keys),
        "CAST(__obj AS VARCHAR)",
        structural=_JSON_STRUCTURE,
    )


def _parquet_source(con: duckdb.DuckDBPyConnection, path: Path) -> _Source:
    relation = f"read_parquet({literal(str(path))})"
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
    except duckdb.OutOfMemoryException:  # the machine's limit, not the file's fault
        raise
    except duckdb.Error as error:
        raise DataError(f"{path}: cannot read: {_first_line(error)}") from None
    types = {row[0]: row[1] for row in described}
    return _Source(
        path,
        "native",
        f"(SELECT * FROM {relation}) AS __file",
        {name: ident(name) for name in types},
        "CAST(to_json(__file) AS VARCHAR)",
        types=types,
        restructure=False,
    )


def _first_line(error: Exception) -> str:
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


# ---------------------------------------------------------------- reading what DuckDB cannot


def _not_utf8(path: Path) -> DataError:
    """Where the file stops being UTF-8: the line and byte offset of the first bad byte."""
    line, offset, sample = _first_non_utf8(path)
    return DataError(
        f"{path}: not UTF-8: line {line} (byte {offset}) has {sample}; "
        "save the file as UTF-8 (in Excel: CSV UTF-8) and run again"
    )


def _first_non_utf8(path: Path) -> tuple[int, int, str]:
    line, offset, carry = 1, 0, b""
    with path.open("rb") as handle:
        while True:
            block = handle.read(1 << 20)
            data = carry + block
            try:
                data.decode("utf-8")
                good, carry = data, b""
            except UnicodeDecodeError as error:
                if block and error.reason == "unexpected end of data":
                    good, carry = data[: error.start], data[error.start :]
                else:
                    before = data[: error.start]
                    bad = data[error.start : error.end]
                    shown = "".join(f"\\x{b:02x}" for b in bad)
                    return line + before.count(b"\n"), offset + error.start, f"`{shown}`"
            line += good.count(b"\n")
            offset += len(good)
            if not block:
                return line, offset, "an unreadable byte"


def _restructured(
    con: duckdb.DuckDBPyConnection, source: _Source, columns: list[_Column], folder: Path
) -> _Source:
    """The file re-read in Python, row by row: rows it cannot use become problems (with their
    row number and record), the others go to a clean file DuckDB reads with the row numbers."""
    path = source.path
    clean, problems = folder / "rows.csv", folder / "problems.csv"
    with problems.open("w", encoding="utf-8", newline="") as handle:
        bad = csv.writer(handle)
        bad.writerow(["row", "reason", "record"])
        if source.kind == "text":
            relation, record = _rewrite_csv(path, clean, bad)
        else:
            relation, record = _rewrite_jsonl(path, clean, columns)
    read = _csv_read(problems, ["row", "reason", "record"], {"row": "BIGINT"}, written=True)
    table = f"(SELECT * FROM {read})"
    if source.kind == "text":
        return _Source(
            path, "text", relation, source.cells, record, row=ROW, problems=table, restructure=False
        )
    return _Source(
        path,
        "json",
        relation,
        _json_cells(_json_keys(columns)),
        record,
        structural=f"CASE WHEN __obj IS NULL THEN 'is not valid JSON' ELSE {_JSON_STRUCTURE} END",
        row=ROW,
        problems=table,
        restructure=False,
    )


def _rewrite_csv(path: Path, clean: Path, bad: _Writer) -> tuple[str, str]:
    header = _csv_header(path)
    width = len(header)
    names = [_cell_name(i) for i in range(width)]
    row = 0
    limit = csv.field_size_limit(max(csv.field_size_limit(), _CELL_LIMIT))
    try:
        with (
            path.open(encoding="utf-8-sig", newline="") as handle,
            clean.open("w", encoding="utf-8", newline="") as out,
        ):
            reader = csv.reader(handle, delimiter=_delimiter(path))
            good = csv.writer(out)
            good.writerow([ROW, *names])
            next(reader, None)
            for cells in reader:
                if not cells:
                    continue  # a blank line is not a row (DuckDB skips it too)
                row += 1
                if len(cells) != width:
                    bad.writerow(
                        [
                            row,
                            f"has {len(cells)} cell{'s' * (len(cells) != 1)}, "
                            f"the header has {width}",
                            json.dumps(cells, ensure_ascii=False),
                        ]
                    )
                else:
                    good.writerow([row, *cells])
    except UnicodeDecodeError:
        raise _not_utf8(path) from None
    except csv.Error as error:
        raise DataError(f"{path}: row {row + 1}: cannot read: {error}") from None
    finally:
        csv.field_size_limit(limit)
    record = _csv_record(header, names)
    return _csv_read(clean, [ROW, *names], {ROW: "BIGINT"}, written=True), record


def _rewrite_jsonl(path: Path, clean: Path, columns: list[_Column]) -> tuple[str, str]:
    row = offset = 0
    with path.open("rb") as handle, clean.open("w", encoding="utf-8", newline="") as out:
        good = csv.writer(out)
        good.writerow([ROW, "line"])
        for number, raw in enumerate(handle, 1):
            start, offset = offset, offset + len(raw)
            if number == 1 and raw.startswith(codecs.BOM_UTF8):
                raw, start = raw[len(codecs.BOM_UTF8) :], start + len(codecs.BOM_UTF8)
            if not raw.strip(b" \t\r\n"):
                continue  # a blank line is not a row (DuckDB skips it too)
            row += 1
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                shown = "".join(f"\\x{b:02x}" for b in raw[error.start : error.end])
                raise DataError(
                    f"{path}: not UTF-8: line {number} (byte {start + error.start}) has "
                    f"`{shown}`; save the file as UTF-8 and run again"
                ) from None
            good.writerow([row, text.rstrip("\r\n")])
    lines = (
        f"(SELECT {ROW}, CASE WHEN json_valid(line) THEN CAST(line AS JSON) END AS json, line "
        f"FROM {_csv_read(clean, [ROW, 'line'], {ROW: 'BIGINT'}, written=True)})"
    )
    relation = _jsonl_relation(lines, _json_keys(columns), extra=f"{ROW}, line, ")
    return (
        relation,
        "CASE WHEN __obj IS NULL THEN CAST(to_json(line) AS VARCHAR) "
        "ELSE CAST(__obj AS VARCHAR) END",
    )


# ---------------------------------------------------------------- conversions


@dataclass(frozen=True)
class _Context:
    timezone: str
    as_of: dt.date


def _text_date(text: str, context: _Context) -> str:
    """SQL: the date a text cell spells, or NULL.

    `YYYY-MM-DD`, optionally followed by a time of day: the date as written (shop-local time);
    with an offset or `Z` as well, the instant converted to the shop's time zone first.
    """
    blank = trimmed(text)
    zone = literal(context.timezone)
    date, time, offset = DATE_PATTERN, TIME_PATTERN, OFFSET_PATTERN
    return (
        f"CASE WHEN regexp_full_match({blank}, {literal(date)}) THEN TRY_CAST({blank} AS DATE) "
        f"WHEN regexp_full_match({blank}, {literal(date + time)}) "
        f"THEN CAST(TRY_CAST({blank} AS TIMESTAMP) AS DATE) "
        f"WHEN regexp_full_match({blank}, {literal(date + time + offset)}) "
        f"THEN CAST(timezone({zone}, TRY_CAST({blank} AS TIMESTAMPTZ)) AS DATE) END"
    )


def _text_number(text: str) -> str:
    """SQL: the number a text cell spells, or NULL (also for NaN and the infinities)."""
    blank = trimmed(text)
    return (
        f"CASE WHEN regexp_full_match({blank}, {literal(NUMBER_PATTERN)}) "
        f"AND isfinite(TRY_CAST({blank} AS DOUBLE)) THEN TRY_CAST({blank} AS DOUBLE) END"
    )


def _text_bool(text: str) -> str:
    spelled = " ".join(f"WHEN {literal(k)} THEN {literal(v)}" for k, v in BOOL_SPELLINGS.items())
    return f"CASE lower({trimmed(text)}) {spelled} END"


def _whole_number_text(number: str) -> str:
    """SQL: a whole number (as DOUBLE) as the text of its digits, while it is exact."""
    return (
        f"CASE WHEN {number} = trunc({number}) AND abs({number}) <= {_EXACT_DOUBLE} "
        f"THEN CAST(CAST({number} AS BIGINT) AS VARCHAR) END"
    )


@dataclass(frozen=True)
class _Converted:
    """How one column converts, for a cell named `raw` in the query.

    `value` converts exactly; `wrong` says why a cell that gave no value is wrong (NULL when the
    cell is missing); `shown` is the cell as text for messages; `given` says, cheaply, that the
    cell holds something (a missing value does not). The cheap pass over valid data may use
    `quick` instead of `value`, with `suspect` (over the quick value, named `value`) true for
    any row where the two might differ: such rows send the file to the exact pass.
    """

    value: str
    wrong: str
    shown: str
    given: str
    quick: str | None = None
    suspect: Callable[[str], str] | None = None


_WRONG = {
    t.Kind.BOOL: "is not true or false",
    t.Kind.NUMBER: "is not a number",
    t.Kind.DATE: "is not a date",
    t.Kind.ANNIVERSARY: "is not a date",
    t.Kind.STRING: "is not text",
    t.Kind.ENUM: "is not text",
}
_DATE_SPELLING = "YYYY-MM-DD, optionally with a time of day and a UTC offset"
# The spellings the cheap pass takes as they are; anything else goes to the exact pass.
_QUICK_BOOLS = {
    spelling: value
    for word, value in BOOL_SPELLINGS.items()
    for spelling in {word, word.upper(), word.capitalize()}
}


def _convert(column: _Column, source: _Source, context: _Context, raw: str) -> _Converted:
    cell = source.cells[column.source]
    if source.kind == "text":
        return _from_text(column, cell, raw, context)
    if source.kind == "json":
        return _from_json(column, cell, raw, context)
    return _from_native(column, cell, source.types[column.source].upper(), raw, context)


def _textual(column: _Column, text: str) -> str:
    """A text value by its role: an id or channel normalised, other text as written."""
    if column.channel:
        return channel_key(text)
    if column.key:
        return text_key(text)
    return f"NULLIF({text}, '')"


def _from_text(column: _Column, cell: str, raw: str, context: _Context) -> _Converted:
    """A CSV cell (or a Parquet text column): the spellings of docs/engine.md.

    The quick forms are DuckDB's own casts, which take more than the documented spellings;
    `suspect` catches every cell where they might (tests/test_loader.py fuzzes the two passes
    against the documented spellings).
    """
    kind = column.type.kind
    given = f"{raw} IS NOT NULL"
    if kind in (t.Kind.STRING, t.Kind.ENUM):
        value = _textual(column, cell)
        if not (column.key or column.channel):
            return _Converted(value, "NULL", raw, given)
        # Most ids have no blank at either end, and are never empty: kept as they are.
        quick = f"lower({cell})" if column.channel else cell
        ends = _blank_end(raw)
        return _Converted(value, "NULL", raw, given, quick, lambda _value: ends)
    if kind is t.Kind.BOOL:
        value = _text_bool(cell)
        reason = literal("is not true or false (write true/false, yes/no or 1/0)")
        quick = (
            "CASE "
            + " ".join(
                f"WHEN {cell} = {literal(k)} THEN {literal(v)}" for k, v in _QUICK_BOOLS.items()
            )
            + " END"
        )

        def suspect(quick: str) -> str:
            return f"{raw} IS NOT NULL AND {quick} IS NULL"

    elif kind is t.Kind.NUMBER:
        value = _text_number(cell)
        reason = (
            f"CASE WHEN NOT isfinite(TRY_CAST({trimmed(raw)} AS DOUBLE)) "
            "THEN 'is not a finite number' ELSE 'is not a number' END"
        )
        # DuckDB also reads `1_000`, `+-1`, NaN and the infinities.
        quick = f"TRY_CAST({cell} AS DOUBLE)"

        def suspect(quick: str) -> str:
            return (
                f"CASE WHEN {quick} IS NULL THEN {raw} IS NOT NULL ELSE NOT isfinite({quick}) "
                f"OR contains({raw}, '_') OR contains({raw}, '+-') END"
            )

    else:
        value = _text_date(cell, context)
        reason = literal(f"is not a date ({_DATE_SPELLING})")
        # DuckDB also reads `epoch`, `2026-1-5`, `2026/01/05`, times (ignoring the offset):
        # a date that prints back as the cell was written is none of those.
        quick = f"TRY_CAST({cell} AS DATE)"

        def suspect(quick: str) -> str:
            return (
                f"CASE WHEN {quick} IS NULL THEN {raw} IS NOT NULL "
                f"ELSE CAST({quick} AS VARCHAR) <> {raw} END"
            )

    blank = f"{trimmed(raw)} = ''"  # blanks only: a missing value
    wrong = f"CASE WHEN {given} AND NOT {blank} THEN {reason} END"
    return _Converted(value, wrong, raw, given, quick, suspect)


def _json_string(cell: str) -> str:
    """SQL: whether a JSON value is a string (its text starts with a quote: no parsing)."""
    return f"starts_with(CAST({cell} AS VARCHAR), '\"')"


def _from_json(column: _Column, cell: str, raw: str, context: _Context) -> _Converted:
    """A JSON lines value: it must have the JSON type the field asks for; null is missing."""
    kind = column.type.kind
    shown = f"CAST({raw} AS VARCHAR)"
    present = f"{raw} IS NOT NULL AND CAST({raw} AS VARCHAR) <> 'null'"
    given = present
    if kind is t.Kind.BOOL:
        value = f"CASE CAST({cell} AS VARCHAR) WHEN 'true' THEN TRUE WHEN 'false' THEN FALSE END"
        reason = literal("is not true or false (a JSON boolean)")
    elif kind is t.Kind.NUMBER:
        # A JSON number's text is a number DuckDB reads; a string's starts with a quote.
        number = f"TRY_CAST(CAST({cell} AS VARCHAR) AS DOUBLE)"
        value = f"CASE WHEN isfinite({number}) THEN {number} END"
        reason = (
            f"CASE WHEN {any_of(f'json_type({raw})', [literal(t) for t in _JSON_NUMBER_TYPES])} "
            "THEN 'is not a finite number' "
            "ELSE 'is not a number (a JSON number)' END"
        )
    elif column.type.is_datelike:
        value = _text_date(f"CASE WHEN {_json_string(cell)} THEN {cell} ->> '$' END", context)
        # An empty or blank string is a missing date, as an empty CSV cell is.
        string = f"({raw} ->> '$')"
        present += f" AND NOT ({_json_string(raw)} AND {trimmed(string)} = '')"
        reason = literal(f"is not a date (a JSON string {_DATE_SPELLING})")
    else:
        text = (
            f"CASE WHEN {_json_string(cell)} THEN {cell} ->> '$' "
            f"ELSE CASE json_type({cell}) "
            f"WHEN 'BIGINT' THEN CAST(CAST({cell} AS BIGINT) AS VARCHAR) "
            f"WHEN 'UBIGINT' THEN CAST(CAST({cell} AS UBIGINT) AS VARCHAR) "
            f"WHEN 'DOUBLE' THEN {_whole_number_text(f'CAST({cell} AS DOUBLE)')} END END"
        )
        value = _textual(column, text)
        # An empty or blank string is a missing value, not a wrong one.
        present += f" AND NOT {_json_string(raw)}"
        given = present  # a string is never wrong text
        reason = literal("is not text (a JSON string or a whole number)")
    return _Converted(value, f"CASE WHEN {present} THEN {reason} END", shown, given)


def _from_native(
    column: _Column, cell: str, native: str, raw: str, context: _Context
) -> _Converted:
    """A Parquet column, judged by its type: a BIGINT column is never consent."""
    kind = column.type.kind
    if native == "VARCHAR" and (kind in (t.Kind.STRING, t.Kind.ENUM) or column.type.is_datelike):
        return _from_text(column, cell, raw, context)  # text, or a date spelled as in CSV
    numeric = native in _INTEGER_TYPES or native in ("FLOAT", "DOUBLE")
    numeric = numeric or native.startswith("DECIMAL")
    value, reason = "NULL", f"{_WRONG[kind]}: the column's type is {native}"
    if kind is t.Kind.BOOL and native == "BOOLEAN":
        value = cell
    elif kind is t.Kind.NUMBER and numeric and native not in ("FLOAT", "DOUBLE"):
        value = f"CAST({cell} AS DOUBLE)"  # integers and decimals are always finite
    elif kind is t.Kind.NUMBER and numeric:
        value = f"CASE WHEN isfinite(CAST({cell} AS DOUBLE)) THEN CAST({cell} AS DOUBLE) END"
        reason = "is not a finite number"
    elif column.type.is_datelike and native == "DATE":
        value = cell
    elif column.type.is_datelike and native in _NAIVE_TIMESTAMPS:
        value = f"CAST({cell} AS DATE)"  # no offset: shop-local time
    elif column.type.is_datelike and native in _ZONED_TIMESTAMPS:
        value = f"CAST(timezone({literal(context.timezone)}, {cell}) AS DATE)"
    elif kind in (t.Kind.STRING, t.Kind.ENUM) and native in _INTEGER_TYPES:
        value = _textual(column, f"CAST({cell} AS VARCHAR)")
    elif kind in (t.Kind.STRING, t.Kind.ENUM) and numeric:
        value = _textual(column, _whole_number_text(f"CAST({cell} AS DOUBLE)"))
        reason = "is not text (a whole number)"
    wrong = f"CASE WHEN {raw} IS NOT NULL THEN {literal(reason)} END"
    return _Converted(value, wrong, f"CAST({raw} AS VARCHAR)", f"{raw} IS NOT NULL")


def _value_checks(column: _Column, value: str) -> list[tuple[str, str]]:
    """(condition over the converted value, what is wrong) for the checks a value must pass."""
    checks = []
    if column.type.kind is t.Kind.ENUM:
        values = [literal(v) for v in column.type.values]
        checks.append(
            (f"NOT {any_of(value, values)}", "is not one of " + ", ".join(column.type.values))
        )
    if column.non_negative:
        checks.append((f"{value} < 0", "is negative"))
    if column.positive:
        checks.append((f"{value} <= 0", "is not more than 0"))
    if column.whole:
        checks.append((f"{value} <> trunc({value})", "is not a whole number"))
    if column.at_most is not None:
        checks.append((f"{value} > {literal(column.at_most)}", f"is more than {column.at_most:,}"))
    if column.type.kind is t.Kind.NUMBER:
        checks.append((f"abs({value}) >= {NUMBER_LIMIT}", f"is out of range ({NUMBER_RANGE})"))
    if column.type.is_datelike:
        checks.append(
            (
                f"{value} NOT BETWEEN {literal(MIN_DATE)} AND {literal(MAX_DATE)}",
                f"is outside the dates this engine takes ({MIN_DATE} to {MAX_DATE})",
            )
        )
    if column.not_after is not None:
        checks.append(
            (
                f"{value} > {literal(column.not_after)}",
                f"is after the as-of date {column.not_after}",
            )
        )
    return checks


def _checks(column: _Column, wrong: str, value: str) -> str:
    """SQL: the problem with a converted value, or NULL. `wrong` explains a cell that gave no
    value; the other checks look at the value."""
    checks = [f"WHEN {value} IS NULL THEN {wrong}"]
    checks += [f"WHEN {c} THEN {literal(m)}" for c, m in _value_checks(column, value)]
    return f"CASE {' '.join(checks)} END"


def _sql_type(kind: t.Kind) -> str:
    return {
        t.Kind.NUMBER: "DOUBLE",
        t.Kind.BOOL: "BOOLEAN",
        t.Kind.DATE: "DATE",
        t.Kind.ANNIVERSARY: "DATE",
    }.get(kind, "VARCHAR")


# ---------------------------------------------------------------- tables


SUSPECT = "__suspect"


def _create(
    con: duckdb.DuckDBPyConnection,
    table: str,
    source: _Source,
    columns: list[_Column],
    context: _Context,
    exact: bool,
) -> None:
    """One pass over the file: the converted columns and, per row, either whether it may be
    bad (the cheap pass, for the common case of valid data) or, `exact`, its problems (NULL for
    a good row)."""
    con.execute(create_sql(table, source, columns, context, exact))


def create_sql(
    table: str, source: _Source, columns: list[_Column], context: _Context, exact: bool
) -> str:
    """The statement `_create` runs (the Spark engine renders it for Spark).

    The inner query converts each cell once; the outer one reads the values to judge them.
    """
    inner, outer, judged = [], [], []
    for i, column in enumerate(columns):
        if not column.read or column.source not in source.cells:  # optional, absent or unread
            outer.append(f"CAST(NULL AS {_sql_type(column.type.kind)}) AS {ident(column.name)}")
            continue
        raw, value = f"__raw{i}", f"__value{i}"
        converted = _convert(column, source, context, raw)
        quick = not exact and converted.quick is not None
        inner += [
            f"{source.cells[column.source]} AS {raw}",
            f"{converted.quick if quick else converted.value} AS {value}",
        ]
        outer.append(f"{value} AS {ident(column.name)}")
        if not exact:
            judged.append(
                converted.suspect(value)
                if quick and converted.suspect is not None
                else f"CASE WHEN {value} IS NULL THEN {converted.given} ELSE FALSE END"
            )
            continue
        problem = _checks(column, converted.wrong, value)
        judged.append(
            f"CASE WHEN {problem} IS NOT NULL THEN {literal(f'column {column.source}: `')} "
            f"|| {converted.shown} || '` ' || {problem} END"
        )
        if column.not_empty:
            judged.append(
                f"CASE WHEN {value} IS NULL AND {problem} IS NULL "
                f"THEN {literal(f'column {column.source}: empty')} END"
            )
    inner.append(f"{source.structural} AS __structural")
    if source.row is not None:
        inner.append(source.row)
        outer.append(ROW)
    if exact:
        problem = f"NULLIF(concat_ws('; ', {', '.join(judged) or 'NULL'}), '')"
        outer.append(f"coalesce(__structural, {problem}) AS {PROBLEM}")
    else:
        outer.append(f"(__structural IS NOT NULL OR {' OR '.join(judged) or 'FALSE'}) AS {SUSPECT}")
    return (
        f"CREATE OR REPLACE TEMP TABLE {ident(table)} AS SELECT {', '.join(outer)} "
        f"FROM (SELECT {', '.join(inner)} FROM {source.relation})"
    )


@dataclass(frozen=True)
class RowKey:
    """What makes a row unique when no one column does (a catalogue row: its sku, else its
    category): SQL over the converted columns giving the key as messages show it (`sku `x``),
    NULL for a row without one, which is a bad row: `missing` says why."""

    sql: str
    missing: str


def _key_sql(key: str | RowKey) -> str:
    return key.sql if isinstance(key, RowKey) else ident(key)


def _clean(
    con: duckdb.DuckDBPyConnection, table: str, columns: list[_Column], key: str | RowKey | None
) -> bool:
    """Whether the table made by the cheap pass holds only good rows: no suspect cell, every
    value passes its checks, no repeated id. One aggregate, mostly plain minima and maxima over
    the typed columns, judged in SQL (Python has no year 12026 to compare with)."""
    tests = [f"count(*) FILTER (WHERE {SUSPECT}) = 0"]
    for column in columns:
        name = ident(column.name)
        if column.type.kind is t.Kind.ENUM:
            values = [literal(v) for v in column.type.values]
            tests.append(f"count(*) FILTER (WHERE NOT {any_of(name, values)}) = 0")
        if column.not_empty:
            tests.append(f"count(*) = count({name})")
        if column.non_negative:
            tests.append(f"coalesce(min({name}) >= 0, TRUE)")
        if column.positive:
            tests.append(f"coalesce(min({name}) > 0, TRUE)")
        if column.whole:
            tests.append(f"count(*) FILTER (WHERE {name} <> trunc({name})) = 0")
        if column.at_most is not None:
            tests.append(f"coalesce(max({name}) <= {literal(column.at_most)}, TRUE)")
        if column.type.kind is t.Kind.NUMBER:
            tests.append(
                f"coalesce(min({name}) > -{NUMBER_LIMIT} AND max({name}) < {NUMBER_LIMIT}, TRUE)"
            )
        if column.type.is_datelike:
            latest = min(MAX_DATE, column.not_after or MAX_DATE)
            tests.append(
                f"coalesce(min({name}) >= {literal(MIN_DATE)} "
                f"AND max({name}) <= {literal(latest)}, TRUE)"
            )
    if isinstance(key, RowKey):
        tests.append(f"count(*) = count({key.sql})")
    if key is not None:
        tests.append(f"count({_key_sql(key)}) = count(DISTINCT {_key_sql(key)})")
    (clean,) = one(con, f"SELECT {' AND '.join(tests)} FROM {ident(table)}")
    return bool(clean)


def _typed_table(
    con: duckdb.DuckDBPyConnection,
    table: str,
    path: Path,
    columns: list[_Column],
    key: str | RowKey | None,
    rejects: Path | None,
    stats: LoadStats,
    context: _Context,
) -> None:
    """Create `table` from the file: converted columns, bad rows stopped at or set aside."""
    if not path.is_file():
        raise DataError(f"{path}: {'not a file' if path.exists() else 'no such file'}")
    fmt = _format(path)
    with ExitStack() as stack:
        if fmt == "csv":
            source, header = _csv_source(path, columns)
            _require(path, columns, header)
        elif fmt == "parquet":
            source = _parquet_source(con, path)
            _require(path, columns, list(source.types))
        else:
            source = _jsonl_source(path, columns)
        try:
            _create(con, table, source, columns, context, exact=False)
            if fmt == "jsonl":
                _require_keys(con, table, source, columns)
            if _clean(con, table, columns, key):
                con.execute(f"ALTER TABLE {ident(table)} DROP COLUMN {SUSPECT}")
                return
            _create(con, table, source, columns, context, exact=True)
        except duckdb.OutOfMemoryException:  # the machine's limit, not the file's fault
            raise
        except duckdb.Error as error:
            if not source.restructure:
                raise DataError(f"{path}: cannot read: {_first_line(error)}") from None
            folder = stack.enter_context(private_folder())
            source = _restructured(con, source, columns, folder)
            try:
                _create(con, table, source, columns, context, exact=True)
            except duckdb.OutOfMemoryException:  # the machine's limit, not the file's fault
                raise
            except duckdb.Error as error:
                raise DataError(f"{path}: cannot read: {_first_line(error)}") from None
            if fmt == "jsonl":
                _require_keys(con, table, source, columns)
        owner = next((c for c in columns if c.key and c.not_empty), None)
        _settle(con, table, source, key, rejects, stats, owner)


def _require(path: Path, columns: list[_Column], header: list[str]) -> None:
    lacking = [c for c in columns if c.required and c.source not in header]
    missing = list(dict.fromkeys(c.source for c in lacking))
    if missing:
        # Names are matched exactly; say so when the header has one spelled differently.
        near = {h.strip(BLANKS).lower(): h for h in header}
        hints = [f"`{near[m.lower()]}`" for m in missing if m.lower() in near]
        hint = f" (the header has {', '.join(hints)}: names must match exactly)" if hints else ""
        why = "".join(f"; {c.source} is needed: {c.why}" for c in lacking if c.why)
        names = ", ".join(missing)
        raise DataError(f"{path}: missing column{'s' * (len(missing) > 1)} {names}{hint}{why}")


def _require_keys(
    con: duckdb.DuckDBPyConnection, table: str, source: _Source, columns: list[_Column]
) -> None:
    """JSON lines have no header: a required key is missing when no object has it (a key may
    be left out of some objects: the value is missing there). An empty file has no rows to
    miss anything."""
    required = [c for c in columns if c.required]
    if not required:
        return
    counts = one(
        con,
        f"SELECT count(*), {', '.join(f'count({ident(c.name)})' for c in required)} "
        f"FROM {ident(table)}",
    )
    if not counts[0]:
        return
    unsure = [c for c, n in zip(required, counts[1:], strict=True) if n == 0]
    if not unsure:
        return
    present = one(
        con,
        "SELECT "
        + ", ".join(f"count({source.cells[c.source]})" for c in unsure)
        + f" FROM {source.relation}",
    )
    missing = [c.source for c, n in zip(unsure, present, strict=True) if n == 0]
    if missing:
        names = ", ".join(dict.fromkeys(missing))
        raise DataError(
            f"{source.path}: missing column{'s' * (len(missing) > 1)} {names} "
            "(no object has the key)"
        )


def _settle(
    con: duckdb.DuckDBPyConnection,
    table: str,
    source: _Source,
    key: str | RowKey | None,
    rejects: Path | None,
    stats: LoadStats,
    owner: _Column | None = None,
) -> None:
    """Find the bad rows (problems, repeated ids, rows the re-read could not use); stop at the
    first or set them aside; leave only the converted columns. `owner`: the column that says
    whose a row is (the customer's id), read from broken rows too where it can be."""
    name = ident(table)
    if isinstance(key, RowKey):
        con.execute(
            f"UPDATE {name} SET {PROBLEM} = concat_ws('; ', {PROBLEM}, {literal(key.missing)}) "
            f"WHERE {key.sql} IS NULL"
        )
    keyed = f"count({_key_sql(key)}) - count(DISTINCT {_key_sql(key)})" if key else "0"
    bad, repeats = one(
        con, f"SELECT count(*) FILTER (WHERE {PROBLEM} IS NOT NULL), {keyed} FROM {name}"
    )
    structural = 0
    if source.problems is not None:
        structural = one(con, f"SELECT count(*) FROM {source.problems}")[0]
    if bad or repeats or structural:
        if source.row is None:  # row numbers: the table is in file order
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT rowid + 1 AS {ROW}, * FROM {name}"
            )
        if repeats:
            _mark_duplicates(con, table, key)
        _reject(con, table, source, rejects, stats, owner)
    con.execute(f"ALTER TABLE {name} DROP COLUMN {PROBLEM}")
    if bad or repeats or structural or source.row is not None:
        con.execute(f"ALTER TABLE {name} DROP COLUMN {ROW}")


def _mark_owned(
    con: duckdb.DuckDBPyConnection, table: str, key: str, owners: dict[str, list[int]]
) -> None:
    """A customer whose id is also on a row that could not be read: which row is right (the
    consent given, or the one withdrawn) cannot be told, as with a repeated id."""
    if not owners:
        return
    con.execute("CREATE OR REPLACE TEMP TABLE __owned (id VARCHAR, listed VARCHAR)")
    con.executemany("INSERT INTO __owned VALUES (?, ?)", owned_rows(owners))
    k = ident(key)
    con.execute(f"""
        UPDATE {ident(table)} AS c SET {PROBLEM} = concat_ws('; ', c.{PROBLEM},
            {owned_reason(key, f"c.{k}", "o.listed")})
        FROM __owned AS o WHERE c.{k} = o.id
    """)
    con.execute("DROP TABLE __owned")


def owned_rows(owners: dict[str, list[int]]) -> list[list[str]]:
    """Each id read from rows that could not be read, with the first five of those rows."""
    return [[found, ", ".join(map(str, sorted(rows)[:5]))] for found, rows in owners.items()]


def owned_reason(key: str, id_sql: str, listed: str) -> str:
    """SQL: why a row is bad whose id is also on rows that could not be read (`listed`)."""
    return (
        f"{literal(f'column {key}: the id `')} || {id_sql} || '` is also on row ' || {listed} "
        "|| ', which could not be read: which is right cannot be told'"
    )


def repeated_reason(shown: str, n: str, listed: str) -> str:
    """SQL: why a row of a repeated id (`shown`, on `n` rows, the first five `listed`) is bad."""
    return (
        f"{shown} || ' is on ' || {n} || ' rows (' || {listed} || '): "
        "which is right cannot be told'"
    )


def _mark_duplicates(con: duckdb.DuckDBPyConnection, table: str, key: str | RowKey | None) -> None:
    """Every row of a repeated id is a bad row naming the others: which of them is right (the
    consent given, or the one withdrawn) cannot be told, so none is planned."""
    assert key is not None
    name = ident(table)
    keyed = f"(SELECT {ROW}, {_key_sql(key)} AS id FROM {name})"
    shown = "d.id"  # a RowKey shows itself
    if not isinstance(key, RowKey):
        shown = f"{literal(f'column {key}: the id `')} || d.id || '`'"
    con.execute(f"""
        UPDATE {name} AS c SET {PROBLEM} = concat_ws('; ', c.{PROBLEM},
            {repeated_reason(shown, "d.n", "d.listed")})
        FROM (SELECT k.{ROW}, k.id, g.n, g.listed FROM {keyed} AS k JOIN (
                SELECT id, count(*) AS n,
                    array_to_string(list({ROW} ORDER BY {ROW})[1:5], ', ')
                    || CASE WHEN count(*) > 5 THEN ', ...' ELSE '' END AS listed
                FROM {keyed} GROUP BY 1 HAVING count(*) > 1) AS g USING (id)) AS d
        WHERE c.{ROW} = d.{ROW}
    """)


def _salvaged_id(record: str, kind: str, key: str, index: int | None) -> str | None:
    """The id of a row set aside, read from its record as far as it can be (the record as the
    rejects file has it: the cells of a ragged CSV row, the text of a line that is not JSON, the
    object of a JSON line); normalised as ids are (`text_key`, whole numbers as integers). None
    when the row does not say whose it is."""
    try:
        value: Any = json.loads(record)
    except (ValueError, TypeError):
        return None
    if isinstance(value, list):  # a CSV row with too many or too few cells
        value = value[index] if index is not None and index < len(value) else None
    elif isinstance(value, str) and kind == "json":  # a line that is not JSON: find the key
        found = re.search(
            rf'"{re.escape(key)}"\s*:\s*("(?:[^"\\]|\\.)*"|-?\d+(?:\.0*)?)(?=\s*[,}}]|\s*$)',
            value,
        )
        try:
            value = json.loads(found.group(1)) if found else None
        except ValueError:
            value = None
    elif isinstance(value, dict):  # a row that was read: its id itself was not usable
        return None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else None
    if isinstance(value, int):
        return str(value)
    text = str(value).strip(BLANKS)
    return text or None


def _unreadable_owners(
    con: duckdb.DuckDBPyConnection, table: str, source: _Source, owner: _Column
) -> tuple[dict[str, list[int]], int]:
    """Rows set aside whose id was not read (the re-read could not use them, or the id cell was
    not a usable id): the ids that can still be read from their records, with their rows, and
    how many say nothing of whose they are. A broken row of a customer must not go unnoticed:
    it may be the one that withdrew consent, or the contact that started a quiet period."""
    name, column = ident(table), ident(owner.name)
    relation = source.relation
    if source.row is None:  # row numbers are the file's order: rowid of a stored copy
        con.execute(f"CREATE OR REPLACE TEMP TABLE __broken AS SELECT * FROM {relation}")
        relation = "__broken"
    row = "__file.rowid + 1" if source.row is None else f"__file.{ROW}"
    queries = [
        f"SELECT {row} AS row, {source.record} AS record FROM {relation} AS __file "
        f"WHERE {row} IN (SELECT {ROW} FROM {name} "
        f"WHERE {PROBLEM} IS NOT NULL AND {column} IS NULL)"
    ]
    if source.problems is not None:
        queries.append(f"SELECT row, record FROM {source.problems}")
    index = None
    if source.kind == "text":
        header = [h.strip(BLANKS) for h in _csv_header(source.path)]
        index = header.index(owner.source) if owner.source in header else None
    ids: dict[str, list[int]] = {}
    unknown = 0
    for number, record in con.execute(" UNION ALL ".join(queries)).fetchall():
        found = _salvaged_id(str(record), source.kind, owner.source, index)
        if found is None:
            unknown += 1
        else:
            ids.setdefault(found, []).append(int(number))
    con.execute("DROP TABLE IF EXISTS __broken")
    return ids, unknown


def bad_rows(path: Path, first_row: int, reason: str, count: int) -> DataError:
    """What stops a run without --rejects: the first bad row, and how many more there are."""
    more = f" (and {count - 1} more bad row{'s' * (count > 2)})" if count > 1 else ""
    return DataError(
        f"{path}: row {first_row}: {reason}{more}; nothing was written. "
        "Fix the data, or pass --rejects FILE to set bad rows aside"
    )


def _reject(
    con: duckdb.DuckDBPyConnection,
    table: str,
    source: _Source,
    rejects: Path | None,
    stats: LoadStats,
    owner: _Column | None = None,
) -> None:
    path = source.path
    name = ident(table)
    owners: dict[str, list[int]] = {}
    if owner is not None and table in ("customers", "contacts"):
        owners, unknown = _unreadable_owners(con, table, source, owner)
        if table == "customers":
            stats.unreadable_customers = unknown
            _mark_owned(con, table, owner.name, owners)
        else:
            stats.unreadable_contacts = unknown
    found = f"SELECT {ROW} AS row, {PROBLEM} AS reason FROM {name} WHERE {PROBLEM} IS NOT NULL"
    if source.problems is not None:
        found += f" UNION ALL SELECT row, reason FROM {source.problems}"
    count, first_row = one(con, f"SELECT count(*), min(row) FROM ({found})")
    if rejects is None:
        (reason,) = one(con, f"SELECT reason FROM ({found}) WHERE row = ? LIMIT 1", [first_row])
        raise bad_rows(path, first_row, reason, count)
    stats.rejected[str(path)] = count
    # The records as the file has them, built for the bad rows only.
    raw = ident("raw_" + table)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {raw} AS SELECT * FROM {source.relation}")
    row = "__file.rowid + 1" if source.row is None else f"__file.{ROW}"  # in file order
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {raw} AS SELECT {row} AS {ROW}, {source.record} AS record "
        f"FROM {raw} AS __file "
        f"WHERE {row} IN (SELECT {ROW} FROM {name} WHERE {PROBLEM} IS NOT NULL)"
    )
    rows = (
        f"SELECT {literal(str(path))} AS file, c.{ROW} AS row, c.{PROBLEM} AS reason, r.record "
        f"FROM {name} c JOIN {raw} r USING ({ROW}) WHERE c.{PROBLEM} IS NOT NULL"
    )
    if source.problems is not None:
        rows += (
            f" UNION ALL SELECT {literal(str(path))}, row, reason, record FROM {source.problems}"
        )
    con.execute(f"CREATE OR REPLACE TEMP TABLE {ident('rejects_' + table)} AS {rows}")
    con.execute(f"DROP TABLE {raw}")
    if table == "contacts":  # whose history is incomplete: the planner holds them back
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {UNKNOWN_HISTORY} AS SELECT DISTINCT customer_id "
            f"FROM {name} WHERE {PROBLEM} IS NOT NULL AND customer_id IS NOT NULL"
        )
        if owners:  # and those of rows too broken to convert, by the id still readable
            con.executemany(
                f"INSERT INTO {UNKNOWN_HISTORY} SELECT ? WHERE ? NOT IN "
                f"(SELECT customer_id FROM {UNKNOWN_HISTORY})",
                [[found, found] for found in owners],
            )
        stats.unknown_history = one(con, f"SELECT count(*) FROM {UNKNOWN_HISTORY}")[0]
    con.execute(f"DELETE FROM {name} WHERE {PROBLEM} IS NOT NULL")


PRODUCTS = "products"  # the catalogue: sku, category, days_per_unit, warranty_days


def _line_columns(config: Config) -> list[_Column]:
    """The order line columns `[orders]` names (each only when named; a named one must be in
    the export). Ids and categories are compared as ids are: trimmed, exactly."""
    o = config.orders
    named = [
        ("order_id", o.order_id, t.STRING),
        ("sku", o.sku, t.STRING),
        ("category", o.category, t.STRING),
        ("quantity", o.quantity, t.NUMBER),  # negative: units returned
    ]
    return [
        _Column(name, source, type_, key=type_ is t.STRING)
        for name, source, type_ in named
        if source is not None
    ]


def product_columns() -> list[_Column]:
    """A catalogue's columns: each row is keyed by its sku, else by its category."""
    return [
        _Column("sku", "sku", t.STRING, required=False, key=True),
        _Column("category", "category", t.STRING, required=False, key=True),
        _Column(
            "days_per_unit",
            "days_per_unit",
            t.NUMBER,
            False,
            positive=True,
            at_most=MAX_PRODUCT_DAYS,
        ),
        _Column(
            "warranty_days",
            "warranty_days",
            t.NUMBER,
            False,
            positive=True,
            whole=True,
            at_most=MAX_PRODUCT_DAYS,
        ),
    ]


PRODUCT_KEY = RowKey(
    "CASE WHEN sku IS NOT NULL THEN 'sku `' || sku || '`' "
    "WHEN category IS NOT NULL THEN 'category `' || category || '`' END",
    "names neither a sku nor a category (columns sku, category)",
)


def _catalogue(
    con: duckdb.DuckDBPyConnection,
    config: Config,
    path: Path | None,
    rejects: Path | None,
    stats: LoadStats,
    context: _Context,
) -> None:
    """The table `products`: the `--products` file's rows, and the configuration's entries
    whose key (sku, or category) the file does not give. A bad file row is bad data as in any
    export; a sku (or a category row) on two rows is a repeated key: both are bad rows."""
    table = ident(PRODUCTS)
    if path is not None:
        _typed_table(con, PRODUCTS, path, product_columns(), PRODUCT_KEY, rejects, stats, context)
    else:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {table} (sku VARCHAR, category VARCHAR, "
            "days_per_unit DOUBLE, warranty_days DOUBLE)"
        )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE __configured (sku VARCHAR, category VARCHAR, "
        "days_per_unit DOUBLE, warranty_days DOUBLE)"
    )
    rows = config.products.rows()
    if rows:
        con.executemany("INSERT INTO __configured VALUES (?, ?, ?, ?)", [list(r) for r in rows])
    con.execute(f"""
        INSERT INTO {table} SELECT * FROM __configured AS g WHERE NOT EXISTS (
            SELECT 1 FROM {table} AS f WHERE CASE WHEN g.sku IS NOT NULL THEN f.sku = g.sku
                ELSE f.sku IS NULL AND f.category = g.category END)
    """)
    con.execute("DROP TABLE __configured")
    stats.products = one(con, f"SELECT count(*) FROM {table}")[0]


UNKNOWN_HISTORY = "unknown_history"  # customers with contact rows set aside (--rejects)


def unknown_history(con: duckdb.DuckDBPyConnection) -> str | None:
    """The table of customers (`customer_id`) whose contact history had rows set aside with
    --rejects, or None: caps and the quiet period cannot be judged for them."""
    found = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [UNKNOWN_HISTORY]
    ).fetchone()
    return UNKNOWN_HISTORY if found and found[0] else None


def release(con: duckdb.DuckDBPyConnection) -> None:
    """Drop the loaded exports once the plan holds what it needs of them. At a million
    customers their rows are most of the memory a plan holds, and writing the plan needs its own:
    freed first, the one is reused for the other and the peak is about one copy, not two. The
    rows set aside stay (`rejects_sql` reads them after), and nothing reads a dropped table
    again: `derive`'s view over them is released first."""
    for table in ("customers", "orders", "contacts", PRODUCTS, UNKNOWN_HISTORY):
        con.execute(f"DROP TABLE IF EXISTS {ident(table)}")


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


def _check_timezone(con: duckdb.DuckDBPyConnection, config: Config) -> None:
    try:
        one(con, "SELECT timezone(?, TIMESTAMPTZ '2000-01-01 00:00:00+00')", [config.timezone])
    except duckdb.Error:
        where = config.source or "the configuration"
        raise UsageError(
            f"{where}: timezone {config.timezone!r} is not a known time zone "
            "(use a name like Asia/Shanghai)"
        ) from None


def _customer_columns(
    config: Config,
    inputs: Inputs,
    as_of: dt.date,
    needed: Collection[str] | Mapping[str, str | None] | None,
) -> list[_Column]:
    """The customer export's columns: every declared field and the activity fields, with the
    checks their roles ask for."""
    schema = config.customers
    declared = schema.types()
    supplied = set(ORDER_FIELDS) if inputs.orders is not None else set()
    supplied |= {"last_contacted"} if inputs.has_contacts else set()

    details = {c.address for c in config.channels.values() if c.address} - {schema.id}
    unread = {n for n in details if needed is None or n not in needed}

    def required(name: str) -> bool:
        if name == schema.id:
            return True
        if name in supplied or name in unread:
            return False
        if needed is not None:
            return name in needed
        return (name in declared and name != "last_contacted") or name in ORDER_FIELDS

    keys = {schema.id, schema.household}
    columns = [
        _Column(
            name,
            name,
            type_,
            required=required(name),
            key=name in keys and type_.kind is t.Kind.STRING,
            not_empty=name == schema.id,
            non_negative=name in NON_NEGATIVE,
            not_after=as_of if name in ACTIVITY_DATES else None,
            why=needed.get(name) if isinstance(needed, Mapping) else None,
            read=name not in unread,
        )
        for name, type_ in declared.items()
    ]
    return columns + [
        _Column(
            name,
            name,
            type_,
            required=required(name),
            non_negative=name in NON_NEGATIVE,
            not_after=as_of if name in ACTIVITY_DATES else None,
            why=needed.get(name) if isinstance(needed, Mapping) else None,
        )
        for name, type_ in t.ACTIVITY_FIELDS.items()
        if name not in declared
    ]


def load(
    con: duckdb.DuckDBPyConnection,
    config: Config,
    inputs: Inputs,
    as_of: dt.date,
    rejects: Path | None = None,
    needed: Collection[str] | Mapping[str, str | None] | None = None,
) -> LoadStats:
    """Create the tables `customers` and, when given, `orders` and `contacts`.

    `needed` names the customer fields the file must have as columns (None: every declared
    field); any other declared field may be absent, and is then missing for every customer. The
    id is always needed. Fields the orders export or the contact history provide never are.
    """
    _check_timezone(con, config)
    context = _Context(config.timezone, as_of)
    stats = LoadStats()
    schema = config.customers
    columns = _customer_columns(config, inputs, as_of, needed)
    _typed_table(con, "customers", inputs.customers, columns, schema.id, rejects, stats, context)
    stats.customers = one(con, "SELECT count(*) FROM customers")[0]
    o, c = config.orders, config.contacts
    histories = {
        "orders": (
            inputs.orders,
            [
                _Column("customer_id", o.customer, t.STRING, key=True, not_empty=True),
                _Column("order_date", o.date, t.DATE, not_empty=True),
                _Column("amount", o.amount, t.NUMBER),  # negative: a refund
                *_line_columns(config),
            ],
        ),
        "contacts": (
            inputs.contacts,
            [
                _Column("customer_id", c.customer, t.STRING, key=True, not_empty=True),
                _Column("channel", c.channel, t.STRING, channel=True),
                _Column("rule", c.rule, t.STRING, key=True),
                _Column("sent_at", c.sent_at, t.DATE, not_empty=True),
            ],
        ),
    }
    for table, (path, table_columns) in histories.items():
        if path is not None:
            _typed_table(con, table, path, table_columns, None, rejects, stats, context)
            setattr(stats, table, one(con, f"SELECT count(*) FROM {table}")[0])
    if inputs.ledger is not None:
        standard = [dataclasses.replace(c, source=c.name) for c in histories["contacts"][1]]
        _typed_table(con, "ledger", inputs.ledger, standard, None, None, stats, context)
        if inputs.contacts is None:
            con.execute("ALTER TABLE ledger RENAME TO contacts")
        else:
            con.execute("INSERT INTO contacts SELECT * FROM ledger")
        stats.ledger_contacts = one(con, "SELECT count(*) FROM contacts")[0] - stats.contacts
        stats.contacts += stats.ledger_contacts
    stats.order_lines = inputs.orders is not None and o.lines
    if inputs.products is not None or config.products.rows() or stats.order_lines:
        _catalogue(con, config, inputs.products, rejects, stats, context)
    if inputs.has_contacts:
        (stats.future_contacts,) = one(
            con, f"SELECT count(*) FROM contacts WHERE sent_at > {literal(as_of)}"
        )
        if stats.future_contacts:
            con.execute(f"DELETE FROM contacts WHERE sent_at > {literal(as_of)}")
        known = ", ".join(channel_key(literal(name)) for name in config.channels) or "NULL"
        stats.unconfigured_channels = dict(  # a blank channel (NULL) is no channel either
            con.execute(
                f"SELECT coalesce(channel, ''), count(*) FROM contacts WHERE channel IS NULL "
                f"OR channel NOT IN ({known}) GROUP BY 1 ORDER BY count(*) DESC, 1"
            ).fetchall()
        )
    return stats
