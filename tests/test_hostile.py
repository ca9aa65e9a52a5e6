"""Hostile input on every input topic of every flow: nothing crashes, each bad record is a
dead letter with its reason, and the good records around them give exactly the results
they give alone.

A seeded fuzzer makes the bad records from real ones of each topic, of kinds that can
never be valid: random bytes (not UTF-8), truncated JSON, 10 MB messages, deeply nested
JSON, a required field of the wrong type, NaN and infinities, timestamps in year 1 and
9999, unknown event types, unsupported schema versions, empty values. They go to a
partition of their own (#1), so the good records keep their offsets.
"""

from __future__ import annotations

import json
import random
from datetime import timedelta
from typing import Any

import pytest
from bytewax.testing import run_main
from helpers import frozen_now

from dataflows import (
    anomalies,
    api_metrics,
    behavior_etl,
    land_events,
    log_alerts,
    order_commands,
    order_projection,
    order_stats,
    user_activity,
)
from dataflows.inputs import MemorySource, simulated_messages
from dataflows.messages import RawMessage
from dataflows.outputs import Outputs
from dataflows.windowing import Clock
from models.simulator import SimConfig
from models.topics import ANOMALY_MODELS, INPUT_TOPICS, LOG_EVENTS
from sinks.kafka import KafkaMessage
from warehouse.tables import TABLES

CONFIG = SimConfig(seed=9, events_per_s=200, duration_s=240, malformed_fraction=0)
MESSAGES = list(simulated_messages(CONFIG))
PER_TOPIC = 60
"""Hostile records per input topic of a flow."""
CLOCK = Clock(timedelta(seconds=10), now=frozen_now)
FLOWS: dict[str, Any] = {
    "land_events": lambda s, o: land_events.build(s, o),
    "order_stats": lambda s, o: order_stats.build(s, o, CLOCK),
    "user_activity": lambda s, o: user_activity.build(s, o, CLOCK),
    "log_alerts": lambda s, o: log_alerts.build(s, o, CLOCK),
    "api_metrics": lambda s, o: api_metrics.build(s, o, CLOCK),
    "behavior_etl": lambda s, o: behavior_etl.build(s, o, CLOCK),
    "anomalies": lambda s, o: anomalies.build(s, o),
    "order_commands": lambda s, o: order_commands.build(s, o),
    "order_projection": lambda s, o: order_projection.build(s, o),
}
TOPICS = {
    "land_events": tuple(INPUT_TOPICS),
    "order_stats": order_stats.INPUT_TOPICS,
    "user_activity": user_activity.INPUT_TOPICS,
    "log_alerts": log_alerts.INPUT_TOPICS,
    "api_metrics": api_metrics.INPUT_TOPICS,
    "behavior_etl": behavior_etl.INPUT_TOPICS,
    "anomalies": anomalies.INPUT_TOPICS,
    "order_commands": order_commands.INPUT_TOPICS,
    "order_projection": order_projection.INPUT_TOPICS,
}


def _json_of(message: RawMessage) -> dict[str, Any]:
    return json.loads(message.value)  # type: ignore[arg-type]


def hostile(good: RawMessage, rng: random.Random) -> tuple[bytes | None, str]:
    """One bad value made from a good one, and its kind."""
    event = _json_of(good)
    kind = rng.choice(KINDS)
    if kind == "random bytes":
        return b"\xff" + rng.randbytes(rng.randint(0, 300)), kind
    if kind == "truncated JSON":
        raw = json.dumps(event).encode()
        return raw[: rng.randint(1, len(raw) - 1)], kind
    if kind == "10 MB":
        return json.dumps({**event, "pad": "x" * 10_000_000}).encode(), kind
    if kind == "deeply nested":
        depth = rng.randint(20_000, 100_000)  # past the decoder's nesting limit (msgspec: 10 000)
        return json.dumps({**event, "event_id": "~"}).encode()[
            :-1
        ] + b',"n":' + b"[" * depth + b"]" * depth + b"}", kind
    if kind == "wrong type":
        return json.dumps(
            {**event, "ts": rng.choice([[1, 2], {"a": 1}, True, 1767607200])}
        ).encode(), kind
    if kind == "NaN or infinity":
        token = rng.choice([b"NaN", b"Infinity", b"-Infinity", b"1e999"])
        return json.dumps({**event, "ts": "TOKEN"}).encode().replace(b'"TOKEN"', token), kind
    if kind == "year 1 or 9999":
        stamp = rng.choice(["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"])
        return json.dumps({**event, "ts": stamp}).encode(), kind
    if kind == "unknown type":
        return json.dumps({**event, "type": f"mystery_{rng.randint(0, 999)}"}).encode(), kind
    if kind == "schema version":
        return json.dumps({**event, "schema_version": rng.randint(2, 99)}).encode(), kind
    return None, kind  # "empty"


KINDS = ("random bytes", "truncated JSON", "10 MB", "deeply nested", "wrong type",
         "NaN or infinity", "year 1 or 9999", "unknown type", "schema version", "empty")  # fmt: skip


