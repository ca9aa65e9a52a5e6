"""Event-time order: frames from many partitions in, the same events in one order out.

A running state that many topics feed (a per-user summary, co-occurrence counts)
would depend on how their partitions interleave, which differs on every run. So
the events are held until the watermark (dataflows/windowing.py: per source
partition, the smallest over all of them) has passed them, and then released
sorted by (event time, event id): the order is the same on every replay, and so
is every state built from it. Events behind their partition's watermark are late:
they go to `late_events` and do not touch the state. A repeated event id among
the held events is released once; a repeat after its release is behind the
watermark, so it is late.

    frames ─► key by source ─► watermark ─► one shard ─► hold, release in order ─► process
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import bytewax.operators as op
import polars as pl
import pyarrow as pa
from bytewax.dataflow import Stream, operator
from bytewax.operators import StatefulLogic

from dataflows.windowing import (
    NEVER,
    Clock,
    Frame,
    Slice,
    SourceWatermarks,
    Watermark,
    late_events_table,
)

TICK = timedelta(microseconds=1)
"""Lateness is judged per event: a 1 µs window is the event's own time."""

Process = Callable[[Any, pl.DataFrame], tuple[Any, list[tuple[str, pa.Table]]]]
"""(state, released events in order) -> (state, [(output name, table), ...])."""


@dataclass
class OrderState:
    held: pl.DataFrame | None = None
    watermarks: SourceWatermarks | None = None
    released_to: int = NEVER
    model: Any = None


@dataclass
class _OrderLogic(StatefulLogic[Slice, tuple[str, pa.Table], OrderState]):
    flow: str
    key: tuple[str, ...]
    clock: Clock
    process: Process
    state: OrderState = field(default_factory=OrderState)

    def _wall(self) -> float:
        return self.clock.now().timestamp()

    def on_item(self, value: Slice) -> tuple[list[tuple[str, pa.Table]], bool]:
        out: list[tuple[str, pa.Table]] = []
        if value.late is not None:
            out.append(("late_events", self._late(value.late)))
        self.state.watermarks.heard(value.source, value.watermark_us, self._wall())  # type: ignore[union-attr]
        if value.events.height:
            held = self.state.held
            self.state.held = value.events if held is None else pl.concat([held, value.events])
        return out + self._release(self._watermark()), False

    def on_notify(self) -> tuple[list[tuple[str, pa.Table]], bool]:
        return self._release(self._watermark()), False

    def on_eof(self) -> tuple[list[tuple[str, pa.Table]], bool]:
        return self._release(2**62), False

    def notify_at(self) -> datetime | None:
        return None if self.state.held is None else self.clock.now() + timedelta(seconds=1)

    def snapshot(self) -> OrderState:
        s = self.state
        return OrderState(s.held, s.watermarks.copy(), s.released_to, s.model)  # type: ignore[union-attr]

    def _watermark(self) -> int:
        idle = self.clock.idle_timeout.total_seconds()
        return self.state.watermarks.combined(self._wall(), idle)  # type: ignore[union-attr]

    def _release(self, watermark_us: int) -> list[tuple[str, pa.Table]]:
        s = self.state
        if s.held is None or watermark_us <= s.released_to:
            return []
        s.released_to = watermark_us
        ts_us = pl.col("ts").dt.epoch("us")
        due = s.held.filter(ts_us < watermark_us)
        rest = s.held.filter(ts_us >= watermark_us)
        s.held = rest if rest.height else None
        if not due.height:
            return []
        due = due.sort("ts", "event_id", maintain_order=True)  # ties: first arrival first
        due = due.unique("event_id", keep="first", maintain_order=True)
        s.model, out = self.process(s.model, due)
        return out

    def _late(self, late: pl.DataFrame) -> pa.Table:
        return late_events_table(self.flow, late, self.key, TICK)


@operator
def in_event_time_order(
    step_id: str,
    up: Stream[Frame],
    flow: str,
    key: Sequence[str],
    process: Process,
    clock: Clock,
    sources: Sequence[str] = (),
) -> Stream[tuple[str, pa.Table]]:
    """Release `up`'s events in event-time order to `process`; its outputs, and late
    events as ("late_events", table), come out as (name, table) pairs."""
    keyed = op.key_on("by_source", up, lambda f: f.source)
    watermark = Watermark(TICK, "ts", tuple(key), clock, 1)
    sliced = op.stateful_flat_map("watermark", keyed, watermark)
    to_one = op.map("to_one_shard", sliced, lambda kv: kv[1])

    def build(resume: OrderState | None) -> _OrderLogic:
        state = resume or OrderState(
            watermarks=SourceWatermarks(tuple(sources), clock.now().timestamp())
        )
        return _OrderLogic(flow, tuple(key), clock, process, state)

    return op.map("named", op.stateful("in_order", to_one, build), lambda kv: kv[1])
