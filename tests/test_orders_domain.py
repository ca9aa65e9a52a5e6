"""The order state machine (write side) and the read model's folding (read side), alone:
every transition, every refusal, re-deliveries, duplicate and out-of-order events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from models.order_state import OrderRejected, OrderState
from models.order_view import HELD_AHEAD, OrderProjector
from models.orders import (
    CancelOrder,
    CreateOrder,
    DeliverOrder,
    OrderCreated,
    OrderItem,
    OrderPaid,
    PayOrder,
    ShipOrder,
)

T0 = datetime(2026, 12, 3, 10, tzinfo=UTC)
ITEMS = (OrderItem(sku="p-1", qty=2, unit_price=10.0),)


def cmd(kind, n: int, **fields):
    return kind(
        event_id=f"e{n}", ts=T0 + timedelta(seconds=n), command_id=f"c{n}", order_id="o-1", **fields
    )


CREATE = cmd(CreateOrder, 1, customer_id="u-1", items=ITEMS, currency="EUR")
PAY = cmd(PayOrder, 2, amount=20.0, currency="EUR")
SHIP = cmd(ShipOrder, 3, carrier="dhl")
DELIVER = cmd(DeliverOrder, 4)


def run(*commands):
    state = OrderState(order_id="o-1")
    return state, [state.handle(c) for c in commands]


def test_the_happy_path_gives_versioned_events_derived_from_the_commands() -> None:
    state, out = run(CREATE, PAY, SHIP, DELIVER)
    assert [type(e).__name__ for e in out] == [
        "OrderCreated",
        "OrderPaid",
        "OrderShipped",
        "OrderDelivered",
    ]
    assert [e.version for e in out] == [1, 2, 3, 4]
    assert out[0].total == 20.0 and out[0].ts == CREATE.ts and out[1].command_id == "c2"
    assert state.status == "delivered"
    _, again = run(CREATE, PAY, SHIP, DELIVER)
    assert again == out, "a replay must emit identical events"


@pytest.mark.parametrize(
    ("commands", "reason"),
    [
        ((PAY,), "does not exist"),
        ((CREATE, cmd(CreateOrder, 9, customer_id="u-1", items=ITEMS)), "already exists"),
        ((CREATE, SHIP), "ship_order is not allowed in status created (only from paid)"),
        ((CREATE, DELIVER), "deliver_order is not allowed in status created"),
        (
            (CREATE, PAY, cmd(PayOrder, 9, amount=20.0, currency="EUR")),
            "pay_order is not allowed in status paid",
        ),
        ((CREATE, PAY, SHIP, cmd(CancelOrder, 5)), "cancel_order is not allowed in status shipped"),
        (
            (CREATE, cmd(PayOrder, 2, amount=19.0, currency="EUR")),
            "does not match the order total 20.00",
        ),
        ((CREATE, cmd(PayOrder, 2, amount=20.0, currency="USD")), "the order is in EUR"),
        ((CREATE, cmd(CancelOrder, 2), SHIP), "not allowed in status cancelled"),
    ],
)
def test_illegal_commands_are_rejected_with_a_reason_and_change_nothing(commands, reason) -> None:
    state, out = run(*commands)
    rejected = out[-1]
    assert isinstance(rejected, OrderRejected), rejected
    assert reason in rejected.reason
    before, _ = run(*commands[:-1])
    assert (state.status, state.version) == (before.status, before.version)


def test_cancel_is_allowed_before_shipping_and_carries_the_order_value() -> None:
    _, out = run(CREATE, PAY, cmd(CancelOrder, 3, reason="late"))
    assert type(out[-1]).__name__ == "OrderCancelled"
    assert (out[-1].total, out[-1].currency, out[-1].reason, out[-1].version) == (
        20.0,
        "EUR",
        "late",
        3,
    )


def test_a_redelivered_command_produces_nothing() -> None:
    state, out = run(CREATE, PAY, PAY, CREATE, SHIP)
    assert out[2] is None and out[3] is None
    assert [e.version for e in out if e is not None] == [1, 2, 3]
    assert state.version == 3


def events():
    _, out = run(CREATE, PAY, SHIP, DELIVER)
    return out


def test_the_projection_applies_each_version_once_in_order() -> None:
    created, paid, shipped, delivered = events()
    p = OrderProjector()
    assert [v.status for v in p.apply(created)] == ["created"]
    assert p.apply(created) == [], "a duplicate changes nothing"
    assert [v.version for v in p.apply(paid)] == [2]
    assert p.apply(created) == [] and p.apply(paid) == [], "older versions change nothing"
    assert p.apply(delivered) == [], "a version ahead of a gap waits"
    views = p.apply(shipped)
    assert [v.status for v in views] == ["shipped", "delivered"], "the gap filled: both apply"
    final = views[-1]
    assert [h.status for h in final.history] == ["created", "paid", "shipped", "delivered"]
    assert (final.paid_amount, final.carrier, final.version) == (20.0, "dhl", 4)


def test_the_projection_holds_a_bounded_number_of_early_versions() -> None:
    created = events()[0]
    p = OrderProjector()
    for v in range(3, 3 + HELD_AHEAD + 10):
        p.apply(
            OrderPaid(
                event_id=f"x{v}", ts=T0, order_id="o-1", version=v, amount=1.0, currency="EUR"
            )
        )
    assert len(p.ahead) == HELD_AHEAD
    assert [v.version for v in p.apply(created)] == [1]


def test_an_event_that_cannot_start_an_order_is_not_a_view() -> None:
    p = OrderProjector()
    paid = OrderPaid(event_id="x", ts=T0, order_id="o-9", version=1, amount=1.0, currency="EUR")
    assert p.apply(paid) == [] and p.view is None
    created = OrderCreated(
        event_id="y",
        ts=T0,
        order_id="o-9",
        version=1,
        customer_id="u",
        items=ITEMS,
        currency="EUR",
        total=20.0,
    )
    assert [v.status for v in p.apply(created)] == ["created"], "the real version 1 still applies"
