"""What flows between a dataflow's steps besides domain events: raw messages and their fates."""

from __future__ import annotations

from datetime import datetime

import msgspec


class RawMessage(msgspec.Struct, frozen=True):
    """One Kafka message (or simulated one) before decoding."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp_ms: int = 0
    """When the broker (or the simulated producer) took the message, ms since the epoch:
    unlike the wall clock at processing, the same on every replay."""


MessageBatch = list[RawMessage]
"""Sources hand whole batches downstream as one item: per-message Python objects in
bytewax's exchange are the cost to avoid (shared/notes/performance.md)."""


class DeadLetter(msgspec.Struct, frozen=True):
    """A message that could not be decoded or validated, and why. The raw bytes are kept."""

    topic: str
    partition: int
    offset: int
    raw: bytes
    reason: str
    flow: str
    key: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp_ms: int = 0


class LateEvent(msgspec.Struct, frozen=True):
    """An event that arrived after the watermark passed its window: counted, not lost."""

    flow: str
    key: str
    event_id: str
    ts: datetime
    window_start: datetime
