"""Hostile data files, as a property: whatever the spelling of ids, consents, channels, numbers
and timestamps, in CSV, JSON lines or Parquet, every value is accepted or rejected as
docs/engine.md says, nobody is planned on a channel they did not consent to, nobody contacted
within the quiet period is planned, and channel and rule caps hold.

The oracle below is written from docs/engine.md (spellings, types, time zones, ranges, ids),
in plain Python with zoneinfo; it never looks at the loader's SQL. Plans run through
`run_plan`: real files, real DuckDB.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import re
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retentionrules.engine import run_plan
from retentionrules.loader import Inputs

from .conftest import COLUMNS, write_rules

# ---------------------------------------------------------------- the documented rules

BLANKS = " \t\n\v\f\r\u00a0\u3000"
NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
DATE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:[T ]([01][0-9]|2[0-3]):([0-5][0-9])(?::([0-5][0-9])(?:\.([0-9]{1,9}))?)?"
    r"(Z|[+-](?:[01][0-9]|2[0-3])(?::?[0-5][0-9])?)?)?"
)
BOOLS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
FIRST, LAST = dt.date(1900, 1, 1), dt.date(2199, 12, 31)
BAD = object()  # a value the documentation says is bad data
AS_OF = dt.date(2026, 11, 22)

KINDS = {
    "customer_id": "id",
    "household_id": "id",
    "city": "text",
    "category": "text",
    "birthday": "date",
    "first_order_date": "activity",
    "last_order_date": "activity",
    "orders_12m": "count",
    "spend_12m": "count",
    "total_orders": "count",
    "sms_opt_in": "bool",
    "email_opt_in": "bool",
    "last_contacted": "activity",
}
CONTACT_KINDS = {"customer_id": "id", "channel": "channel", "rule": "rule", "sent_at": "sent"}


def text_date(text: str, zone: str):
    """A date spelled in text: YYYY-MM-DD, optionally a time of day and an offset."""
    text = text.strip(BLANKS)
    if not text:
        return None
    match = DATE.fullmatch(text)
    if not match:
        return BAD
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    try:
        moment = dt.datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0")[:6].ljust(6, "0")),
        )
    except ValueError:
        return BAD
    if offset:
        sign = -1 if offset.startswith("-") else 1
        digits = "0000" if offset == "Z" else offset[1:].replace(":", "").ljust(4, "0")
        delta = dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        moment = moment.replace(tzinfo=dt.timezone(sign * delta))
        return moment.astimezone(zoneinfo.ZoneInfo(zone)).date()
    return moment.date()


def whole_number_text(number) -> str:
    if isinstance(number, bool):
        return BAD
    if isinstance(number, int):
        return str(number)
    if math.isfinite(number) and number == int(number) and abs(number) <= 2**53:
        return str(int(number))
    return BAD


def interpret(kind: str, fmt: str, value, zone: str, native: str | None = None):
    """The documented meaning of one cell: a value, None (missing) or BAD."""
    if value is None:
        return None
    if (fmt == "parquet" and native != "VARCHAR") or (
        fmt == "jsonl" and not isinstance(value, str)
    ):
        value = _typed(kind, fmt, value, zone, native)
    elif kind in ("id", "rule", "channel"):
        value = value.strip(BLANKS) or None
        value = value.lower() if kind == "channel" and value else value
    elif kind == "text":
        value = value or None
    elif fmt == "jsonl" and kind in ("bool", "count"):
        return BAD  # a JSON string is neither a boolean nor a number
    elif fmt == "parquet" and kind in ("bool", "count"):
        return BAD  # a text column is neither
    elif kind == "bool":
        text = value.strip(BLANKS).lower()
        value = BOOLS.get(text, BAD) if text else None
    elif kind == "count":
        text = value.strip(BLANKS)
        if not text:
            return None
        value = float(text) if NUMBER.fullmatch(text) else BAD
        value = value if value == BAD or abs(value) < 1e15 else BAD
    else:
        value = text_date(value, zone)
    return _checked(kind, value)


def _typed(kind, fmt, value, zone, native):
    """A JSON value that is not a string, or a typed Parquet value."""
    if kind in ("id", "rule", "text", "channel"):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return whole_number_text(value)
        return BAD
    if kind == "bool":
        return value if isinstance(value, bool) and (fmt == "jsonl" or native == "BOOLEAN") else BAD
    if kind == "count":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return BAD
        return float(value) if abs(value) < 1e15 else BAD  # also NaN and the infinities
    if fmt == "jsonl":
        return BAD  # a JSON date is a string
    if native == "TIMESTAMPTZ":
        return value.astimezone(zoneinfo.ZoneInfo(zone)).date()
    if isinstance(value, dt.datetime):
        return value.date()
    return value if isinstance(value, dt.date) else BAD


def _checked(kind, value):
    if value is None or value == BAD:
        return value
    if kind == "count" and value < 0:
        return BAD
    if kind in ("date", "activity", "sent") and not FIRST <= value <= LAST:
        return BAD
    if kind == "activity" and value > AS_OF:
        return BAD
    return value


# ---------------------------------------------------------------- hostile spellings


def mostly(good, bad, weight=8):
    """Good spellings about `weight` times as often as bad ones: rows must survive to be
    planned. (one_of(good, good, bad) would not do: Hypothesis draws it half and half.)"""
    good = good if isinstance(good, st.SearchStrategy) else st.sampled_from(good)
    return st.sampled_from([False] * weight + [True]).flatmap(
        lambda wrong: st.sampled_from(bad) if wrong else good
    )


day_near = st.integers(-40, 2).map(lambda n: AS_OF + dt.timedelta(days=n))  # a few ahead


def spelled(days):
    """Dates and timestamps, mostly with a time near midnight and an offset: the date the
    shop's time zone gives them is often not the date written."""
    moments = st.builds(
        lambda d, time, offset: d.isoformat() + (time + offset if time else ""),
        days,
        st.sampled_from(["", "T00:30", "T23:30", " 15:30:00", "T16:30:00.5", "T05:00"]),
        st.sampled_from(["", "Z", "+08:00", "-05:00", "+0530", "-11", "+14:00"]),
    )
    return st.one_of(moments, moments.map(lambda t: f" {t}\t"), st.just(""))


