"""What flows between a dataflow's steps besides domain events: raw messages and their fates."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

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


class MessageBatch:
    """One poll of one topic-partition: the values as a column, the rest on demand.

    Sources hand whole batches downstream as one item, and a flow reads the values
    column at once: a Python object per message costs more than the columnar decode
    of it. `message(i)` (or iterating) gives a `RawMessage` with key, headers and
    broker time, for the few messages that need them (dead letters) or flows that
    work message by message. `messages` are RawMessages, or confluent-kafka Messages
    turned into RawMessages only when asked for (a batch never leaves its worker
    unpickled: pickling converts them all).
    """

    __slots__ = ("_messages", "partition", "topic", "values")

    def __init__(
        self,
        topic: str,
        partition: int,
        values: list[bytes | None],
        messages: Sequence[Any],
    ) -> None:
        self.topic, self.partition, self.values = topic, partition, values
        self._messages = messages

    @property
    def source(self) -> str:
        """`topic#partition`, the name lateness and positions are kept under."""
        return f"{self.topic}#{self.partition}"

    def __len__(self) -> int:
        return len(self.values)

    def message(self, i: int) -> RawMessage:
        m = self._messages[i]
        if isinstance(m, RawMessage):
            return m
        return RawMessage(
            self.topic,
            self.partition,
            m.offset(),
            m.key(),
            self.values[i],
            tuple(m.headers() or ()),
            m.timestamp()[1],
        )

    def __iter__(self) -> Iterator[RawMessage]:
        return (self.message(i) for i in range(len(self.values)))

    def __reduce__(self) -> tuple[Any, ...]:
        return (MessageBatch, (self.topic, self.partition, self.values, list(self)))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MessageBatch) and list(self) == list(other)

    @staticmethod
    def split(messages: Iterable[RawMessage]) -> list[MessageBatch]:
        """Messages of any topics -> one batch per topic-partition, order kept within each."""
        groups: dict[tuple[str, int], list[RawMessage]] = {}
        for m in messages:
            groups.setdefault((m.topic, m.partition), []).append(m)
        return [
            MessageBatch(topic, partition, [m.value for m in group], group)
            for (topic, partition), group in groups.items()
        ]


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
