"""Approving a plan and sending it: exactly once, inside each channel's send window.

approve  checks that the plan, its header and the digests agree and that the plan is recent
         enough, then writes `PLAN.approval.json` beside it.
send     refuses an unapproved plan or one changed since approval; joins each message's address
         from the customer export given now (the plan holds ids only); re-checks consent against
         that export; defers what falls outside its channel's window; and hands the rest to the
         receiver in batches, recording each acknowledged batch in the ledger before the next.

Exactly once, as far as a sender can promise it: a message's idempotency key is fixed by (plan,
customer, rule); a message whose key is in the ledger is never sent again; a kill at any instant
loses at most the acknowledgement of the batch in flight, which the next run sends again under
the same keys (a receiver drops the repeat by key). One send per plan at a time (a lock).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import hashlib
import json
import os
import tempfile
import zoneinfo
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import Channel, Config
from .delivery import DeliveryError, Transport
from .errors import DataError, UsageError
from .ledger import Contact, Ledger, ledger_path, message_key
from .loader import Inputs, connect, load
from .output import HEADER_SUFFIX, open_plan, undefuse, write_record
from .sql import ident, literal
from .timeutil import shift

APPROVAL_SUFFIX = ".approval.json"
SEND_LOCK_SUFFIX = ".send.lock"

# Why a planned message was not handed to the receiver in this run.
HELD_OUT = "holdout"  # the control group: never sent
NOTHING_TO_SEND = "tag"  # a tag reaches nobody
ALREADY_SENT = "already_sent"  # acknowledged by an earlier run (in the ledger)
WITHDRAWN = "consent_withdrawn"  # consent given at planning, gone in today's export
MISSING = "customer_missing"  # not in today's export
NO_ADDRESS = "no_address"  # no phone number, e-mail address ... in today's export
DEFERRED = "deferred"  # outside the channel's send window: a later run sends it
FAILED = "failed"  # the receiver did not acknowledge it (this run stopped)


class SendError(DataError):
    """The run cannot go on (exit 1): the reason is in the message."""


def approval_file(plan: Path) -> Path:
    return plan.with_name(plan.name + APPROVAL_SUFFIX)


# ---------------------------------------------------------------- reading a plan


@dataclass(frozen=True)
class PlannedMessage:
    customer_id: str
    rule: str
    action: str
    template: str
    channel: str | None
    parameters: dict[str, Any]
    holdout: bool
    cost: float


def _read_plan(path: Path) -> tuple[dict[str, Any], list[PlannedMessage]]:
    """The verified header and every row of the plan, read from the very file whose digest the
    header vouches for (a plan replaced meanwhile cannot slip in)."""
    if not path.exists() and not path.is_symlink():  # a typo in the name: usage, not a bad plan
        raise UsageError(f"{path}: no such plan")
    with open_plan(path) as verified, tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / ("plan" + path.suffix.lower())
        with copy.open("wb") as handle:
            verified.file.seek(0)
            while block := verified.file.read(1 << 20):
                handle.write(block)
        header = verified.header
        try:
            rows = _rows(copy)
        except DataError as error:
            raise DataError(f"{path}: {error}") from None
    if header.get("format_version", 0) < 3 or "config" not in header:
        raise SendError(
            f"{path}: this plan was written by an older retentionrules (format "
            f"{header.get('format_version')}); plan it again to approve and send it"
        )
    return header, rows


def read_plan(path: Path) -> tuple[dict[str, Any], list[PlannedMessage]]:
    """A plan's verified header and its rows, as `approve` and `send` read them (for `report`)."""
    return _read_plan(path)


def _rows(copy: Path) -> list[PlannedMessage]:
    """The plan's rows, read back exactly as written (docs/engine.md, Outputs): JSON lines as
    JSON, CSV with its byte order mark and defused cells undone, Parquet by its types."""
    records: list[dict[str, Any]]
    if copy.suffix == ".parquet":
        con = connect()
        cursor = con.execute(
            f"SELECT * REPLACE (CAST(parameters AS VARCHAR) AS parameters) "
            f"FROM read_parquet({literal(str(copy))})"
        )
        names = [d[0] for d in cursor.description]
        records = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    elif copy.suffix == ".csv":
        with copy.open(encoding="utf-8-sig", newline="") as handle:
            records = [
                {undefuse(k): undefuse(v) for k, v in row.items()}
                for row in csv.DictReader(handle)
            ]
        for record in records:
            record["holdout"] = record["holdout"] == "true"
    else:
        with copy.open(encoding="utf-8") as handle:
            try:
                records = [json.loads(line) for line in handle if line.strip()]
            except (ValueError, RecursionError) as error:
                raise DataError(f"not a plan: a line is not JSON ({error})") from None
    found = []
    for number, record in enumerate(records, 1):
        try:
            parameters = record["parameters"]
            found.append(
                PlannedMessage(
                    str(record["customer_id"]),
                    str(record["rule"]),
                    str(record["action"]),
                    str(record["template"]),
                    record["channel"] or None,
                    json.loads(parameters) if isinstance(parameters, str) else dict(parameters),
                    bool(record["holdout"]),
                    float(record["estimated_cost"] or 0),
                )
            )
        except (KeyError, TypeError, ValueError, RecursionError) as error:  # a hand-made plan
            why = f"{type(error).__name__}: {error}"
            raise DataError(f"row {number}: not a plan row ({why})") from None
    return found