BAD_DATES = ["epoch", "infinity", "2026-1-5", "1899-12-31", "2200-01-01", "2026-02-30"]
PAST = spelled(st.integers(-60, -1).map(lambda n: AS_OF + dt.timedelta(days=n)))
ACTIVITY = mostly(PAST, [*BAD_DATES, (AS_OF + dt.timedelta(days=1)).isoformat()], 16)
# Mostly on the borders of the quiet period (3 days) and the caps (7, 14 days), and of the
# as-of date itself (contacts after it are left out).
CAPPED = st.sampled_from([1, 0, -1, -2, -3, -4, -5, -6, -7, -8, -10, -13, -14, -15]).map(
    lambda n: AS_OF + dt.timedelta(days=n)
)
SENT = mostly(spelled(st.one_of(CAPPED, day_near)), BAD_DATES, 12)
IDS = ["C1", "C2", "C3", "C4", "C5", " C1", "C2 ", "\tC3", "\u3000C4", "5", " 6"]
TEXT = {
    "id": mostly(IDS, ["", "  "]),
    "text": st.sampled_from(["", "Shanghai", " 上海 "]),
    "bool": mostly(
        ["true", "TRUE", " Yes", "1", "yes", "false", "no", "0", ""], ["t", "2", "maybe"]
    ),
    "count": mostly(
        ["0", "12", "3.5", " 7 ", "1e3", ""], ["-1", "nan", "inf", "1_000", "2e15"], 20
    ),
    "date": mostly(["", "1992-02-29", "1990-05-05"], ["1990-02-29", "2200-01-01"], 20),
    "activity": ACTIVITY,
    "sent": SENT,
    "channel": st.sampled_from([" SMS", "sms", "Sms", "Email", "EMAIL ", "email", "push", ""]),
    "rule": st.sampled_from(
        [" sms_offer", "sms_offer", "email_offer\t", "email_offer", "SMS_OFFER", "x", ""]
    ),
}
NAN, INF = float("nan"), float("inf")
JSON = {
    "id": mostly(["C1", "C2", " C1", "C3", "C4 ", 5, 6.0], [1.5, True, None, "", [1]]),
    "text": mostly([None, "Shanghai", 12], [1.5, True], 20),
    "bool": mostly([True, True, False, None], [2, -1, "true", 1.0, 1, 0], 4),
    "count": mostly([0, 12, 3.5, None], [-1, "12", NAN, INF, 1e300], 20),
    "date": mostly([None, "1992-02-29"], ["1990-02-29", 19900505], 20),
    "activity": mostly(ACTIVITY, [20261118], 16),
    "sent": mostly(SENT, [None, 20261118], 12),
    "channel": st.sampled_from([" SMS", "sms", "Email", "email", "phone", 7, None]),
    "rule": st.sampled_from(["sms_offer ", "sms_offer", "email_offer", "call_back", 5, None]),
}
# Parquet: one type per column (mostly the right one), values of that type.
PARQUET_TYPES = {
    "id": ["VARCHAR"] * 4 + ["BIGINT", "DOUBLE"],
    "text": ["VARCHAR"],
    "bool": ["BOOLEAN"] * 12 + ["INTEGER", "VARCHAR"],
    "count": ["DOUBLE"] * 8 + ["BIGINT"] * 8 + ["VARCHAR"],
    "date": ["DATE", "VARCHAR"],
    "activity": ["DATE", "TIMESTAMP", "TIMESTAMPTZ", "VARCHAR"],
    "sent": ["TIMESTAMPTZ", "TIMESTAMP", "VARCHAR", "DATE"],
    "channel": ["VARCHAR"],
    "rule": ["VARCHAR"],
}


