"""order_stats: orders per minute and per currency, from `order-events`.

    order-events ─► decode ─┬─► dead letters ─► lake dead_letters, order-events.dlq
                            └─► created | paid | cancelled ─► key by currency
                                 ─► 1-min event-time window (duplicates counted once)
                                 ─┬─► rows ─┬─► lake order_stats_minute
                                  │         └─► Kafka order-statistics
                                  └─► late events ─► lake late_events

Run it: `streamhouse run order_stats` or `python -m bytewax.run dataflows.order_stats:flow`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import bytewax.operators as op
import bytewax.operators.windowing as win
import msgspec
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source

from dataflows.decode import TopicDecoder
from dataflows.messages import DeadLetter, LateEvent, MessageBatch
from dataflows.outputs import Outputs
from dataflows.windows import MINUTE, event_clock, system_now, tumbling, window_start
from models.base import Event, derived_id
from models.orders import OrderCancelled, OrderCreated, OrderPaid
from models.stats import OrderStatsMinute
from models.topics import ORDER_EVENTS, ORDER_STATISTICS
from sinks.kafka import KafkaMessage
from warehouse.tables import ORDER_STATS_MINUTE

FLOW = "order_stats"
INPUT_TOPICS = (ORDER_EVENTS,)
Counted = OrderCreated | OrderPaid | OrderCancelled


@dataclass
class OrderWindow:
    """One currency's orders in one window. `seen` makes a re-delivered event count once."""

    seen: set[str] = field(default_factory=set)
    created: int = 0
    paid: int = 0
    cancelled: int = 0
    revenue: float = 0.0
    created_value: float = 0.0
    duplicates: int = 0

    def add(self, event: Counted) -> OrderWindow:
        if event.event_id in self.seen:
            self.duplicates += 1
            return self
        self.seen.add(event.event_id)
        if isinstance(event, OrderCreated):
            self.created += 1
            self.created_value += event.total
        elif isinstance(event, OrderPaid):
            self.paid += 1
            self.revenue += event.amount
        else:
            self.cancelled += 1
        return self

    def merge(self, other: OrderWindow) -> OrderWindow:
        merged = OrderWindow(seen=set(self.seen))
        merged.duplicates = self.duplicates + other.duplicates
        for name in ("created", "paid", "cancelled", "revenue", "created_value"):
            setattr(merged, name, getattr(self, name) + getattr(other, name))
        overlap = len(self.seen & other.seen)
        merged.seen |= other.seen
        merged.duplicates += overlap
        return merged


def to_row(currency_window: tuple[str, tuple[int, OrderWindow]]) -> OrderStatsMinute:
    currency, (window_id, w) = currency_window
    start = window_start(window_id, MINUTE)
    return OrderStatsMinute(
        stats_id=derived_id(FLOW, currency, start.isoformat()),
        window_start=start,
        window_end=start + MINUTE,
        currency=currency,
        orders_created=w.created,
        orders_paid=w.paid,
        orders_cancelled=w.cancelled,
        revenue=round(w.revenue, 2),
        avg_order_value=round(w.created_value / w.created, 2) if w.created else None,
        duplicates_ignored=w.duplicates,
    )


def to_late(currency_event: tuple[str, tuple[int, Counted]]) -> LateEvent:
    currency, (window_id, event) = currency_event
    return LateEvent(
        flow=FLOW,
        key=currency,
        event_id=event.event_id,
        ts=event.ts,
        window_start=window_start(window_id, MINUTE),
    )


def is_event(item: Event | DeadLetter) -> bool:
    return not isinstance(item, DeadLetter)


def to_message(row: OrderStatsMinute) -> KafkaMessage:
    """`order-statistics`: keyed by window start, so one window's rows share a partition."""
    return KafkaMessage(
        ORDER_STATISTICS, row.window_start.isoformat().encode(), msgspec.json.encode(row)
    )


def build(
    source: Source[MessageBatch],
    outputs: Outputs,
    allowed_lateness_s: float = 10.0,
    now: Callable[[], datetime] = system_now,
) -> Dataflow:
    flow = Dataflow(FLOW)
    batches = op.input("order_events", flow, source)
    decoded = op.flat_map("decode", batches, TopicDecoder(FLOW, INPUT_TOPICS))
    valid = op.branch("split_dead_letters", decoded, is_event)
    outputs.dead_letters(valid.falses, writer=FLOW)
    counted = op.filter("created_paid_cancelled", valid.trues, lambda e: isinstance(e, Counted))
    by_currency = op.key_on("by_currency", counted, lambda e: e.currency)
    windows = win.fold_window(
        "minute_windows",
        by_currency,
        event_clock(lambda e: e.ts, allowed_lateness_s, now),
        tumbling(MINUTE),
        OrderWindow,
        OrderWindow.add,
        OrderWindow.merge,
    )
    rows = op.map("to_rows", windows.down, lambda kv: (kv[0], to_row(kv)))
    outputs.to_table("stats", rows, ORDER_STATS_MINUTE, writer=FLOW)
    outputs.to_topic("statistics", op.map_value("to_message", rows, to_message), ORDER_STATISTICS)
    outputs.late_events(op.map("to_late", windows.late, lambda kv: (kv[0], to_late(kv))), FLOW)
    return flow


def flow_from_env() -> Dataflow:
    from dataflows.runtime import outputs_from_env, source_from_env
    from streamhouse.config import from_env

    settings = from_env()
    return build(
        source_from_env(settings, INPUT_TOPICS),
        outputs_from_env(settings, stdout_tables={ORDER_STATS_MINUTE.name}),
        settings.allowed_lateness_s,
    )


def __getattr__(name: str) -> Dataflow:
    """`python -m bytewax.run dataflows.order_stats:flow` builds the flow from the environment."""
    if name == "flow":
        return flow_from_env()
    raise AttributeError(name)
