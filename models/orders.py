"""Order commands (the write side's input) and order events (what happened).

Events are one type per transition (OrderCreated, OrderPaid, ...) rather than one
OrderStatusUpdated with a status enum: each transition carries different facts
(items on creation, amount on payment, reason on cancellation), and separate
types keep every field required instead of optional-by-status.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

import msgspec

from models.base import Currency, Event, Id, Money, Name, Quantity, Text, Version


class OrderItem(msgspec.Struct, frozen=True):
    sku: Id
    qty: Quantity
    unit_price: Money


class OrderStatus(StrEnum):
    """The order state machine: created -> paid -> shipped -> delivered; cancel before shipping."""

    CREATED = "created"
    PAID = "paid"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


def order_total(items: list[OrderItem] | tuple[OrderItem, ...]) -> float:
    return round(sum(i.qty * i.unit_price for i in items), 2)


# --- commands: order-commands -------------------------------------------------


class OrderCommand(Event, frozen=True, kw_only=True):
    """A request to change an order. `command_id` makes a retried command a no-op."""

    command_id: Id
    order_id: Id
    key_field: ClassVar[str] = "order_id"


class CreateOrder(OrderCommand, frozen=True, kw_only=True, tag="create_order"):
    customer_id: Id
    items: tuple[OrderItem, ...] = msgspec.field(default=())
    currency: Currency = "EUR"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.items:
            raise ValueError("create_order needs at least one item")
        if len(self.items) > 1000:
            raise ValueError("create_order has more than 1000 items")


class PayOrder(OrderCommand, frozen=True, kw_only=True, tag="pay_order"):
    amount: Money
    currency: Currency = "EUR"
    payment_method: Name = "card"


class ShipOrder(OrderCommand, frozen=True, kw_only=True, tag="ship_order"):
    carrier: Name = "post"


class DeliverOrder(OrderCommand, frozen=True, kw_only=True, tag="deliver_order"):
    pass


class CancelOrder(OrderCommand, frozen=True, kw_only=True, tag="cancel_order"):
    reason: Text = ""


OrderCommandType = CreateOrder | PayOrder | ShipOrder | DeliverOrder | CancelOrder


# --- events: order-events -----------------------------------------------------


class OrderEvent(Event, frozen=True, kw_only=True):
    """A fact about an order. `version` counts the order's events from 1, without gaps."""

    order_id: Id
    version: Version
    command_id: Id | None = None
    key_field: ClassVar[str] = "order_id"


class OrderCreated(OrderEvent, frozen=True, kw_only=True, tag="order_created"):
    customer_id: Id
    items: tuple[OrderItem, ...]
    currency: Currency
    total: Money


class OrderPaid(OrderEvent, frozen=True, kw_only=True, tag="order_paid"):
    amount: Money
    currency: Currency
    payment_method: Name = "card"


class OrderShipped(OrderEvent, frozen=True, kw_only=True, tag="order_shipped"):
    carrier: Name = "post"


class OrderDelivered(OrderEvent, frozen=True, kw_only=True, tag="order_delivered"):
    pass


class OrderCancelled(OrderEvent, frozen=True, kw_only=True, tag="order_cancelled"):
    """Carries the order's value and currency, so consumers need no lookup to report it."""

    total: Money
    currency: Currency
    reason: Text = ""


OrderEventType = OrderCreated | OrderPaid | OrderShipped | OrderDelivered | OrderCancelled