def parquet_values(kind: str, native: str):
    if native == "VARCHAR":
        return TEXT[kind]
    if native == "BOOLEAN":
        return st.sampled_from([True, True, False, None])
    if native == "INTEGER":
        return st.sampled_from([0, 1, 2, None])
    if native == "BIGINT":
        return mostly([1, 2, 3, None], [-4]) if kind == "id" else mostly([0, 5, None], [-1], 20)
    if native == "DOUBLE":
        if kind == "id":
            return mostly([1.0, 2.0, 4.0], [1.5])
        return mostly([0.0, 2.5, 7.0], [NAN, INF, -1.0], 20)
    if native == "DATE":
        past = st.integers(-60, -1).map(lambda n: AS_OF + dt.timedelta(days=n))
        return mostly(
            st.one_of(past if kind == "activity" else day_near, st.none()), [dt.date(1899, 12, 31)]
        )
    zone = dt.timezone.utc if native == "TIMESTAMPTZ" else None
    days = (
        day_near
        if kind == "sent"
        else st.integers(-60, -1).map(lambda n: AS_OF + dt.timedelta(days=n))
    )
    return st.builds(
        lambda d, hour: dt.datetime(d.year, d.month, d.day, hour, 30, tzinfo=zone),
        days,
        st.sampled_from([0, 15, 16, 23]),
    )


@dataclass
class Export:
    fmt: str
    kinds: dict[str, str]
    rows: list[dict]
    natives: dict[str, str] = field(default_factory=dict)

    def write(self, path: Path) -> Path:
        if self.fmt == "csv":
            with path.open("w", encoding="utf-8", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(self.kinds))
                writer.writeheader()
                writer.writerows(
                    {k: "" if v is None else v for k, v in r.items()} for r in self.rows
                )
        elif self.fmt == "jsonl":
            path.write_text("".join(json.dumps(r) + "\n" for r in self.rows), encoding="utf-8")
        else:
            self._parquet(path)
        return path

    def _parquet(self, path: Path) -> None:
        columns = list(self.kinds)
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        types = ", ".join(f'"{c}" {self._sql_type(c)}' for c in columns)
        con.execute(f"CREATE TABLE t ({types})")
        if self.rows:
            marks = ", ".join("?" for _ in columns)
            con.executemany(
                f"INSERT INTO t VALUES ({marks})", [[r[c] for c in columns] for r in self.rows]
            )
        con.execute(f"COPY t TO '{path}' (FORMAT PARQUET)")

    def _sql_type(self, column: str) -> str:
        native = self.natives[column]
        return "TIMESTAMP WITH TIME ZONE" if native == "TIMESTAMPTZ" else native

    def meaning(self, row: dict, zone: str) -> dict:
        return {
            c: interpret(self.kinds[c], self.fmt, row[c], zone, self.natives.get(c))
            for c in self.kinds
        }


@st.composite
def exports(draw, kinds: dict[str, str], min_rows: int, max_rows: int):
    fmt = draw(st.sampled_from(["csv", "jsonl", "parquet"]))
    natives = {}
    if fmt == "parquet":
        natives = {c: draw(st.sampled_from(PARQUET_TYPES[k])) for c, k in kinds.items()}
        cells = {c: parquet_values(kinds[c], natives[c]) for c in kinds}
    else:
        cells = {c: (TEXT if fmt == "csv" else JSON)[k] for c, k in kinds.items()}
    rows = draw(st.lists(st.fixed_dictionaries(cells), min_size=min_rows, max_size=max_rows))
    return Export(fmt, kinds, rows, natives)


