"""Where dataflows read from: Kafka, or the simulator in-process. Both emit `MessageBatch` items.

Each `next_batch` returns one item per topic-partition polled, the list of its
messages, so bytewax moves one Python object per poll instead of one per
message, and every batch comes from one `topic#partition` (the order in which
lateness is judged: dataflows/windowing.py). Positions
(Kafka offsets, simulator record counts) live in bytewax recovery snapshots;
nothing is committed to Kafka consumer groups.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import islice

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from dataflows.messages import MessageBatch, RawMessage
from dataflows.metrics import set_consumer_lag
from models.simulator import SimConfig, Simulator

SIMULATOR_PARTITION = "simulator"

TUNED_CONSUMER: dict[str, str | int | bool] = {
    # Without these the consumer waits on the broker most of the time
    # (shared/notes/performance.md: ~2.8x on the measured pipeline).
    # Measured on Apache Kafka 4.1 here (benchmarks/bench_windowed.py): the prefetch queue
    # size was the limit, 270 k msgs/s at librdkafka's defaults, 1.7-2.4 M with these.
    "fetch.wait.max.ms": 10,
    "max.partition.fetch.bytes": 50 * 1024 * 1024,
    "fetch.max.bytes": 100 * 1024 * 1024,
    "queued.min.messages": 1_000_000,
    "queued.max.messages.kbytes": 128 * 1024,
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
}


# --- simulator ------------------------------------------------------------------


def simulated_messages(config: SimConfig) -> Iterator[RawMessage]:
    """The simulation as messages, as if through a one-partition topic each: offsets count
    per topic, the broker's time is the simulated emit time."""
    offsets: dict[str, int] = {}
    start_ms = int(config.start.timestamp() * 1000)
    for record in Simulator(config).records():
        offset = offsets.get(record.topic, 0)
        offsets[record.topic] = offset + 1
        yield RawMessage(
            record.topic,
            0,
            offset,
            record.key,
            record.value,
            record.headers,
            start_ms + int(record.emit_s * 1000),
        )


class _SimulatorPartition(StatefulSourcePartition[MessageBatch, int]):
    """Replays the deterministic simulation; the snapshot is how many records were emitted."""

    def __init__(
        self,
        config: SimConfig,
        batch_size: int,
        position: int,
        on_batch: Callable[[int], None] | None,
    ) -> None:
        self._messages = simulated_messages(config)
        self._batch_size = batch_size
        self._position = 0
        self._on_batch = on_batch
        while self._position < position:  # resume: the simulation is deterministic
            if not self._take(min(batch_size, position - self._position)):
                break

    def _take(self, n: int) -> list[RawMessage]:
        batch = list(islice(self._messages, n))
        self._position += len(batch)
        return batch

    def next_batch(self) -> Iterable[MessageBatch]:
        batch = self._take(self._batch_size)
        if not batch:
            raise StopIteration
        if self._on_batch is not None:
            self._on_batch(len(batch))
        return MessageBatch.split(batch)  # one topic-partition per batch, as from Kafka

    def snapshot(self) -> int:
        return self._position


