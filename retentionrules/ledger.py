"""The contact ledger: one row for every message a receiver acknowledged, in SQLite.

`send` records a message here in the same transaction as it learns the receiver took it, and
never sends a message whose idempotency key is here; the next `plan` reads the ledger as contact
history, so the quiet period and the caps see what was just sent. Sends made by other systems
come in with `ledger import`.

SQLite in WAL mode: readers (a plan) never block the writer (a send), a send commits each batch
durably (`synchronous = FULL`) before it asks for the next, and a kill -9 at any instant leaves
the last committed batch and nothing half-written. The schema carries a version
(`PRAGMA user_version`) and is migrated forward on open; a ledger from a newer retentionrules is
refused rather than misread.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import DataError

LEDGER_NAME = "retentionrules-ledger.sqlite"
SOURCES = ("send", "import")

# Each migration takes the schema from the version before it to its own number; a new version
# appends one, never edits an old one.
MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
        CREATE TABLE contacts (
            idempotency_key TEXT PRIMARY KEY,  -- sha256 of plan id, customer and rule
            plan_id TEXT,                      -- NULL for imported contacts
            customer_id TEXT NOT NULL,
            rule TEXT,
            channel TEXT NOT NULL,             -- lower-cased, as plans compare channels
            template TEXT,
            sent_at TEXT NOT NULL,             -- ISO 8601 in UTC, e.g. 2026-11-22T01:30:00+00:00
            source TEXT NOT NULL CHECK (source IN ('send', 'import')),
            recorded_at TEXT NOT NULL          -- when this row was written, ISO 8601 in UTC
        );
        CREATE INDEX contacts_customer ON contacts (customer_id, sent_at);
        CREATE INDEX contacts_sent_at ON contacts (sent_at);
        CREATE INDEX contacts_plan ON contacts (plan_id);
        """,
    ),
)
VERSION = MIGRATIONS[-1][0]


class LedgerError(DataError):
    """The ledger cannot be used: locked too long, not a ledger, or from a newer version."""


@dataclass(frozen=True, slots=True)
class Contact:
    """One message a receiver acknowledged (or another system reported sending)."""

    idempotency_key: str
    customer_id: str
    channel: str
    sent_at: dt.datetime  # aware
    plan_id: str | None = None
    rule: str | None = None
    template: str | None = None
    source: str = "send"


def message_key(plan_id: str, customer_id: str, rule: str) -> str:
    """The idempotency key of one planned message: the same in every run of `send` for the
    plan, so a receiver can drop a repeat and the ledger can never hold a message twice."""
    return _key("message", plan_id, customer_id, rule)


def imported_key(customer_id: str, channel: str, rule: str | None, sent_at: dt.datetime) -> str:
    """An imported contact's key: importing the same file twice records it once."""
    return _key("import", customer_id, channel.strip().lower(), rule or "", _utc(sent_at))