def _config(header: dict[str, Any]) -> Config:
    config = Config.model_validate(header["config"])
    return config.model_copy(update={"source": header.get("config_source")})


# ---------------------------------------------------------------- approve


@dataclass
class Approval:
    plan: Path
    header: dict[str, Any]
    record: dict[str, Any]
    by_channel: dict[str, tuple[int, float]]  # channel -> (messages, cost), holdouts excluded
    holdout: int
    written: Path


def approve(
    plan: Path,
    by: str,
    note: str | None = None,
    now: dt.datetime | None = None,
) -> Approval:
    """Check the plan and record its approval beside it; SendError (exit 1) says why not."""
    header, rows = _read_plan(plan)
    config = _config(header)
    moment = _now(now, config)
    as_of = dt.date.fromisoformat(header["as_of"])
    last_day = shift(as_of, config.approval.max_age)
    if moment.date() > last_day:
        raise SendError(
            f"{plan}: the plan is for {as_of.isoformat()}; a plan can be approved until "
            f"{config.approval.max_age} after its as-of date ({last_day.isoformat()}), and today "
            f"is {moment.date().isoformat()}. Plan again with today's data "
            "(or change [approval] max_age)"
        )
    if not by.strip():
        raise UsageError("--by: say who approves the plan")
    record = {
        "plan_id": header["plan_id"],
        "plan_sha256": header["plan_sha256"],
        "approved_by": by.strip(),
        "approved_at": moment.isoformat(timespec="seconds"),
        "note": note,
    }
    written = approval_file(plan)
    write_record(written, record, "the approval")
    by_channel: dict[str, tuple[int, float]] = {}
    for row in rows:
        if not row.holdout:
            count, cost = by_channel.get(row.channel or "(tag)", (0, 0.0))
            by_channel[row.channel or "(tag)"] = (count + 1, cost + row.cost)
    holdout = sum(row.holdout for row in rows)
    return Approval(plan, header, record, by_channel, holdout, written)


def _approved(plan: Path, header: dict[str, Any]) -> dict[str, Any]:
    path = approval_file(plan)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SendError(
            f"{plan}: the plan is not approved; review it, then "
            f"`retentionrules approve {plan} --by NAME`"
        ) from None
    except (OSError, ValueError) as error:
        raise SendError(f"{path}: cannot read the approval: {error}") from None
    except RecursionError:
        raise SendError(f"{path}: not an approval: JSON nested too deep") from None
    if not _an_approval(record):
        raise SendError(
            f"{path}: not an approval (a JSON object of `retentionrules approve`: plan_id, "
            "plan_sha256, approved_by, approved_at as an ISO date and time); approve the plan "
            "again"
        )
    if record.get("plan_sha256") != header["plan_sha256"]:
        raise SendError(
            f"{plan}: the plan changed after it was approved (its digest is not the one "
            f"{path.name} approved); review and approve it again"
        )
    if record.get("plan_id") != header["plan_id"]:
        raise SendError(f"{path}: the approval names plan {record.get('plan_id')}, not this one")
    approved: dict[str, Any] = record
    return approved


def _an_approval(record: object) -> bool:
    """Whether `record` has the shape `approve` writes (a hand-made file may not)."""
    if not isinstance(record, dict):
        return False
    fields = ("plan_id", "plan_sha256", "approved_by", "approved_at")
    if not all(isinstance(record.get(name), str) for name in fields):
        return False
    try:
        dt.datetime.fromisoformat(record["approved_at"])
    except ValueError:
        return False
    return True


