"""order_stats: orders per minute and per currency, from `order-events`.

    order-events ─► decode frames ─┬─► dead letters ─► lake dead_letters, order-events.dlq
                                   └─► created | paid | cancelled
                                        ─► 1-min event-time windows per currency
                                           (columnar; duplicates counted once)
                                        ─┬─► rows ─┬─► lake order_stats_minute
                                         │         ├─► Kafka order-statistics
                                         │         └─► orders created per minute (all
                                         │             currencies) anomalous for its detector
                                         │             ─► lake alerts, Kafka alerts, webhook
                                         └─► late events ─► lake late_events

Run it: `streamhouse run order_stats` or `python -m bytewax.run dataflows.order_stats:flow`.
"""

from __future__ import annotations

from collections.abc import Sequence

import bytewax.operators as op
import msgspec
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
    Clock,
    Frame,
    WindowAggregation,
    to_table,
    window_aggregate,
    with_row_ids,
    with_window_bounds,
)
from models.alerts import AlertPolicy
from models.detectors import Detector, parse_spec
from models.projections import OrderStatsFields
from models.stats import OrderStatsMinute
from models.topics import ORDER_EVENTS, ORDER_STATISTICS
from sinks.kafka import KafkaMessage
from warehouse.tables import ORDER_STATS_MINUTE

FLOW = "order_stats"
INPUT_TOPICS = (ORDER_EVENTS,)
COUNTED = ("order_created", "order_paid", "order_cancelled")
MICROS = 1_000_000
"""Money is summed in integer micro-units: float sums would depend on batch order."""

_type = pl.col("type")


def micros(column: str, of_type: str) -> pl.Expr:
    return (pl.col(column) * MICROS).round(0).cast(pl.Int64).filter(_type == of_type).sum()


ORDER_RATE_DETECTOR = "mad:window=60,z=5,warmup=5,counts=1"
"""Orders created per minute: a drop and a surge are both worth a look."""

ORDERS_PER_MINUTE = WindowAggregation(
    flow=FLOW,
    key=("currency",),
    shard_key=(),
    length=MINUTE,
    partial=(
        (_type == "order_created").sum().cast(pl.Int64).alias("created"),
        (_type == "order_paid").sum().cast(pl.Int64).alias("paid"),
        (_type == "order_cancelled").sum().cast(pl.Int64).alias("cancelled"),
        micros("amount", "order_paid").alias("revenue_micros"),
        micros("total", "order_created").alias("created_micros"),
    ),
    merge=tuple(
        pl.col(c).fill_null(0).sum()
        for c in ("created", "paid", "cancelled", "revenue_micros", "created_micros")
    ),
    finish=lambda closed: to_rows(closed),
)


def to_rows(closed: pl.DataFrame) -> pa.Table:
    """Closed windows' partials -> `order_stats_minute` rows."""
    rows = with_window_bounds(closed, MINUTE).select(
        "window_start",
        "window_end",
        "currency",
        pl.col("created").alias("orders_created"),
        pl.col("paid").alias("orders_paid"),
        pl.col("cancelled").alias("orders_cancelled"),
        (pl.col("revenue_micros") / MICROS).round(2).alias("revenue"),
        pl.when(pl.col("created") > 0)
        .then((pl.col("created_micros") / MICROS / pl.col("created")).round(2))
        .alias("avg_order_value"),
        pl.col(DUPS).alias("duplicates_ignored"),
    )
    return to_table(with_row_ids(rows, "stats_id", FLOW, ["currency"]), ORDER_STATS_MINUTE)


def counted_only(frame: Frame) -> Frame:
    return Frame(frame.source, frame.events.filter(_type.is_in(COUNTED)))


def to_messages(rows: pa.Table) -> list[KafkaMessage]:
    """`order-statistics`: keyed by window start, so one window's rows share a partition."""
    return [
        KafkaMessage(
            ORDER_STATISTICS,
            row["window_start"].isoformat().encode(),
            msgspec.json.encode(OrderStatsMinute(**row)),
        )
        for row in rows.to_pylist()
    ]


def order_rate_rules(detector: Detector) -> list[SeriesRule]:
    """One series: orders created per minute over all currencies (one shard closes all
    currencies of a window together, so each window's rows hold its whole total)."""
    total = pl.col("orders_created").sum()
    return [SeriesRule("order_rate_anomaly", "critical", detector, pl.lit("orders"), total)]


def build(
    source: Source[MessageBatch],
    outputs: Outputs,
    clock: Clock | None = None,
    shards: int = 1,
    sources: Sequence[str] | None = None,
    detector: Detector | None = None,
    policy: AlertPolicy | None = None,
) -> Dataflow:
    flow = Dataflow(FLOW)
    batches = op.input("order_events", flow, source)
    decoded = op.flat_map(
        "decode",
        batches,
        observed_batches(FLOW, "decode", FrameDecoders(FLOW, {ORDER_EVENTS: OrderStatsFields})),
    )
    frames = op.branch("split_dead_letters", decoded, lambda item: isinstance(item, Frame))
    outputs.dead_letters(frames.falses, writer=FLOW)
    counted = op.map("created_paid_cancelled", frames.trues, counted_only)
    windows = window_aggregate(
        "minute_windows",
        counted,
        ORDERS_PER_MINUTE,
        clock or Clock(),
        topic_partitions(source, INPUT_TOPICS) if sources is None else sources,
        shards,
    )
    outputs.to_table("stats", windows.rows, ORDER_STATS_MINUTE, writer=FLOW)
    messages = op.flat_map_value("to_messages", windows.rows, to_messages)
    outputs.to_topic("statistics", messages, ORDER_STATISTICS)
    rules = order_rate_rules(detector or parse_spec(ORDER_RATE_DETECTOR))
    outputs.alerts(watch_rows("alerting", windows.rows, rules, FLOW, policy or AlertPolicy()), FLOW)
    outputs.late_events(windows.late, FLOW)
    return flow


def flow_from_env() -> Dataflow:
    from dataflows.runtime import (
        alert_policy_from_env,
        clock_from_env,
        order_rate_detector_from_env,
        outputs_from_env,
        source_from_env,
    )
    from streamhouse.config import from_env

    settings = from_env()
    return build(
        source_from_env(settings, INPUT_TOPICS),
        outputs_from_env(settings, stdout_tables={ORDER_STATS_MINUTE.name}),
        clock_from_env(settings),
        settings.shards,
        detector=order_rate_detector_from_env(),
        policy=alert_policy_from_env(),
    )


__getattr__ = flow_attribute(flow_from_env)
"""`python -m bytewax.run dataflows.order_stats:flow` builds the flow from the environment."""
