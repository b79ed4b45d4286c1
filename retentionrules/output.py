"""Writing results: no input lost, no half-written run visible, every file safe to open.

- Before any work, `Outputs` refuses an output that is one of the run's inputs or another of its
  outputs (`refuse_aliases`), two outputs whose names differ only in letter case, and one that
  could not be written or replaced anyway.
- Each file is written into a private folder beside it (`_Staging`: a fresh `mkdtemp` folder,
  mode 0700, so nobody can plant a symbolic link at the name DuckDB writes to), under a name of
  its own (`0.part`, `1.part`, ...), then renamed into place: a reader sees the old file or the
  new one, never a part. A file replaced keeps the permission bits of the one it replaces.
- A plan and its header are one unit: under an exclusive lock on `PLAN.lock` the old header is
  moved aside, the plan renamed into place, then the header, which carries the plan's sha256. The
  header is the commit marker: `open_plan` / `read_plan_header` take the shared lock and accept
  a plan only when its header is there and the digest matches. The plan is committed last, so a
  run that fails never leaves a new plan behind.
- CSV files start with a UTF-8 byte order mark and text cells that a spreadsheet would run as a
  formula get a leading `'`; no file (and no JSON we print) ever holds NaN or Infinity.

Locks and links are POSIX (Linux, macOS); without `fcntl` the module still imports, unlocked.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import re
import shutil
import signal
import stat
import tempfile
import threading
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .errors import DataError, OutputError, UsageError
from .sql import ident, literal

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    import duckdb

FORMATS = {
    ".jsonl": "(FORMAT JSON)",
    ".ndjson": "(FORMAT JSON)",
    ".json": "(FORMAT JSON)",
    ".csv": "(FORMAT CSV, HEADER)",
    ".parquet": "(FORMAT PARQUET)",
}
HEADER_SUFFIX = ".meta.json"
LOCK_SUFFIX = ".lock"
BOM = "\ufeff"
# A text cell starting with one of these is prefixed with `'` in CSV. The first six are what
# spreadsheets run as a formula (OWASP, "CSV injection"); `'` itself is escaped too, so that a
# reader can undo it exactly: strip one leading `'`.
DEFUSED = ("=", "+", "-", "@", "\t", "\r", "'")
# A plan header is a few hundred bytes: a bigger file at its name is not one of ours, and is never
# read whole (a link to /dev/zero, a log file renamed by mistake).
MAX_HEADER_BYTES = 1 << 20

_STAGING_PREFIX = ".retentionrules-tmp-"
_STAGING_NAME = re.compile(r"\.retentionrules-tmp-(\d+)-[A-Za-z0-9_]+\Z")
# Staged files are named by their place in the run (`0.part`, `0.meta.part`): never two alike,
# even on a file system that ignores letter case, never longer than a file name may be; they end
# in `.part`: never `*.rules` (rule discovery searches hidden folders too) nor an extension DuckDB
# would take as a compression (`.gz`, `.zst`).
_PART = ".part"
_NONFINITE = "retentionrules-nonfinite:"
# DuckDB type ids a CSV cell never needs defusing for: numbers, booleans, dates and times (in the
# documented range of dates none begins with `-`). Every other column is written as defused text.
_NUMBERS = ("tinyint", "smallint", "integer", "bigint", "hugeint", "float", "double", "decimal")
_UNSIGNED = ("utinyint", "usmallint", "uinteger", "ubigint", "uhugeint")
_TIMES = ("date", "time", "timestamp", "timestamp_s", "timestamp_ms", "timestamp_ns")
_ZONED = ("timestamp with time zone", "time with time zone")
_NOT_TEXT = frozenset((*_NUMBERS, *_UNSIGNED, *_TIMES, *_ZONED, "boolean", "null"))
# What a CSV writer puts in quotes: the byte order mark must come before any quote.
_QUOTED_IN_CSV = (",", '"', "\n", "\r")
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_CAP_FOWNER = 3  # linux/capability.h: may replace another user's file in a sticky folder


def sidecar(path: Path) -> Path:
    """The plan's header: `plan.jsonl` -> `plan.jsonl.meta.json`."""
    return path.with_name(path.name + HEADER_SUFFIX)


def lock_file(path: Path) -> Path:
    """The file that serialises writers and readers of a plan: `plan.jsonl` -> `plan.jsonl.lock`.
    It stays, empty: removing a lock file that another process may hold would break the lock."""
    return path.with_name(path.name + LOCK_SUFFIX)


# ---------------------------------------------------------------- which paths may be written


@dataclass(frozen=True)
class _Identity:
    """Two names are one file when they resolve to the same path (symbolic links, `..`, relative
    paths), or, for files that exist, have the same device and inode (hard links, a
    case-insensitive file system)."""

    real: str
    inode: tuple[int, int] | None

    @classmethod
    def of(cls, path: Path) -> _Identity:
        try:
            st = os.stat(path)
            inode: tuple[int, int] | None = (st.st_dev, st.st_ino)
        except (OSError, ValueError):  # missing, a symbolic link loop, a NUL in the name
            inode = None
        return cls(os.path.realpath(path), inode)

    def same(self, other: _Identity) -> bool:
        return self.real == other.real or (self.inode is not None and self.inode == other.inode)


