"""What the order API accepts in request bodies, and how a request becomes a command.

Bodies decode with msgspec against these Structs (unknown fields refused), so
a bad body is a 422 naming the field. Ids: without an `Idempotency-Key` every
request gets fresh random ids; with one, the order id and command id derive
from the key, so a retry (even to another API process, or after a restart)
carries the same `command_id` and the command handler ignores it.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated

import msgspec

from models.base import Currency, Id, Money, Name, Text, derived_id
from models.orders import (
    CancelOrder,
    CreateOrder,
    DeliverOrder,
    OrderCommandType,
    OrderItem,
    PayOrder,
    ShipOrder,
)

ORDER_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
"""Order ids the API accepts in a path: what it mints, and what services use as ids."""


class NewOrder(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    customer_id: Id
    items: Annotated[tuple[OrderItem, ...], msgspec.Meta(min_length=1, max_length=1000)]
    currency: Currency = "EUR"


class Payment(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    amount: Money
    currency: Currency = "EUR"
    payment_method: Name = "card"


class Shipment(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    carrier: Name = "post"


class Delivery(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    pass


class Cancellation(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    reason: Text = ""


ACTIONS: dict[str, type[msgspec.Struct]] = {
    "pay": Payment,
    "ship": Shipment,
    "deliver": Delivery,
    "cancel": Cancellation,
}
"""`POST /orders/{id}/<action>` -> its body."""


def new_ids(idempotency_key: str | None, action: str, order_id: str | None) -> tuple[str, str]:
    """(order id, command id) for a request: derived from the idempotency key, or fresh."""
    if idempotency_key is None:
        return order_id or f"o-{uuid.uuid4().hex}", uuid.uuid4().hex
    if order_id is None:
        order_id = "o-" + derived_id("api", "order", idempotency_key)
    return order_id, derived_id("api", "command", idempotency_key, action, order_id)


def command_for(
    action: str, body: msgspec.Struct, order_id: str, command_id: str
) -> OrderCommandType:
    common = {
        "event_id": command_id,
        "ts": datetime.now(UTC),
        "command_id": command_id,
        "order_id": order_id,
    }
    if isinstance(body, NewOrder):
        return CreateOrder(
            **common, customer_id=body.customer_id, items=body.items, currency=body.currency
        )
    if isinstance(body, Payment):
        return PayOrder(
            **common, amount=body.amount, currency=body.currency, payment_method=body.payment_method
        )
    if isinstance(body, Shipment):
        return ShipOrder(**common, carrier=body.carrier)
    if isinstance(body, Cancellation):
        return CancelOrder(**common, reason=body.reason)
    return DeliverOrder(**common)