# ---------------------------------------------------------------- the plan, as documented

CONFIG = """timezone = "{zone}"
default_channel = "sms"
staff_channel = "phone"
[contacts]
quiet_period = "3 days"
[channels.sms]
consent = "sms_opt_in"
cap = {{ count = 1, per = "7 days" }}
[channels.email]
consent = "email_opt_in"
cap = {{ count = 2, per = "30 days" }}
[channels.phone]
requires_consent = false
"""
RULES = """rule sms_offer
  when customer_id is present
  then send sms_offer via sms
  priority 3
  cap 1 per 14 days
rule email_offer
  when customer_id is present
  then send email_offer via email
  priority 2
  cap 1 per 10 days
rule call_back
  when customer_id is present
  then call care
  priority 1
"""
# (rule, channel, consent field, rule cap (count, days)) in the order they win
OFFERS = [
    ("sms_offer", "sms", "sms_opt_in", (1, 14)),
    ("email_offer", "email", "email_opt_in", (1, 10)),
    ("call_back", "phone", None, None),
]
CHANNEL_CAPS = {"sms": (1, 7), "email": (2, 30)}


def accepted(export: Export, zone: str, key: str | None) -> tuple[dict[int, dict], set[int]]:
    """Rows kept (by row number) and rows rejected, as documented: a row with a bad value is
    rejected, and so is an empty id; every row of a repeated id is rejected."""
    meanings = [export.meaning(row, zone) for row in export.rows]
    ids = [m[key] for m in meanings if key is not None and m[key] not in (None, BAD)]
    repeated = {i for i in ids if ids.count(i) > 1}
    kept, rejected = {}, set()
    for number, meaning in enumerate(meanings, 1):
        bad = any(v == BAD for v in meaning.values())
        bad = bad or (key is not None and meaning[key] in repeated)
        required = "customer_id" if key is None else key
        if bad or meaning[required] is None or meaning.get("sent_at", 0) is None:
            rejected.add(number)
        else:
            kept[number] = meaning
    return kept, rejected


def held_back(contacts: Export, zone: str, rejected: set[int]) -> set[str]:
    """Customers whose contact rows were set aside: caps cannot be judged, so never planned."""
    meanings = [contacts.meaning(row, zone) for row in contacts.rows]
    return {
        m["customer_id"]
        for number, m in enumerate(meanings, 1)
        if number in rejected and isinstance(m["customer_id"], str)
    }


def expected_plan(
    customers: dict[int, dict], contacts: dict[int, dict], held: set[str]
) -> dict[str, str]:
    """customer id -> the rule planned for them (policies: consent, an incomplete history, the
    quiet period, caps, then priority)."""
    history = [c for c in contacts.values() if c["sent_at"] <= AS_OF]
    plan = {}
    for row in customers.values():
        if row["customer_id"] in held:
            continue  # every rule here uses a channel: all of them are held back
        mine = [c for c in history if c["customer_id"] == row["customer_id"]]
        last = max([c["sent_at"] for c in mine] + [row["last_contacted"] or FIRST])
        if last >= AS_OF - dt.timedelta(days=3):
            continue  # the quiet period holds everything back
        for rule, channel, consent, cap in OFFERS:
            if consent is not None and row[consent] is not True:
                continue
            if channel in CHANNEL_CAPS:
                count, days = CHANNEL_CAPS[channel]
                since = AS_OF - dt.timedelta(days=days)
                if sum(c["channel"] == channel and c["sent_at"] >= since for c in mine) >= count:
                    continue
            if cap is not None:
                since = AS_OF - dt.timedelta(days=cap[1])
                if sum(c["rule"] == rule and c["sent_at"] >= since for c in mine) >= cap[0]:
                    continue
            plan[row["customer_id"]] = rule
            break
    return plan


ZONES = st.sampled_from(["Asia/Shanghai", "America/New_York", "UTC", "Asia/Kolkata"])


def respelled(draw, text: str, export: Export):
    """A customer's id as the contact history might write it, in the history's own format."""
    native = export.natives.get("customer_id", "VARCHAR")
    if export.fmt == "jsonl" and text.isdigit() and draw(st.booleans()):
        return int(text)
    if native in ("BIGINT", "DOUBLE"):
        return (int if native == "BIGINT" else float)(text) if text.lstrip("-").isdigit() else None
    return draw(st.sampled_from([text, f" {text}", f"{text}\t", f"\u3000{text} "]))


