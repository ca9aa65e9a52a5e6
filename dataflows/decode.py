"""The decode step every dataflow starts with: raw message batches -> events or frames,
and dead letters."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from dataflows.messages import DeadLetter, MessageBatch, RawMessage
from dataflows.tracing import Traced, traceparent_header
from dataflows.windowing import Frame
from models.base import Event
from models.codec import BatchDecoder
from models.frames import FrameDecoder


class TopicDecoder:
    """Decodes the messages of the given topics; other topics' messages are not this flow's.

    Yields events and dead letters in batch order, so one `op.flat_map` plus one
    `op.branch` give a flow its valid stream and its dead-letter stream. With
    `traced`, each event comes as `Traced(event, its message's traceparent)`, for flows
    that continue each message's trace (dataflows/tracing.py).
    """

    def __init__(self, flow: str, topics: Iterable[str], traced: bool = False) -> None:
        self.flow = flow
        self.traced = traced
        self._decoders = {topic: BatchDecoder(topic) for topic in topics}

    def __call__(self, batch: Iterable[RawMessage]) -> Iterator[Event | Traced | DeadLetter]:
        for message, result in self.pairs(batch):
            if self.traced and not isinstance(result, DeadLetter):
                yield Traced(result, traceparent_header(message.headers))
            else:
                yield result

    def pairs(self, batch: Iterable[RawMessage]) -> Iterator[tuple[RawMessage, Event | DeadLetter]]:
        """Each of this flow's messages with what it decoded to, for flows that keep both."""
        for message in batch:
            decoder = self._decoders.get(message.topic)
            if decoder is None:
                continue
            try:
                yield message, decoder.decode(message.value)
            except ValueError as e:
                yield message, dead_letter(message, str(e), self.flow)


def dead_letter(message: RawMessage, reason: str, flow: str) -> DeadLetter:
    return DeadLetter(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        raw=message.value or b"",
        reason=reason,
        flow=flow,
        key=message.key,
        headers=message.headers,
        timestamp_ms=message.timestamp_ms,
    )


class FrameDecoders:
    """The columnar decode step: a batch of one topic-partition -> one `Frame` and the
    batch's dead letters, for flows that aggregate column-wise (dataflows/windowing.py).

    `projections` maps each topic to the fields the flow reads (models/projections.py);
    other topics' batches are not this flow's.
    """

    def __init__(self, flow: str, projections: Mapping[str, Any]) -> None:
        self.flow = flow
        self._decoders = {topic: FrameDecoder(p) for topic, p in projections.items()}

    def __call__(self, batch: MessageBatch) -> list[Frame | DeadLetter]:
        decoder = self._decoders.get(batch.topic)
        if decoder is None or not len(batch):
            return []
        frame, failures = decoder.decode(batch.values)
        out: list[Frame | DeadLetter] = [
            dead_letter(batch.message(i), reason, self.flow) for i, reason in failures
        ]
        out.append(Frame(batch.source, frame))
        return out
