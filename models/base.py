"""The envelope every event shares, and the constrained field types events are built from.

Constraints live in the types so that decoding *is* validation: a value out of
range is a decode failure with a reason, never a number that poisons an
aggregate later (a 1e300 price, a year-9999 timestamp, a NaN latency).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Annotated, ClassVar

import msgspec

SCHEMA_VERSION = 1
"""The newest event schema version this build writes and reads."""

EARLIEST_TS = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_TS = datetime(2100, 1, 1, tzinfo=UTC)
"""Event times outside [EARLIEST_TS, LATEST_TS) are rejected: they are clock bugs, not events."""

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Text = Annotated[str, msgspec.Meta(max_length=10_000)]
Timestamp = Annotated[datetime, msgspec.Meta(tz=True)]
Money = Annotated[float, msgspec.Meta(ge=0.0, le=1e9)]
Quantity = Annotated[int, msgspec.Meta(ge=1, le=100_000)]
Currency = Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$")]
DurationMs = Annotated[float, msgspec.Meta(ge=0.0, le=86_400_000.0)]
Version = Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)]
Finite = Annotated[float, msgspec.Meta(ge=-1e15, le=1e15)]
"""A float bounded so that NaN, the infinities and absurd magnitudes are all rejected."""


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Fields every event carries. `type` is the tag; each subclass sets its value.

    `event_id` is producer-assigned and unique: re-deliveries carry the same id,
    so counts can count it once.
    """

    event_id: Id
    ts: Timestamp
    schema_version: int = SCHEMA_VERSION

    key_field: ClassVar[str] = "event_id"
    """The field naming the entity the event is about; it becomes the message key."""

    def __post_init__(self) -> None:
        if self.schema_version != SCHEMA_VERSION:
            raise ValueError(
                f"unsupported schema_version {self.schema_version} "
                f"(this build reads {SCHEMA_VERSION})"
            )
        if not EARLIEST_TS <= self.ts < LATEST_TS:
            raise ValueError(
                f"ts {self.ts.isoformat()} is outside the accepted range "
                f"[{EARLIEST_TS.date()}, {LATEST_TS.date()})"
            )

    def key(self) -> str:
        """The entity this event is about, so one entity's events stay in order."""
        return str(getattr(self, self.key_field))


def derived_id(*parts: object) -> str:
    """A deterministic id for a derived record (flow, key, window ...): reruns give the same id."""
    text = "\x1f".join(str(part) for part in parts)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def type_tag(value: msgspec.Struct) -> str:
    """The `type` an event or command is tagged with on the wire (`order_created`, ...)."""
    return type(value).__struct_config__.tag  # type: ignore[return-value]
