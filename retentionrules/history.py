"""Contact history in and out of the ledger.

- `ledger_history` gives a plan what the ledger knows, as a contact-history file the loader reads
  like `--contacts` (so the same validation, time zones and normalisation apply): every contact
  recent enough for a cap or the quiet period, and each customer's latest for `last_contacted`.
- `export_ledger` writes the whole ledger as a contact-history file (`ledger export`).
- `import_history` records a contact-history file of another system (`ledger import`).
"""

from __future__ import annotations

import csv
import datetime as dt
import tempfile
import zoneinfo
from pathlib import Path

from . import ir
from .api import config_for_data
from .config import Config
from .errors import DataError, UsageError
from .ledger import Contact, Ledger, imported_key, ledger_path
from .loader import Inputs, connect, load
from .output import Outputs
from .timeutil import MAX_DATE, MIN_DATE, shift

HISTORY_COLUMNS = ("customer_id", "channel", "rule", "sent_at")
EXPORT_COLUMNS = (*HISTORY_COLUMNS, "template", "plan_id", "idempotency_key", "source")


def ledger_of(config: Config) -> Path:
    """The ledger of the project whose configuration this is."""
    return ledger_path(config.source, config.ledger.path)


def _oldest_needed(ruleset: ir.RuleSet, as_of: dt.date) -> dt.date:
    """The earliest day a cap or the quiet period can look back to from `as_of`, less two days:
    the ledger keeps UTC, and a shop's local date may be a day either side."""
    config = ruleset.config
    windows = [c.cap.per for c in config.channels.values() if c.cap is not None]
    windows += [rule.cap[1] for rule in ruleset.rules if rule.cap is not None]
    if config.contacts.quiet_period is not None:
        windows.append(config.contacts.quiet_period)
    oldest = min((shift(as_of, window, -1) for window in windows), default=as_of)
    return max(MIN_DATE, oldest - dt.timedelta(days=2))


def ledger_history(
    ruleset: ir.RuleSet, as_of: dt.date, folder: Path
) -> tuple[Path, int, str] | None:
    """What the project's ledger knows that a plan as of `as_of` needs, written to a contact-
    history CSV in `folder` (the caller's private folder); with the number of contacts and the
    ledger's path. None when the project has no ledger yet."""
    path = ledger_of(ruleset.config)
    if not path.exists():
        return None
    since = dt.datetime.combine(_oldest_needed(ruleset, as_of), dt.time(), dt.timezone.utc)
    with Ledger(path, create=False) as ledger:
        rows = ledger.history(since)
    target = folder / "ledger-history.csv"
    with target.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HISTORY_COLUMNS)
        writer.writerows(rows)
    return target, len(rows), str(path)


def export_ledger(out: Path, config_path: Path | None) -> tuple[Path, int]:
    """`ledger export`: every contact, oldest first, as a contact-history file."""
    config = config_for_data(config_path)
    path = ledger_of(config)
    if not path.exists():
        raise UsageError(f"{path}: no ledger there yet (nothing has been sent)")
    outputs = Outputs([("the ledger", path)], {"--out": out})
    con = connect()
    with Ledger(path, create=False) as ledger:
        contacts = list(ledger.contacts())
    con.execute(
        "CREATE TEMP TABLE exported (customer_id VARCHAR, channel VARCHAR, rule VARCHAR, "
        "sent_at TIMESTAMPTZ, template VARCHAR, plan_id VARCHAR, idempotency_key VARCHAR, "
        "source VARCHAR)"
    )
    con.execute("SET TimeZone = 'UTC'")
    con.executemany(
        "INSERT INTO exported VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [_exported(c) for c in contacts],
    )
    outputs.write(con, {"--out": "SELECT * FROM exported"})
    return path, len(contacts)


def _exported(c: Contact) -> list[object]:
    """One ledger contact as a row of the export, in EXPORT_COLUMNS order."""
    return [
        *(c.customer_id, c.channel, c.rule, c.sent_at),
        *(c.template, c.plan_id, c.idempotency_key, c.source),
    ]


def import_history(history: Path, config_path: Path | None) -> tuple[Path, int, int]:
    """`ledger import`: record another system's contacts; the same file twice records nothing
    new. Rows are read and checked like `--contacts`, and a bad row stops the import before
    anything is recorded. A contact keeps its date in the shop's time zone (the caps and the
    quiet period count days); it is recorded at the start of that day."""
    config = config_for_data(config_path)
    path = ledger_of(config)
    zone = zoneinfo.ZoneInfo(config.timezone)
    con = connect()
    with tempfile.TemporaryDirectory(prefix="retentionrules-import-") as folder:
        nobody = Path(folder) / "customers.csv"  # the loader reads a customer export: none here
        nobody.write_text(config.customers.id + "\n", encoding="utf-8")
        inputs = Inputs(nobody, contacts=history)
        load(con, config, inputs, MAX_DATE, needed={config.customers.id})
    rows = con.execute("SELECT customer_id, channel, rule, sent_at FROM contacts").fetchall()
    contacts = []
    for customer, channel, rule, day in rows:
        if not channel:
            raise DataError(
                f"{history}: a contact of customer {customer} has no channel; nothing was imported"
            )
        moment = dt.datetime.combine(day, dt.time(), zone)
        key = imported_key(customer, channel, rule, moment)
        contacts.append(Contact(key, customer, channel, moment, None, rule, None, "import"))
    with Ledger(path) as ledger:
        new = ledger.record(contacts)
    return path, new, len(contacts)
