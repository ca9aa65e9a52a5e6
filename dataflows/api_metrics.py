"""api_metrics: latency and errors per API route and minute, from `metrics-events`.

    metrics-events ─► decode frames ─┬─► dead letters ─► lake dead_letters, metrics-events.dlq
                                     └─► 1-min event-time windows per (service, method, route)
                                          counts, 5xx, latency sums and log-bucket sketch
                                          ─┬─► lake api_latency_minute
                                           ├─► threshold alerts (mean, p99, 5xx rate)
                                           │     ─► lake alerts, Kafka alerts
                                           └─► late events ─► lake late_events

p50/p95/p99 come from a mergeable sketch (models/sketch.py): within 1 % of the exact
nearest-rank percentile. Run it: `streamhouse run api_metrics`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import bytewax.operators as op
import polars as pl
import pyarrow as pa
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source

from dataflows.decode import FrameDecoders
from dataflows.entry import flow_attribute
from dataflows.inputs import topic_partitions
from dataflows.messages import MessageBatch
from dataflows.outputs import Outputs
from dataflows.windowing import (
    DUPS,
    MINUTE,
    WINDOW,
    Clock,
    Frame,
    WindowAggregation,
    to_table,
    window_aggregate,
    with_row_ids,
    with_window_bounds,
)
from models.alerts import ThresholdRule, threshold_alerts
from models.projections import HttpRequestFields
from models.sketch import bucket, quantiles
from models.topics import METRICS_EVENTS
from warehouse.tables import ALERTS, API_LATENCY_MINUTE

FLOW = "api_metrics"
INPUT_TOPICS = (METRICS_EVENTS,)
ROUTE = ("service", "method", "route")
PERCENTILES = {"p50_ms": 0.50, "p95_ms": 0.95, "p99_ms": 0.99}


@dataclass(frozen=True)
class ApiThresholds:
    """When a route's minute raises an alert (STREAMHOUSE_API_* settings)."""

    p99_ms: float = 1_000.0
    mean_ms: float = 500.0
    error_rate: float = 0.05
    min_requests: int = 20
    """Fewer requests than this in a minute raise no alert: a rate of 1 in 2 is noise."""

    def rules(self) -> list[ThresholdRule]:
        enough = pl.col("requests") >= self.min_requests
        return [
            ThresholdRule("api_p99_latency", "p99_ms", self.p99_ms, "warning", enough),
            ThresholdRule("api_mean_latency", "mean_ms", self.mean_ms, "warning", enough),
            ThresholdRule("api_error_rate", "error_rate", self.error_rate, "critical", enough),
        ]


def with_bucket(frame: Frame) -> Frame:
    events = frame.events.with_columns(
        bucket(pl.col("duration_ms")).alias("_bucket"),
        (pl.col("duration_ms") * 1000).round(0).cast(pl.Int64).alias("_duration_us"),
    )
    return Frame(frame.source, events)


LATENCY = WindowAggregation(
    flow=FLOW,
    key=(*ROUTE, "_bucket"),
    shard_key=ROUTE,
    length=MINUTE,
    partial=(
        pl.len().cast(pl.Int64).alias("count"),
        (pl.col("status") >= 500).sum().cast(pl.Int64).alias("errors"),
        pl.col("_duration_us").sum().alias("sum_us"),
        pl.col("_duration_us").max().alias("max_us"),
    ),
    merge=(
        pl.col("count").fill_null(0).sum(),
        pl.col("errors").fill_null(0).sum(),
        pl.col("sum_us").fill_null(0).sum(),
        pl.col("max_us").max(),
    ),
    finish=lambda closed: to_rows(closed),
)


def route_rows(closed: pl.DataFrame) -> pl.DataFrame:
    """Closed (route, window, bucket) partials -> one row per route and window."""
    group = [*ROUTE, WINDOW]
    totals = closed.group_by(group).agg(
        pl.col("count").sum().alias("requests"),
        pl.col("errors").sum().alias("errors_5xx"),
        pl.col("sum_us").sum(),
        pl.col("max_us").max(),
        pl.col(DUPS).sum().alias("duplicates_ignored"),
    )
    spread = quantiles(closed.filter(pl.col("count") > 0), group, PERCENTILES)
    rows = totals.filter(pl.col("requests") > 0).join(spread, on=group, how="left")
    return with_window_bounds(rows, MINUTE).with_columns(
        (pl.col("errors_5xx") / pl.col("requests")).alias("error_rate"),
        (pl.col("sum_us") / pl.col("requests") / 1000).alias("mean_ms"),
        (pl.col("max_us") / 1000).alias("max_ms"),
    )


def to_rows(closed: pl.DataFrame) -> pa.Table:
    rows = with_row_ids(route_rows(closed), "latency_id", FLOW, ROUTE)
    return to_table(rows, API_LATENCY_MINUTE)


def alerts_of(rows: pa.Table, thresholds: ApiThresholds) -> list[pa.Table]:
    frame = pl.from_arrow(rows)
    subject = pl.concat_str(pl.col("service"), pl.col("method"), pl.col("route"), separator=" ")
    alerts = threshold_alerts(frame, thresholds.rules(), subject)  # type: ignore[arg-type]
    return [to_table(alerts, ALERTS)] if alerts.height else []


def build(
    source: Source[MessageBatch],
    outputs: Outputs,
    clock: Clock | None = None,
    shards: int = 1,
    sources: Sequence[str] | None = None,
    thresholds: ApiThresholds | None = None,
) -> Dataflow:
    limits = thresholds or ApiThresholds()
    flow = Dataflow(FLOW)
    batches = op.input("metrics_events", flow, source)
    decoded = op.flat_map(
        "decode", batches, FrameDecoders(FLOW, {METRICS_EVENTS: HttpRequestFields})
    )
    frames = op.branch("split_dead_letters", decoded, lambda item: isinstance(item, Frame))
    outputs.dead_letters(frames.falses, writer=FLOW)
    bucketed = op.map("latency_buckets", frames.trues, with_bucket)
    windows = window_aggregate(
        "minute_windows",
        bucketed,
        LATENCY,
        clock or Clock(),
        topic_partitions(source, INPUT_TOPICS) if sources is None else sources,
        shards,
    )
    outputs.to_table("latency", windows.rows, API_LATENCY_MINUTE, writer=FLOW)
    alerts = op.flat_map_value("threshold_alerts", windows.rows, lambda t: alerts_of(t, limits))
    outputs.alerts(alerts, writer=FLOW)
    outputs.late_events(windows.late, FLOW)
    return flow


def flow_from_env() -> Dataflow:
    from dataflows.runtime import (
        api_thresholds_from_env,
        clock_from_env,
        outputs_from_env,
        source_from_env,
    )
    from streamhouse.config import from_env

    settings = from_env()
    return build(
        source_from_env(settings, INPUT_TOPICS),
        outputs_from_env(settings),
        clock_from_env(settings),
        settings.shards,
        thresholds=api_thresholds_from_env(),
    )


__getattr__ = flow_attribute(flow_from_env)
"""`python -m bytewax.run dataflows.api_metrics:flow` builds the flow from the environment."""