def with_hostile(topics: tuple[str, ...], seed: int) -> tuple[list[RawMessage], list[RawMessage]]:
    """(the good messages of `topics`, the same with hostile ones spread among them)."""
    rng = random.Random(seed)
    good = [m for m in MESSAGES if m.topic in topics]
    bad: list[RawMessage] = []
    for topic in topics:
        samples = [m for m in good if m.topic == topic and (m.value or b"").startswith(b"{")]
        assert samples, topic
        for offset in range(PER_TOPIC):
            value, _kind = hostile(rng.choice(samples), rng)
            if value is None and topic == ANOMALY_MODELS:
                value = b"\xff"  # a null value there is a tombstone, which is valid
            bad.append(RawMessage(topic, 1, offset, b"k", value))
    mixed = list(good)
    for message in bad:
        mixed.insert(rng.randint(0, len(mixed)), message)
    return good, mixed


def run(flow: str, log: list[RawMessage]) -> dict[str, list]:
    captured: dict[str, list] = {}
    run_main(FLOWS[flow](MemorySource(log, batch_size=700), Outputs(captured=captured)))
    return captured


def rows(captured: dict[str, list], name: str) -> list[dict]:
    """A table's rows; floats to 9 digits, since anomalies' scores are equal to rounding
    only when batches start elsewhere (dataflows/anomalies.py)."""
    out = []
    for value in captured.get(name, []):
        if isinstance(value, KafkaMessage):  # compare what it says, as JSON
            value = {"topic": value.topic, "key": value.key, **json.loads(value.value)}
        out += value.to_pylist() if hasattr(value, "to_pylist") else [value]
    return [
        {k: float(f"{v:.9g}") if isinstance(v, float) else v for k, v in row.items()}
        if isinstance(row, dict)
        else row
        for row in out
    ]


@pytest.mark.parametrize("flow", sorted(FLOWS))
def test_every_bad_record_is_a_dead_letter_and_the_good_ones_are_unharmed(flow: str) -> None:
    topics = tuple(TOPICS[flow])
    good, mixed = with_hostile(topics, seed=len(flow))
    clean, dirty = run(flow, good), run(flow, mixed)
    dead = [d for d in rows(dirty, "dead_letters") if d["source_partition"] == 1]
    tried = PER_TOPIC * len(topics)
    assert len(dead) == tried, f"{tried - len(dead)} hostile records were not dead letters"
    assert all(d["reason"] and d["flow"] == flow for d in dead)
    assert {d["topic"] for d in dead} == set(topics)
    assert [d for d in rows(dirty, "dead_letters") if d["source_partition"] == 0] == rows(
        clean, "dead_letters"
    )
    for name in set(clean) | set(dirty):
        if name == "dead_letters":
            continue
        got, want = rows(dirty, name), rows(clean, name)
        key = repr
        assert sorted(got, key=key) == sorted(want, key=key), name
    assert any(rows(clean, n) for n in clean if n != "dead_letters"), "the flow produced nothing"


def test_log_lines_in_plain_text_are_fuzzed_too() -> None:
    """log-events also carries plain-text lines: bytes that are no line at all are dead
    letters, and the JSON and plain lines around them count as before."""
    good = [m for m in MESSAGES if m.topic == LOG_EVENTS]
    assert any(not (m.value or b"").startswith(b"{") for m in good)
    rng = random.Random(3)
    bad = [RawMessage(LOG_EVENTS, 1, i, b"k", rng.choice([b"", b"\xff\xfe", b"ERROR", b"2026-01-05 [x] y"]))
           for i in range(40)]  # fmt: skip
    mixed = list(good)
    for message in bad:
        mixed.insert(rng.randint(0, len(mixed)), message)
    clean, dirty = run("log_alerts", good), run("log_alerts", mixed)
    assert len([d for d in rows(dirty, "dead_letters") if d["source_partition"] == 1]) == 40
    assert sorted(rows(dirty, "error_counts_minute"), key=repr) == sorted(
        rows(clean, "error_counts_minute"), key=repr
    )


@pytest.mark.parametrize("flow", sorted(set(FLOWS) - {"land_events"}))
def test_a_duplicate_flood_counts_once(flow: str) -> None:
    """2 000 re-deliveries of one record, right behind it (a producer retrying in a loop):
    every result is as without them, but for the duplicates counted as ignored.
    (land_events is the raw zone: it lands what arrives.)"""
    topics = tuple(TOPICS[flow])
    good = [m for m in MESSAGES if m.topic in topics]
    rng = random.Random(11)
    victim = rng.choice([i for i, m in enumerate(good) if (m.value or b"").startswith(b"{")])
    flooded = good[: victim + 1] + [good[victim]] * 2_000 + good[victim + 1 :]
    clean, dirty = run(flow, good), run(flow, flooded)
    ignored = 0
    for name in set(clean) | set(dirty):
        got, want = rows(dirty, name), rows(clean, name)
        if got and isinstance(got[0], dict) and "duplicates_ignored" in got[0]:
            if name in TABLES:  # the topics repeat the tables' rows
                ignored += sum(r["duplicates_ignored"] for r in got)
                ignored -= sum(r["duplicates_ignored"] for r in want)
            got = [{**r, "duplicates_ignored": 0} for r in got]
            want = [{**r, "duplicates_ignored": 0} for r in want]
        assert sorted(got, key=repr) == sorted(want, key=repr), name
    assert ignored in (0, 2_000)  # counted where the flow's table counts them
