"""The decode step every dataflow starts with: a batch of raw messages -> events | dead letters."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from dataflows.messages import DeadLetter, RawMessage
from models.base import Event
from models.codec import BatchDecoder


class TopicDecoder:
    """Decodes the messages of the given topics; other topics' messages are not this flow's.

    Yields events and dead letters in batch order, so one `op.flat_map` plus one
    `op.branch` give a flow its valid stream and its dead-letter stream.
    """

    def __init__(self, flow: str, topics: Iterable[str]) -> None:
        self.flow = flow
        self._decoders = {topic: BatchDecoder(topic) for topic in topics}

    def __call__(self, batch: list[RawMessage]) -> Iterator[Event | DeadLetter]:
        for _message, result in self.pairs(batch):
            yield result

    def pairs(self, batch: list[RawMessage]) -> Iterator[tuple[RawMessage, Event | DeadLetter]]:
        """Each of this flow's messages with what it decoded to, for flows that keep both."""
        for message in batch:
            decoder = self._decoders.get(message.topic)
            if decoder is None:
                continue
            try:
                yield message, decoder.decode(message.value)
            except ValueError as e:
                yield message, self._dead(message, str(e))

    def _dead(self, message: RawMessage, reason: str) -> DeadLetter:
        return DeadLetter(
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            raw=message.value or b"",
            reason=reason,
            flow=self.flow,
            key=message.key,
            headers=message.headers,
            timestamp_ms=message.timestamp_ms,
        )
