"""Test helpers: a frozen clock, reading a topic back completely, the Java client's partitioner."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bytewax.inputs import AbortExecution, FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

FROZEN = datetime(2030, 1, 1, tzinfo=UTC)


def frozen_now() -> datetime:
    """With a frozen clock a flow's watermark depends on its input alone: exact, repeatable."""
    return FROZEN


def java_murmur2(data: bytes) -> int:
    """org.apache.kafka.common.utils.Utils.murmur2, as an unsigned 32-bit value."""
    m, r = 0x5BD1E995, 24
    h = (0x9747B28C ^ len(data)) & 0xFFFFFFFF
    whole = len(data) & ~3
    for i in range(0, whole, 4):
        k = data[i] | data[i + 1] << 8 | data[i + 2] << 16 | data[i + 3] << 24
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    extra = len(data) & 3
    if extra == 3:
        h ^= data[whole + 2] << 16
    if extra >= 2:
        h ^= data[whole + 1] << 8
    if extra >= 1:
        h ^= data[whole]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def java_partition(key: bytes, partitions: int) -> int:
    """The Java producer's default partition for a keyed record."""
    return (java_murmur2(key) & 0x7FFFFFFF) % partitions


def read_all(bootstrap: str, topic: str, timeout_s: float = 60.0) -> list[Message]:
    """Every message in the topic now, all partitions, in partition then offset order."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "test-reader", "enable.auto.commit": False}
    )
    try:
        meta = consumer.list_topics(topic, timeout=timeout_s).topics[topic]
        ends = {}
        for p in meta.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        got: list[Message] = []
        seen = {p: -1 for p in ends}
        deadline = time.monotonic() + timeout_s
        while any(seen[p] < ends[p] - 1 for p in ends):
            assert time.monotonic() < deadline, f"timed out reading {topic}"
            for msg in consumer.consume(10_000, timeout=0.5):
                assert msg.error() is None, msg.error()
                got.append(msg)
                seen[msg.partition()] = msg.offset()
        return sorted(got, key=lambda m: (m.partition(), m.offset()))
    finally:
        consumer.close()


class CrashingSource(FixedPartitionedSource[Any, int]):
    """Emits `items` one per batch and aborts the run once at each index in `crash_at`.

    bytewax's TestingSource.ABORT counts its sentinels in the resume index, so after
    two aborts it resumes one item early and replays an already committed item; this
    source keeps the index of data items only. `crashed` records which crashes fired,
    and persists across runs because the same instance is reused.
    """

    def __init__(self, items: list[Any], crash_at: set[int]) -> None:
        self.items = items
        self.crash_at = set(crash_at)
        self.crashed: set[int] = set()

    def list_parts(self) -> list[str]:
        return ["items"]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _CrashingPart:
        return _CrashingPart(self, resume_state or 0)


class _CrashingPart(StatefulSourcePartition[Any, int]):
    def __init__(self, source: CrashingSource, position: int) -> None:
        self.source, self.position = source, position

    def next_batch(self) -> list[Any]:
        s = self.source
        if self.position >= len(s.items):
            raise StopIteration
        if self.position in s.crash_at and self.position not in s.crashed:
            s.crashed.add(self.position)
            raise AbortExecution()
        self.position += 1
        return [s.items[self.position - 1]]

    def snapshot(self) -> int:
        return self.position


def captured_rows(captured: dict[str, list], name: str) -> list[dict]:
    """A table's rows from `Outputs.captured` (Arrow tables, mappings or structs), sorted."""
    import msgspec
    import pyarrow as pa

    rows: list[dict] = []
    for item in captured.get(name, []):
        if isinstance(item, pa.Table):
            rows += item.to_pylist()
        elif isinstance(item, msgspec.Struct):
            rows.append(msgspec.structs.asdict(item))
        else:
            rows.append(dict(item))
    return sorted(rows, key=lambda r: tuple(str(v) for v in r.values()))


def lake_rows(lake: Path, table: str) -> list[tuple]:
    """A lake table's rows as sorted tuples: what the crash and fault tests compare with a
    clean run's."""
    from warehouse.lake import Lake
    from warehouse.query import Warehouse

    with Warehouse(Lake(lake)) as wh:
        data = wh.sql(f'SELECT * FROM "{table}"').to_pylist()
    return sorted((tuple(r.values()) for r in data), key=repr)
