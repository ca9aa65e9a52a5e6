"""From a flow's results to alerts: series watched by detectors, one lifecycle per flow.

    window rows ─► per rule: one point per (subject, window) ─► the subject's detector
                ─► anomalous points (signals) ─► AlertTracker ─► alert changes (Arrow)

Threshold rules and anomaly rules are the same thing here: a rule is a series and a
detector (models/detectors.py), and `Threshold` is one of the detectors. Both the
detectors' states and the open alerts live in one stateful step per flow, keyed by
the flow's name: a flow's window rows are a few hundred per minute, so one key is
plenty, and one key gives the lifecycle one event-time clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import bytewax.operators as op
import msgspec
import polars as pl
import pyarrow as pa
from bytewax.dataflow import Stream, operator

from models.alerts import Alert, AlertBook, AlertPolicy, AlertTracker, Signal
from models.detectors import Detector, Threshold
from warehouse.tables import ALERTS


@dataclass(frozen=True)
class SeriesRule:
    """Watch one series per subject in a flow's window rows with one detector."""

    rule: str
    severity: str
    detector: Detector
    subject: pl.Expr
    value: pl.Expr
    """An aggregation over the rows of one subject and window (several rows can share a
    subject: the error types of one service)."""
    where: pl.Expr | None = None
    """Which points count, over the aggregated `value` and `extra` columns."""
    extra: Sequence[pl.Expr] = ()

    def points(self, rows: pl.DataFrame) -> pl.DataFrame:
        """One row per (subject, window): subject, window_start, window_end, value."""
        grouped = rows.group_by(self.subject.alias("subject"), "window_start", "window_end").agg(
            self.value.cast(pl.Float64).alias("value"), *self.extra
        )
        if self.where is not None:
            grouped = grouped.filter(self.where)
        return grouped.filter(pl.col("value").is_not_null() & pl.col("value").is_finite()).sort(
            "subject", "window_start"
        )


def signals_of(
    rule: SeriesRule, states: dict[tuple[str, str], Any], rows: pl.DataFrame
) -> list[Signal]:
    """Score `rule`'s points in `rows`, updating the per-subject detector states."""
    points = rule.points(rows)
    if not points.height:
        return []
    detector = rule.detector
    threshold = detector.above if isinstance(detector, Threshold) else None
    found: list[Signal] = []
    for (subject,), group in points.group_by("subject", maintain_order=True):
        key = (rule.rule, str(subject))
        if key not in states:
            states[key] = detector.new_state()
        starts, ends = group["window_start"].to_list(), group["window_end"].to_list()
        values = group["value"].to_list()
        scores = detector.score(states[key], values, [t.timestamp() for t in ends])
        for i in (i for i, bad in enumerate(scores.anomalous) if bad):
            found.append(
                Signal(
                    rule.rule,
                    rule.severity,
                    str(subject),
                    starts[i],
                    ends[i],
                    values[i],
                    scores.score[i],
                    threshold,
                    None if threshold is not None else scores.low[i],
                    None if threshold is not None else scores.high[i],
                )
            )
    return found


def alerts_table(alerts: Sequence[Alert]) -> pa.Table:
    return pa.Table.from_pylist([msgspec.structs.asdict(a) for a in alerts], schema=ALERTS.schema)


@dataclass
class WatchState:
    detectors: dict[tuple[str, str], Any] = field(default_factory=dict)
    book: AlertBook = field(default_factory=AlertBook)


@dataclass(frozen=True)
class SignalBatch:
    """What a flow's own scoring step hands the lifecycle (the anomalies flow)."""

    signals: list[Signal]
    now: datetime | None
    stopped: dict[str, str] = field(default_factory=dict)
    """subject -> rule of series no longer watched: their open alerts resolve."""


@operator
def watch_rows(
    step_id: str,
    rows: Stream[tuple[str, pa.Table]],
    rules: Sequence[SeriesRule],
    source: str,
    policy: AlertPolicy,
) -> Stream[tuple[str, pa.Table]]:
    """Window rows (any key) -> alert changes, keyed by `source` (see the module doc)."""
    tracker = AlertTracker(source, policy)

    def watch(state: WatchState | None, table: pa.Table) -> tuple[WatchState, list[pa.Table]]:
        state = state or WatchState()
        frame: pl.DataFrame = pl.from_arrow(table)  # type: ignore[assignment]
        if not frame.height:
            return state, []
        signals = [s for rule in rules for s in signals_of(rule, state.detectors, frame)]
        signals.sort(key=lambda s: (s.window_start, s.rule, s.subject))
        changes = tracker.track(state.book, signals, frame["window_end"].max())  # type: ignore[arg-type]
        return state, [alerts_table(changes)] if changes else []

    keyed = op.key_on("by_flow", op.map("rows_only", rows, lambda kv: kv[1]), lambda _: source)
    return op.flat_map_value("alert_tables", op.stateful_map("watch", keyed, watch), lambda v: v)


@operator
def track_signals(
    step_id: str,
    batches: Stream[SignalBatch],
    source: str,
    policy: AlertPolicy,
) -> Stream[tuple[str, pa.Table]]:
    """Signal batches -> alert changes, keyed by `source`: one lifecycle for the flow."""
    tracker = AlertTracker(source, policy)

    def track(book: AlertBook | None, batch: SignalBatch) -> tuple[AlertBook, list[pa.Table]]:
        book = book or AlertBook()
        changes = tracker.resolve(book, batch.stopped) if batch.stopped else []
        changes += tracker.track(book, batch.signals, batch.now)
        return book, [alerts_table(changes)] if changes else []

    keyed = op.key_on("by_flow", batches, lambda _: source)
    return op.flat_map_value("alert_tables", op.stateful_map("track", keyed, track), lambda v: v)
