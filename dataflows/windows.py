"""Event-time windowing shared by the analytics flows: epoch-aligned tumbling windows.

Windows are aligned to the Unix epoch, so window ids (and derived ids) are the
same whatever time a flow started. The watermark trails the largest event time
seen by the allowed lateness and advances with wall-clock time while a key is
idle (bytewax's EventClock), so windows close without new data.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from bytewax.operators.windowing import EventClock, TumblingWindower

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def tumbling(length: timedelta) -> TumblingWindower:
    return TumblingWindower(length=length, align_to=EPOCH)


def system_now() -> datetime:
    return datetime.now(UTC)


def event_clock(
    ts_of: Callable[[Any], datetime],
    allowed_lateness_s: float,
    now: Callable[[], datetime] = system_now,
) -> EventClock:
    """`now` drives the idle advance of the watermark; a frozen `now` makes lateness depend
    on the input alone (tests, replays)."""
    return EventClock(
        ts_of, wait_for_system_duration=timedelta(seconds=allowed_lateness_s), now_getter=now
    )


def window_start(window_id: int, length: timedelta) -> datetime:
    return EPOCH + window_id * length
