"""The order read model: one document per order, folded from its events in version order.

Pure domain logic, no Kafka and no dataflow. `OrderProjector.apply(event)`
answers what an `order-events` record changes: nothing for an event already
applied (a duplicate or an older version after a newer one), the new view for
the next version, and, for a version that arrives ahead of a gap, nothing yet
(it is held, bounded, until the missing versions arrive). The projection
dataflow keeps one projector per order in recoverable state and lands every
new view as a row of the `order_view` change log.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from models.order_state import STATUS_AFTER
from models.orders import (
    OrderCancelled,
    OrderCreated,
    OrderEventType,
    OrderItem,
    OrderPaid,
    OrderShipped,
)

HELD_AHEAD = 64
"""Versions an order holds while waiting for a missing earlier one; beyond that the
furthest-ahead is dropped (it comes back on a replay of the topic)."""


class StatusChange(msgspec.Struct, frozen=True):
    status: str
    version: int
    at: datetime
    event_id: str


class OrderView(msgspec.Struct, frozen=True, kw_only=True):
    """The current state of an order, as `GET /orders/{id}` returns it."""

    order_id: str
    version: int
    status: str
    customer_id: str
    currency: str
    total: float
    items: tuple[OrderItem, ...]
    created_at: datetime
    updated_at: datetime
    paid_amount: float | None = None
    payment_method: str | None = None
    carrier: str | None = None
    cancel_reason: str | None = None
    history: tuple[StatusChange, ...] = ()
    last_event_id: str = ""


class OrderProjector(msgspec.Struct, kw_only=True):
    """One order's view and the events that arrived ahead of a gap in its versions."""

    view: OrderView | None = None
    ahead: dict[int, OrderEventType] = msgspec.field(default_factory=dict)

    @property
    def version(self) -> int:
        return 0 if self.view is None else self.view.version

    def apply(self, event: OrderEventType) -> list[OrderView]:
        """The views this event makes current, oldest first (more than one when it fills
        a gap); empty for a duplicate, an old version or one still ahead of a gap."""
        if event.version <= self.version:
            return []
        if event.version > self.version + 1:
            self.ahead.setdefault(event.version, event)
            if len(self.ahead) > HELD_AHEAD:
                del self.ahead[max(self.ahead)]
            return []
        out = []
        nxt: OrderEventType | None = event
        while nxt is not None:
            view = fold(self.view, nxt)
            if view is None:  # an event that can't follow: no create before it
                break
            self.view = view
            out.append(view)
            nxt = self.ahead.pop(self.version + 1, None)
        for stale in [v for v in self.ahead if v <= self.version]:
            del self.ahead[stale]
        return out


def fold(view: OrderView | None, event: OrderEventType) -> OrderView | None:
    """The view after `event`; None when there is no view to change (no order_created yet)."""
    status = STATUS_AFTER[type(event)].value
    change = StatusChange(status, event.version, event.ts, event.event_id)
    if isinstance(event, OrderCreated):
        return OrderView(
            order_id=event.order_id,
            version=event.version,
            status=status,
            customer_id=event.customer_id,
            currency=event.currency,
            total=event.total,
            items=event.items,
            created_at=event.ts,
            updated_at=event.ts,
            history=(change,),
            last_event_id=event.event_id,
        )
    if view is None:
        return None
    fields: dict[str, object] = {
        "version": event.version,
        "status": status,
        "updated_at": event.ts,
        "history": (*view.history, change),
        "last_event_id": event.event_id,
    }
    if isinstance(event, OrderPaid):
        fields.update(paid_amount=event.amount, payment_method=event.payment_method)
    elif isinstance(event, OrderShipped):
        fields["carrier"] = event.carrier
    elif isinstance(event, OrderCancelled):
        fields["cancel_reason"] = event.reason
    return msgspec.structs.replace(view, **fields)
