"""A Bytewax sink that produces to Kafka asynchronously, waits instead of failing on a full
queue, and never drops a message silently.

Unlike bytewax's own KafkaSink (synchronous flush per batch; panics on a full
queue, bytewax #522), `produce` only enqueues; delivery reports arrive on
librdkafka's schedule. The queue is drained (`flush`) before every snapshot,
so an epoch's messages are all acknowledged before the epoch counts as done,
and again on close. A message the broker would not take after librdkafka's
own retries stops the flow at the next batch or snapshot, with the reason.
Delivery is at-least-once: after a crash the epoch replays, so keys and ids
are deterministic for consumers to dedupe.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

import msgspec
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from confluent_kafka import KafkaError, Producer

from sinks.telemetry import sink_write

PRODUCER_DEFAULTS: dict[str, str | int | bool] = {
    "enable.idempotence": True,  # retries never duplicate or reorder within a partition
    # Delivery reports only for failures: a Python callback per acknowledged message
    # costs more than producing it. Failures are all we act on.
    "delivery.report.only.error": True,
    "acks": "all",
    "partitioner": "murmur2_random",  # the Java client's partitioner for keyed messages
    "linger.ms": 20,
    "batch.num.messages": 10_000,
    "batch.size": 1_000_000,
    "compression.type": "lz4",
    "queue.buffering.max.messages": 500_000,
    "queue.buffering.max.kbytes": 512 * 1024,
}
FLUSH_TIMEOUT_S = 300.0


class KafkaMessage(msgspec.Struct, frozen=True):
    topic: str
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


class KafkaDeliveryError(RuntimeError):
    """Kafka did not take a message after the client's retries; the flow must stop."""


class ReliableProducer:
    """A producer that waits out a full queue and remembers every failed delivery.

    The one way streamhouse produces: the Kafka sink and `streamhouse simulate` both use it.
    """

    def __init__(self, config: Mapping[str, object], topic_prefix: str = "") -> None:
        self._producer = Producer({**PRODUCER_DEFAULTS, **config})
        self._prefix = topic_prefix
        self.sent = 0
        self.failed = 0
        self.first_error: str | None = None
        self.waits = 0
        """How often a full queue made `send` wait: back-pressure, instead of an error."""
        self.reported = False
        """A failure is raised once: bytewax then closes the sink, which must not raise again
        (a second exception while the first unwinds aborts the process)."""

    def _on_delivery(self, err: KafkaError | None, msg: object) -> None:
        if err is not None:
            self.failed += 1
            if self.first_error is None:
                self.first_error = f"{err.str()} (topic {msg.topic()})"  # type: ignore[attr-defined]

    def send(self, m: KafkaMessage) -> None:
        self.send_many((m,))

    def send_many(self, messages: Iterable[KafkaMessage]) -> None:
        """Enqueue every message, in order; the hot loop of every Kafka output."""
        produce, prefix, report = self._producer.produce, self._prefix, self._on_delivery
        sent = 0
        for m in messages:
            while True:
                try:
                    produce(
                        prefix + m.topic,
                        m.value,
                        m.key,
                        headers=list(m.headers) if m.headers else None,
                        on_delivery=report,
                    )
                    sent += 1
                    break
                except BufferError:  # queue full: serve delivery reports until there is room
                    self.waits += 1
                    self._producer.poll(0.05)
        self.sent += sent

    def poll(self) -> None:
        """Serve delivery reports that arrived; raise if any message failed."""
        self._producer.poll(0)
        self.raise_if_failed()

    def raise_if_failed(self) -> None:
        if self.failed and not self.reported:
            self.reported = True
            raise KafkaDeliveryError(
                f"{self.failed} of {self.sent} message(s) were not delivered; "
                f"first: {self.first_error}"
            )

    def flush(self, timeout_s: float = FLUSH_TIMEOUT_S) -> None:
        """Wait until every message is acknowledged; raise if any was not."""
        deadline = time.monotonic() + timeout_s
        while (left := self._producer.flush(1.0)) > 0:
            if time.monotonic() > deadline:
                raise KafkaDeliveryError(
                    f"{left} message(s) still undelivered after {timeout_s:.0f} s"
                )
        self.raise_if_failed()


class _ProducerPartition(StatefulSinkPartition[KafkaMessage, None]):
    def __init__(self, producer: ReliableProducer) -> None:
        self.producer = producer

    def write_batch(self, values: list[KafkaMessage]) -> None:
        # The span covers enqueueing; delivery is awaited at the epoch's end (snapshot).
        with sink_write("kafka", ",".join(sorted({m.topic for m in values})), len(values)):
            self.producer.send_many(values)
            self.producer.poll()

    def snapshot(self) -> None:
        self.producer.flush()

    def close(self) -> None:
        self.producer.flush()


class KafkaSink(FixedPartitionedSink[KafkaMessage, None]):
    """Produce `(key, KafkaMessage)` items; the item key picks the sink partition, the
    message key the Kafka partition. `topic_prefix` is prepended to every topic."""

    def __init__(
        self, config: Mapping[str, object], parts: int = 1, topic_prefix: str = ""
    ) -> None:
        self.config = dict(config)
        self.parts = parts
        self.topic_prefix = topic_prefix

    def list_parts(self) -> list[str]:
        return [f"p{i}" for i in range(self.parts)]

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _ProducerPartition:
        return _ProducerPartition(ReliableProducer(self.config, self.topic_prefix))
