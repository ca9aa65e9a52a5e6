"""order_projection: the CQRS read side. Order events in, an always-current order view out.

    order-events ─► decode ─┬─► dead letters ─► lake dead_letters, order-events.dlq
                            └─► key by order_id ─► projector (recoverable state, one per
                                order: applies each version once, in order)
                                (a span per event, continuing its trace)
                                 ─► new views ─┬─► lake order_view (change log;
                                               │   view order_view_latest; traceparent)
                                               └─► lake order_status_history

Applying an event twice, or an older version after a newer one, changes
nothing; a version that arrives ahead of a gap waits for the missing one
(`models.order_view.OrderProjector`). `GET /orders/{id}` reads
`order_view_latest` (streamhouse/api/).

Run it: `streamhouse run order_projection` or `python -m bytewax.run dataflows.order_projection:flow`.
Its rows become visible when an epoch ends: run it with a short snapshot/epoch
interval (`streamhouse run order_projection --snapshot-interval 1`).
"""

from __future__ import annotations

from datetime import datetime

import bytewax.operators as op
import msgspec
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source

from dataflows.decode import TopicDecoder
from dataflows.entry import flow_attribute, from_env
from dataflows.messages import DeadLetter, MessageBatch
from dataflows.metrics import observed_batches
from dataflows.outputs import Outputs
from dataflows.tracing import Traced, child_span, current_traceparent
from models.base import type_tag
from models.order_view import OrderProjector, OrderView
from models.orders import OrderEvent
from models.topics import ORDER_EVENTS
from warehouse.tables import ORDER_STATUS_HISTORY, ORDER_VIEW

FLOW = "order_projection"
INPUT_TOPICS = (ORDER_EVENTS,)


def project(projector: OrderProjector | None, event: Traced) -> tuple[OrderProjector, list[Traced]]:
    """Apply one event in a span continuing its trace; each new view carries the span's
    `traceparent` (or the event's, when this process records no spans)."""
    e: OrderEvent = event.value
    projector = projector or OrderProjector()
    with child_span(
        f"{FLOW} {type_tag(e)}", event.parent, order_id=e.order_id, event_id=e.event_id
    ):
        views = projector.apply(e)  # type: ignore[arg-type]
        parent = current_traceparent() or event.parent
    return projector, [Traced(view, parent) for view in views]


def view_row(view: Traced) -> dict[str, object]:
    """An `order_view` row: the view with its items and history as nested columns, and the
    trace that made it (`traceparent`)."""
    row = msgspec.to_builtins(view.value, builtin_types=(datetime,))
    row["traceparent"] = view.parent.decode() if view.parent else None
    return row


def history_row(traced: Traced) -> dict[str, object]:
    """The status the order entered with this view's version."""
    view: OrderView = traced.value
    change = view.history[-1]
    return {
        "order_id": view.order_id,
        "version": change.version,
        "status": change.status,
        "at": change.at,
        "event_id": change.event_id,
    }


def build(source: Source[MessageBatch], outputs: Outputs) -> Dataflow:
    flow = Dataflow(FLOW)
    batches = op.input("order_events", flow, source)
    decoded = op.flat_map(
        "decode",
        batches,
        observed_batches(FLOW, "decode", TopicDecoder(FLOW, INPUT_TOPICS, traced=True)),
    )
    events = op.branch("split_dead_letters", decoded, lambda x: not isinstance(x, DeadLetter))
    outputs.dead_letters(events.falses, writer=FLOW)  # type: ignore[arg-type]
    by_order = op.key_on("by_order", events.trues, lambda e: e.value.order_id)  # type: ignore[union-attr]
    views = op.flat_map_value("views", op.stateful_map("projector", by_order, project), list)
    outputs.to_table("views", op.map_value("view_row", views, view_row), ORDER_VIEW, writer=FLOW)
    outputs.to_table(
        "history",
        op.map_value("history_row", views, history_row),
        ORDER_STATUS_HISTORY,
        writer=FLOW,
    )
    return flow


flow_from_env = from_env(build, INPUT_TOPICS)

__getattr__ = flow_attribute(flow_from_env)
"""`python -m bytewax.run dataflows.order_projection:flow` builds the flow from the environment."""
