"""Producing to Kafka from an asyncio service without ever blocking its event loop.

`ReliableProducer` (sinks/kafka.py) waits out a full queue, which is right for a
dataflow and wrong for a web server: a blocked event loop stalls every request.
`AsyncProducer` enqueues with librdkafka's non-blocking `produce` and lets a
background thread serve delivery reports. Two ways to send:

- `await send(message)`: returns once the broker has acknowledged the message
  (`acks=all`, idempotent), raises `ProduceError` if it will not: for commands a
  client is told were accepted.
- `offer(message)`: fire and forget, for telemetry. It never waits; a full queue
  or a failed delivery is counted (`dropped`, `failed`) and logged, never silent.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Mapping

from confluent_kafka import KafkaError, Producer

from sinks.kafka import PRODUCER_DEFAULTS, KafkaMessage

log = logging.getLogger(__name__)

ASYNC_PRODUCER_DEFAULTS: dict[str, str | int | bool] = {
    **PRODUCER_DEFAULTS,
    # Every acknowledgement resolves a waiting request: report them all, and batch for a
    # millisecond, not 20 (a request waits for its batch).
    "delivery.report.only.error": False,
    "linger.ms": 1,
    "message.timeout.ms": 10_000,
}


class ProduceError(RuntimeError):
    """Kafka did not take the message: queue full, timed out or refused, with the reason."""


class AsyncProducer:
    def __init__(self, config: Mapping[str, object], topic_prefix: str = "") -> None:
        self._producer = Producer({**ASYNC_PRODUCER_DEFAULTS, **config})
        self._prefix = topic_prefix
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._serve_reports, daemon=True, name="kafka-ack")
        self._poller.start()
        self.sent = 0
        self.dropped = 0
        """`offer`ed messages refused because the local queue was full."""
        self.failed = 0
        """Messages the broker did not take after librdkafka's retries."""

    def _serve_reports(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)

    def _produce(self, message: KafkaMessage, on_delivery: object) -> None:
        self._producer.produce(
            self._prefix + message.topic,
            message.value,
            message.key,
            headers=list(message.headers) if message.headers else None,
            on_delivery=on_delivery,
        )
        self.sent += 1

    async def send(self, message: KafkaMessage, timeout_s: float = 15.0) -> None:
        """Produce and wait for the broker's acknowledgement."""
        loop = asyncio.get_running_loop()
        acked: asyncio.Future[None] = loop.create_future()

        def report(err: KafkaError | None, _msg: object) -> None:
            loop.call_soon_threadsafe(_settle, acked, err)

        try:
            self._produce(message, report)
        except BufferError:
            raise ProduceError("the producer's queue is full; retry later") from None
        except Exception as e:  # KafkaException: a message the client refuses outright
            raise ProduceError(str(e)) from None
        try:
            await asyncio.wait_for(acked, timeout_s)
        except TimeoutError:
            raise ProduceError(f"no acknowledgement from Kafka within {timeout_s:.0f} s") from None

    def offer(self, message: KafkaMessage) -> bool:
        """Enqueue without waiting; False (counted and logged) when the queue is full."""
        try:
            self._produce(message, self._count_failure)
        except BufferError:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("Kafka queue full: %d message(s) dropped so far", self.dropped)
            return False
        return True

    def _count_failure(self, err: KafkaError | None, msg: object) -> None:
        if err is not None:
            self.failed += 1
            if self.failed == 1 or self.failed % 1000 == 0:
                log.warning("Kafka delivery failed (%d so far): %s", self.failed, err.str())

    def reachable(self, timeout_s: float = 2.0) -> bool:
        """Whether a broker answers a metadata request now (readiness)."""
        try:
            self._producer.list_topics(timeout=timeout_s)
        except Exception:
            return False
        return True

    def close(self, timeout_s: float = 10.0) -> int:
        """Flush what is queued; returns how many messages were still undelivered."""
        left = self._producer.flush(timeout_s)
        self._stop.set()
        self._poller.join(timeout=1.0)
        return left


def _settle(acked: asyncio.Future[None], err: KafkaError | None) -> None:
    if acked.done():
        return
    if err is None:
        acked.set_result(None)
    else:
        acked.set_exception(ProduceError(err.str()))