def approval_status(plan: Path, header: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """The approval of a verified plan as `send` would judge it: (the record, None) when
    approved, (None, None) when there is no approval, (None, why not) when there is one that
    does not approve this plan."""
    if not approval_file(plan).exists():
        return None, None
    try:
        return _approved(plan, header), None
    except SendError as error:
        return None, str(error)


# ---------------------------------------------------------------- windows and clocks


def _now(now: dt.datetime | None, config: Config) -> dt.datetime:
    """The moment of this run, aware, in the shop's time zone (`--now` pins it)."""
    zone = zoneinfo.ZoneInfo(config.timezone)
    if now is None:
        return dt.datetime.now(zone)
    return (now if now.tzinfo else now.replace(tzinfo=zone)).astimezone(zone)


def window_opens(channel: Channel, moment: dt.datetime) -> dt.datetime | None:
    """None when `moment` (aware, in the customer's zone) is inside the channel's send window;
    otherwise the next moment the window opens, in that zone."""
    window = channel.window()
    if window is None:
        return None
    start, end = window
    local = moment.timetz().replace(tzinfo=None)
    if end is None:
        inside = local >= start
    elif start < end:
        inside = start <= local < end
    else:  # runs over midnight
        inside = local >= start or local < end
    if inside:
        return None
    day = moment.date() if local < start else moment.date() + dt.timedelta(days=1)
    opens = dt.datetime.combine(day, start)
    zone = moment.tzinfo
    assert zone is not None
    return opens.replace(tzinfo=zone)


# ---------------------------------------------------------------- send


@dataclass
class ChannelTally:
    counts: Counter[str] = field(default_factory=Counter)
    cost: float = 0.0  # of the messages sent in this run


@dataclass
class SendReport:
    plan_id: str
    transport: str
    dry_run: bool
    channels: dict[str, ChannelTally]
    deferred_until: dt.datetime | None
    problems: list[str]  # why the run stopped early, if it did
    not_sent: list[tuple[str, str, str]]  # (customer, rule, reason) for the reasons people act on
    customers_changed: bool  # the customer export is not the one planned from

    def total(self, reason: str) -> int:
        return sum(t.counts[reason] for t in self.channels.values())


def _tally(report: SendReport, channel: str | None) -> ChannelTally:
    return report.channels.setdefault(channel or "(tag)", ChannelTally())


@contextlib.contextmanager
def _exclusive(plan: Path) -> Iterator[None]:
    """One send per plan at a time: a second one is refused at once, never interleaved."""
    import fcntl

    path = plan.with_name(plan.name + SEND_LOCK_SUFFIX)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SendError(
                f"{plan}: another `send` of this plan is running; wait for it to finish"
            ) from None
        yield
    finally:
        os.close(descriptor)


def _customers(
    config: Config, path: Path, channels: set[str], ids: set[str], as_of: dt.date
) -> dict[str, dict[str, Any]]:
    """Today's consent, address and time zone of the planned customers, from the export."""
    schema = config.customers
    wanted = {schema.id}
    for name in channels:
        channel = config.channels.get(name)
        if channel is None:
            raise SendError(f"channel {name!r} of the plan is not in the plan's configuration")
        wanted |= {f for f in (channel.consent, channel.address) if f}
    if schema.timezone:
        wanted.add(schema.timezone)
    con = connect()
    load(con, config, Inputs(path), as_of, needed=wanted)
    con.execute("CREATE TEMP TABLE wanted (id VARCHAR)")
    con.executemany("INSERT INTO wanted VALUES (?)", [[i] for i in ids])
    columns = sorted(wanted)
    rows = con.execute(
        f"SELECT {', '.join('c.' + ident(c) for c in columns)} FROM customers c "
        f"JOIN wanted w ON w.id = c.{ident(schema.id)}"
    ).fetchall()
    return {row[columns.index(schema.id)]: dict(zip(columns, row, strict=True)) for row in rows}


def _batch_key(messages: Sequence[dict[str, Any]]) -> str:
    keys = "\n".join(sorted(m["idempotency_key"] for m in messages))
    return hashlib.sha256(keys.encode()).hexdigest()[:32]


def send(
    plan: Path,
    customers: Path,
    transport: Callable[[str], Transport] | None,
    *,
    now: dt.datetime | None = None,
    batch: int = 100,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> SendReport:
    """Send an approved plan; see the module docstring. `transport` makes the receiver for the
    plan id (None with dry_run). Returns what happened to every message, by channel."""
    if batch < 1:
        raise UsageError("--batch must be at least 1")
    header, rows = _read_plan(plan)
    _approved(plan, header)
    config = _config(header)
    plan_id = header["plan_id"]
    moment = _now(now, config)
    with _exclusive(plan):
        ledger_file = ledger_path(config.source, config.ledger.path)
        sendable = [r for r in rows if not r.holdout and r.channel is not None]
        today = _customers(
            config,
            customers,
            {r.channel for r in sendable if r.channel},
            {r.customer_id for r in sendable},
            moment.date(),
        )
        report = SendReport(
            plan_id,
            "(dry run)" if transport is None else "",
            dry_run,
            {},
            None,
            [],
            [],
            _customers_changed(header, customers),
        )
        with Ledger(ledger_file) as ledger:
            done = ledger.keys(plan_id)
            ready: list[tuple[PlannedMessage, dict[str, Any]]] = []
            for row in rows:
                tally = _tally(report, row.channel)
                reason, message = _classify(row, config, today, done, plan_id, moment, report)
                if reason is None:
                    ready.append((row, message))
                else:
                    tally.counts[reason] += 1
                    if reason in (WITHDRAWN, MISSING, NO_ADDRESS):
                        report.not_sent.append((row.customer_id, row.rule, reason))
            if dry_run or transport is None:
                for row, _message in ready:
                    _tally(report, row.channel).counts["would_send"] += 1
                return report
            receiver = transport(plan_id)
            report.transport = receiver.describe()
            def clock() -> dt.datetime:  # when a batch was acknowledged: pinned, or now
                return moment if now is not None else _now(None, config)

            _deliver(receiver, ledger, ready, batch, clock, plan_id, report, progress)
    return report


def _classify(
    row: PlannedMessage,
    config: Config,
    today: dict[str, dict[str, Any]],
    done: set[str],
    plan_id: str,
    moment: dt.datetime,
    report: SendReport,
) -> tuple[str | None, dict[str, Any]]:
    if row.holdout:
        return HELD_OUT, {}
    if row.channel is None:
        return NOTHING_TO_SEND, {}
    key = message_key(plan_id, row.customer_id, row.rule)
    if key in done:
        return ALREADY_SENT, {}
    customer = today.get(row.customer_id)
    if customer is None:
        return MISSING, {}
    channel = config.channels[row.channel]
    if channel.requires_consent and customer.get(channel.consent or "") is not True:
        return WITHDRAWN, {}
    address = customer.get(channel.address) if channel.address else None
    if not address:
        return NO_ADDRESS, {}
    zone = moment.tzinfo
    field_zone = config.customers.timezone
    if field_zone and customer.get(field_zone):
        try:
            zone = zoneinfo.ZoneInfo(str(customer[field_zone]).strip())
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise SendError(
                f"customer {row.customer_id}: {field_zone} {customer[field_zone]!r} is not a "
                "time zone (use names such as Asia/Shanghai)"
            ) from None
    opens = window_opens(channel, moment.astimezone(zone))
    if opens is not None:
        if report.deferred_until is None or opens < report.deferred_until:
            report.deferred_until = opens
        return DEFERRED, {}
    return None, {
        "idempotency_key": key,
        "plan_id": plan_id,
        "customer_id": row.customer_id,
        "rule": row.rule,
        "action": row.action,
        "template": row.template,
        "channel": row.channel,
        "address": address,
        "parameters": row.parameters,
    }


def _deliver(
    receiver: Transport,
    ledger: Ledger,
    ready: list[tuple[PlannedMessage, dict[str, Any]]],
    batch: int,
    clock: Callable[[], dt.datetime],
    plan_id: str,
    report: SendReport,
    progress: Callable[[int, int], None] | None,
) -> None:
    """Batch by batch: deliver, then record in the ledger, then the next batch."""
    for start in range(0, len(ready), batch):
        chunk = ready[start : start + batch]
        messages = [message for _row, message in chunk]
        try:
            receiver.deliver(messages, _batch_key(messages))
        except DeliveryError as error:
            for row, _message in ready[start:]:
                _tally(report, row.channel).counts[FAILED] += 1
            report.problems.append(str(error))
            return
        acknowledged = clock()
        ledger.record(
            Contact(
                m["idempotency_key"],
                m["customer_id"],
                m["channel"],
                acknowledged,
                plan_id,
                m["rule"],
                m["template"],
            )
            for m in messages
        )
        for row, _message in chunk:
            tally = _tally(report, row.channel)
            tally.counts["sent"] += 1
            tally.cost += row.cost
        if progress is not None:
            progress(start + len(chunk), len(ready))


def _customers_changed(header: dict[str, Any], customers: Path) -> bool:
    """Whether the export given now is not the one the plan was made from (expected: consent
    and addresses are read fresh; said in the summary so nobody is surprised)."""
    digests = header.get("input_digests") or {}
    planned = digests.get("customers")
    if planned is None:
        return True
    digest = hashlib.sha256()
    with customers.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return bool(digest.hexdigest() != planned)


__all__ = [
    "ALREADY_SENT",
    "DEFERRED",
    "FAILED",
    "HEADER_SUFFIX",
    "MISSING",
    "NO_ADDRESS",
    "WITHDRAWN",
    "Approval",
    "SendReport",
    "approve",
    "send",
]
