"""Columnar event-time windows: whole frames in, per-(key, window) partial aggregates in state.

Bytewax's own window operators cost a Python call (or several) per event. Here
a frame of events goes through two stateful steps:

    frames ─► key by source (topic#partition) ─► watermark: split on-time | late
           ─► by shard (stable hash of the key) ─► shard: dedupe, partial aggregates,
                                                   close windows behind the watermark ─► rows
                                                                                       └► late

**Lateness is decided per source partition**, in the partition's own order:
an event is late when the watermark *at its position* (largest event time
before it in that partition, minus the allowed lateness) has passed the end of
its window. That order is the same on every replay, so which events are late
does not depend on batch sizes, worker counts or restarts.

**Windows close on the shard's watermark**: the smallest of its sources'
watermarks. A window closes only when every source has passed it, so an event
its partition calls on time never finds its window closed. A source that has
sent nothing for `idle_s` (wall clock) stops holding windows open; when all are
idle the watermark moves on with the wall clock, so windows close without new
data. With a frozen clock (tests, replays) only event time counts.

**Duplicates** (same `event_id` in one window) count once: each shard keeps the
64-bit hashes of the ids of its open windows as a polars frame (16 bytes an id;
collision odds for 10 M ids in one window: ~3e-6), checks held events against
it when it folds them into partials, and drops a window's hashes when it closes.

**State** is the partials frame, the id hashes of open windows and the
per-source watermarks: small per key, never a list of events.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import bytewax.operators as op
import polars as pl
import pyarrow as pa
import pyarrow.compute  # Arrow casts import it lazily: at start-up, not at the first window
from bytewax.dataflow import Stream, operator
from bytewax.operators import StatefulLogic

from models.base import derived_id

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
WINDOW = "_window"
"""Window number: window start = EPOCH + WINDOW * length."""
DUPS = "_duplicates"
DUP_FLAG = "_repeated"
SEEN = "_seen"
_MIX = 0x9E3779B97F4A7C15
"""Mixes the window number into an id's hash: one id in two windows is two entries."""
PENDING_ROWS = 250_000
"""Events a shard holds before folding them into its partials."""
HASH_SEED = 0x5EED
"""Fixed seed for id hashes. polars does not promise the hash across versions: keep the
polars version fixed for the lifetime of a recovery store (it is pinned in pyproject)."""
NEVER = -(2**62)


def system_now() -> datetime:
    return datetime.now(UTC)


def window_start(window: int, length: timedelta) -> datetime:
    return EPOCH + window * length


def window_starts(windows: pl.Series, length: timedelta) -> pl.Series:
    """Window numbers -> their start times (UTC)."""
    return pl.from_epoch(windows * _us(length), time_unit="us").dt.replace_time_zone("UTC")


def with_window_bounds(closed: pl.DataFrame, length: timedelta) -> pl.DataFrame:
    """Closed partials + `window_start` and `window_end` columns."""
    start = window_starts(closed[WINDOW], length)
    return closed.with_columns(start.alias("window_start"), (start + length).alias("window_end"))


def with_row_ids(
    rows: pl.DataFrame, column: str, flow: str, key: Sequence[str], at: str = "window_start"
) -> pl.DataFrame:
    """A deterministic id per row: derived_id(flow, *key values, window start): a rerun,
    a replay or a restart gives every row the same id, so consumers can dedupe."""
    parts = [rows[k].cast(pl.String).to_list() for k in key]
    starts = [t.isoformat() for t in rows[at].to_list()]
    ids = [derived_id(flow, *values) for values in zip(*parts, starts, strict=True)]
    return rows.with_columns(pl.Series(column, ids, dtype=pl.String))


def to_table(rows: pl.DataFrame, table: Any) -> pa.Table:
    """Rows -> an Arrow table of `table`'s schema (column order and types)."""
    return rows.select(table.schema.names).to_arrow().cast(table.schema)


def _us(length: timedelta) -> int:
    return length // timedelta(microseconds=1)


@dataclass(frozen=True)
class Frame:
    """Events decoded from one batch of one source partition, as columns."""

    source: str
    """`topic#partition`: the order lateness is judged in."""
    events: pl.DataFrame


