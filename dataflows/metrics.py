"""The dataflows' metrics: what came in, what went out, what was refused, how far behind.

Instruments come from the OpenTelemetry API, so they cost a no-op call until a
process installs a meter provider (streamhouse/telemetry.py); then they leave over
OTLP and as Prometheus text on bytewax's `/metrics`. Every one is recorded per batch
or per output item, never per event in a hot loop. The README's Metrics table lists
them with their Prometheus names.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from dataflows.messages import MessageBatch
from dataflows.tracing import batch_span

meter = metrics.get_meter("streamhouse.dataflows")

events_in = meter.create_counter(
    "streamhouse.events.in",
    unit="{message}",
    description="Messages read by a flow, per flow and topic",
)
events_out = meter.create_counter(
    "streamhouse.events.out",
    unit="{record}",
    description="Rows and messages a flow emitted, per flow and output (table or topic)",
)
dead_letters = meter.create_counter(
    "streamhouse.dead_letters",
    unit="{message}",
    description="Input messages that could not be decoded or validated, per flow and topic",
)
late_events = meter.create_counter(
    "streamhouse.late_events",
    unit="{event}",
    description="Events behind the watermark, sent to late_events, per flow",
)
event_time_lag = meter.create_histogram(
    "streamhouse.event_time.lag",
    unit="s",
    description="Wall clock minus the newest event time in an output item, per flow and table",
)

_lags: dict[tuple[str, int], int] = {}
_lags_lock = threading.Lock()


def set_consumer_lag(topic: str, partition: int, lag: int) -> None:
    """A partition's messages behind its high watermark, as the consumer last saw it."""
    with _lags_lock:
        _lags[(topic, partition)] = lag


def _observe_lags(_options: CallbackOptions) -> Iterable[Observation]:
    with _lags_lock:
        lags = list(_lags.items())
    return [Observation(lag, {"topic": t, "partition": str(p)}) for (t, p), lag in lags]


meter.create_observable_gauge(
    "streamhouse.consumer.lag",
    callbacks=[_observe_lags],
    unit="{message}",
    description="Messages between a partition's high watermark and the flow's next offset",
)


def observed_batches(
    flow: str, step: str, decode: Callable[[MessageBatch], Iterable[Any]]
) -> Callable[[MessageBatch], list[Any]]:
    """`decode` for `op.flat_map`, with each batch counted in and spanned (dataflows/tracing.py)."""

    def run(batch: MessageBatch) -> list[Any]:
        events_in.add(len(batch), {"flow": flow, "topic": batch.topic})
        with batch_span(flow, step, batch):
            return list(decode(batch))

    return run


def _newest(value: Any, column: str) -> datetime | None:
    if isinstance(value, pa.Table | pa.RecordBatch):
        return pc.max(value.column(column)).as_py() if value.num_rows else None
    if isinstance(value, msgspec.Struct):
        return getattr(value, column, None)
    return value.get(column) if isinstance(value, dict) else None


def _rows(value: Any) -> int:
    return value.num_rows if isinstance(value, pa.Table | pa.RecordBatch) else 1


def record_output(flow: str, output: str, time_column: str | None) -> Callable[[str, Any], None]:
    """An `op.inspect` callback counting a stream's rows out and, given the event-time
    column of its rows, their lag behind the wall clock."""
    labels = {"flow": flow, "output": output}

    def inspect(_step: str, item: Any) -> None:
        value = item[1] if isinstance(item, tuple) else item
        events_out.add(_rows(value), labels)
        if time_column is not None:
            newest = _newest(value, time_column)
            if isinstance(newest, datetime):
                event_time_lag.record(max(0.0, time.time() - newest.timestamp()), labels)

    return inspect
