"""user_activity: what each user did per 5 minutes, from `user-behavior`.

    user-behavior ─► decode frames ─┬─► dead letters ─► lake dead_letters, user-behavior.dlq
                                    └─► 5-min event-time windows per user (columnar)
                                         ─┬─► lake user_activity_5m
                                          └─► late events ─► lake late_events

Per user and window: events, counts per action, distinct items, sessions, first and
last seen; duplicates counted once. Run it: `streamhouse run user_activity`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import bytewax.operators as op
import polars as pl
import pyarrow as pa
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source

from dataflows.decode import FrameDecoders
from dataflows.entry import flow_attribute
from dataflows.inputs import topic_partitions
from dataflows.messages import MessageBatch
from dataflows.metrics import observed_batches
from dataflows.outputs import Outputs
from dataflows.windowing import (
    DUPS,
    Clock,
    Frame,
    WindowAggregation,
    to_table,
    window_aggregate,
    with_row_ids,
    with_window_bounds,
)
from models.behavior import Action
from models.projections import UserActionFields
from models.topics import USER_BEHAVIOR
from warehouse.tables import USER_ACTIVITY_5M

FLOW = "user_activity"
INPUT_TOPICS = (USER_BEHAVIOR,)
FIVE_MINUTES = timedelta(minutes=5)
ACTION_COLUMNS = {
    Action.VIEW: "views",
    Action.CLICK: "clicks",
    Action.ADD_TO_CART: "add_to_cart",
    Action.PURCHASE: "purchases",
    Action.SEARCH: "searches",
}

_distinct = ("items", "session_ids")

ACTIVITY = WindowAggregation(
    flow=FLOW,
    key=("user_id",),
    length=FIVE_MINUTES,
    partial=(
        pl.len().cast(pl.Int64).alias("events"),
        *(
            (pl.col("action") == action.value).sum().cast(pl.Int64).alias(name)
            for action, name in ACTION_COLUMNS.items()
        ),
        pl.col("item_id").drop_nulls().unique().alias("items"),
        pl.col("session_id").unique().alias("session_ids"),
        pl.col("ts").min().alias("first_seen"),
        pl.col("ts").max().alias("last_seen"),
    ),
    merge=(
        *(pl.col(c).fill_null(0).sum() for c in ("events", *ACTION_COLUMNS.values())),
        *(pl.col(c).explode().drop_nulls().unique() for c in _distinct),
        pl.col("first_seen").min(),
        pl.col("last_seen").max(),
    ),
    finish=lambda closed: to_rows(closed),
)


def to_rows(closed: pl.DataFrame) -> pa.Table:
    rows = with_window_bounds(closed, FIVE_MINUTES).with_columns(
        pl.col("items").list.len().cast(pl.Int64).alias("distinct_items"),
        pl.col("session_ids").list.len().cast(pl.Int64).alias("sessions"),
        pl.col(DUPS).alias("duplicates_ignored"),
    )
    return to_table(with_row_ids(rows, "activity_id", FLOW, ["user_id"]), USER_ACTIVITY_5M)


def build(
    source: Source[MessageBatch],
    outputs: Outputs,
    clock: Clock | None = None,
    shards: int = 1,
    sources: Sequence[str] | None = None,
) -> Dataflow:
    flow = Dataflow(FLOW)
    batches = op.input("user_behavior", flow, source)
    decoded = op.flat_map(
        "decode",
        batches,
        observed_batches(FLOW, "decode", FrameDecoders(FLOW, {USER_BEHAVIOR: UserActionFields})),
    )
    frames = op.branch("split_dead_letters", decoded, lambda item: isinstance(item, Frame))
    outputs.dead_letters(frames.falses, writer=FLOW)
    windows = window_aggregate(
        "five_minute_windows",
        frames.trues,
        ACTIVITY,
        clock or Clock(),
        topic_partitions(source, INPUT_TOPICS) if sources is None else sources,
        shards,
    )
    outputs.to_table("activity", windows.rows, USER_ACTIVITY_5M, writer=FLOW)
    outputs.late_events(windows.late, FLOW)
    return flow


def flow_from_env() -> Dataflow:
    from dataflows.runtime import clock_from_env, outputs_from_env, source_from_env
    from streamhouse.config import from_env

    settings = from_env()
    return build(
        source_from_env(settings, INPUT_TOPICS),
        outputs_from_env(settings),
        clock_from_env(settings),
        settings.shards,
    )


__getattr__ = flow_attribute(flow_from_env)
"""`python -m bytewax.run dataflows.user_activity:flow` builds the flow from the environment."""
