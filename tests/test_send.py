"""From plan to sent: approve, send exactly once through a real local HTTP server that fails on
purpose, SIGKILL the sender at random moments, and plan again: the loop closes."""

from __future__ import annotations

import csv
import json
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from retentionrules.ledger import message_key
from retentionrules.receiver import Receiver

from .conftest import ROOT, write_rules

CONFIG = """
timezone = "Asia/Shanghai"

[customers]
household = ""
birthday = ""
[customers.fields]
customer_id = "string"
first_order_date = "date"
last_order_date = "date"
orders_12m = "number"
spend_12m = "number"
total_orders = "number"
sms_opt_in = "bool"
email_opt_in = "bool"
phone = "string"
email = "string"

[channels.sms]
consent = "sms_opt_in"
cost = 0.1
address = "phone"
send_window = "09:00-21:00"

[channels.email]
consent = "email_opt_in"
cost = 0.02
address = "email"

[channels.phone]
requires_consent = false
cost = 2
address = "phone"
send_window = "10:00-18:00"

[contacts]
quiet_period = "3 days"
"""
RULES = """rule vip
  when spend_12m >= 2000
  then call care via phone
  priority 9

rule winback
  when last_order_date before 180 days ago
  then send winback via sms with amount = 20
  priority 5
  holdout 20%

rule hello
  when total_orders >= 0
  then send newsletter via email
"""
AS_OF = "2026-11-22"
COLUMNS = ["customer_id", "first_order_date", "last_order_date", "orders_12m", "spend_12m",
           "total_orders", "sms_opt_in", "email_opt_in", "last_contacted", "phone",
           "email"]  # fmt: skip