@dataclass(frozen=True)
class WindowAggregation:
    """What one flow computes per (key, window), as polars expressions.

    `partial` aggregates a frame of events grouped by key and window into partial
    columns; `merge` aggregates partial rows of one key and window into one (it
    must ignore nulls: a batch of only duplicates adds a row of nulls); `finish`
    turns closed windows' merged partials (key columns, `_window`, partial columns,
    `_duplicates`) into the rows of the flow's table.
    """

    flow: str
    key: tuple[str, ...]
    length: timedelta
    partial: Sequence[pl.Expr]
    merge: Sequence[pl.Expr]
    finish: Callable[[pl.DataFrame], pa.Table]
    time_column: str = "ts"
    id_column: str = "event_id"
    shard_key: tuple[str, ...] | None = None
    """Columns that pick the shard, if not the whole key: keys that share them close their
    windows in the same `finish` call (api_metrics keys on latency buckets of a route
    and shards by service: its error-rate rule sums a service's routes per window).
    `()` puts every key in one shard (order_stats: its alert watches the total of all
    currencies per window)."""


@dataclass(frozen=True)
class Clock:
    """Event time (default) or processing time, the allowed lateness and the idle timeout."""

    allowed_lateness: timedelta = timedelta(seconds=10)
    idle: timedelta | None = None
    """None: the allowed lateness."""
    processing_time: bool = False
    """Window on the wall clock at processing instead of the events' `ts`."""
    now: Callable[[], datetime] = system_now

    @property
    def idle_timeout(self) -> timedelta:
        return self.allowed_lateness if self.idle is None else self.idle


@dataclass
class Slice:
    """What the watermark step sends a shard: its on-time rows and the source's watermark."""

    source: str
    watermark_us: int
    events: pl.DataFrame
    late: pl.DataFrame | None = None


def shard_of(frame: pl.DataFrame, key: Sequence[str], shards: int) -> pl.Series:
    """A stable shard per key: the same key lands on the same shard on every run."""
    joined = pl.concat_str([pl.col(k).cast(pl.String) for k in key], separator="\x1f")
    return frame.select((joined.hash(HASH_SEED) % shards).cast(pl.UInt32)).to_series()


# --- step 1: lateness per source partition -----------------------------------------


