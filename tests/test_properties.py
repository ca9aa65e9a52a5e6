"""Property: the same events, cut into any batches, shuffled within the allowed lateness and
with duplicates, give the same windows as the events in order in one batch."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from bytewax.testing import TestingSource, run_main
from helpers import captured_rows, frozen_now
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dataflows import order_stats
from dataflows.messages import MessageBatch, RawMessage
from dataflows.outputs import Outputs
from dataflows.windowing import Clock
from models.codec import encode
from models.orders import OrderCancelled, OrderCreated, OrderItem, OrderPaid
from models.topics import ORDER_EVENTS

LATENESS = timedelta(seconds=10)
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def make_event(i: int, kind: int, offset_ms: int, amount_cents: int, currency: str):
    common = {
        "event_id": f"e-{i}",
        "ts": START + timedelta(milliseconds=offset_ms),
        "order_id": f"o-{i}",
        "version": 1,
    }
    price = amount_cents / 100
    if kind == 0:
        item = OrderItem(sku="p-1", qty=1, unit_price=price)
        return OrderCreated(
            **common, customer_id="c-1", items=(item,), total=price, currency=currency
        )
    if kind == 1:
        return OrderPaid(**common, amount=price, currency=currency)
    return OrderCancelled(**common, reason="x", total=price, currency=currency)


events_strategy = st.lists(
    st.tuples(
        st.integers(0, 2),  # kind
        st.integers(0, 3_000),  # gap to the previous event, ms
        st.integers(0, 100_000),  # amount, cents
        st.sampled_from(["EUR", "USD"]),
    ),
    min_size=1,
    max_size=120,
)


def run(values: list[bytes], cuts: list[int], shards: int = 1) -> dict[str, list]:
    batches, start = [], 0
    for cut in [*sorted(set(cuts)), len(values)]:
        if start < cut <= len(values):
            chunk = values[start:cut]
            batches += MessageBatch.split(
                RawMessage(ORDER_EVENTS, 0, offset, None, value)
                for offset, value in enumerate(chunk, start)
            )
            start = cut
    captured: dict[str, list] = {}
    flow = order_stats.build(
        TestingSource(batches),
        Outputs(captured=captured),
        Clock(LATENESS, now=frozen_now),
        shards,
        sources=[f"{ORDER_EVENTS}#0"],
    )
    run_main(flow)
    return {name: captured_rows(captured, name) for name in ("order_stats_minute", "late_events")}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events_strategy, st.randoms(use_true_random=False), st.lists(st.integers(1, 200), max_size=8)
)
def test_batching_shuffling_and_duplicates_do_not_change_windows(
    spec: list[tuple[int, int, int, str]], rnd: random.Random, cuts: list[int]
) -> None:
    offset, events = 0, []
    for i, (kind, gap, cents, currency) in enumerate(spec):
        offset += gap
        events.append(make_event(i, kind, offset, cents, currency))
    in_order = [encode(e) for e in events]
    # Arrival = event time plus a delay below the allowed lateness: nothing becomes late.
    delay_ms = LATENESS.total_seconds() * 1000
    arrival = sorted(
        (e.ts.timestamp() * 1000 + rnd.uniform(0, delay_ms * 0.99), encode(e)) for e in events
    )
    shuffled = [value for _, value in arrival]
    for _ in range(rnd.randint(0, 5)):  # re-deliveries, also within the lateness
        i = rnd.randrange(len(shuffled))
        shuffled.insert(min(len(shuffled), i + rnd.randint(0, 3)), shuffled[i])
    expected = run(in_order, [])
    got = run(shuffled, cuts, shards=rnd.choice([1, 2]))
    assert got["late_events"] == expected["late_events"] == []
    strip = lambda rows: [{k: v for k, v in r.items() if k != "duplicates_ignored"} for r in rows]  # noqa: E731
    assert strip(got["order_stats_minute"]) == strip(expected["order_stats_minute"])
    dupes = sum(r["duplicates_ignored"] for r in got["order_stats_minute"])
    assert dupes == len(shuffled) - len(in_order)