def customers(n: int, seed: int = 5) -> list[dict[str, str]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        last = rng.choice(["2026-11-01", "2026-03-01", "2025-12-20"])
        rows.append(
            {
                "customer_id": f"C{i:04d}",
                "first_order_date": "2025-01-01",
                "last_order_date": last,
                "orders_12m": "2",
                "spend_12m": rng.choice(["100", "800", "2500"]),
                "total_orders": "3",
                "sms_opt_in": rng.choice(["true", "true", "false"]),
                "email_opt_in": rng.choice(["true", "false"]),
                "last_contacted": "",  # never contacted before the ledger begins
                "phone": f"+86 139{i:08d}",
                "email": f"c{i}@example.com",
            }
        )
    return rows


def write(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def cli(*args: object, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "retentionrules", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def plan_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def ledger_rows(project: Path) -> list[tuple[str, str, str, str]]:
    db = sqlite3.connect(project / "retentionrules-ledger.sqlite")
    try:
        return db.execute(
            "SELECT idempotency_key, plan_id, customer_id, rule FROM contacts"
        ).fetchall()
    finally:
        db.close()


@pytest.fixture
def shop(tmp_path):
    project = write_rules(tmp_path / "shop", RULES, CONFIG)
    data = write(tmp_path / "customers.csv", customers(90))
    return project, data


def plan_and_approve(project: Path, data: Path, out: Path, as_of: str = AS_OF) -> str:
    planned = cli("plan", "--rules", project, "--customers", data, "--as-of", as_of, "--out", out)
    assert planned.returncode == 0, planned.stderr
    approved = cli("approve", out, "--by", "test", "--now", f"{as_of}T08:00")
    assert approved.returncode == 0, approved.stderr + approved.stdout
    return json.loads((out.parent / (out.name + ".meta.json")).read_text())["plan_id"]


def test_plan_approve_send_through_a_failing_receiver_killed_at_random_then_plan_again(
    shop, tmp_path
):
    project, data = shop
    out = tmp_path / "plan.jsonl"
    plan_id = plan_and_approve(project, data, out)
    planned = plan_rows(out)
    assert any(r["holdout"] for r in planned) and any(r["channel"] == "phone" for r in planned)

    # Consent withdrawn since planning: two SMS customers say no in today's export.
    today = customers(90)
    sms = [r["customer_id"] for r in planned if r["channel"] == "sms" and not r["holdout"]]
    withdrawn = set(sms[:2])
    for row in today:
        if row["customer_id"] in withdrawn:
            row["sms_opt_in"] = "false"
    fresh = write(tmp_path / "today.csv", today)

    rng = random.Random(20261122)
    faults = ["error"] * 25 + ["slow"] * 10 + ["drop"] * 10 + [None] * 55
    receiver = Receiver(fault=lambda: rng.choice(faults), slow_seconds=1.0)
    url = receiver.start()
    send = [sys.executable, "-m", "retentionrules", "send", out, "--customers", fresh, "--to", url,
            "--batch", "4", "--timeout", "0.4", "--retries", "8"]  # fmt: skip
    try:
        # Early in the day: the phone channel's window (10:00-18:00) is not open yet.
        kills = 0
        for _ in range(12):
            run = subprocess.Popen(
                [*map(str, send), "--now", f"{AS_OF}T09:30"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            # Kill once this run has delivered a random few messages, a random instant later
            # (between an acknowledgement and its record in the ledger, or mid-request): a
            # fixed delay raced the machine's speed, and on a fast one runs finished unkilled.
            target = len(receiver.deliveries) + rng.randint(1, 8)
            deadline = time.monotonic() + 20
            while (
                run.poll() is None
                and len(receiver.deliveries) < target
                and time.monotonic() < deadline
            ):
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.05))
            if run.poll() is None:
                run.send_signal(signal.SIGKILL)
                kills += 1
            run.wait()
        finished = cli(*send[3:], "--now", f"{AS_OF}T09:30", "--format", "json")
        assert finished.returncode == 0, finished.stdout + finished.stderr
        early = json.loads(finished.stdout)
        assert early["channels"]["phone"]["deferred"] > 0
        assert early["deferred_until"].startswith(f"{AS_OF}T10:00")
        assert {n["customer_id"] for n in early["not_sent"]} == withdrawn
        # Later, inside the window: the deferred calls go.
        later = cli(*send[3:], "--now", f"{AS_OF}T11:00", "--format", "json")
        assert later.returncode == 0, later.stdout + later.stderr
        assert json.loads(later.stdout)["channels"]["phone"]["sent"] > 0
        # Once acknowledged and recorded, never sent again. (A slow answer the sender gave up on
        # may still be taken by the receiver after a while: let those settle first.)
        time.sleep(receiver.slow_seconds + 0.5)
        seen = len(receiver.deliveries)
        rerun = cli(*send[3:], "--now", f"{AS_OF}T11:00", "--format", "json")
        assert rerun.returncode == 0 and len(receiver.deliveries) == seen
        counts = json.loads(rerun.stdout)["channels"]
        assert not any(c.get("sent") for c in counts.values())
    finally:
        receiver.stop()
    assert kills >= 3  # the kills really cut runs short

    due = {
        message_key(plan_id, r["customer_id"], r["rule"]): r
        for r in planned
        if not r["holdout"] and r["customer_id"] not in withdrawn
    }
    ledger = ledger_rows(project)
    keys = [key for key, *_ in ledger]
    assert sorted(keys) == sorted(due)  # every due message once, nothing else
    assert all(key == message_key(p, c, r) for key, p, c, r in ledger)
    received = receiver.deliveries
    assert {m["idempotency_key"] for m in received} == set(due)  # each reached the receiver
    for message in received:  # a repeat only ever carries the same key
        assert message["idempotency_key"] == message_key(
            message["plan_id"], message["customer_id"], message["rule"]
        )
        assert message["customer_id"] not in withdrawn or message["channel"] != "sms"
    held = {(r["customer_id"], r["rule"]) for r in planned if r["holdout"]}
    assert not held & {(m["customer_id"], m["rule"]) for m in received}
    assert all("+86" in m["address"] or "@" in m["address"] for m in received)

    # Plan again the same day: the ledger is contact history; the quiet period holds everyone.
    again = tmp_path / "again.jsonl"
    replanned = cli(
        "plan", "--rules", project, "--customers", fresh, "--as-of", AS_OF, "--out", again
    )
    assert replanned.returncode == 0, replanned.stderr
    assert "contacts from the ledger" in replanned.stdout
    contacted = {m["customer_id"] for m in received}
    assert not contacted & {r["customer_id"] for r in plan_rows(again)}


def test_an_edited_plan_a_foreign_header_or_an_old_plan_cannot_be_approved(shop, tmp_path):
    project, data = shop
    out = tmp_path / "plan.jsonl"
    planned = cli("plan", "--rules", project, "--customers", data, "--as-of", AS_OF, "--out", out)
    assert planned.returncode == 0
    too_late = cli("approve", out, "--by", "a", "--now", "2026-11-25T09:00")
    assert too_late.returncode == 1 and "can be approved until" in too_late.stderr
    assert "2026-11-24" in too_late.stderr
    edited = out.read_text().replace('"amount":20', '"amount":200')
    out.write_text(edited)
    refused = cli("approve", out, "--by", "a", "--now", "2026-11-22T09:00")
    assert refused.returncode == 1 and "does not match its header" in refused.stderr
    assert not (tmp_path / "plan.jsonl.approval.json").exists()


def test_send_refuses_an_unapproved_plan_and_one_changed_since_approval(shop, tmp_path):
    project, data = shop
    out = tmp_path / "plan.jsonl"
    planned = cli("plan", "--rules", project, "--customers", data, "--as-of", AS_OF, "--out", out)
    assert planned.returncode == 0
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    unapproved = cli("send", out, "--customers", data, "--outbox", outbox)
    assert unapproved.returncode == 1 and "not approved" in unapproved.stderr
    assert cli("approve", out, "--by", "a", "--now", f"{AS_OF}T08:00").returncode == 0
    # Planned again with other data: a new plan under the old approval.
    other = write(tmp_path / "other.csv", customers(90, seed=6))
    assert cli("plan", "--rules", project, "--customers", other, "--as-of", AS_OF,
               "--out", out).returncode == 0  # fmt: skip
    changed = cli("send", out, "--customers", data, "--outbox", outbox)
    assert changed.returncode == 1 and "changed after it was approved" in changed.stderr
    assert list(outbox.iterdir()) == []


def test_a_plan_name_that_names_nothing_is_a_usage_error_for_approve_and_send(shop, tmp_path):
    _project, data = shop
    missing = tmp_path / "no-such-plan.jsonl"
    for command in (("approve", missing), ("send", missing, "--customers", data, "--dry-run")):
        result = cli(*command)
        assert result.returncode == 2 and "no-such-plan.jsonl: no such plan" in result.stderr


def test_the_outbox_gets_every_due_message_once_and_a_rerun_sends_nothing_again(shop, tmp_path):
    project, data = shop
    out = tmp_path / "plan.jsonl"
    plan_id = plan_and_approve(project, data, out)
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    first = cli("send", out, "--customers", data, "--outbox", outbox, "--now", f"{AS_OF}T11:00",
                "--batch", "7")  # fmt: skip
    assert first.returncode == 0, first.stderr
    second = cli("send", out, "--customers", data, "--outbox", outbox, "--now", f"{AS_OF}T11:00")
    assert second.returncode == 0 and "sent before" in second.stdout
    batches = sorted(outbox.glob("*.json"))
    messages = [m for b in batches for m in json.loads(b.read_text())["messages"]]
    due = [r for r in plan_rows(out) if not r["holdout"]]
    assert sorted(m["idempotency_key"] for m in messages) == sorted(
        message_key(plan_id, r["customer_id"], r["rule"]) for r in due
    )
    assert all(b.name.startswith(plan_id) for b in batches)
    assert not [p for p in outbox.iterdir() if p.name.startswith(".")]  # no partial batch left


def test_a_customer_missing_from_todays_export_or_without_an_address_is_reported_not_sent(
    shop, tmp_path
):
    project, data = shop
    out = tmp_path / "plan.jsonl"
    plan_and_approve(project, data, out)
    due = [r for r in plan_rows(out) if not r["holdout"] and r["channel"] == "email"]
    today = [r for r in customers(90) if r["customer_id"] != due[0]["customer_id"]]
    for row in today:
        if row["customer_id"] == due[1]["customer_id"]:
            row["email"] = ""
    fresh = write(tmp_path / "today.csv", today)
    result = cli("send", out, "--customers", fresh, "--dry-run", "--now", f"{AS_OF}T11:00",
                 "--format", "json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    reasons = {(n["customer_id"], n["reason"]) for n in report["not_sent"]}
    assert (due[0]["customer_id"], "customer_missing") in reasons
    assert (due[1]["customer_id"], "no_address") in reasons
    assert report["customers_changed"] is True
    assert not (project / "retentionrules-ledger.sqlite").exists() or not ledger_rows(project)


class _Refusing(BaseHTTPRequestHandler):
    """A receiver that refuses every batch: 422 with a reason."""

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        body = b'{"error": "unknown template winback"}'
        self.send_response(422)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_receiver_that_refuses_a_batch_stops_the_run_with_its_answer(shop, tmp_path):
    project, data = shop
    out = tmp_path / "plan.jsonl"
    plan_and_approve(project, data, out)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        result = cli("send", out, "--customers", data, "--to", url, "--now", f"{AS_OF}T11:00")
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 1
    assert "HTTP 422" in result.stdout and "unknown template winback" in result.stdout
    assert "failed" in result.stdout
    assert ledger_rows(project) == []  # nothing acknowledged, nothing recorded


def test_an_unreachable_webhook_fails_after_bounded_retries_and_a_rerun_completes(shop, tmp_path):
    project, data = shop
    out = tmp_path / "plan.jsonl"
    plan_and_approve(project, data, out)
    started = time.monotonic()
    down = cli("send", out, "--customers", data, "--to", "http://127.0.0.1:9/", "--now",
               f"{AS_OF}T11:00", "--retries", "2", "--timeout", "0.2")  # fmt: skip
    assert down.returncode == 1 and "did not acknowledge the batch after 3 tries" in down.stdout
    assert time.monotonic() - started < 30
    receiver = Receiver()
    url = receiver.start()
    try:
        up = cli("send", out, "--customers", data, "--to", url, "--now", f"{AS_OF}T11:00")
    finally:
        receiver.stop()
    assert up.returncode == 0, up.stdout + up.stderr
    assert len(ledger_rows(project)) == len(receiver.messages) > 0


def test_two_sends_of_one_plan_at_once_one_refuses(shop, tmp_path):
    project, data = shop
    out = tmp_path / "plan.jsonl"
    plan_and_approve(project, data, out)
    arrived = threading.Event()

    def slow() -> str | None:
        arrived.set()
        return "slow"

    receiver = Receiver(fault=slow, slow_seconds=3.0)  # the first send holds the plan a while
    url = receiver.start()
    try:
        first = subprocess.Popen(
            [sys.executable, "-m", "retentionrules", "send", str(out), "--customers", str(data),
             "--to", url, "--now", f"{AS_OF}T11:00", "--batch", "50", "--timeout", "5"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        assert arrived.wait(60)
        second = cli("send", out, "--customers", data, "--to", url, "--now", f"{AS_OF}T11:00")
        assert second.returncode == 1 and "another `send` of this plan is running" in second.stderr
        _, err = first.communicate(timeout=120)
        assert first.returncode == 0, err
    finally:
        receiver.stop()


def test_ledger_import_and_export_round_trip_and_plans_respect_imported_contacts(shop, tmp_path):
    project, data = shop
    config = project / "retentionrules.toml"
    before = cli("plan", "--rules", project, "--customers", data, "--as-of", AS_OF, "--no-ledger",
                 "--out", tmp_path / "before.jsonl")  # fmt: skip
    assert before.returncode == 0, before.stderr
    recent, earlier = [r["customer_id"] for r in plan_rows(tmp_path / "before.jsonl")][:2]
    history = tmp_path / "crm.csv"
    history.write_text(  # 20:00 UTC on the 21st is the 22nd in Shanghai: inside the quiet period
        f"customer_id,channel,rule,sent_at\n {recent} ,SMS,,2026-11-21T20:00:00Z\n"
        f"{earlier},email,x,2026-11-01\n"
    )
    first = cli("ledger", "import", history, "--config", config)
    assert first.returncode == 0 and "recorded 2 new contacts of 2" in first.stdout, first.stderr
    again = cli("ledger", "import", history, "--config", config)
    assert "recorded 0 new contacts of 2" in again.stdout
    exported = tmp_path / "ledger.csv"
    assert cli("ledger", "export", "--out", exported, "--config", config).returncode == 0
    with exported.open(encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(r["customer_id"] for r in rows) == sorted([recent, earlier])
    assert {r["source"] for r in rows} == {"import"} and {r["channel"] for r in rows} == {
        "sms",
        "email",
    }
    out = tmp_path / "plan.jsonl"
    after = cli("plan", "--rules", project, "--customers", data, "--as-of", AS_OF, "--out", out)
    assert after.returncode == 0, after.stderr
    planned = {r["customer_id"] for r in plan_rows(out)}
    assert recent not in planned and earlier in planned  # three weeks ago: free again
    unread = cli("plan", "--rules", project, "--customers", data, "--as-of", AS_OF,
                 "--no-ledger", "--out", tmp_path / "unread.jsonl")  # fmt: skip
    assert unread.returncode == 0, unread.stderr
    assert recent in {r["customer_id"] for r in plan_rows(tmp_path / "unread.jsonl")}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_readme_loop_on_the_demo_shop_sends_each_message_once_and_replans_nobody(tmp_path):
    """The README's transcript, run as written on a copy of the demo shop with the receiver that
    ships with retentionrules: what it shows is what happens."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    port = _free_port()
    receiver = subprocess.Popen(
        [sys.executable, "-m", "retentionrules.receiver", "--port", str(port),
         "--out", "received.jsonl"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:  # wait until it listens
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the receiver did not start"
                time.sleep(0.1)
        url = f"http://127.0.0.1:{port}/messages"
        shop = tmp_path / "examples"
        data = ("--customers", shop / "customers.csv")
        lines = ("--orders", shop / "orders.csv", "--products", shop / "products.csv")
        plan = tmp_path / "demo-plan.jsonl"
        planned = cli("plan", "--rules", shop / "rules", *data, *lines, "--as-of", AS_OF,
                      "--out", plan)  # fmt: skip
        assert planned.returncode == 0, planned.stderr
        approved = cli("approve", plan, "--by", "lin", "--note", "checked",
                       "--now", "2026-11-22T09:00")  # fmt: skip
        assert approved.returncode == 0, approved.stderr
        for line in ("│ email   │       68 │  1.36 │", "│ phone   │       10 │ 20.00 │",
                     "│ sms     │       16 │  1.60 │"):  # fmt: skip
            assert line in approved.stdout
        first = cli("send", plan, *data, "--to", url, "--now", "2026-11-22T09:30")
        assert first.returncode == 0, first.stderr
        assert "10 deferred: outside their channel's send window; run send again from " \
            "2026-11-22T10:00+08:00" in first.stdout
        assert "not sent: C0000157 (winback_silver): no_address" in first.stdout
        assert "not sent: C0000209 (referral): no_address" in first.stdout
        second = cli("send", plan, *data, "--to", url, "--now", "2026-11-22T10:05")
        assert second.returncode == 0, second.stderr
        assert "│ phone   │   10 │           0 │          0 │ 20.00 │" in second.stdout
    finally:
        receiver.terminate()
        receiver.wait(timeout=20)
    received = plan_rows(tmp_path / "received.jsonl")
    keys = [m["idempotency_key"] for m in received]
    assert len(keys) == len(set(keys)) == 92
    assert all("address" in m and m["address"] for m in received)
    again = tmp_path / "demo-plan-2.jsonl"
    replanned = cli("plan", "--rules", shop / "rules", *data, *lines, "--as-of", AS_OF,
                    "--out", again)  # fmt: skip
    assert replanned.returncode == 0, replanned.stderr
    assert "92 contacts from the ledger" in replanned.stdout
    total = "│ total              │                │     131 │     -22 │ -102 │        0 │" \
        "         0 │      0 │       0 │       7 │ 0.22 │"
    assert total in replanned.stdout
    assert total in (ROOT / "README.md").read_text(encoding="utf-8")  # as the README shows it
    contacted = {m["customer_id"] for m in received}
    rows = plan_rows(again)
    assert len(rows) == 7 and not contacted & {r["customer_id"] for r in rows}


def test_contact_details_never_leave_the_export_except_through_send(tmp_path):
    """Phone numbers and e-mail addresses are read by `send` alone: `score --out`, the plan and
    `explain` never carry them, although the demo shop's export has them."""
    shop_data = ROOT / "examples" / "customers.csv"
    scored, plan = tmp_path / "scores.csv", tmp_path / "plan.csv"
    common = ("--customers", shop_data, "--as-of", AS_OF)
    config = ("--config", ROOT / "examples" / "retentionrules.toml")
    assert cli("score", *common, *config, "--out", scored).returncode == 0
    rules = ("--rules", ROOT / "examples" / "rules")
    assert cli("plan", *rules, *common, "--out", plan).returncode == 0
    explained = cli("explain", *rules, *common, "C0000001")
    assert explained.returncode == 0
    header = scored.read_text(encoding="utf-8-sig").splitlines()[0].split(",")
    assert "phone" not in header and "email" not in header
    for text in (scored.read_text("utf-8"), plan.read_text("utf-8"), explained.stdout):
        assert "+86 138" not in text and "@example.com" not in text
    shown = [line.split()[0] for line in explained.stdout.splitlines() if line.startswith("  ")]
    assert "city" in shown and "phone" not in shown and "email" not in shown  # not even as —
