"""order_projection: the CQRS read side. Order events in, an always-current order view out.

    order-events ─► decode ─┬─► dead letters ─► lake dead_letters, order-events.dlq
                            └─► key by order_id ─► projector (recoverable state, one per
                                order: applies each version once, in order)
                                 ─► new views ─┬─► lake order_view (change log;
                                               │   view order_view_latest)
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
from dataflows.outputs import Outputs
from models.order_view import OrderProjector, OrderView
from models.orders import OrderEvent
from models.topics import ORDER_EVENTS
from warehouse.tables import ORDER_STATUS_HISTORY, ORDER_VIEW

FLOW = "order_projection"
INPUT_TOPICS = (ORDER_EVENTS,)


def project(
    projector: OrderProjector | None, event: OrderEvent
) -> tuple[OrderProjector, list[OrderView]]:
    projector = projector or OrderProjector()
    return projector, projector.apply(event)  # type: ignore[arg-type]


def view_row(view: OrderView) -> dict[str, object]:
    """An `order_view` row: the view with its items and history as nested columns."""
    return msgspec.to_builtins(view, builtin_types=(datetime,))


def history_row(view: OrderView) -> dict[str, object]:
    """The status the order entered with this view's version."""
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
    decoded = op.flat_map("decode", batches, TopicDecoder(FLOW, INPUT_TOPICS))
    events = op.branch("split_dead_letters", decoded, lambda x: not isinstance(x, DeadLetter))
    outputs.dead_letters(events.falses, writer=FLOW)  # type: ignore[arg-type]
    by_order = op.key_on("by_order", events.trues, lambda e: e.order_id)  # type: ignore[union-attr]
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
