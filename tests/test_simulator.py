"""The simulator is deterministic, realistic enough to exercise the flows, and messy as promised."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import timedelta

import pytest

from models.base import Event
from models.codec import BatchDecoder
from models.orders import OrderCancelled, OrderCreated, OrderDelivered, OrderPaid, OrderShipped
from models.simulator import MALFORMED_KINDS, SimConfig, SimRecord, Simulator
from models.topics import INPUT_TOPICS, ORDER_EVENTS, PURCHASES

CONFIG = SimConfig(
    seed=7,
    events_per_s=400,
    duration_s=300,
    late_fraction=0.01,
    duplicate_fraction=0.02,
    malformed_fraction=0.01,
)


def decoded(records: list[SimRecord], topic: str) -> Iterator[Event]:
    """The well-formed events of one topic, in delivery order."""
    decoder = BatchDecoder(topic)
    for record in records:
        if record.topic == topic:
            try:
                yield decoder.decode(record.value)
            except ValueError:
                continue


@pytest.fixture(scope="module")
def run() -> tuple[Simulator, list[SimRecord]]:
    sim = Simulator(CONFIG)
    return sim, list(sim.records())


def test_same_seed_gives_byte_identical_output(run: tuple[Simulator, list[SimRecord]]) -> None:
    _, records = run
    again = list(Simulator(CONFIG).records())
    assert again == records
    other = list(Simulator(SimConfig(**{**CONFIG.__dict__, "seed": 8})).records())
    assert [r.value for r in other[:100]] != [r.value for r in records[:100]]


def test_records_are_in_delivery_order_and_rate_is_as_configured(
    run: tuple[Simulator, list[SimRecord]],
) -> None:
    sim, records = run
    emits = [r.emit_s for r in records]
    assert emits == sorted(emits)
    expected = CONFIG.events_per_s * CONFIG.duration_s
    assert 0.9 * expected < sim.stats.events < 1.1 * expected
    assert set(sim.stats.records) == set(INPUT_TOPICS)
    assert sim.stats.total_records == len(records)


def test_promised_mess_is_present_in_the_stated_fractions(
    run: tuple[Simulator, list[SimRecord]],
) -> None:
    sim, records = run
    decoders = {topic: BatchDecoder(topic) for topic in INPUT_TOPICS}
    failures, ids, late = 0, Counter(), 0
    newest: dict[str, float] = defaultdict(float)
    for r in records:
        try:
            event = decoders[r.topic].decode(r.value)
        except ValueError:
            failures += 1
            continue
        ids[event.event_id] += 1
        ts = event.ts.timestamp()
        if ts < newest[r.topic] - CONFIG.allowed_lateness_s:
            late += 1
        newest[r.topic] = max(newest[r.topic], ts)
    n = sim.stats.events
    duplicates = sum(c - 1 for c in ids.values())
    # Observed in the output itself, not only in the simulator's own counters:
    assert 0.7 * CONFIG.malformed_fraction * n < failures < 1.3 * CONFIG.malformed_fraction * n
    assert 0.8 * CONFIG.duplicate_fraction * n < duplicates < 1.2 * CONFIG.duplicate_fraction * n
    # Low-rate topics can't tell every late event from ordinary disorder; most must show.
    assert 0.6 * CONFIG.late_fraction * n < late < 1.2 * CONFIG.late_fraction * n
    assert set(sim.stats.malformed) == set(MALFORMED_KINDS)
    # Plain jitter stays within its bound: only the injected late events go further back.
    assert late <= sim.stats.late


def test_order_lifecycles_follow_the_state_machine(run: tuple[Simulator, list[SimRecord]]) -> None:
    _, records = run
    history: dict[str, dict[int, type]] = defaultdict(dict)
    for event in decoded(records, ORDER_EVENTS):
        history[event.order_id][event.version] = type(event)
    allowed = {
        OrderCreated: {OrderPaid, OrderCancelled},
        OrderPaid: {OrderShipped, OrderCancelled},
        OrderShipped: {OrderDelivered},
        OrderDelivered: set(),
        OrderCancelled: set(),
    }
    complete = 0
    for versions in history.values():
        if 1 not in versions:  # its creation was among the malformed records
            continue
        assert versions[1] is OrderCreated
        for v in range(2, max(versions) + 1):
            if v in versions and v - 1 in versions:
                assert versions[v] in allowed[versions[v - 1]]
        complete += versions.get(4) is OrderDelivered
    assert complete > 0
    assert any(OrderCancelled in v.values() for v in history.values())


def test_incidents_are_labelled_and_visible_in_the_traffic() -> None:
    config = SimConfig(seed=3, events_per_s=300, duration_s=600)
    sim = Simulator(config)
    records = list(sim.records())
    labels = {i.kind: i for i in sim.incidents}
    assert set(labels) == {"latency_spike", "error_burst", "order_drop", "metric_spike"}
    for incident in sim.incidents:
        assert (
            config.start <= incident.start < incident.end <= config.start + timedelta(seconds=600)
        )

    drop = labels["order_drop"]
    created_per_s = Counter()
    for event in decoded(records, ORDER_EVENTS):
        if isinstance(event, OrderCreated):
            created_per_s[drop.start <= event.ts < drop.end] += 1
    during = created_per_s[True] / (drop.end - drop.start).total_seconds()
    normal = created_per_s[False] / (config.duration_s - (drop.end - drop.start).total_seconds())
    assert during < 0.4 * normal

    spike = labels["latency_spike"]
    inside, outside = [], []
    for e in decoded(records, "metrics-events"):
        if e.key() == spike.subject:
            (inside if spike.start <= e.ts < spike.end else outside).append(e.duration_ms)
    assert sorted(inside)[len(inside) // 2] > 3 * sorted(outside)[len(outside) // 2]


def test_purchases_match_paid_orders(run: tuple[Simulator, list[SimRecord]]) -> None:
    _, records = run
    paid = {
        e.order_id: e.amount for e in decoded(records, ORDER_EVENTS) if isinstance(e, OrderPaid)
    }
    bought = {e.order_id: e.amount for e in decoded(records, PURCHASES)}
    common = paid.keys() & bought.keys()
    assert len(common) > 0.9 * min(len(paid), len(bought))
    assert all(paid[o] == bought[o] for o in common)


def test_bad_settings_are_rejected_by_name() -> None:
    with pytest.raises(ValueError, match="events_per_s"):
        SimConfig(events_per_s=0)
    with pytest.raises(ValueError, match="jitter_s"):
        SimConfig(jitter_s=30, allowed_lateness_s=10)
