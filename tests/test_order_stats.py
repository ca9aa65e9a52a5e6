"""order_stats against the DuckDB reference over the same simulated events."""

from __future__ import annotations

from datetime import timedelta

import pytest
from bytewax.testing import TestingSource, run_main
from helpers import captured_rows, frozen_now
from reference import (
    batches,
    dead_letter_count,
    decoded_events,
    query,
    simulated_messages,
    windowed_sql,
)

from dataflows import order_stats
from dataflows.outputs import Outputs
from dataflows.windowing import MINUTE, Clock
from models.base import derived_id
from models.simulator import SimConfig
from models.topics import ORDER_EVENTS

CONFIG = SimConfig(
    seed=11,
    events_per_s=400,
    duration_s=240,
    late_fraction=0.02,
    duplicate_fraction=0.05,
    malformed_fraction=0.02,
)
LATENESS = timedelta(seconds=CONFIG.allowed_lateness_s)
CLOCK = Clock(LATENESS, now=frozen_now)


def run_flow(batch_size: int = 5_000, shards: int = 1) -> dict[str, list]:
    captured: dict[str, list] = {}
    source = TestingSource(batches(simulated_messages(CONFIG), batch_size))
    run_main(
        order_stats.build(
            source, Outputs(captured=captured), CLOCK, shards, sources=[f"{ORDER_EVENTS}#0"]
        )
    )
    return captured


REFERENCE_SQL = (
    windowed_sql(MINUTE, LATENESS, "type IN ('order_created', 'order_paid', 'order_cancelled')")
    + """
SELECT
    to_timestamp(win * 60) AS window_start,
    currency,
    count(*) FILTER (WHERE type = 'order_created' AND NOT duplicate) AS orders_created,
    count(*) FILTER (WHERE type = 'order_paid' AND NOT duplicate) AS orders_paid,
    count(*) FILTER (WHERE type = 'order_cancelled' AND NOT duplicate) AS orders_cancelled,
    round(coalesce(sum(round(amount * 1e6)::BIGINT)
          FILTER (WHERE type = 'order_paid' AND NOT duplicate), 0) / 1e6, 2) AS revenue,
    round(sum(round(total * 1e6)::BIGINT)
          FILTER (WHERE type = 'order_created' AND NOT duplicate) / 1e6
          / count(*) FILTER (WHERE type = 'order_created' AND NOT duplicate), 2)
          AS avg_order_value,
    count(*) FILTER (WHERE duplicate) AS duplicates_ignored
FROM windowed GROUP BY ALL
"""
)


@pytest.fixture(scope="module")
def flow_output() -> dict[str, list]:
    return run_flow()


@pytest.fixture(scope="module")
def events():
    return decoded_events(simulated_messages(CONFIG), [ORDER_EVENTS])


def test_windows_equal_the_duckdb_reference(flow_output, events) -> None:
    got = {
        (r["window_start"], r["currency"]): r
        for r in captured_rows(flow_output, "order_stats_minute")
    }
    expected = {(r["window_start"], r["currency"]): r for r in query(events, REFERENCE_SQL)}
    assert len(got) == len(captured_rows(flow_output, "order_stats_minute"))  # one row per key
    assert set(got) == set(expected)
    for key, want in expected.items():
        row = got[key]
        for column, value in want.items():
            assert row[column] == value, (key, column)
    assert sum(r["duplicates_ignored"] for r in got.values()) > 0


def test_late_events_are_the_reference_late_set(flow_output, events) -> None:
    late_sql = windowed_sql(
        MINUTE, LATENESS, "type IN ('order_created', 'order_paid', 'order_cancelled')"
    ).replace("FROM marked WHERE NOT late", "FROM marked") + (
        "SELECT event_id, to_timestamp(win * 60) AS window_start FROM windowed WHERE late"
    )
    expected = sorted((r["event_id"], r["window_start"]) for r in query(events, late_sql))
    late = captured_rows(flow_output, "late_events")
    assert sorted((r["event_id"], r["window_start"]) for r in late) == expected
    assert len(expected) > 0
    for row in late:
        assert row["window_start"] + MINUTE <= row["ts"] + timedelta(days=1)
        assert row["late_id"] == derived_id(
            "order_stats", row["event_id"], row["window_start"].isoformat()
        )


def test_dead_letters_keep_raw_bytes_and_reason(flow_output) -> None:
    dead = captured_rows(flow_output, "dead_letters")
    assert len(dead) == dead_letter_count(simulated_messages(CONFIG), [ORDER_EVENTS]) > 0
    for letter in dead:
        assert letter["topic"] == ORDER_EVENTS and letter["flow"] == "order_stats"
        assert letter["reason"] and letter["raw"]
        assert letter["seen_at"] >= CONFIG.start  # the message's time, not the wall clock


@pytest.mark.parametrize(("batch_size", "shards"), [(333, 1), (5_000, 3)])
def test_results_do_not_depend_on_batching_or_shards(flow_output, batch_size, shards) -> None:
    other = run_flow(batch_size, shards)
    for name in ("order_stats_minute", "late_events", "dead_letters"):
        assert captured_rows(other, name) == captured_rows(flow_output, name), name


def test_rows_and_messages_carry_deterministic_ids(flow_output) -> None:
    rows = captured_rows(flow_output, "order_stats_minute")
    for r in rows:
        assert r["stats_id"] == derived_id(
            "order_stats", r["currency"], r["window_start"].isoformat()
        )
        assert r["window_end"] - r["window_start"] == MINUTE
    messages = flow_output["order-statistics"]
    assert len(messages) == len(rows)
    assert {m.key for m in messages} == {r["window_start"].isoformat().encode() for r in rows}
