"""The contact ledger: a real SQLite file, each acknowledged message once, migrations, and clear
errors for a ledger that is locked, damaged or newer than this retentionrules."""

from __future__ import annotations

import datetime as dt
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from retentionrules.ledger import VERSION, Contact, Ledger, LedgerError, imported_key, message_key

UTC = dt.timezone.utc
SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def contact(customer: str, rule: str = "r", plan: str = "p1", at: dt.datetime | None = None):
    return Contact(
        message_key(plan, customer, rule),
        customer,
        " SMS ",
        at or dt.datetime(2026, 11, 22, 10, 0, tzinfo=SHANGHAI),
        plan,
        rule,
        "t",
    )


def test_each_message_is_recorded_once_however_often_it_is_acknowledged(tmp_path):
    path = tmp_path / "ledger.sqlite"
    with Ledger(path) as ledger:
        assert ledger.record([contact("C1"), contact("C2")]) == 2
        assert ledger.record([contact("C2"), contact("C3")]) == 1  # C2 acknowledged again
        assert ledger.keys("p1") == {message_key("p1", c, "r") for c in ("C1", "C2", "C3")}
        assert ledger.keys("other") == set()
    with Ledger(path) as again:  # durable across opens
        stored = sorted(again.contacts(), key=lambda c: c.customer_id)
    assert [c.customer_id for c in stored] == ["C1", "C2", "C3"]
    assert stored[0].channel == "sms"  # channels are stored as plans compare them
    assert stored[0].sent_at == dt.datetime(2026, 11, 22, 2, 0, tzinfo=UTC)


def test_the_ledger_is_sqlite_in_wal_mode_with_a_schema_version(tmp_path):
    path = tmp_path / "ledger.sqlite"
    Ledger(path).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert db.execute("PRAGMA user_version").fetchone() == (VERSION,)


def test_a_ledger_from_a_newer_version_is_refused_not_misread(tmp_path):
    path = tmp_path / "ledger.sqlite"
    Ledger(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(LedgerError, match="newer retentionrules"):
        Ledger(path)


def test_a_file_that_is_not_a_ledger_gets_a_clear_message(tmp_path):
    path = tmp_path / "ledger.sqlite"
    path.write_bytes(b"this is not a database, it is a note to self\n" * 100)
    with pytest.raises(LedgerError, match="not a retentionrules ledger, or damaged"):
        Ledger(path)


def test_a_ledger_locked_by_another_process_is_reported_not_waited_for_forever(tmp_path):
    path = tmp_path / "ledger.sqlite"
    Ledger(path).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
                import sqlite3, sys, time
                db = sqlite3.connect({str(path)!r}, isolation_level=None)
                db.execute("BEGIN EXCLUSIVE")
                print("locked", flush=True)
                time.sleep(30)
            """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with Ledger(path, timeout=0.5) as ledger, pytest.raises(LedgerError, match="locked"):
            ledger.record([contact("C1")])
    finally:
        holder.kill()
        holder.wait()


def test_keys_are_stable_and_distinct():
    assert message_key("p", "C1", "r") == message_key("p", "C1", "r")
    keys = {message_key("p", "C1", "r"), message_key("p", "C1", "s"), message_key("q", "C1", "r")}
    assert len(keys) == 3
    # the separator cannot be forged by ids that contain the other parts
    assert message_key("p", "C1\x1fr", "") != message_key("p", "C1", "r\x1f")
    moment = dt.datetime(2026, 11, 22, 10, 0, tzinfo=SHANGHAI)
    assert imported_key("C1", "sms", None, moment) == imported_key(
        "C1", "sms", None, moment.astimezone(UTC)
    )


def test_times_without_a_zone_are_refused(tmp_path):
    with Ledger(tmp_path / "l.sqlite") as ledger, pytest.raises(ValueError, match="time zone"):
        ledger.record([contact("C1", at=dt.datetime(2026, 11, 22, 10, 0))])
