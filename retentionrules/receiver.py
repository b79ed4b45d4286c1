"""A tiny webhook receiver: try `retentionrules send --to` without a real SMS or e-mail gateway.

    python -m retentionrules.receiver --port 8765 --out received.jsonl

It accepts what `send` posts (`{"messages": [...]}`, see docs/send.md), keeps each message once
by its `idempotency_key` (a repeat is acknowledged again and not stored twice, as a real gateway
must), appends new messages to `--out` as JSON lines and prints one line per batch.
`--fail-rate` answers a share of requests with 500, a delay past the sender's timeout, or a
dropped connection, to watch the sender retry. The tests drive the same class in-process.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

# What a receiver may do to a request instead of acknowledging it.
FAULTS = ("error", "slow", "drop")


class Receiver:
    """Messages received, once each by idempotency key, and every delivery attempt seen."""

    def __init__(
        self,
        out: Path | None = None,
        fault: Callable[[], str | None] | None = None,
        slow_seconds: float = 30.0,
    ) -> None:
        self.out = out
        self.fault = fault or (lambda: None)
        self.slow_seconds = slow_seconds
        self.lock = threading.Lock()
        self.messages: dict[str, dict[str, Any]] = {}
        self.deliveries: list[dict[str, Any]] = []  # every message of every acknowledged post
        self.requests = 0
        self.server: ThreadingHTTPServer | None = None

    def accept(self, body: bytes) -> tuple[int, dict[str, Any]]:
        """Acknowledge a batch (200) or say what is wrong with it (400)."""
        try:
            payload = json.loads(body)
            messages = payload["messages"]
            if not isinstance(messages, list) or not all(
                isinstance(m, dict) and isinstance(m.get("idempotency_key"), str) for m in messages
            ):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            return 400, {"error": 'expected {"messages": [{"idempotency_key": ..., ...}, ...]}'}
        with self.lock:
            new = [m for m in messages if m["idempotency_key"] not in self.messages]
            for message in new:
                self.messages[message["idempotency_key"]] = message
            self.deliveries.extend(messages)
            if self.out is not None and new:
                with self.out.open("a", encoding="utf-8") as handle:
                    for message in new:
                        handle.write(json.dumps(message, ensure_ascii=False) + "\n")
                    handle.flush()
                    os.fsync(handle.fileno())
        return 200, {"accepted": len(new), "duplicates": len(messages) - len(new)}

    def handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver.lock:
                    receiver.requests += 1
                fault = receiver.fault()
                if fault == "drop":
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if fault == "slow":
                    time.sleep(receiver.slow_seconds)
                if fault == "error":
                    self._answer(500, {"error": "simulated failure"})
                    return
                status, answer = receiver.accept(body)
                self._answer(status, answer)
                if status == 200:
                    key = self.headers.get("Idempotency-Key", "-")
                    self.log_message("batch %s: %s", key[:12], json.dumps(answer))

            def _answer(self, status: int, answer: dict[str, Any]) -> None:
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                if receiver.out is not None:  # quiet in tests, which pass no file
                    sys.stderr.write(f"receiver: {format % args}\n")

        return Handler

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve in a background thread; returns the URL to post to."""
        self.server = _Server((host, port), self.handler())
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        bound_host, bound_port = self.server.server_address[:2]
        name = bound_host.decode() if isinstance(bound_host, bytes) else bound_host
        return f"http://{name}:{bound_port}/messages"

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


class _Server(ThreadingHTTPServer):
    """A sender that gave up (a timeout) or a dropped connection is not the receiver's error."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m retentionrules.receiver",
        description="A webhook receiver for trying `retentionrules send --to URL`.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--out", type=Path, default=Path("received.jsonl"), help="where messages are appended"
    )
    parser.add_argument(
        "--fail-rate",
        type=float,
        default=0.0,
        help="share of requests answered with a fault (500, a slow answer, a dropped connection)",
    )
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)

    def fault() -> str | None:
        return rng.choice(FAULTS) if rng.random() < args.fail_rate else None

    receiver = Receiver(args.out, fault, slow_seconds=15.0)
    url = receiver.start(args.host, args.port)
    print(f"receiving on {url}; messages go to {args.out} (Ctrl-C stops)", file=sys.stderr)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        receiver.stop()


if __name__ == "__main__":
    main()