def refuse_aliases(
    inputs: Iterable[tuple[str, Path]], outputs: Iterable[tuple[str, Path]]
) -> None:
    """Raise UsageError, naming both paths, when an output is one of the run's inputs or another
    of its outputs. Each path comes with the role it plays (`--customers`, `rule file`, `--out`)
    for the message.

    Writing the plan over the customer export it is made from would lose the export; two
    outputs on one file would leave one of them silently missing.
    """
    seen = [(role, Path(path), _Identity.of(Path(path)), True) for role, path in inputs]
    for role, path in outputs:
        path = Path(path)
        identity = _Identity.of(path)
        for other_role, other, other_identity, is_input in seen:
            if identity.same(other_identity):
                if is_input:
                    raise UsageError(
                        f"{role} {path} is the same file as {other_role} {other}: writing it "
                        "would destroy an input; nothing was written (choose another output)"
                    )
                raise UsageError(
                    f"{role} {path} and {other_role} {other} are the same file; "
                    "nothing was written (give each output its own file)"
                )
        seen.append((role, path, identity, False))


def refuse_case_twins(outputs: Iterable[tuple[str, Path]]) -> None:
    """Raise UsageError when two outputs in one folder have names that differ only in letter case
    (`Plan.jsonl`, `plan.jsonl`). Neither exists yet, so no inode tells them apart; on a file
    system that ignores case (macOS, Windows, some shares) they are one file, and one output
    would silently replace the other. Compared after Unicode normalisation (NFC) and casefolding,
    which is as much as any such file system folds, and more."""
    seen: dict[tuple[object, str], tuple[str, Path]] = {}
    for role, path in outputs:
        path = Path(path)
        try:
            st = os.stat(path.parent)
            folder: object = (st.st_dev, st.st_ino)
        except (OSError, ValueError):
            folder = os.path.realpath(path.parent)
        key = (folder, unicodedata.normalize("NFC", path.name).casefold())
        if key in seen:
            other_role, other = seen[key]
            raise UsageError(
                f"{role} {path} and {other_role} {other} differ only in letter case: on a file "
                "system that ignores case they are one file; nothing was written (give each "
                "output its own name)"
            )
        seen[key] = (role, path)


def check_writable(path: Path, role: str = "output", suffixes: Sequence[str] = ()) -> None:
    """Fail before any work when the output could not be written anyway, or would be written
    somewhere other than the name given. `suffixes`: the types it may have (default: a data
    file's, FORMATS)."""
    if path.suffix.lower() not in (suffixes or FORMATS):
        allowed = ", ".join(suffixes) if suffixes else ".jsonl, .csv or .parquet"
        raise OutputError(f"{path}: unknown output type; use {allowed}")
    _check_name(path, role)
    folder = path.parent
    if not folder.is_dir():
        raise OutputError(f"{folder}: no such folder")
    if not _may_write_in(folder):
        raise OutputError(f"{folder}: cannot write in this folder ({_why_not_writable(folder)})")
    _check_replaceable(path, role)


def _may_write_in(folder: Path) -> bool:
    """Whether this process may create files in `folder`, by its effective user (set-uid runs)."""
    effective = os.access in os.supports_effective_ids
    return os.access(folder, os.W_OK | os.X_OK, effective_ids=effective)


def _why_not_writable(folder: Path) -> str:
    with contextlib.suppress(OSError, AttributeError):
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return "read-only file system"
    return "permission denied"


