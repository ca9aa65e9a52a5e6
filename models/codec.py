"""Whole-batch decode and encode of events, where a bad message is a result, not an exception.

`decode_batch` turns a list of raw message values into the events that decoded
and a `DecodeFailure` for every one that did not, each with a reason a person
can act on and the raw bytes, so the caller can dead-letter it. Nothing raised
by a message's content escapes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from models.base import Event
from models.logs import LogRecord, parse_plain
from models.topics import LOG_EVENTS, spec

MAX_EVENT_BYTES = 1_048_576
"""Larger values are rejected before parsing: no event of the contract comes near this."""


@dataclass(frozen=True, slots=True)
class DecodeFailure:
    index: int
    """Position in the decoded batch, so the caller can attach partition and offset."""
    raw: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class DecodedBatch:
    events: list[Event]
    indices: list[int]
    """indices[i] is the batch position events[i] came from."""
    failures: list[DecodeFailure]


_encoder = msgspec.json.Encoder()


def encode(event: Event) -> bytes:
    """Canonical JSON: fields in schema order, UTC times as RFC 3339 with `Z`."""
    return _encoder.encode(event)


def failure_reason(error: Exception) -> str:
    """The reason a dead letter records for what a msgspec decode raised."""
    if isinstance(error, RecursionError):
        return "malformed JSON: nested too deeply"
    if isinstance(error, msgspec.DecodeError) and not isinstance(error, msgspec.ValidationError):
        return f"malformed JSON: {error}"
    return f"invalid event: {error}"


def check_raw(raw: bytes | None) -> str | None:
    """What is wrong with a message before any parsing (null, oversized, not UTF-8), or None."""
    if raw is None:
        return "empty message (null value)"
    if len(raw) > MAX_EVENT_BYTES:
        return f"message of {len(raw)} bytes exceeds the {MAX_EVENT_BYTES}-byte limit"
    if not raw.isascii():
        # msgspec does not check UTF-8 inside object keys or skipped values.
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as e:
            return f"not UTF-8: invalid byte at position {e.start}"
    return None


def _json_decoder(schema: Any) -> Callable[[bytes], Event]:
    return msgspec.json.Decoder(schema).decode


def _log_decoder() -> Callable[[bytes], Event]:
    """Log lines are JSON when they look like JSON, plain text otherwise."""
    as_json = msgspec.json.Decoder(LogRecord).decode

    def decode(raw: bytes) -> Event:
        if raw.lstrip()[:1] == b"{":
            return as_json(raw)
        return parse_plain(raw)

    return decode


class BatchDecoder:
    """Decodes the messages of one topic. Build once per topic and reuse: it is stateless."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self._decode_one = (
            _log_decoder() if topic == LOG_EVENTS else _json_decoder(spec(topic).schema)
        )

    def decode(self, raw: bytes | None) -> Event:
        """Decode one message; raises ValueError with the reason on bad input."""
        problem = check_raw(raw)
        if problem is not None:
            raise ValueError(problem)
        try:
            return self._decode_one(raw)
        except (msgspec.MsgspecError, ValueError, TypeError, RecursionError) as e:
            raise ValueError(failure_reason(e)) from None

    def decode_batch(self, raws: Sequence[bytes | None]) -> DecodedBatch:
        events: list[Event] = []
        indices: list[int] = []
        failures: list[DecodeFailure] = []
        for index, raw in enumerate(raws):
            try:
                events.append(self.decode(raw))
                indices.append(index)
            except ValueError as e:
                failures.append(DecodeFailure(index, raw or b"", str(e)))
        return DecodedBatch(events, indices, failures)


def decode_batch(topic: str, raws: Sequence[bytes | None]) -> DecodedBatch:
    """One-off convenience; hot paths keep a BatchDecoder per topic."""
    return BatchDecoder(topic).decode_batch(raws)