@st.composite
def scenarios(draw):
    """Customers, and a contact history that mostly names them, however it spells them."""
    customers = draw(exports(KINDS, 1, 8))
    contacts = draw(exports(CONTACT_KINDS, 3, 14))
    zone = draw(ZONES)
    ids = [
        export_id
        for row in customers.rows
        if isinstance(export_id := customers.meaning(row, zone)["customer_id"], str)
    ]
    for row in contacts.rows:
        if ids and draw(st.sampled_from([True, True, False])):
            row["customer_id"] = respelled(draw, draw(st.sampled_from(ids)), contacts)
    return customers, contacts, zone


@settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenarios())
def test_hostile_exports_keep_consent_quiet_period_and_caps(tmp_path_factory, scenario):
    customers, contacts, zone = scenario
    tmp_path = tmp_path_factory.mktemp("hostile")
    folder = write_rules(tmp_path / "rules", RULES, CONFIG.format(zone=zone))
    inputs = Inputs(
        customers.write(tmp_path / f"customers.{customers.fmt}"),
        contacts=contacts.write(tmp_path / f"contacts.{contacts.fmt}"),
    )
    out, rejects = tmp_path / "plan.jsonl", tmp_path / "rejects.csv"
    result = run_plan([folder], inputs, AS_OF, out=out, rejects=rejects)

    kept, rejected = accepted(customers, zone, "customer_id")
    history, bad_contacts = accepted(contacts, zone, None)
    held = held_back(contacts, zone, bad_contacts)
    with rejects.open(encoding="utf-8-sig") as handle:
        found = {(Path(r["file"]).stem, int(r["row"])) for r in csv.DictReader(handle)}
    assert found == {("customers", n) for n in rejected} | {("contacts", n) for n in bad_contacts}
    assert result.stats.customers == len(kept)

    planned = {}
    for line in out.read_text(encoding="utf-8").splitlines():
        action = json.loads(line)
        planned[action["customer_id"]] = (action["rule"], action["channel"])
    people = {row["customer_id"]: row for row in kept.values()}
    seen = [c for c in history.values() if c["sent_at"] <= AS_OF]
    for customer_id, (rule, channel) in planned.items():  # each guarantee on its own
        assert customer_id not in held, (customer_id, "its contact rows were set aside")
        row = people[customer_id]
        mine = [c for c in seen if c["customer_id"] == customer_id]
        consent = {"sms": "sms_opt_in", "email": "email_opt_in"}.get(channel)
        assert consent is None or row[consent] is True, (customer_id, channel, row)
        recent = AS_OF - dt.timedelta(days=3)
        assert all(c["sent_at"] < recent for c in mine), (customer_id, mine)
        assert row["last_contacted"] is None or row["last_contacted"] < recent
        if channel in CHANNEL_CAPS:
            count, days = CHANNEL_CAPS[channel]
            since = AS_OF - dt.timedelta(days=days)
            assert sum(c["channel"] == channel and c["sent_at"] >= since for c in mine) < count
        caps = {name: cap for name, _, _, cap in OFFERS if cap}
        if rule in caps:
            since = AS_OF - dt.timedelta(days=caps[rule][1])
            assert sum(c["rule"] == rule and c["sent_at"] >= since for c in mine) < caps[rule][0]
    assert {k: rule for k, (rule, _) in planned.items()} == expected_plan(kept, history, held)


def test_the_generators_reach_every_guarantee():
    """A property over data that never has consent, contacts or bad rows would test nothing:
    the spellings above include each case the guarantees are about."""
    zone = "Asia/Shanghai"
    assert interpret("bool", "jsonl", 2, zone) == BAD
    assert interpret("bool", "csv", " Yes", zone) is True
    assert interpret("id", "jsonl", 3.0, zone) == "3"
    assert interpret("channel", "csv", " SMS", zone) == "sms"
    assert interpret("sent", "csv", "2026-11-18T23:30-05:00", zone) == dt.date(2026, 11, 19)
    assert interpret("count", "csv", "nan", zone) == BAD
    assert interpret("activity", "csv", "2026-11-23", zone) == BAD
    assert interpret("bool", "parquet", 1, zone, "INTEGER") == BAD
    assert set(COLUMNS) == set(KINDS)
