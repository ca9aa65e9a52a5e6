"""The fields each analytics flow reads, as flat msgspec Structs: what its FrameDecoder checks.

A projection names one Struct per `type` tag of its topic: the tags a flow
counts carry the fields it reads, with the same constrained types as the full
event (`models.base`), and every other tag carries the envelope alone, so an
unknown `type` is still a dead letter. Fields a flow does not read are not its
concern: `land_events` validates whole events.
"""

from __future__ import annotations

import msgspec

from models.base import (
    SCHEMA_VERSION,
    Currency,
    DurationMs,
    Finite,
    Id,
    Money,
    Name,
    Text,
    Timestamp,
)
from models.behavior import Action
from models.http import HttpMethod, HttpStatus, Route
from models.logs import Level


class Envelope(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Fields every event carries. No __post_init__: the FrameDecoder checks the envelope
    rules (schema version, ts range) column-wise for both of its paths."""

    event_id: Id
    ts: Timestamp
    schema_version: int = SCHEMA_VERSION


# --- order-events (order_stats) ----------------------------------------------------


class OrderCreatedFields(Envelope, frozen=True, kw_only=True, tag="order_created"):
    total: Money
    currency: Currency


class OrderPaidFields(Envelope, frozen=True, kw_only=True, tag="order_paid"):
    amount: Money
    currency: Currency


class OrderCancelledFields(Envelope, frozen=True, kw_only=True, tag="order_cancelled"):
    total: Money
    currency: Currency


class OrderShippedFields(Envelope, frozen=True, kw_only=True, tag="order_shipped"):
    pass


class OrderDeliveredFields(Envelope, frozen=True, kw_only=True, tag="order_delivered"):
    pass


OrderStatsFields = (
    OrderCreatedFields
    | OrderPaidFields
    | OrderCancelledFields
    | OrderShippedFields
    | OrderDeliveredFields
)


# --- user-behavior (user_activity) ---------------------------------------------------


class UserActionFields(Envelope, frozen=True, kw_only=True, tag="user_action"):
    user_id: Id
    action: Action
    session_id: Id
    item_id: Id | None = None


# --- metrics-events (api_metrics) ------------------------------------------------------


class HttpRequestFields(Envelope, frozen=True, kw_only=True, tag="http_request"):
    service: Name
    method: HttpMethod
    route: Route
    status: HttpStatus
    duration_ms: DurationMs


# --- log-events (log_alerts) -------------------------------------------------------------


class LogFields(Envelope, frozen=True, kw_only=True, tag="log"):
    level: Level
    service: Name
    message: Text
    error_type: Id | None = None


# --- business-events (anomalies) ----------------------------------------------------------


class BusinessMetricFields(Envelope, frozen=True, kw_only=True, tag="business_metric"):
    metric: Name
    entity: Id
    value: Finite