class Watermark:
    """State: the largest event time (µs) seen in one source partition."""

    def __init__(
        self,
        length: timedelta,
        time_column: str,
        shard_key: Sequence[str],
        clock: Clock,
        shards: int,
    ) -> None:
        self.time_column, self.shard_key = time_column, tuple(shard_key)
        self.clock, self.shards = clock, shards
        self.length_us = _us(length)
        self.lateness_us = _us(clock.allowed_lateness)

    def __call__(
        self, max_us: int | None, frame: Frame
    ) -> tuple[int | None, list[tuple[str, Slice]]]:
        events = frame.events
        time_col = self.time_column
        if self.clock.processing_time:
            events = events.with_columns(
                pl.lit(self.clock.now()).cast(events[time_col].dtype).alias(time_col)
            )
        seen = NEVER if max_us is None else max_us
        ts_us = pl.col(time_col).dt.epoch("us")
        before = ts_us.cum_max().shift(1, fill_value=seen)
        late_mask = (ts_us // self.length_us + 1) * self.length_us <= pl.max_horizontal(
            before, pl.lit(seen)
        ) - self.lateness_us
        marked = events.lazy().with_columns(
            (ts_us // self.length_us).alias(WINDOW), late_mask.alias("_late")
        )
        on_time, late, newest = pl.collect_all(
            [
                marked.filter(~pl.col("_late")).drop("_late"),
                marked.filter(pl.col("_late")).drop("_late"),
                marked.select(ts_us.max()),
            ]
        )
        if events.height:
            seen = max(seen, newest.item())
        watermark = seen - self.lateness_us
        if self.shards == 1 or not self.shard_key:
            parts = [on_time]
        else:
            shard = shard_of(on_time, self.shard_key, self.shards)
            parts = [on_time.filter(shard == i) for i in range(self.shards)]
        out = [(f"shard-{i}", Slice(frame.source, watermark, part)) for i, part in enumerate(parts)]
        if late.height:
            out[0][1].late = late
        return seen, out


# --- step 2: shards of keys ------------------------------------------------------------


@dataclass
class SourceWatermarks:
    """What a shard knows of its sources' watermarks, and the watermark it may act on:
    the smallest over the sources still sending (see the module doc)."""

    expected: tuple[str, ...]
    started: float
    """Wall time the shard first ran: a source never heard from holds windows open
    until it has been silent this long."""
    sources: dict[str, tuple[int, float]] = field(default_factory=dict)
    """source -> (watermark µs, wall time of its last batch)."""

    def heard(self, source: str, watermark_us: int, wall: float) -> None:
        old = self.sources.get(source, (NEVER, 0.0))
        self.sources[source] = (max(old[0], watermark_us), wall)

    def combined(self, wall: float, idle_s: float) -> int:
        known = {src: self.sources.get(src, (NEVER, self.started)) for src in self.expected}
        known.update(self.sources)
        active = [wm for wm, last in known.values() if wall - last < idle_s]
        if active:
            return min(active)
        heard = [(wm, last) for wm, last in known.values() if wm > NEVER]
        if not heard:
            return NEVER
        return max(wm + int((wall - last) * 1e6) for wm, last in heard)

    def copy(self) -> SourceWatermarks:
        return SourceWatermarks(self.expected, self.started, dict(self.sources))


@dataclass
class ShardState:
    partials: pl.DataFrame | None = None
    pending: list[pl.DataFrame] = field(default_factory=list)
    seen_ids: pl.DataFrame | None = None
    """Open windows' id hashes: `_window` and `_seen` (the id's hash mixed with its window)."""
    watermarks: SourceWatermarks | None = None
    open_from: int = NEVER
    """Windows below this number are closed: their rows are out."""


class _ShardLogic(StatefulLogic[Slice, tuple[str, pa.Table], ShardState]):
    def __init__(
        self,
        agg: WindowAggregation,
        clock: Clock,
        expected_sources: Sequence[str],
        state: ShardState | None,
    ) -> None:
        self.agg, self.clock = agg, clock
        self.length_us = _us(agg.length)
        self.state = state or ShardState(
            watermarks=SourceWatermarks(tuple(expected_sources), self._wall())
        )
        self.marks: SourceWatermarks = self.state.watermarks  # type: ignore[assignment]
        self.group = [*agg.key, WINDOW]

    def _wall(self) -> float:
        return self.clock.now().timestamp()

    # bytewax entry points
    def on_item(self, value: Slice) -> tuple[list[tuple[str, pa.Table]], bool]:
        out: list[tuple[str, pa.Table]] = []
        if value.late is not None:
            out.append(("late", self._late_rows(value.late)))
        state = self.state
        self.marks.heard(value.source, value.watermark_us, self._wall())
        events = value.events
        if events.height:
            closed = events.filter(pl.col(WINDOW) < state.open_from)
            if closed.height:
                out.append(("late", self._late_rows(closed)))
                events = events.filter(pl.col(WINDOW) >= state.open_from)
            self._add(events)
        out += self._close(self._watermark())
        return out, False

    def on_notify(self) -> tuple[list[tuple[str, pa.Table]], bool]:
        return self._close(self._watermark()), False

    def on_eof(self) -> tuple[list[tuple[str, pa.Table]], bool]:
        return self._close(2**62), False

    def notify_at(self) -> datetime | None:
        if self.state.partials is None and not self.state.pending:
            return None
        return self.clock.now() + timedelta(seconds=1)

    def snapshot(self) -> ShardState:
        s = self.state
        self._consolidate()
        return ShardState(
            partials=s.partials,
            seen_ids=s.seen_ids,  # frames are immutable: sharing is a copy
            watermarks=self.marks.copy(),
            open_from=s.open_from,
        )

    # the work
    def _add(self, events: pl.DataFrame) -> None:
        """Hold the events; they become partials in `_consolidate`, many batches at once
        (one group-by and one duplicate check over them instead of one per batch)."""
        self.state.pending.append(events)
        pending = sum(p.height for p in self.state.pending)
        held = 0 if self.state.partials is None else self.state.partials.height
        if pending > max(PENDING_ROWS, held):
            self._consolidate()

    def _consolidate(self) -> None:
        """Fold the pending events into the partials. An event is a duplicate when its id
        came earlier in its window: earlier among the pending (arrival order), or in a
        consolidation before (`seen_ids`). Both checks are hash lookups inside polars."""
        s = self.state
        if not s.pending:
            return
        events = pl.concat(s.pending, how="vertical_relaxed")
        s.pending = []
        key = (
            pl.col(self.agg.id_column).hash(HASH_SEED) ^ (pl.col(WINDOW).cast(pl.UInt64) * _MIX)
        ).alias(SEEN)
        repeated = ~pl.col(SEEN).is_first_distinct()
        if s.seen_ids is not None:
            repeated |= pl.col(SEEN).is_in(s.seen_ids[SEEN].implode())
        events = events.with_columns(key).with_columns(repeated.alias(DUP_FLAG))
        fresh, repeated_rows = events.filter(~pl.col(DUP_FLAG)), events.filter(pl.col(DUP_FLAG))
        seen = fresh.select(WINDOW, SEEN)
        s.seen_ids = seen if s.seen_ids is None else pl.concat([s.seen_ids, seen])
        parts = [fresh.group_by(self.group).agg(*self.agg.partial, pl.lit(0, pl.Int64).alias(DUPS))]
        if repeated_rows.height:
            parts.append(
                repeated_rows.group_by(self.group).agg(pl.len().cast(pl.Int64).alias(DUPS))
            )
        if s.partials is not None:
            parts.insert(0, s.partials)
        merged = pl.concat(parts, how="diagonal_relaxed")
        s.partials = merged.group_by(self.group).agg(
            *self.agg.merge, pl.col(DUPS).fill_null(0).sum()
        )

    def _watermark(self) -> int:
        return self.marks.combined(self._wall(), self.clock.idle_timeout.total_seconds())

    def _close(self, watermark_us: int) -> list[tuple[str, pa.Table]]:
        s = self.state
        close_below = watermark_us // self.length_us  # windows ending at or before it
        if close_below <= s.open_from:
            return []
        s.open_from = close_below
        self._consolidate()
        if s.seen_ids is not None:
            s.seen_ids = s.seen_ids.filter(pl.col(WINDOW) >= close_below)
        if s.partials is None:
            return []
        closed = s.partials.filter(pl.col(WINDOW) < close_below)
        remaining = s.partials.filter(pl.col(WINDOW) >= close_below)
        s.partials = remaining if remaining.height else None
        if not closed.height:
            return []
        return [("rows", self.agg.finish(closed.sort(self.group)))]

    def _late_rows(self, late: pl.DataFrame) -> pa.Table:
        a = self.agg
        return late_events_table(a.flow, late, a.key, a.length, a.id_column, a.time_column)


def late_events_table(
    flow: str,
    late: pl.DataFrame,
    key: Sequence[str],
    length: timedelta,
    id_column: str = "event_id",
    time_column: str = "ts",
) -> pa.Table:
    """Rows of the `late_events` table: each late event with the window it missed."""
    from warehouse.tables import LATE_EVENTS

    keys = late.select(
        pl.concat_str([pl.col(k).cast(pl.String) for k in key], separator=" ").alias("key")
    )["key"].to_list()
    ids = late[id_column].to_list()
    starts = [window_start(w, length) for w in late[WINDOW].to_list()]
    return pa.table(
        {
            "late_id": [
                derived_id(flow, i, s.isoformat()) for i, s in zip(ids, starts, strict=True)
            ],
            "flow": [flow] * late.height,
            "key": keys,
            "event_id": ids,
            "ts": late[time_column].to_arrow(),
            "window_start": starts,
        },
        schema=LATE_EVENTS.schema,
    )


@dataclass(frozen=True)
class WindowStreams:
    rows: Stream[tuple[str, pa.Table]]
    """Each closed window batch as the flow's table rows, keyed by shard."""
    late: Stream[tuple[str, pa.Table]]
    """`late_events` rows."""


@operator
def window_aggregate(
    step_id: str,
    up: Stream[Frame],
    agg: WindowAggregation,
    clock: Clock,
    sources: Sequence[str] = (),
    shards: int = 1,
) -> WindowStreams:
    """Aggregate frames into epoch-aligned tumbling windows per key (see the module doc).

    `sources` are the `topic#partition`s the input reads: a window closes only
    once each has passed it (or gone idle), so list them all.
    """
    keyed = op.key_on("by_source", up, lambda f: f.source)
    shard_key = agg.key if agg.shard_key is None else agg.shard_key
    watermark = Watermark(agg.length, agg.time_column, shard_key, clock, shards)
    sliced = op.stateful_flat_map("watermark", keyed, watermark)
    by_shard = op.map("to_shard", sliced, lambda kv: kv[1])
    results = op.stateful(
        "shards",
        by_shard,
        lambda resume: _ShardLogic(agg, clock, sources, resume),
    )
    branch = op.branch("rows_or_late", results, lambda kv: kv[1][0] == "rows")
    rows = op.map("rows", branch.trues, lambda kv: (kv[0], kv[1][1]))
    late = op.map("late", branch.falses, lambda kv: (kv[0], kv[1][1]))
    return WindowStreams(rows, late)
