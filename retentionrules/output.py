"""Writing results: atomically, in the format the file name asks for, byte-identical on rerun."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

import duckdb

from .errors import OutputError
from .sql import literal

FORMATS = {
    ".jsonl": "(FORMAT JSON)",
    ".ndjson": "(FORMAT JSON)",
    ".json": "(FORMAT JSON)",
    ".csv": "(FORMAT CSV, HEADER)",
    ".parquet": "(FORMAT PARQUET)",
}


def check_writable(path: Path) -> None:
    """Fail before any work when the output could not be written anyway."""
    if path.suffix.lower() not in FORMATS:
        raise OutputError(f"{path}: unknown output type; use .jsonl, .csv or .parquet")
    if not path.parent.is_dir():
        raise OutputError(f"{path.parent}: no such folder")


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def write_query(con: duckdb.DuckDBPyConnection, query: str, path: Path) -> None:
    """COPY the query's rows to `path`: written beside it first, then renamed into place."""
    check_writable(path)
    temporary = _temporary(path)
    try:
        con.execute(f"COPY ({query}) TO {literal(str(temporary))} {FORMATS[path.suffix.lower()]}")
        if not temporary.exists():  # DuckDB writes no file for zero JSON rows
            temporary.write_bytes(b"")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    temporary = _temporary(path)
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_json(path: Path, data: object) -> None:
    write_text(path, json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True) + "\n")


def sidecar(path: Path) -> Path:
    """The plan's header: `plan.jsonl` -> `plan.jsonl.meta.json`."""
    return path.with_name(path.name + ".meta.json")


def digest_files(paths: Iterable[Path]) -> str:
    h = hashlib.sha256()
    for path in paths:
        part = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                part.update(block)
        h.update(part.digest())
    return h.hexdigest()


def digest_text(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()