def _check_name(path: Path, role: str) -> None:
    """What is at an output's name now: nothing, or a regular file that the output replaces.

    A symbolic link is refused rather than followed or replaced: following it writes somewhere
    the command line does not say, replacing it surprises whoever made it.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as error:
        raise OutputError(f"{path}: {error.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        raise OutputError(
            f"{role} {path} is a symbolic link (to {os.readlink(path)}); outputs never write "
            "through links: name the file itself, or remove the link"
        )
    if stat.S_ISDIR(st.st_mode):
        raise OutputError(f"{role} {path} is a folder; name a file")
    if not stat.S_ISREG(st.st_mode):
        raise OutputError(f"{role} {path} is not a regular file")


def _check_replaceable(
    path: Path, role: str, remedy: str = "choose another output, or have its owner remove it"
) -> None:
    """A file already at an output's name must be one this process may replace. In a folder with
    the sticky bit (`/tmp`, a shared drop folder) only the file's owner, the folder's owner or a
    process allowed to override it (CAP_FOWNER) may rename over a file: found out at the rename,
    it would be too late, after other outputs were replaced."""
    try:
        st = os.lstat(path)
        folder = os.stat(path.parent)
    except OSError:
        return  # nothing there: nothing to replace (other problems are _check_name's)
    if not folder.st_mode & stat.S_ISVTX or os.geteuid() in (st.st_uid, folder.st_uid):
        return
    if _has_capability(_CAP_FOWNER):
        return
    raise OutputError(
        f"{role} {path} belongs to another user (uid {st.st_uid}), and in {path.parent} only a "
        f"file's owner may replace it (the folder's sticky bit is set); nothing was written: "
        f"{remedy}"
    )


def _check_lock(path: Path, role: str) -> None:
    """A lock file already there must be one this process may open (a writer opens another
    user's read-only: flock needs no more); found out at the commit, it would stop the run after
    the other outputs were replaced."""
    effective = os.access in os.supports_effective_ids
    if os.path.lexists(path) and not os.access(path, os.R_OK, effective_ids=effective):
        raise OutputError(
            f"{role} {path} is another user's and may not be opened (permission denied); "
            "nothing was written: have its owner make it readable, or choose another output"
        )


def _has_capability(bit: int) -> bool:
    """Whether this process holds a Linux capability (root may have given some up: `setpriv`,
    containers); elsewhere, whether it is root."""
    with (
        contextlib.suppress(OSError, ValueError, IndexError),
        open("/proc/self/status", encoding="utf-8", errors="replace") as status,
    ):
        for line in status:
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> bit & 1)
    return os.geteuid() == 0


# ---------------------------------------------------------------- one run's outputs


class Outputs:
    """The files one run writes, checked when made (before any work) and written together at the
    end by `write`.

    `outputs` maps each option (`--out`, `--suppressed`, ...) to its path, or None when not
    asked for; `plan` names the option whose file is a plan: it gets a header and a lock.
    `json_text` names, per option, the text columns that hold JSON (the rejects' `record`): a
    NaN or an infinity in them is written as a string (`"NaN"`, `"-Infinity"`), so that every
    JSON reader can read them.
    """

    def __init__(
        self,
        inputs: Iterable[tuple[str, Path | None]],
        outputs: Mapping[str, Path | None],
        plan: str | None = None,
        json_text: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.targets = {role: Path(path) for role, path in outputs.items() if path is not None}
        for role, path in self.targets.items():  # `.`, `..`, `/`, "": a folder, not a file name
            if path.name in ("", ".", "..") or str(path).endswith(("/", os.sep)):
                raise OutputError(
                    f"{role} {str(path) or '(empty)'}: names a folder, not a file; "
                    "give a file name such as plan.csv"
                )
        self.plan = plan if plan in self.targets else None
        self.json_text = dict(json_text or {})
        named = list(self.targets.items())
        if self.plan is not None:
            path = self.targets[self.plan]
            named += [
                (f"{self.plan}'s header", sidecar(path)),
                (f"{self.plan}'s lock", lock_file(path)),
            ]
        refuse_aliases([(role, Path(p)) for role, p in inputs if p is not None], named)
        refuse_case_twins(named)
        for role, path in self.targets.items():
            check_writable(path, role)
        self._check_names()

    def __bool__(self) -> bool:
        return bool(self.targets)

    def _check_names(self) -> None:
        """What can be known before renaming: every name is a regular file or nothing, and one
        this process may replace. Checked when the run starts and again just before the first
        rename (a run takes a while; the folder may have changed meanwhile)."""
        for role, path in self.targets.items():
            _check_name(path, role)
            _check_replaceable(path, role)
        if self.plan is not None:
            path = self.targets[self.plan]
            role = f"{self.plan}'s header"
            _check_name(sidecar(path), role)
            _check_replaceable(sidecar(path), role)
            _check_name(lock_file(path), f"{self.plan}'s lock")
            _check_lock(lock_file(path), f"{self.plan}'s lock")

    def write(
        self,
        con: duckdb.DuckDBPyConnection,
        queries: Mapping[str, str],
        header: Mapping[str, Any] | None = None,
    ) -> tuple[dict[str, Any] | None, list[Path]]:
        """Write each output from its query; return the plan's header as written (with
        `plan_sha256`) and the files written.

        Every file is staged first: a failure (bad data met while writing, a full disk, an
        interrupt) leaves every output as it was, and no temporary file behind. Then each is
        renamed into place, the plan (with its header) last. Should a rename still fail (a file
        made immutable, a disk error), the error says which files were written and which were
        left as they were; the plan is then never one of those written.
        """
        with contextlib.ExitStack() as stack:
            folders: dict[str, Path] = {}
            staged: dict[str, Path] = {}
            for number, (role, path) in enumerate(self.targets.items()):
                key = os.path.realpath(path.parent)
                if key not in folders:
                    staging = _Staging(path.parent)
                    stack.callback(staging.close)
                    folders[key] = staging.open()
                staged[role] = folders[key] / f"{number}{_PART}"
                with _reported(path):
                    _copy(con, queries[role], staged[role], path, self.json_text.get(role, ()))
            committed = None
            staged_header = None
            if self.plan is not None:
                path = self.targets[self.plan]
                committed = {**(header or {}), "plan_sha256": digest_file(staged[self.plan])}
                name = staged[self.plan].name.removesuffix(_PART)
                staged_header = staged[self.plan].with_name(f"{name}.meta{_PART}")
                with _reported(sidecar(path)):
                    text = json_text(committed, sort_keys=True) + "\n"
                    _write_new(staged_header, text.encode("utf-8"))
            self._check_names()
            for role, path in self.targets.items():
                _keep_mode(staged[role], path)
            if staged_header is not None and self.plan is not None:
                _keep_mode(staged_header, sidecar(self.targets[self.plan]))
            written = self._commit(staged, staged_header)
        return committed, written

    def _commit(self, staged: Mapping[str, Path], staged_header: Path | None) -> list[Path]:
        """Rename the staged files into place: the other outputs, then the plan and its header.
        The plan goes last: a run that fails never leaves a new plan (a plan is what gets sent;
        the other files only explain it)."""
        order = [role for role in self.targets if role != self.plan]
        if self.plan is not None:
            order.append(self.plan)
        written: list[Path] = []
        for done, role in enumerate(order):
            path = self.targets[role]
            try:
                if role == self.plan:
                    assert staged_header is not None
                    _commit_plan(staged[role], staged_header, path)
                    written += [path, sidecar(path)]
                else:
                    _rename(staged[role], path)
                    written.append(path)
            except _PlanWithoutHeader as error:
                also = f"; the other outputs were written: {_names(written)}" if written else ""
                raise OutputError(f"{error}{also}") from None
            except OutputError as error:
                left = [self.targets[r] for r in order[done:]]
                raise OutputError(_partly_written(error, written, left)) from None
        return written


def _partly_written(error: OutputError, written: list[Path], left: list[Path]) -> str:
    """The message of a rename that failed once others may have succeeded: exactly which files
    are new and which are as they were."""
    if not written:
        return f"{error}; nothing was written (every output is as it was)"
    return f"{error}; written: {_names(written)}; not written, left as they were: {_names(left)}"


def _names(paths: Iterable[Path]) -> str:
    return ", ".join(map(str, paths))


def _keep_mode(staged: Path, path: Path) -> None:
    """A file replaced keeps its permission bits (a plan made private with `chmod 600` stays
    private), and its owner and group where this process may set them: as `fmt` keeps a rule
    file's. A new file gets the usual mode (0666 less the umask)."""
    try:
        st = os.stat(path)
    except OSError:
        return
    with contextlib.suppress(OSError):
        os.chown(staged, st.st_uid, st.st_gid)
    os.chmod(staged, stat.S_IMODE(st.st_mode))


@contextlib.contextmanager
def _reported(path: Path) -> Iterator[None]:
    """A file system error while writing `path` (a full disk, say) as an error for people."""
    try:
        yield
    except OSError as error:
        raise OutputError(f"{path}: {error.strerror or error}") from None


def _copy(
    con: duckdb.DuckDBPyConnection,
    query: str,
    staged: Path,
    path: Path,
    json_columns: Sequence[str] = (),
) -> None:
    """COPY the query's rows to the staged file, in the format `path`'s extension names.

    Every column is passed through unchanged except: a FLOAT or DOUBLE that is NaN or infinite
    stops the write (JSON cannot hold it, and a number that overflowed is not a number anyone
    should act on); a NaN or infinity inside JSON text (`json_columns`) is written as a string;
    in CSV, text cells are defused and the file starts with a byte order mark.
    """
    csv = path.suffix.lower() == ".csv"
    relation = con.sql(query)
    columns = []
    for name, type_ in zip(relation.columns, relation.types, strict=True):
        column, kind = ident(name), type_.id
        if kind in ("float", "double"):
            message = literal(f"{_NONFINITE}{name}: ")
            expr = (
                f"CASE WHEN {column} IS NULL OR isfinite({column}) THEN {column} "
                f"ELSE error({message} || CAST({column} AS VARCHAR)) END"
            )
        elif name in json_columns:
            expr = _finite_json_sql(f"CAST({column} AS VARCHAR)")
        else:
            expr = column
        if csv and kind not in _NOT_TEXT:  # text, enumerations, JSON (VARCHAR to DuckDB)...
            expr = _defused_sql(f"CAST({expr} AS VARCHAR)")
        columns.append((expr, defuse(name) if csv else name))
    # A byte order mark, so that Excel and WPS open the file as UTF-8 (Chinese names and all) on
    # a double click. DuckDB writes it itself as the start of the first column's name (its
    # PREFIX option cannot go with a header row), unless that name is quoted, which would put a
    # quote before the mark: then the mark is put in front of the file in place. Never a copy:
    # an output must not need twice its size on disk.
    bom = BOM.encode("utf-8")
    if csv and columns and not any(c in columns[0][1] for c in _QUOTED_IN_CSV):
        _run_copy(con, query, [(columns[0][0], BOM + columns[0][1]), *columns[1:]], staged, path)
        if _starts_with(staged, bom):
            _fsync(staged)
            return
        staged.unlink()  # quoted after all (another DuckDB version): write it plainly
    _run_copy(con, query, columns, staged, path)
    if csv:
        _prepend(staged, bom)
    _fsync(staged)


def _run_copy(
    con: duckdb.DuckDBPyConnection,
    query: str,
    columns: list[tuple[str, str]],
    staged: Path,
    path: Path,
) -> None:
    """COPY the query's rows, each column as (expression, name), to `staged`; DuckDB's errors as
    errors for people."""
    import duckdb

    select = ", ".join(f"{expr} AS {ident(name)}" for expr, name in columns)
    select = f"SELECT {select} FROM ({query})" if columns else query
    try:
        con.execute(
            f"COPY ({select}) TO {literal(os.path.abspath(staged))} {FORMATS[path.suffix.lower()]}"
        )
    except duckdb.Error as error:
        text = str(error)
        if _NONFINITE in text:
            column, _, value = text.split(_NONFINITE, 1)[1].partition(": ")
            raise DataError(
                f"{path}: column {column} holds {value.strip()}, which is not a finite number "
                "(too large, or not a number); nothing was written. Check the numbers in the "
                "configuration and the data"
            ) from None
        if isinstance(error, duckdb.IOException):
            code = re.search(r'"errno":\s*"(\d+)"', text)  # DuckDB's own text names our folder
            raise OutputError(f"{path}: {os.strerror(int(code[1])) if code else text}") from None
        raise
    except RuntimeError as error:  # DuckDB's answer to Ctrl-C while it runs a query
        if "interrupted" in str(error).lower():
            raise KeyboardInterrupt from None
        raise
    if not staged.exists():  # DuckDB writes no file for zero JSON rows
        _write_new(staged, b"")


def _starts_with(path: Path, prefix: bytes) -> bool:
    with path.open("rb") as handle:
        return handle.read(len(prefix)) == prefix


def _prepend(path: Path, prefix: bytes, block: int = 1 << 20) -> None:
    """Put `prefix` in front of a file in place, moving its bytes up from the end backwards: it
    needs `len(prefix)` more bytes on disk, not a second copy of the file."""
    with path.open("r+b") as handle:
        end = handle.seek(0, os.SEEK_END)
        handle.truncate(end + len(prefix))
        while end > 0:
            start = max(0, end - block)
            handle.seek(start)
            data = handle.read(end - start)
            handle.seek(start + len(prefix))
            handle.write(data)
            end = start
        handle.seek(0)
        handle.write(prefix)


def defuse(text: str) -> str:
    """A text cell as written to CSV: with a leading `'` when a spreadsheet would run it."""
    return "'" + text if text.startswith(DEFUSED) else text


def undefuse(text: str) -> str:
    """A CSV text cell as it was before `defuse`: what a program reading our CSV does."""
    return text[1:] if text.startswith("'") else text


def _defused_sql(value: str) -> str:
    """`defuse` in SQL: whether the first character is one of `DEFUSED`, looked up in their
    string. Not a regular expression (run on every text cell of a plan, it cost a fifth of the
    standard job's writing), nor `unicode(v) IN (...)` or `list_contains`: DuckDB plans a list of
    constants as a join, which does not keep the rows in order, and plans must keep the
    customers' input order. `left` counts characters, as `str.startswith` does."""
    first = f"left({value}, 1)"
    return (
        f"CASE WHEN {value} <> '' AND contains({literal(''.join(DEFUSED))}, {first}) "
        f"THEN {literal(chr(39))} || {value} ELSE {value} END"
    )


# JSON text as DuckDB's `to_json` writes it, cut into pieces that end with a bare NaN, Infinity
# or -Infinity (its spelling of non-finite numbers, which is not JSON): quoted text is skipped
# whole, so `"a:NaN"` is left alone. No piece contains `N` or `I` outside quotes but the word,
# nor a `-` but in a negative number; \x01 and \x02 never occur in it (to_json escapes them).
_BARE_NONFINITE = r'(?s)((?:"(?:[^"\\]|\\.)*"|[^"NI-]|-[^"IN])*)(-?(?:Infinity|NaN))?'


def _finite_json_sql(value: str) -> str:
    """JSON text with each bare NaN and infinity written as a string (`"NaN"`, `"-Infinity"`):
    the pieces are marked, empty marks dropped, the others turned into quotes. Without lambdas,
    which DuckDB spells differently from one version to the next."""
    pattern, every = literal(_BARE_NONFINITE), literal("g")
    marks = literal("\\1\x01\\2\x02")  # the piece, then its word (if any) between marks
    marked = f"regexp_replace({value}, {pattern}, {marks}, {every})"
    unmarked = f"regexp_replace({marked}, {literal(chr(1) + chr(2))}, {literal('')}, {every})"
    either, quote = literal("[\x01\x02]"), literal('"')
    quoted = f"regexp_replace({unmarked}, {either}, {quote}, {every})"
    found = f"regexp_matches({value}, {literal('Infinity|NaN')})"
    return f"CASE WHEN {found} THEN {quoted} ELSE {value} END"


# ---------------------------------------------------------------- the plan and its header


class _PlanWithoutHeader(OutputError):
    """The commit of a plan broke between its steps: the plan at the name (the new one, or the
    old one) has no header, and readers refuse it. The message says which."""


def _commit_plan(staged_plan: Path, staged_header: Path, path: Path) -> None:
    """Put a staged plan and header into place so that a reader holding the shared lock sees the
    old pair, or the new pair, or (after a kill -9 in between) a plan without a header; never a
    plan beside another run's header. The header goes last, and the folder is synced between
    the steps so that this order also survives a power cut.

    The old header is moved aside into the staging folder rather than deleted: if the plan then
    cannot be renamed, it is put back, and the old pair is left exactly as it was."""
    header = sidecar(path)
    old = staged_header.with_name(staged_header.name + ".old")
    aside: Path | None = old
    rerun = "readers refuse it; run plan again"
    with _locked(path, exclusive=True):
        try:
            os.replace(header, old)
        except FileNotFoundError:
            aside = None
        except OSError as error:
            raise OutputError(f"{header}: {error.strerror or error}") from None
        _fsync_dir(path.parent)
        try:
            os.replace(staged_plan, path)
        except OSError as error:
            problem = f"{path}: {error.strerror or error}"
            if aside is not None:
                try:
                    os.replace(aside, header)
                except OSError:
                    raise _PlanWithoutHeader(
                        f"{problem}; the old header could not be put back either: the old plan "
                        f"is left without its header, and {rerun}"
                    ) from None
                _fsync_dir(path.parent)
            raise OutputError(problem) from None
        _fsync_dir(path.parent)
        try:
            os.replace(staged_header, header)
        except OSError as error:
            raise _PlanWithoutHeader(
                f"{header}: {error.strerror or error}: the plan {path} was replaced but its "
                f"header could not be written, and {rerun}"
            ) from None
        _fsync_dir(path.parent)


class UnverifiedPlan(DataError):
    """A plan on disk that this tool did not finish writing, or that was changed since.

    `reason` says which, for programs: `unreadable` (no plan, or it cannot be read), `no header`
    (a run was stopped while replacing it), `bad header` (not a header this tool writes), or
    `mismatch` (the header is for other bytes: the plan was changed, or the two come from
    different runs).
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class VerifiedPlan:
    path: Path
    header: dict[str, Any]
    file: IO[bytes]  # the very file whose digest matched: a later run renaming a new plan into
    # place does not change what is read through it


@contextlib.contextmanager
def open_plan(plan: Path) -> Iterator[VerifiedPlan]:
    """Open a plan for reading (what `approve` and `send` start with) once its header vouches for
    it: checked under the shared lock, so a plan being committed is waited for, not misread."""
    plan = Path(plan)
    header_path = sidecar(plan)
    with _locked(plan, exclusive=False):
        try:
            fd = os.open(plan, os.O_RDONLY | os.O_NONBLOCK | _O_CLOEXEC)  # a FIFO cannot hang us
        except OSError as error:
            raise UnverifiedPlan(
                f"{plan}: cannot read the plan: {error.strerror}", "unreadable"
            ) from None
        handle = os.fdopen(fd, "rb")
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            handle.close()
            raise UnverifiedPlan(f"{plan}: the plan is not a regular file", "unreadable")
        try:
            header = _verified_header(plan, header_path, handle)
        except BaseException:
            handle.close()
            raise
    with handle:
        yield VerifiedPlan(plan, header, handle)


def read_plan_header(plan: Path) -> dict[str, Any]:
    """The header of a plan, once it is checked to be the header of exactly this plan file."""
    with open_plan(plan) as verified:
        return verified.header


def _verified_header(plan: Path, header_path: Path, handle: IO[bytes]) -> dict[str, Any]:
    rerun = "run `retentionrules plan` again"
    try:
        raw = _read_header(header_path)
    except FileNotFoundError:
        raise UnverifiedPlan(
            f"{plan}: the plan has no header ({header_path.name}): it was not completely "
            f"written (a run was stopped while replacing it); {rerun}",
            "no header",
        ) from None
    except OSError as error:
        message = f"{header_path}: cannot read: {error.strerror}"
        raise UnverifiedPlan(message, "unreadable") from None
    if raw is None:
        raise UnverifiedPlan(f"{header_path}: the header is not a regular file", "unreadable")
    if len(raw) > MAX_HEADER_BYTES:
        raise UnverifiedPlan(
            f"{header_path}: not a plan header: more than {MAX_HEADER_BYTES:,} bytes", "bad header"
        )
    try:
        header: dict[str, Any] = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as error:
        raise UnverifiedPlan(f"{header_path}: not a plan header: {error}", "bad header") from None
    except RecursionError:  # JSON nested thousands deep: no header of ours
        message = f"{header_path}: not a plan header: nested too deep"
        raise UnverifiedPlan(message, "bad header") from None
    expected = header.get("plan_sha256") if isinstance(header, dict) else None
    if not isinstance(expected, str):
        raise UnverifiedPlan(
            f"{header_path}: the header holds no plan digest (plan_sha256): it was written by "
            f"an older version or by hand; {rerun}",
            "bad header",
        )
    digest = hashlib.sha256()
    for block in iter(lambda: handle.read(1 << 20), b""):
        digest.update(block)
    handle.seek(0)
    if digest.hexdigest() != expected:
        raise UnverifiedPlan(
            f"{plan}: the plan does not match its header {header_path.name} (the header is for "
            f"a plan with sha256 {expected[:16]}…, this one has {digest.hexdigest()[:16]}…): it "
            f"was changed, or the two come from different runs; {rerun}",
            "mismatch",
        )
    return header


def _read_header(path: Path) -> bytes | None:
    """A header's bytes, opened as the plan is (a FIFO at its name cannot hang the reader) and
    read only up to one byte past the limit (a link to /dev/zero cannot fill the memory); None
    when it is not a regular file."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | _O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return handle.read(MAX_HEADER_BYTES + 1)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _flock(fd: int, operation: int) -> None:
    """Take a lock, or go on without one on a file system that has no locks (some network and
    FUSE file systems): the plan's digest still tells a reader a torn pair, and a stale staging
    folder is then left alone rather than removed."""
    try:
        fcntl.flock(fd, operation)
    except OSError as error:
        if error.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise


@contextlib.contextmanager
def _locked(plan: Path, *, exclusive: bool) -> Iterator[None]:
    """Hold the plan's lock file: exclusive to commit a plan, shared to read one."""
    path = lock_file(plan)
    fd = _open_lock(path, create=exclusive)
    try:
        if fd is not None and fcntl is not None:
            _flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        if fd is not None:
            os.close(fd)


def _open_lock(path: Path, *, create: bool) -> int | None:
    """The lock file, opened without following a symbolic link planted at its name and without
    ever writing to it. A writer creates it; a reader never does (it may read a plan in a folder
    it may not write in): with no lock file, or one it may not open, it goes without: the digest
    still tells a torn pair, only a writer racing it can then make it fail where it would have
    waited."""
    flags = _O_NOFOLLOW | _O_CLOEXEC | os.O_NONBLOCK  # O_NONBLOCK: a planted FIFO cannot hang us
    try:
        if not create:
            fd = os.open(path, os.O_RDONLY | flags)  # flock needs no write access
        else:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | flags, 0o666)
            except OSError as error:
                if error.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                    raise
                fd = os.open(path, os.O_RDONLY | flags)  # another user's lock
    except FileNotFoundError:
        if create:
            raise OutputError(f"{path}: cannot create the lock file") from None
        return None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise OutputError(
                f"{path} is a symbolic link; the plan's lock file is never followed: remove it"
            ) from None
        if not create and error.errno in (errno.EACCES, errno.EPERM):
            return None
        raise OutputError(f"{path}: {error.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OutputError(f"{path}: the plan's lock file is not a regular file: remove it")
    return fd


# ---------------------------------------------------------------- staging and files


class _Staging:
    """A private folder beside an output for the files being written.

    `mkdtemp` gives it an unpredictable name and mode 0700, so no one can plant a symbolic link
    at the names written in it (DuckDB follows links); being beside the output, it is on the same
    file system, so the final rename is atomic. Its name carries the process id and the process
    holds a lock on it while in use: a run killed with -9 leaves it behind, and the next write in
    the same folder removes it (its process is gone and nobody holds the lock).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path: Path | None = None
        self.fd: int | None = None

    def open(self) -> Path:
        """Make the folder. Register `close` before calling this: an interrupt right after the
        folder is made must still remove it."""
        remove_stale(self.folder)
        prefix = f"{_STAGING_PREFIX}{os.getpid()}-"
        try:
            with _interrupts_deferred():  # between mkdir and knowing the name, Ctrl-C waits
                self.path = Path(tempfile.mkdtemp(prefix=prefix, dir=self.folder))
        except OSError as error:
            raise OutputError(f"{self.folder}: cannot write here: {error.strerror}") from None
        if fcntl is not None:
            self.fd = os.open(self.path, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
            _flock(self.fd, fcntl.LOCK_EX)
        return self.path

    def close(self) -> None:
        with _interrupts_deferred():  # a second Ctrl-C or SIGTERM must not cut the cleanup short
            if self.path is not None:
                shutil.rmtree(self.path, ignore_errors=True)
                self.path = None
            if self.fd is not None:
                os.close(self.fd)
                self.fd = None


_STOPS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Hold back Ctrl-C (SIGINT) and SIGTERM for a few statements that must not be cut in two;
    the first one caught is delivered when they are done, to the handler that was in place.
    Only the main thread receives signals in Python."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[tuple[int, Any]] = []

    def hold(number: int, frame: Any) -> None:
        caught.append((number, frame))

    previous: dict[int, Any] = {number: signal.signal(number, hold) for number in _STOPS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        if caught:
            first, frame = caught[0]
            handler = previous[first]
            if callable(handler):
                handler(first, frame)  # Python's own SIGINT handler raises KeyboardInterrupt
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), first)


def remove_stale(folder: Path) -> list[Path]:
    """Remove the staging folders that killed runs left in `folder`; return them.

    Only folders with our name pattern, owned by this user, whose process is gone and whose lock
    nobody holds (the lock also covers a process in another pid namespace sharing the folder).
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _STAGING_NAME.match(entry.name)
        if match is None or _alive(int(match[1])):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
                continue
            fd = os.open(entry.path, os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC)
        except OSError:
            continue
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(Path(entry.path))
        except OSError:
            continue  # locked: in use
        finally:
            os.close(fd)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _open_new(path: Path, mode: int = 0o666) -> IO[bytes]:
    """A new file, created here and now: fails if anything (a planted link too) has the name."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC, mode)
    return os.fdopen(fd, "wb")


def _write_new(path: Path, data: bytes) -> None:
    with _open_new(path) as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | _O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system syncs folders
        fd = os.open(folder, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _rename(staged: Path, path: Path) -> None:
    try:
        os.replace(staged, path)
    except OSError as error:
        raise OutputError(f"{path}: {error.strerror or error}") from None
    _fsync_dir(path.parent)


def write_record(path: Path, data: object, role: str = "output") -> None:
    """A small JSON file (an approval), written like every output: the name checked (never
    through a link), staged in a private folder, synced, renamed into place."""
    check_writable(path, role)
    staging = _Staging(path.parent)
    try:
        staged = staging.open() / f"0{_PART}"
        with _reported(path):
            _write_new(staged, (json_text(data, sort_keys=True) + "\n").encode("utf-8"))
        _rename(staged, path)
    finally:
        staging.close()


def write_text(path: Path, text: str, role: str, suffixes: Sequence[str]) -> None:
    """A text file (an HTML report) in UTF-8, written like every output: the name checked (never
    through a link), staged in a private folder, synced, renamed into place."""
    check_writable(path, role, suffixes)
    staging = _Staging(path.parent)
    try:
        staged = staging.open() / f"0{_PART}"
        with _reported(path):
            _write_new(staged, text.encode("utf-8"))
        _keep_mode(staged, path)
        _rename(staged, path)
    finally:
        staging.close()


def replace_text(path: Path, text: str, expected: bytes | None = None) -> Path:
    """Rewrite a text file in one step (for `fmt`): staged beside it and renamed over it, with
    the file's permission bits (and owner and group, where the user may set them).

    A file nobody may write (mode 0444, say) is refused, not replaced: renaming over it would
    ignore what its mode says. With `expected` (the bytes the new text was made from), the file
    is read again just before the rename, and left alone if it changed meanwhile (saved from an
    editor while fmt worked): fmt would otherwise throw that save away.

    A symbolic link is kept: the file it points to is rewritten, in its own folder. A file with
    several hard links is replaced under this name only (the others keep the old text).
    Returns the file rewritten.
    """
    target = Path(os.path.realpath(path))
    try:
        st = os.stat(target)
    except OSError as error:
        raise OutputError(f"{path}: {error.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise OutputError(f"{path}: not a regular file")
    if not st.st_mode & 0o222:
        raise OutputError(
            f"{path}: the file is read-only (mode {stat.S_IMODE(st.st_mode):04o}); left as it "
            "is: make it writable to format it"
        )
    effective = os.access in os.supports_effective_ids
    if not os.access(target, os.W_OK, effective_ids=effective):
        raise OutputError(f"{path}: you may not write this file; left as it is")
    _check_replaceable(target, "rule file", "have its owner format it")
    staging = _Staging(target.parent)
    try:
        staged = staging.open() / f"0{_PART}"
        with _reported(path), _open_new(staged, 0o600) as handle:
            handle.write(text.encode("utf-8"))
            handle.flush()
            with contextlib.suppress(OSError):
                os.fchown(handle.fileno(), st.st_uid, st.st_gid)
            os.fchmod(handle.fileno(), stat.S_IMODE(st.st_mode))
            os.fsync(handle.fileno())
        if expected is not None and _current_bytes(target) != expected:
            raise OutputError(
                f"{path}: the file changed while fmt was formatting it (saved from an editor?); "
                "left as it is: run fmt again"
            )
        _rename(staged, target)
    finally:
        staging.close()
    return target


def _current_bytes(path: Path) -> bytes | None:
    """The file's bytes now; None if it is gone or no longer a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | _O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return handle.read()


# ---------------------------------------------------------------- JSON and digests


def json_text(data: object, *, indent: int | None = 2, sort_keys: bool = False) -> str:
    """JSON as we print and write it: UTF-8 text kept as is, and never NaN or Infinity (Python
    writes them by default; most JSON readers reject them)."""
    try:
        return json.dumps(
            data, ensure_ascii=False, indent=indent, sort_keys=sort_keys, allow_nan=False
        )
    except ValueError:
        where = _nonfinite(data, "")
        raise OutputError(
            f"JSON cannot hold {where or 'a value'}: it is not a finite number (too large, or "
            "not a number); check the numbers in the configuration"
        ) from None


def _nonfinite(data: object, where: str) -> str | None:
    if isinstance(data, float) and not math.isfinite(data):
        return f"{where or 'the value'} = {data}"
    items: Iterable[tuple[str, object]] = ()
    if isinstance(data, Mapping):
        items = ((f"{where}.{k}" if where else str(k), v) for k, v in data.items())
    elif isinstance(data, (list, tuple)):
        items = ((f"{where}[{i}]", v) for i, v in enumerate(data))
    for key, value in items:
        found = _nonfinite(value, key)
        if found:
            return found
    return None


def digest_file(path: Path) -> str:
    """The sha256 of a file's bytes, read in blocks."""
    part = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            part.update(block)
    return part.hexdigest()


def digest_files(paths: Iterable[Path]) -> str:
    """One digest of several files: the sha256 of their digests, in order."""
    h = hashlib.sha256()
    for path in paths:
        h.update(bytes.fromhex(digest_file(path)))
    return h.hexdigest()


def digest_text(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()
