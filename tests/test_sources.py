"""The in-process sources: the simulator, and a list of messages replayed as a topic is.
The demo replays one simulation to every flow; that must give what the simulator source
gives, including the partitions windows and event-time order wait for."""

from __future__ import annotations

from datetime import timedelta

from bytewax.testing import run_main

from dataflows import behavior_etl
from dataflows.inputs import MemorySource, SimulatorSource, simulated_messages
from dataflows.outputs import Outputs
from dataflows.windowing import Clock
from models.simulator import SimConfig
from models.topics import PAGE_VIEWS, PURCHASES, USER_EVENTS

CONFIG = SimConfig(seed=9, events_per_s=200, duration_s=120)


def test_a_memory_source_lists_the_partitions_of_its_log() -> None:
    messages = list(simulated_messages(CONFIG))
    source = MemorySource(messages)
    assert source.topic_partitions([PAGE_VIEWS, PURCHASES, "no-such-topic"]) == [
        f"{PAGE_VIEWS}#0",
        f"{PURCHASES}#0",
    ]
    assert source.topic_partitions([PAGE_VIEWS]) == SimulatorSource(CONFIG).topic_partitions(
        [PAGE_VIEWS]
    )


def rows(items: list) -> list:
    """Captured values: Arrow tables of rows, or single rows."""
    return [
        r for item in items for r in (item.to_pylist() if hasattr(item, "to_pylist") else [item])
    ]


def test_replaying_the_simulation_gives_what_the_simulator_source_gives() -> None:
    clock = Clock(timedelta(seconds=CONFIG.allowed_lateness_s))
    messages = list(simulated_messages(CONFIG))
    results = []
    for source in (SimulatorSource(CONFIG), MemorySource(messages, batch_size=5_000)):
        captured: dict[str, list] = {}
        run_main(behavior_etl.build(source, Outputs(captured=captured), clock))
        results.append({name: sorted(map(str, rows(items))) for name, items in captured.items()})
    assert results[0] == results[1]
    assert results[0]["user_recommendations"], "the comparison must cover recommendations"
    assert {USER_EVENTS, PAGE_VIEWS, PURCHASES} <= {m.topic for m in messages}
