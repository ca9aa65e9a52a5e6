"""A Bytewax sink that POSTs each alert change to a webhook, without ever blocking the flow
on a slow or failing endpoint, and without losing an alert.

Each change is one JSON body (models/alerts.py `Alert`) with an `Idempotency-Key`
header `<alert_id>:<version>`. A thread delivers them in order: on a timeout, a
connection error or a non-2xx answer it logs the reason, waits (exponential
back-off from `first_backoff_s` up to `max_backoff_s`, with jitter) and tries the
same change again, for as long as it takes. Later changes wait behind it, so a
receiver never sees `resolved` before `firing`.

The changes not yet acknowledged are the partition's recovery state: after a crash
and restart they are sent again. A receiver may therefore see a change twice
across a crash (never within a run); the idempotency key lets it drop the repeat.
Memory is bounded: past `max_pending` undelivered changes, `write_batch` waits for
the endpoint (back-pressure, logged) rather than dropping anything.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit

import pyarrow as pa
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition

from sinks.telemetry import sink_write

log = logging.getLogger(__name__)

Change = tuple[str, bytes]
"""(idempotency key, JSON body)."""


@dataclass(frozen=True)
class WebhookConfig:
    """STREAMHOUSE_WEBHOOK_URL, _TOKEN, _TIMEOUT_S (see the README)."""

    url: str
    token: str | None = None
    """Sent as `Authorization: Bearer <token>`."""
    timeout_s: float = 5.0
    first_backoff_s: float = 0.5
    max_backoff_s: float = 60.0
    max_pending: int = 10_000
    drain_s: float = 10.0
    """On a clean stop, how long to keep delivering what is left."""


@dataclass
class DeliveryStats:
    delivered: int = 0
    failed_attempts: int = 0
    last_error: str | None = None


class _Deliverer:
    """The delivery thread and its queue."""

    def __init__(self, config: WebhookConfig, pending: list[Change]) -> None:
        self.config = config
        self.queue: deque[Change] = deque(pending)
        self.stats = DeliveryStats()
        self._lock = threading.Condition()
        self._stopping = threading.Event()
        self._deadline = float("inf")
        self._thread = threading.Thread(target=self._run, name="webhook", daemon=True)
        self._thread.start()

    def put(self, changes: list[Change]) -> None:
        with self._lock:
            if len(self.queue) + len(changes) > self.config.max_pending:
                log.warning(
                    "webhook %s: %d alert changes undelivered (%s); waiting for the endpoint",
                    self.config.url,
                    len(self.queue),
                    self.stats.last_error,
                )
            while len(self.queue) + len(changes) > self.config.max_pending and self.queue:
                self._lock.wait(1.0)
            self.queue.extend(changes)
            self._lock.notify_all()

    def pending(self) -> list[Change]:
        with self._lock:
            return list(self.queue)

    def _run(self) -> None:
        attempt = 0
        while True:
            with self._lock:
                while not self.queue and not self._stopping.is_set():
                    self._lock.wait(0.5)
                if not self.queue or time.monotonic() >= self._deadline:
                    return
                key, body = self.queue[0]
            error = self._post(key, body)
            if error is None:
                with self._lock:
                    self.queue.popleft()
                    self.stats.delivered += 1
                    self._lock.notify_all()
                attempt = 0
                continue
            attempt += 1
            self.stats.failed_attempts += 1
            self.stats.last_error = error
            wait = min(self.config.max_backoff_s, self.config.first_backoff_s * 2 ** (attempt - 1))
            wait *= random.uniform(0.8, 1.2)
            log.warning(
                "webhook %s: alert change %s not delivered (%s); try %d again in %.1f s",
                self.config.url,
                key,
                error,
                attempt + 1,
                wait,
            )
            if not self._stopping.wait(wait):
                continue
            remaining = self._deadline - time.monotonic()  # stopping: back off until the deadline
            if remaining <= 0:
                return
            time.sleep(min(wait, remaining))

    def _post(self, key: str, body: bytes) -> str | None:
        headers = {"Content-Type": "application/json", "Idempotency-Key": key}
        if self.config.token:
            headers["Authorization"] = f"Bearer {self.config.token}"
        request = urllib.request.Request(self.config.url, body, headers, method="POST")
        try:
            with (
                sink_write("webhook", urlsplit(self.config.url).netloc, 1),
                urllib.request.urlopen(request, timeout=self.config.timeout_s) as response,
            ):
                response.read()
                return None
        except urllib.error.HTTPError as e:
            return f"HTTP {e.code}"
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            return f"{type(reason).__name__}: {reason}"

    def stop(self) -> list[Change]:
        """Deliver for up to `drain_s` more, then stop; what is left is returned."""
        self._deadline = time.monotonic() + self.config.drain_s
        self._stopping.set()
        with self._lock:
            self._lock.notify_all()
        self._thread.join(self.config.drain_s + self.config.timeout_s + 1)
        left = self.pending()
        if left:
            log.error(
                "webhook %s: %d alert changes undelivered at stop (%s); they are in the "
                "recovery snapshot and are sent again when the flow resumes from it",
                self.config.url,
                len(left),
                self.stats.last_error,
            )
        return left


def changes_of(alerts: pa.Table) -> list[Change]:
    """Alert rows -> (idempotency key, JSON body) per row, times as ISO 8601."""
    out = []
    for row in alerts.to_pylist():
        body = {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in row.items()}
        out.append((f"{row['alert_id']}:{row['version']}", json.dumps(body).encode()))
    return out


class _WebhookPartition(StatefulSinkPartition[pa.Table, list[Change]]):
    def __init__(self, config: WebhookConfig, pending: list[Change]) -> None:
        self.deliverer = _Deliverer(config, pending)

    def write_batch(self, values: list[pa.Table]) -> None:
        changes = [c for table in values for c in changes_of(table)]
        if changes:
            self.deliverer.put(changes)

    def snapshot(self) -> list[Change]:
        return self.deliverer.pending()

    def close(self) -> None:
        self.deliverer.stop()


class WebhookSink(FixedPartitionedSink[pa.Table, list[Change]]):
    """Alert tables (keyed by anything) -> one delivery queue per flow."""

    def __init__(self, config: WebhookConfig) -> None:
        self.config = config

    def list_parts(self) -> list[str]:
        return ["webhook"]

    def part_fn(self, item_key: str) -> int:
        return 0

    def build_part(
        self, step_id: str, for_part: str, resume_state: list[Change] | None
    ) -> _WebhookPartition:
        return _WebhookPartition(self.config, list(resume_state or []))