class SimulatorSource(FixedPartitionedSource[MessageBatch, int]):
    """The traffic simulator as a bytewax source: no broker needed (the demo, tests).

    `on_batch(n)` is called after each batch, e.g. to drive a progress bar.
    """

    def __init__(
        self,
        config: SimConfig,
        batch_size: int = 5_000,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.config = config
        self.batch_size = batch_size
        self.on_batch = on_batch

    def list_parts(self) -> list[str]:
        return [SIMULATOR_PARTITION]

    def topic_partitions(self, topics: Iterable[str]) -> list[str]:
        """The `topic#partition`s a flow reading `topics` gets: one partition per topic."""
        return [f"{topic}#0" for topic in topics]

    def build_part(
        self, step_id: str, for_part: str, resume_state: int | None
    ) -> _SimulatorPartition:
        return _SimulatorPartition(self.config, self.batch_size, resume_state or 0, self.on_batch)


# --- Kafka ------------------------------------------------------------------------


class _KafkaPartition(StatefulSourcePartition[MessageBatch, int]):
    """One consumer per topic-partition, assigned (not subscribed) at the resume offset."""

    def __init__(
        self,
        config: Mapping[str, object],
        topic: str,
        partition: int,
        resume_offset: int | None,
        batch_size: int,
        until_eof: bool,
        logical_topic: str,
    ) -> None:
        self._topic, self._partition = logical_topic, partition
        consumer = Consumer(dict(config))
        start = OFFSET_BEGINNING if resume_offset is None else resume_offset
        consumer.assign([TopicPartition(topic, partition, start)])
        self._next_offset = resume_offset
        self._end: int | None = None
        if until_eof:
            _, self._end = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=30.0
            )
        self._prefetch = _Prefetcher(consumer, TopicPartition(topic, partition), batch_size)

    def next_batch(self) -> Iterable[MessageBatch]:
        if self._end is not None and (self._next_offset or 0) >= self._end:
            raise StopIteration
        batches = self._next()
        self._report_lag()
        return batches

    def _next(self) -> list[MessageBatch]:
        messages, values = self._prefetch.next(timeout_s=0.1)
        if not messages:
            return []
        last = messages[-1].offset()
        if self._end is not None and last >= self._end:
            keep = sum(1 for m in messages if m.offset() < self._end)
            messages, values = messages[:keep], values[:keep]
            if not messages:
                return []
            last = messages[-1].offset()
        self._next_offset = last + 1
        return [MessageBatch(self._topic, self._partition, values, messages)]

    def _report_lag(self) -> None:
        """`streamhouse.consumer.lag`, from the watermarks of the last fetch; a partition
        not read yet is behind by all it holds."""
        low, high = self._prefetch.low_watermark, self._prefetch.high_watermark
        if high >= 0:
            position = self._next_offset if self._next_offset is not None else max(low, 0)
            set_consumer_lag(self._topic, self._partition, max(0, high - position))

    def next_awake(self) -> None:
        return None  # next_batch already waits up to its timeout

    def snapshot(self) -> int | None:
        return self._next_offset

    def close(self) -> None:
        self._prefetch.close()


class _Prefetcher:
    """Consumes on a thread of its own, up to `depth` polls ahead of the flow.

    Turning librdkafka's messages into Python objects costs ~1 µs a message with
    the GIL held; the flow's columnar steps spend most of their time in polars with
    the GIL released. On a thread of its own, the next poll overlaps the work on the
    last one. Positions are unaffected: the partition counts a message as read only
    when `next` hands it downstream, so what was prefetched and not yet handed over
    at a snapshot is read again after a restart.
    """

    def __init__(
        self, consumer: Consumer, assigned: TopicPartition, batch_size: int, depth: int = 2
    ) -> None:
        self.consumer, self._assigned, self._batch_size = consumer, assigned, batch_size
        self.low_watermark = self.high_watermark = -1
        """The partition's first and end offsets as of the last fetch (librdkafka's cached value, read
        on this thread: the consumer is not to be called from two threads at once)."""
        self._ready: queue.Queue[tuple[list[Message], list[bytes | None]] | BaseException] = (
            queue.Queue(maxsize=depth)
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="kafka-prefetch")
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                messages = self.consumer.consume(self._batch_size, timeout=0.1)
                if any(m.error() for m in messages):
                    messages = _without_eof_markers(messages)
                self.low_watermark, self.high_watermark = self.consumer.get_watermark_offsets(
                    self._assigned, cached=True
                )
                if not messages:
                    continue
                polled = (messages, [m.value() for m in messages])
                while not self._stop.is_set():
                    try:
                        self._ready.put(polled, timeout=0.1)
                        break
                    except queue.Full:
                        continue
        except BaseException as e:  # handed to the flow's thread, which raises it
            self._ready.put(e)

    def next(self, timeout_s: float) -> tuple[list[Message], list[bytes | None]]:
        """The next poll's messages and their values; empty when none came in time."""
        try:
            got = self._ready.get(timeout=timeout_s)
        except queue.Empty:
            return [], []
        if isinstance(got, BaseException):
            raise got
        return got

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)
        self.consumer.close()


