"""The order aggregate of the write side: which command becomes which event, and why not.

Pure domain logic, no Kafka and no dataflow: `OrderState.decide(command)` says
what a command does to one order given everything accepted before it, and
`apply` moves the state on. The command handler (dataflows/order_commands.py)
keeps one `OrderState` per order in recoverable Bytewax state.

The state machine: created -> paid -> shipped -> delivered; cancel is allowed
while the order is created or paid (before shipping); everything else is
rejected with a reason. A payment must match the order's total and currency.

Every event the handler emits is a pure function of the commands before it:
its `event_id` derives from the command's, its `ts` is the command's, and its
`version` counts the order's accepted commands. A replay after a crash emits
byte-identical events, so readers dedupe on `event_id` or `version`.
"""

from __future__ import annotations

from collections import OrderedDict

import msgspec

from models.base import Id, Text, Timestamp, derived_id, type_tag
from models.orders import (
    CancelOrder,
    CreateOrder,
    DeliverOrder,
    OrderCancelled,
    OrderCommandType,
    OrderCreated,
    OrderDelivered,
    OrderEventType,
    OrderPaid,
    OrderShipped,
    OrderStatus,
    PayOrder,
    ShipOrder,
    order_total,
)

REMEMBERED_COMMANDS = 256
"""Command ids an order remembers, to recognise re-deliveries. An order sees a handful of
legitimate commands; a flood of distinct ids beyond this forgets the oldest (a forgotten
re-delivery is then judged again by the state machine, which rejects it in every state
but the one it was accepted in)."""

HANDLER = "order_commands"
"""Names the write side in derived ids."""


class OrderRejected(msgspec.Struct, frozen=True, kw_only=True, tag="order_rejected"):
    """A command the state machine refused (topic `order-rejections`), with the reason."""

    rejection_id: Id
    ts: Timestamp
    order_id: Id
    command_id: Id
    command_type: str
    reason: Text
    status: str | None
    """The order's status when the command arrived; None for an unknown order."""


_NEXT: dict[type, tuple[OrderStatus, ...]] = {
    PayOrder: (OrderStatus.CREATED,),
    ShipOrder: (OrderStatus.PAID,),
    DeliverOrder: (OrderStatus.SHIPPED,),
    CancelOrder: (OrderStatus.CREATED, OrderStatus.PAID),
}
"""For each command but create: the statuses it is allowed from."""

STATUS_AFTER: dict[type, OrderStatus] = {
    OrderCreated: OrderStatus.CREATED,
    OrderPaid: OrderStatus.PAID,
    OrderShipped: OrderStatus.SHIPPED,
    OrderDelivered: OrderStatus.DELIVERED,
    OrderCancelled: OrderStatus.CANCELLED,
}
"""The status an order is in after each kind of event (the read side uses it too)."""


def command_type(command: OrderCommandType) -> str:
    return type_tag(command)


class OrderState(msgspec.Struct, kw_only=True):
    """What the write side knows of one order: enough to decide, nothing more."""

    order_id: str
    status: OrderStatus | None = None
    """None until a create_order is accepted."""
    version: int = 0
    total: float = 0.0
    currency: str = ""
    seen_commands: OrderedDict[str, None] = msgspec.field(default_factory=OrderedDict)

    def handle(self, command: OrderCommandType) -> OrderEventType | OrderRejected | None:
        """The event an accepted command becomes, a rejection, or None for a re-delivery."""
        if command.command_id in self.seen_commands:
            return None
        self._remember(command.command_id)
        reason = self._refusal(command)
        if reason is not None:
            return OrderRejected(
                rejection_id=derived_id(HANDLER, "rejected", command.command_id),
                ts=command.ts,
                order_id=command.order_id,
                command_id=command.command_id,
                command_type=command_type(command),
                reason=reason,
                status=None if self.status is None else self.status.value,
            )
        event = self._event(command)
        self._apply(event)
        return event

    def _remember(self, command_id: str) -> None:
        self.seen_commands[command_id] = None
        while len(self.seen_commands) > REMEMBERED_COMMANDS:
            self.seen_commands.popitem(last=False)

    def _refusal(self, command: OrderCommandType) -> str | None:
        kind = command_type(command)
        if isinstance(command, CreateOrder):
            if self.status is not None:
                return f"order {command.order_id} already exists (status {self.status.value})"
            return None
        if self.status is None:
            return f"{kind}: order {command.order_id} does not exist"
        allowed = _NEXT[type(command)]
        if self.status not in allowed:
            froms = " or ".join(s.value for s in allowed)
            return f"{kind} is not allowed in status {self.status.value} (only from {froms})"
        if isinstance(command, PayOrder):
            if command.currency != self.currency:
                return f"pay_order in {command.currency}, but the order is in {self.currency}"
            if abs(command.amount - self.total) > 0.005:
                return f"pay_order of {command.amount:.2f} does not match the order total {self.total:.2f}"
        return None

    def _event(self, command: OrderCommandType) -> OrderEventType:
        common = {
            "event_id": derived_id(HANDLER, "event", command.command_id),
            "ts": command.ts,
            "order_id": command.order_id,
            "version": self.version + 1,
            "command_id": command.command_id,
        }
        if isinstance(command, CreateOrder):
            return OrderCreated(
                **common,
                customer_id=command.customer_id,
                items=command.items,
                currency=command.currency,
                total=order_total(command.items),
            )
        if isinstance(command, PayOrder):
            return OrderPaid(
                **common,
                amount=command.amount,
                currency=command.currency,
                payment_method=command.payment_method,
            )
        if isinstance(command, ShipOrder):
            return OrderShipped(**common, carrier=command.carrier)
        if isinstance(command, DeliverOrder):
            return OrderDelivered(**common)
        return OrderCancelled(
            **common, total=self.total, currency=self.currency, reason=command.reason
        )

    def _apply(self, event: OrderEventType) -> None:
        self.version = event.version
        self.status = STATUS_AFTER[type(event)]
        if isinstance(event, OrderCreated):
            self.total, self.currency = event.total, event.currency