def _key(*parts: str) -> str:
    """128 bits of the sha256 of the parts, encoded so that no part can pass for another."""
    text = json.dumps(parts, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _utc(moment: dt.datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("a ledger time needs a time zone")
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="seconds")


def _problem(path: Path, error: sqlite3.Error) -> LedgerError:
    text = str(error)
    if "locked" in text or "busy" in text:
        return LedgerError(f"{path}: the ledger is locked by another process ({text}); try again")
    if "not a database" in text or "malformed" in text or "no such table" in text:
        return LedgerError(
            f"{path}: not a retentionrules ledger, or damaged ({text}); move it aside and "
            "`ledger import` a contact-history export into a new one"
        )
    if "readonly" in text or "unable to open" in text or "disk" in text or "full" in text:
        return LedgerError(f"{path}: cannot write the ledger ({text})")
    return LedgerError(f"{path}: ledger error: {text}")


class Ledger:
    """An open ledger. Use as a context manager; every method commits before it returns."""

    def __init__(self, path: Path, *, create: bool = True, timeout: float = 30.0) -> None:
        self.path = Path(path)
        if not create and not self.path.exists():
            raise LedgerError(f"{self.path}: no ledger there")
        try:
            self.db = sqlite3.connect(
                self.path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as error:
            raise _problem(self.path, error) from None
        try:
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = FULL")
            self._migrate()
        except sqlite3.Error as error:
            self.db.close()
            raise _problem(self.path, error) from None
        except LedgerError:
            self.db.close()
            raise

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
        except sqlite3.Error as error:
            raise _problem(self.path, error) from None

    def _migrate(self) -> None:
        (version,) = self.db.execute("PRAGMA user_version").fetchone()
        if version > VERSION:
            raise LedgerError(
                f"{self.path}: the ledger has schema version {version}, written by a newer "
                f"retentionrules (this one knows up to {VERSION}); upgrade retentionrules"
            )
        if version == VERSION:
            return
        with self._transaction() as db:
            (version,) = db.execute("PRAGMA user_version").fetchone()  # another may have won
            for number, script in MIGRATIONS:
                if number > version:
                    for statement in script.split(";"):
                        if statement.strip():
                            db.execute(statement)
                    db.execute(f"PRAGMA user_version = {int(number)}")

    # ------------------------------------------------------------ writing

    def record(self, contacts: Iterable[Contact], now: dt.datetime | None = None) -> int:
        """Record contacts in one transaction; a key already there is kept as it was. Returns
        how many rows were new."""
        stamp = _utc(now or dt.datetime.now(dt.timezone.utc))
        rows = [
            (
                c.idempotency_key,
                c.plan_id,
                c.customer_id,
                c.rule,
                c.channel.strip().lower(),
                c.template,
                _utc(c.sent_at),
                c.source,
                stamp,
            )
            for c in contacts
        ]
        with self._transaction() as db:
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO contacts (idempotency_key, plan_id, customer_id, rule, "
                "channel, template, sent_at, source, recorded_at) VALUES (?,?,?,?,?,?,?,?,?)",
                rows,
            )
            return db.total_changes - before

    # ------------------------------------------------------------ reading

    def _query(self, sql: str, parameters: Sequence[object] = ()) -> list[tuple[object, ...]]:
        try:
            return self.db.execute(sql, parameters).fetchall()
        except sqlite3.Error as error:
            raise _problem(self.path, error) from None

    def keys(self, plan_id: str) -> set[str]:
        """The idempotency keys of a plan's messages already acknowledged."""
        rows = self._query("SELECT idempotency_key FROM contacts WHERE plan_id = ?", [plan_id])
        return {str(key) for (key,) in rows}

    def contacts(self) -> Iterator[Contact]:
        """Every contact, oldest first."""
        for row in self._query(
            "SELECT idempotency_key, customer_id, channel, sent_at, plan_id, rule, template, "
            "source FROM contacts ORDER BY sent_at, idempotency_key"
        ):
            key, customer, channel, sent_at, plan_id, rule, template, source = row
            yield Contact(
                str(key),
                str(customer),
                str(channel),
                dt.datetime.fromisoformat(str(sent_at)),
                None if plan_id is None else str(plan_id),
                None if rule is None else str(rule),
                None if template is None else str(template),
                str(source),
            )

    def history(self, since: dt.datetime) -> list[tuple[str, str, str | None, str]]:
        """(customer, channel, rule, sent_at) of every contact at or after `since`, and of each
        customer's latest contact before it (which `last_contacted` needs): what a plan reads."""
        moment = _utc(since)
        rows = self._query(
            "SELECT customer_id, channel, rule, sent_at FROM contacts WHERE sent_at >= ? "
            "UNION ALL "
            "SELECT customer_id, channel, rule, max(sent_at) FROM contacts WHERE sent_at < ? "
            "GROUP BY customer_id "
            "ORDER BY 1, 4, 2, 3",
            [moment, moment],
        )
        return [
            (str(c), str(ch), None if r is None else str(r), str(at)) for c, ch, r, at in rows
        ]

    def count(self) -> int:
        ((count,),) = self._query("SELECT count(*) FROM contacts")
        assert isinstance(count, int)
        return count


def ledger_path(config_source: str | None, setting: str | None) -> Path:
    """Where a project's ledger lives: `[ledger] path` (relative to the configuration file's
    folder), else `retentionrules-ledger.sqlite` beside the configuration, else (a project
    without a configuration file) in the current folder."""
    folder = Path(config_source).parent if config_source else Path.cwd()
    return folder / (setting or LEDGER_NAME)