class KafkaBatchSource(FixedPartitionedSource[MessageBatch, int | None]):
    """Reads topics from Kafka as batches; `until_eof` stops at the end offsets seen at start.

    `topic_prefix` is prepended to the names on the cluster; messages carry the
    logical name (`order-events`), so flows never see the prefix.
    """

    def __init__(
        self,
        config: Mapping[str, object],
        topics: Iterable[str],
        batch_size: int = 50_000,
        until_eof: bool = False,
        topic_prefix: str = "",
    ) -> None:
        self.config = {**TUNED_CONSUMER, "group.id": "streamhouse", **config}
        self.topics = list(topics)
        self.batch_size = batch_size
        self.until_eof = until_eof
        self.topic_prefix = topic_prefix

    def list_parts(self) -> list[str]:
        consumer = Consumer(dict(self.config))
        try:
            parts = []
            for topic in self.topics:
                name = self.topic_prefix + topic
                meta = consumer.list_topics(name, timeout=30.0).topics[name]
                if meta.error is not None:
                    raise KafkaException(
                        f"topic {name!r} cannot be read ({meta.error.str()}); "
                        "does it exist? `streamhouse topics create` creates every topic"
                    )
                parts += [f"{topic}#{p}" for p in sorted(meta.partitions)]
            return parts
        finally:
            consumer.close()

    def topic_partitions(self, topics: Iterable[str]) -> list[str]:
        """The `topic#partition`s of `topics` (all of this source's by default)."""
        wanted = set(topics)
        return [p for p in self.list_parts() if p.rpartition("#")[0] in wanted]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _KafkaPartition:
        topic, _, partition = for_part.rpartition("#")
        return _KafkaPartition(
            self.config,
            self.topic_prefix + topic,
            int(partition),
            resume_state,
            self.batch_size,
            self.until_eof,
            logical_topic=topic,
        )


def topic_partitions(source: object, topics: Iterable[str]) -> list[str]:
    """The `topic#partition`s a flow reading `topics` from `source` will see; empty for a
    source that cannot tell (then windows wait only for the partitions heard from)."""
    listing = getattr(source, "topic_partitions", None)
    return listing(topics) if listing is not None else []


def _without_eof_markers(messages: list[Message]) -> list[Message]:
    kept = []
    for m in messages:
        if (error := m.error()) is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                continue
            raise KafkaException(error)
        kept.append(m)
    return kept


# --- memory -----------------------------------------------------------------------


class _MemoryPartition(StatefulSourcePartition[MessageBatch, int]):
    def __init__(
        self,
        log: list[RawMessage],
        position: int,
        batch_size: int | None,
        on_batch: Callable[[int], None] | None,
    ) -> None:
        self._log, self._position = log, position
        self._batch_size, self._on_batch = batch_size, on_batch

    def next_batch(self) -> Iterable[MessageBatch]:
        if self._position >= len(self._log):
            raise StopIteration
        end = len(self._log) if self._batch_size is None else self._position + self._batch_size
        batch = self._log[self._position : end]
        self._position += len(batch)
        if self._on_batch is not None:
            self._on_batch(len(batch))
        return MessageBatch.split(batch)

    def snapshot(self) -> int:
        return self._position


class MemorySource(FixedPartitionedSource[MessageBatch, int]):
    """A list of messages as a bounded source, read from where the last run stopped.

    With bytewax recovery, each run picks up the messages appended since the last one,
    as a restarted flow picks up a topic: how the demo runs the CQRS flows without a
    broker, with the API's commands and the command handler's events kept in lists.
    """

    def __init__(
        self,
        log: list[RawMessage],
        batch_size: int | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.log, self.batch_size, self.on_batch = log, batch_size, on_batch

    def list_parts(self) -> list[str]:
        return ["memory"]

    def topic_partitions(self, topics: Iterable[str]) -> list[str]:
        """The `topic#partition`s of `topics` in the log, so windows and event-time order
        wait for each of them, as they do for a topic's partitions (dataflows/windowing.py)."""
        wanted = set(topics)
        return sorted({f"{m.topic}#{m.partition}" for m in self.log if m.topic in wanted})

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _MemoryPartition:
        return _MemoryPartition(self.log, resume_state or 0, self.batch_size, self.on_batch)
