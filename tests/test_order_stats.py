"""order_stats against a reference computed directly from the simulated events."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

import pytest
from bytewax.testing import run_main
from helpers import frozen_now

from dataflows import order_stats
from dataflows.inputs import SimulatorSource
from dataflows.outputs import Outputs
from dataflows.windows import EPOCH, MINUTE
from models.codec import BatchDecoder
from models.orders import OrderCancelled, OrderCreated, OrderPaid
from models.simulator import SimConfig, Simulator
from models.topics import ORDER_EVENTS

CONFIG = SimConfig(
    seed=11,
    events_per_s=400,
    duration_s=240,
    late_fraction=0.02,
    duplicate_fraction=0.05,
    malformed_fraction=0.02,
)


def run_flow(config: SimConfig, batch_size: int = 5_000):
    captured: dict[str, list] = {}
    flow = order_stats.build(
        SimulatorSource(config, batch_size=batch_size),
        Outputs(captured=captured),
        config.allowed_lateness_s,
        now=frozen_now,
    )
    run_main(flow)
    return (
        captured.get("order_stats_minute", []),
        captured.get("dead_letters", []),
        captured.get("late_events", []),
    )


def reference(config: SimConfig):
    """Same rule, written plainly: per currency, the watermark is the largest event time seen
    minus the allowed lateness; an event older than it is late; event ids count once."""
    decoder = BatchDecoder(ORDER_EVENTS)
    watermark: dict[str, datetime] = {}
    windows: dict[tuple[datetime, str], dict[str, object]] = defaultdict(dict)
    dead, late = 0, set()
    lateness = timedelta(seconds=config.allowed_lateness_s)
    for record in Simulator(config).records():
        if record.topic != ORDER_EVENTS:
            continue
        try:
            event = decoder.decode(record.value)
        except ValueError:
            dead += 1
            continue
        if not isinstance(event, OrderCreated | OrderPaid | OrderCancelled):
            continue
        wm = max(watermark.get(event.currency, event.ts - lateness), event.ts - lateness)
        watermark[event.currency] = wm
        if event.ts < wm:
            late.add(event.event_id)
            continue
        minute = event.ts.replace(second=0, microsecond=0)
        windows[minute, event.currency][event.event_id] = event
    expected = {}
    for (minute, currency), events in windows.items():
        created = [e for e in events.values() if isinstance(e, OrderCreated)]
        paid = [e for e in events.values() if isinstance(e, OrderPaid)]
        cancelled = [e for e in events.values() if isinstance(e, OrderCancelled)]
        expected[minute, currency] = (
            len(created),
            len(paid),
            len(cancelled),
            round(sum(e.amount for e in paid), 2),
            round(sum(e.total for e in created) / len(created), 2) if created else None,
        )
    return expected, dead, late


@pytest.fixture(scope="module")
def flow_output():
    return run_flow(CONFIG)


def test_windows_equal_the_reference_aggregate(flow_output) -> None:
    rows, dead, late = flow_output
    expected, expected_dead, expected_late = reference(CONFIG)
    got = {
        (r.window_start, r.currency): (
            r.orders_created,
            r.orders_paid,
            r.orders_cancelled,
            r.revenue,
            r.avg_order_value,
        )
        for r in rows
    }
    assert len(got) == len(rows)  # one row per (window, currency)
    assert got == expected
    assert len(dead) == expected_dead > 0
    assert {e["event_id"] for e in late} == expected_late
    assert len(expected_late) > 0


def test_duplicates_are_counted_once_and_reported(flow_output) -> None:
    rows, _, _ = flow_output
    assert sum(r.duplicates_ignored for r in rows) > 0
    for r in rows:
        assert r.window_end - r.window_start == timedelta(minutes=1)
        assert r.window_start.second == 0


def test_dead_letters_keep_raw_bytes_and_reason(flow_output) -> None:
    _, dead, _ = flow_output
    for letter in dead:
        assert letter["topic"] == ORDER_EVENTS and letter["flow"] == "order_stats"
        assert letter["reason"] and letter["raw"]
        assert letter["source_offset"] >= 0
        assert letter["seen_at"] >= CONFIG.start  # the message's time, not the wall clock


def test_results_do_not_depend_on_batch_size(flow_output) -> None:
    rows, dead, late = flow_output
    rows2, dead2, late2 = run_flow(CONFIG, batch_size=333)
    key = lambda r: (r.window_start, r.currency)  # noqa: E731
    assert sorted(rows, key=key) == sorted(rows2, key=key)
    assert sorted(d["source_offset"] for d in dead) == sorted(d["source_offset"] for d in dead2)
    assert sorted(e["late_id"] for e in late) == sorted(e["late_id"] for e in late2)


def test_stats_ids_are_deterministic(flow_output) -> None:
    rows, _, _ = flow_output
    ids = [r.stats_id for r in rows]
    assert len(set(ids)) == len(ids)
    first = rows[0]
    window_id = (first.window_start - EPOCH) // MINUTE
    rebuilt = order_stats.to_row((first.currency, (window_id, order_stats.OrderWindow())))
    assert rebuilt.stats_id == first.stats_id
