"""api_metrics: latency and errors per API route and minute, from `metrics-events`.

    metrics-events ─► decode frames ─┬─► dead letters ─► lake dead_letters, metrics-events.dlq
                                     └─► 1-min event-time windows per (service, method, route)
                                          counts, 5xx, latency sums and log-bucket sketch
                                          ─┬─► lake api_latency_minute
                                           ├─► thresholds (route p99 and mean, service 5xx
                                           │   rate) | route p95 anomalous for its detector
                                           │     ─► one alert per incident
                                           │     ─► lake alerts, Kafka alerts, webhook
                                           └─► late events ─► lake late_events

p50/p95/p99 come from a mergeable sketch (models/sketch.py): within 1 % of the exact
nearest-rank percentile. Run it: `streamhouse run api_metrics`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import bytewax.operators as op
import polars as pl
import pyarrow as pa
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source

from dataflows.alerting import SeriesRule, watch_rows
from dataflows.decode import FrameDecoders
from dataflows.entry import flow_attribute
from dataflows.inputs import topic_partitions
from dataflows.messages import MessageBatch
from dataflows.metrics import observed_batches
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
from models.alerts import AlertPolicy
from models.detectors import Detector, Threshold, parse_spec
from models.projections import HttpRequestFields
from models.sketch import bucket, quantiles
from models.topics import METRICS_EVENTS
from warehouse.tables import API_LATENCY_MINUTE

FLOW = "api_metrics"
INPUT_TOPICS = (METRICS_EVENTS,)
ROUTE = ("service", "method", "route")
PERCENTILES = {"p50_ms": 0.50, "p95_ms": 0.95, "p99_ms": 0.99}


LATENCY_DETECTOR = "mad:window=60,z=6,warmup=5,direction=up,min_std_pct=10"
"""A route's p95 per minute: heavy-tailed, so a robust baseline, and only rises alarm."""


@dataclass(frozen=True)
class ApiThresholds:
    """When a route's (or a service's) minute raises an alert (STREAMHOUSE_API_* settings)."""

    p99_ms: float = 1_000.0
    mean_ms: float = 500.0
    error_rate: float = 0.05
    """5xx share of a service's requests in a minute (all its routes)."""
    min_requests: int = 20
    """Fewer requests than this in a minute raise no alert: a rate of 1 in 2 is noise."""
    detector: Detector = field(default_factory=lambda: parse_spec(LATENCY_DETECTOR))
    """Watches each route's p95 (STREAMHOUSE_LATENCY_DETECTOR)."""

    def rules(self) -> list[SeriesRule]:
        route = pl.concat_str(pl.col("service"), pl.col("method"), pl.col("route"), separator=" ")
        requests = pl.col("requests").sum().alias("requests")
        enough = pl.col("requests") >= self.min_requests

        def per_route(rule: str, column: str, detector: Detector, severity: str) -> SeriesRule:
            return SeriesRule(
                rule, severity, detector, route, pl.col(column).max(), enough, (requests,)
            )

        return [
            per_route("api_p99_latency", "p99_ms", Threshold({"above": self.p99_ms}), "warning"),
            per_route("api_mean_latency", "mean_ms", Threshold({"above": self.mean_ms}), "warning"),
            per_route("api_latency_anomaly", "p95_ms", self.detector, "warning"),
            SeriesRule(
                "api_error_rate",
                "critical",
                Threshold({"above": self.error_rate}),
                pl.col("service"),
                pl.col("errors_5xx").sum() / pl.col("requests").sum(),
                enough,
                (requests,),
            ),
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
    shard_key=("service",),
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


def build(
    source: Source[MessageBatch],
    outputs: Outputs,
    clock: Clock | None = None,
    shards: int = 1,
    sources: Sequence[str] | None = None,
    thresholds: ApiThresholds | None = None,
    policy: AlertPolicy | None = None,
) -> Dataflow:
    limits = thresholds or ApiThresholds()
    flow = Dataflow(FLOW)
    batches = op.input("metrics_events", flow, source)
    decoded = op.flat_map(
        "decode",
        batches,
        observed_batches(FLOW, "decode", FrameDecoders(FLOW, {METRICS_EVENTS: HttpRequestFields})),
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
    alerts = watch_rows("alerting", windows.rows, limits.rules(), FLOW, policy or AlertPolicy())
    outputs.alerts(alerts, writer=FLOW)
    outputs.late_events(windows.late, FLOW)
    return flow


def flow_from_env() -> Dataflow:
    from dataflows.runtime import (
        alert_policy_from_env,
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
        policy=alert_policy_from_env(),
    )


__getattr__ = flow_attribute(flow_from_env)
"""`python -m bytewax.run dataflows.api_metrics:flow` builds the flow from the environment."""
