"""Handing batches to a receiver: a real HTTP server on 127.0.0.1 (the receiver the README
offers), failing on purpose, and a real outbox folder."""

from __future__ import annotations

import itertools
import json
import random
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from retentionrules.delivery import DeliveryError, Outbox, Webhook
from retentionrules.errors import UsageError
from retentionrules.receiver import Receiver


def messages(*keys: str) -> list[dict]:
    return [{"idempotency_key": k, "customer_id": k, "address": "+86 138"} for k in keys]


def webhook(url: str, **options) -> tuple[Webhook, list[float]]:
    waits: list[float] = []
    options.setdefault("timeout", 0.5)
    return Webhook(url, sleep=waits.append, rng=random.Random(1), **options), waits


@pytest.fixture
def receiver():
    faults: list[str | None] = []
    running = Receiver(fault=lambda: faults.pop(0) if faults else None, slow_seconds=2.0)
    url = running.start()
    yield running, url, faults
    running.stop()


def test_a_batch_is_posted_with_its_idempotency_key_and_acknowledged(receiver):
    running, url, _faults = receiver
    sender, waits = webhook(url)
    sender.deliver(messages("a", "b"), "batch-1")
    assert set(running.messages) == {"a", "b"} and waits == []
    sender.deliver(messages("b", "c"), "batch-2")  # a repeat is acknowledged, kept once
    assert set(running.messages) == {"a", "b", "c"}
    assert [m["idempotency_key"] for m in running.deliveries] == ["a", "b", "b", "c"]


@pytest.mark.parametrize("fault", ["error", "slow", "drop"])
def test_500s_timeouts_and_dropped_connections_are_retried_with_backoff(receiver, fault):
    running, url, faults = receiver
    faults.extend([fault, fault])
    sender, waits = webhook(url)
    sender.deliver(messages("a"), "k")
    assert set(running.messages) == {"a"}
    assert len(waits) == 2 and all(0 <= w <= 0.5 * 2**i for i, w in enumerate(waits))


def test_retries_are_bounded_and_the_run_is_told_why(receiver):
    _running, url, faults = receiver
    faults.extend(["error"] * 10)
    sender, waits = webhook(url, attempts=3)
    with pytest.raises(DeliveryError, match=r"after 3 tries .*HTTP 500") as raised:
        sender.deliver(messages("a"), "k")
    assert not raised.value.permanent and len(waits) == 2


def test_backoff_grows_exponentially_with_jitter_and_a_cap():
    with socket.socket() as unused:  # a port nobody listens on: connection refused
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    sender, waits = webhook(f"http://127.0.0.1:{port}/", attempts=8, base_delay=1.0, max_delay=5.0)
    with pytest.raises(DeliveryError, match="ConnectionRefusedError"):
        sender.deliver(messages("a"), "k")
    ceilings = [min(5.0, 2.0**i) for i in range(7)]
    assert all(0 <= w <= c for w, c in zip(waits, ceilings, strict=True))
    assert len(set(waits)) == len(waits)  # jittered, not in lockstep with other senders


class _Answer(BaseHTTPRequestHandler):
    """Answers every POST with `status`, recording the headers it was sent."""

    status = 200
    headers_seen: ClassVar[list[dict[str, str]]] = []
    extra: ClassVar[dict[str, str]] = {}

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).headers_seen.append(dict(self.headers))
        body = b'{"error": "template not found: winback"}'
        self.send_response(type(self).status)
        for name, value in type(self).extra.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def answering():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Answer.headers_seen = []
    _Answer.extra = {}
    yield f"http://127.0.0.1:{server.server_address[1]}/hook?x=1"
    server.shutdown()
    server.server_close()


def test_a_4xx_other_than_429_stops_at_once_with_the_receivers_answer(answering):
    _Answer.status = 422
    sender, waits = webhook(answering)
    with pytest.raises(DeliveryError, match=r"HTTP 422: .*template not found") as raised:
        sender.deliver(messages("a"), "k")
    assert raised.value.permanent and waits == [] and len(_Answer.headers_seen) == 1
    assert _Answer.headers_seen[0]["Idempotency-Key"] == "k"
    assert _Answer.headers_seen[0]["Content-Type"].startswith("application/json")


def test_429_waits_as_long_as_retry_after_says(answering):
    _Answer.status = 429
    _Answer.extra = {"Retry-After": "3"}
    sender, waits = webhook(answering, attempts=3)
    with pytest.raises(DeliveryError, match="HTTP 429"):
        sender.deliver(messages("a"), "k")
    assert waits == [3.0, 3.0]


def test_a_url_that_is_not_http_is_a_usage_error():
    for url in ("ftp://example.com/x", "localhost:8080", "http://"):
        with pytest.raises(UsageError):
            Webhook(url)


def test_the_outbox_gets_each_batch_as_one_whole_file(tmp_path):
    box = Outbox(tmp_path, "plan1")
    box.deliver(messages("a", "b"), "k1")
    box.deliver(messages("c"), "k2")
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["plan1-k1.json", "plan1-k2.json"]  # no temporary file left behind
    assert json.loads((tmp_path / "plan1-k1.json").read_text())["messages"] == messages("a", "b")


def test_an_outbox_that_cannot_be_written_is_a_failed_batch_not_a_crash(tmp_path):
    folder = tmp_path / "outbox"
    folder.mkdir()
    box = Outbox(folder, "plan1")
    folder.rmdir()  # unmounted, removed by a gateway's clean-up...
    with pytest.raises(DeliveryError, match="cannot write the batch") as raised:
        box.deliver(messages("a"), "k")
    assert not raised.value.permanent  # a later run may find it back


def test_receiver_refuses_a_body_that_is_not_a_batch(receiver):
    running, _url, _faults = receiver
    assert running.accept(b"{}")[0] == 400
    assert running.accept(b'{"messages": [{"customer_id": "x"}]}')[0] == 400
    assert running.accept(b"not json")[0] == 400
    assert list(itertools.islice(running.messages, 1)) == []
