"""Handing batches of messages to a receiver: a webhook (HTTP POST) or an outbox folder.

Either way a batch is acknowledged as a whole or not at all, and `send` records it in the ledger
only once it is. A webhook's 2xx acknowledges; 429, 5xx, a timeout, a refused or dropped
connection is retried with exponential backoff and full jitter, a bounded number of times; any
other 4xx stops the run with the receiver's answer (retrying would not change it). An outbox
batch is acknowledged once its file is durably in the folder (written under a private name,
synced, renamed, the folder synced), so a gateway picking files up never sees half a batch.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .errors import UsageError


class DeliveryError(Exception):
    """A batch was not acknowledged. `permanent`: the receiver refused it (retrying will not
    help); otherwise the retries ran out (a later run may succeed)."""

    def __init__(self, message: str, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class Transport(Protocol):
    def deliver(self, messages: Sequence[dict[str, Any]], batch_key: str) -> None: ...

    def describe(self) -> str: ...


@dataclass
class Webhook:
    """POST `{"messages": [...]}` with an `Idempotency-Key` header; see the module docstring."""

    url: str
    timeout: float = 10.0
    attempts: int = 6  # tries per batch, the first included
    base_delay: float = 0.5  # seconds before the second try; doubles each time
    max_delay: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"--to {self.url!r}: give an http:// or https:// URL")
        self._parts = parts

    def describe(self) -> str:
        return self.url

    def deliver(self, messages: Sequence[dict[str, Any]], batch_key: str) -> None:
        body = json.dumps({"messages": list(messages)}, ensure_ascii=False).encode("utf-8")
        problem = ""
        retry_after: float | None = None
        for attempt in range(self.attempts):
            if attempt:  # full jitter, unless the receiver said how long to wait
                delay = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
                self.sleep(retry_after if retry_after is not None else self.rng.uniform(0, delay))
            retry_after = None
            try:
                status, answer, retry_after = self._post(body, batch_key)
            except (OSError, http.client.HTTPException) as error:  # refused, reset, timed out
                problem = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
                continue
            if 200 <= status < 300:
                return
            if status == 429 or status >= 500:
                problem = f"HTTP {status}: {answer}"
                continue
            raise DeliveryError(f"{self.url} refused the batch: HTTP {status}: {answer}", True)
        raise DeliveryError(
            f"{self.url} did not acknowledge the batch after {self.attempts} tries "
            f"(last: {problem})",
            False,
        )

    def _post(self, body: bytes, batch_key: str) -> tuple[int, str, float | None]:
        parts = self._parts
        connection_type = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        connection = connection_type(parts.hostname or "", parts.port, timeout=self.timeout)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        try:
            connection.request(
                "POST",
                path,
                body=body,
                headers={
                    "Content-Type": "application/json; charset=utf-8",
                    "Idempotency-Key": batch_key,
                    "User-Agent": "retentionrules",
                },
            )
            response = connection.getresponse()
            answer = response.read(2000).decode("utf-8", "replace").strip()
            header = (response.getheader("Retry-After") or "").strip()
            retry_after = min(self.max_delay, float(header)) if header.isdigit() else None
            return response.status, answer, retry_after
        finally:
            connection.close()


@dataclass
class Outbox:
    """Each batch as one JSON file, `PLAN_ID-BATCH_KEY.json`, in `folder`."""

    folder: Path
    plan_id: str

    def __post_init__(self) -> None:
        if not self.folder.is_dir():
            raise UsageError(f"--outbox {self.folder}: no such folder")

    def describe(self) -> str:
        return str(self.folder)

    def deliver(self, messages: Sequence[dict[str, Any]], batch_key: str) -> None:
        data = json.dumps({"messages": list(messages)}, ensure_ascii=False).encode("utf-8")
        target = self.folder / f"{self.plan_id}-{batch_key}.json"
        try:
            descriptor, name = tempfile.mkstemp(dir=self.folder, prefix=".", suffix=".part")
            try:
                with os.fdopen(descriptor, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(name, target)
            except BaseException:
                Path(name).unlink(missing_ok=True)
                raise
            folder = os.open(self.folder, os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
        except OSError as error:
            raise DeliveryError(
                f"{target}: cannot write the batch: {error.strerror}", False
            ) from None
