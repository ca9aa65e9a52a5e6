"""Every lake table, defined once: name, Arrow schema, date partition column, id column.

Writers (sinks) and readers (DuckDB views) both take schemas from here, so a
batch that does not fit its table fails loudly at the writer instead of
surfacing later as a query error or a silent cast.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

TS = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class Table:
    name: str
    schema: pa.Schema
    partition_by: str
    """A timestamp column; its UTC date names the `date=YYYY-MM-DD` folder."""
    id_column: str
    """Unique per logical row: what deduplication and compaction checks key on."""
    description: str
    version_column: str | None = None
    """For change-log tables: the `<name>_latest` view keeps the highest version per id."""

    filtered_views: tuple[tuple[str, str], ...] = ()
    """(view name, SQL condition) over the latest view: fixed text, never user input."""

    @property
    def latest_view(self) -> str | None:
        return f"{self.name}_latest" if self.version_column else None


def _schema(*fields: tuple[str, pa.DataType, bool]) -> pa.Schema:
    return pa.schema([pa.field(name, kind, nullable=nullable) for name, kind, nullable in fields])


ORDER_STATS_MINUTE = Table(
    "order_stats_minute",
    _schema(
        ("stats_id", pa.string(), False),
        ("window_start", TS, False),
        ("window_end", TS, False),
        ("currency", pa.string(), False),
        ("orders_created", pa.int64(), False),
        ("orders_paid", pa.int64(), False),
        ("orders_cancelled", pa.int64(), False),
        ("revenue", pa.float64(), False),
        ("avg_order_value", pa.float64(), True),
        ("duplicates_ignored", pa.int64(), False),
    ),
    partition_by="window_start",
    id_column="stats_id",
    description="orders per 1-minute event-time window and currency (order_stats)",
)

EVENTS = Table(
    "events",
    _schema(
        ("event_id", pa.string(), False),
        ("topic", pa.string(), False),
        ("type", pa.string(), False),
        ("key", pa.string(), False),
        ("ts", TS, False),
        ("payload", pa.string(), False),
        ("source_partition", pa.int32(), False),
        ("source_offset", pa.int64(), False),
    ),
    partition_by="ts",
    id_column="event_id",
    description="every valid input event as landed, payload as JSON text (land_events)",
)

DEAD_LETTERS = Table(
    "dead_letters",
    _schema(
        ("dead_letter_id", pa.string(), False),
        ("flow", pa.string(), False),
        ("topic", pa.string(), False),
        ("source_partition", pa.int32(), False),
        ("source_offset", pa.int64(), False),
        ("raw", pa.binary(), False),
        ("reason", pa.string(), False),
        ("seen_at", TS, False),
    ),
    partition_by="seen_at",
    id_column="dead_letter_id",
    description="input that could not be decoded or validated, with the reason and raw bytes",
)

LATE_EVENTS = Table(
    "late_events",
    _schema(
        ("late_id", pa.string(), False),
        ("flow", pa.string(), False),
        ("key", pa.string(), False),
        ("event_id", pa.string(), False),
        ("ts", TS, False),
        ("window_start", TS, False),
    ),
    partition_by="ts",
    id_column="late_id",
    description="events that arrived behind the watermark, with the window they missed",
)

ALERTS = Table(
    "alerts",
    _schema(
        ("alert_id", pa.string(), False),
        ("version", pa.int64(), False),
        ("source", pa.string(), False),
        ("rule", pa.string(), False),
        ("severity", pa.string(), False),
        ("subject", pa.string(), False),
        ("state", pa.string(), False),
        ("window_start", TS, False),
        ("window_end", TS, False),
        ("observed", pa.float64(), False),
        ("threshold", pa.float64(), True),
        ("expected_low", pa.float64(), True),
        ("expected_high", pa.float64(), True),
        ("score", pa.float64(), False),
        ("first_seen", TS, False),
        ("last_seen", TS, False),
    ),
    partition_by="first_seen",
    id_column="alert_id",
    version_column="version",
    description="alert change log: version 1 firing, version 2 resolved; alerts_latest is "
    "the current state, alerts_open the firing ones",
    filtered_views=(("alerts_open", "state = 'firing'"),),
)

ANOMALY_SCORES = Table(
    "anomaly_scores",
    _schema(
        ("event_id", pa.string(), False),
        ("series", pa.string(), False),
        ("ts", TS, False),
        ("value", pa.float64(), False),
        ("method", pa.string(), False),
        ("model_id", pa.string(), False),
        ("score", pa.float64(), False),
        ("expected", pa.float64(), True),
        ("expected_low", pa.float64(), True),
        ("expected_high", pa.float64(), True),
        ("anomalous", pa.bool_(), False),
    ),
    partition_by="ts",
    id_column="event_id",
    description="every business-events point scored by its series' detector (anomalies)",
)

USER_ACTIVITY_5M = Table(
    "user_activity_5m",
    _schema(
        ("activity_id", pa.string(), False),
        ("user_id", pa.string(), False),
        ("window_start", TS, False),
        ("window_end", TS, False),
        ("events", pa.int64(), False),
        ("views", pa.int64(), False),
        ("clicks", pa.int64(), False),
        ("add_to_cart", pa.int64(), False),
        ("purchases", pa.int64(), False),
        ("searches", pa.int64(), False),
        ("distinct_items", pa.int64(), False),
        ("sessions", pa.int64(), False),
        ("first_seen", TS, False),
        ("last_seen", TS, False),
        ("duplicates_ignored", pa.int64(), False),
    ),
    partition_by="window_start",
    id_column="activity_id",
    description="per user and 5-minute event-time window: actions, distinct items, sessions",
)

ERROR_COUNTS_MINUTE = Table(
    "error_counts_minute",
    _schema(
        ("count_id", pa.string(), False),
        ("service", pa.string(), False),
        ("error_type", pa.string(), False),
        ("window_start", TS, False),
        ("window_end", TS, False),
        ("errors", pa.int64(), False),
        ("fatal", pa.int64(), False),
        ("duplicates_ignored", pa.int64(), False),
    ),
    partition_by="window_start",
    id_column="count_id",
    description="ERROR and FATAL log lines per service, error type and 1-minute window",
)

API_LATENCY_MINUTE = Table(
    "api_latency_minute",
    _schema(
        ("latency_id", pa.string(), False),
        ("service", pa.string(), False),
        ("method", pa.string(), False),
        ("route", pa.string(), False),
        ("window_start", TS, False),
        ("window_end", TS, False),
        ("requests", pa.int64(), False),
        ("errors_5xx", pa.int64(), False),
        ("error_rate", pa.float64(), False),
        ("mean_ms", pa.float64(), False),
        ("p50_ms", pa.float64(), False),
        ("p95_ms", pa.float64(), False),
        ("p99_ms", pa.float64(), False),
        ("max_ms", pa.float64(), False),
        ("duplicates_ignored", pa.int64(), False),
    ),
    partition_by="window_start",
    id_column="latency_id",
    description="requests per route and 1-minute window: count, 5xx rate, mean and "
    "p50/p95/p99 latency (a log-bucket sketch, relative error <= 1 %)",
)

BEHAVIOR_RECORDS = Table(
    "behavior_records",
    _schema(
        ("record_id", pa.string(), False),
        ("user_id", pa.string(), False),
        ("kind", pa.string(), False),
        ("ts", TS, False),
        ("source_topic", pa.string(), False),
        ("url", pa.string(), True),
        ("item_ids", pa.list_(pa.string()), True),
        ("amount", pa.float64(), True),
        ("currency", pa.string(), True),
        ("detail", pa.string(), True),
        ("source_partition", pa.int32(), False),
        ("source_offset", pa.int64(), False),
    ),
    partition_by="ts",
    id_column="record_id",
    description="user-events, page-views and purchases as one normalised record stream",
)

USER_SUMMARY = Table(
    "user_summary",
    _schema(
        ("user_id", pa.string(), False),
        ("version", pa.int64(), False),
        ("signups", pa.int64(), False),
        ("logins", pa.int64(), False),
        ("profile_updates", pa.int64(), False),
        ("page_views", pa.int64(), False),
        ("purchases", pa.int64(), False),
        ("total_spend", pa.float64(), False),
        ("spend_currency", pa.string(), True),
        ("first_seen", TS, False),
        ("last_seen", TS, False),
        ("recent_items", pa.list_(pa.string()), False),
    ),
    partition_by="last_seen",
    id_column="user_id",
    version_column="version",
    description="running per-user summary, one row per change; user_summary_latest is current",
)

USER_RECOMMENDATIONS = Table(
    "user_recommendations",
    _schema(
        ("user_id", pa.string(), False),
        ("version", pa.int64(), False),
        ("ts", TS, False),
        ("items", pa.list_(pa.string()), False),
        ("basis", pa.string(), False),
    ),
    partition_by="ts",
    id_column="user_id",
    version_column="version",
    description="recommended items per user, one row per change; basis: co-views or trending",
)

ORDER_ITEM = pa.struct([("sku", pa.string()), ("qty", pa.int64()), ("unit_price", pa.float64())])
STATUS_CHANGE = pa.struct(
    [("status", pa.string()), ("version", pa.int64()), ("at", TS), ("event_id", pa.string())]
)

ORDER_VIEW = Table(
    "order_view",
    _schema(
        ("order_id", pa.string(), False),
        ("version", pa.int64(), False),
        ("status", pa.string(), False),
        ("customer_id", pa.string(), False),
        ("currency", pa.string(), False),
        ("total", pa.float64(), False),
        ("items", pa.list_(ORDER_ITEM), False),
        ("created_at", TS, False),
        ("updated_at", TS, False),
        ("paid_amount", pa.float64(), True),
        ("payment_method", pa.string(), True),
        ("carrier", pa.string(), True),
        ("cancel_reason", pa.string(), True),
        ("history", pa.list_(STATUS_CHANGE), False),
        ("last_event_id", pa.string(), False),
        # The span that projected this row (W3C traceparent): the row's end of its trace.
        ("traceparent", pa.string(), True),
    ),
    # An order's rows all fall in the date it was created: one partition per order.
    partition_by="created_at",
    id_column="order_id",
    version_column="version",
    description="order read model change log, one row per applied event; order_view_latest is current",
)

ORDER_STATUS_HISTORY = Table(
    "order_status_history",
    _schema(
        ("order_id", pa.string(), False),
        ("version", pa.int64(), False),
        ("status", pa.string(), False),
        ("at", TS, False),
        ("event_id", pa.string(), False),
    ),
    partition_by="at",
    id_column="event_id",
    description="every status an order entered, with its version and event time (order_projection)",
)

ORDER_REJECTIONS = Table(
    "order_rejections",
    _schema(
        ("rejection_id", pa.string(), False),
        ("ts", TS, False),
        ("order_id", pa.string(), False),
        ("command_id", pa.string(), False),
        ("command_type", pa.string(), False),
        ("reason", pa.string(), False),
        ("status", pa.string(), True),
    ),
    partition_by="ts",
    id_column="rejection_id",
    description="commands the order state machine refused, with the reason (order_commands)",
)

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        ORDER_VIEW,
        ORDER_STATUS_HISTORY,
        ORDER_REJECTIONS,
        ORDER_STATS_MINUTE,
        USER_ACTIVITY_5M,
        ERROR_COUNTS_MINUTE,
        API_LATENCY_MINUTE,
        BEHAVIOR_RECORDS,
        USER_SUMMARY,
        USER_RECOMMENDATIONS,
        EVENTS,
        DEAD_LETTERS,
        LATE_EVENTS,
        ALERTS,
        ANOMALY_SCORES,
    )
}


class UnknownTableError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def table(name: str) -> Table:
    try:
        return TABLES[name]
    except KeyError:
        raise UnknownTableError(
            f"unknown table {name!r}; tables: {', '.join(sorted(TABLES))}"
        ) from None
