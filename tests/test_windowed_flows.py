"""user_activity, log_alerts, api_metrics and behavior_etl against DuckDB references over the
same simulated events, and their results independent of batching and sharding."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from bytewax.testing import TestingSource, run_main
from helpers import captured_rows, frozen_now
from reference import batches, decoded_events, query, simulated_messages, windowed_sql

from dataflows import api_metrics, behavior_etl, log_alerts, user_activity
from dataflows.outputs import Outputs
from dataflows.windowing import MINUTE, Clock
from models.alerts import AlertPolicy
from models.simulator import SimConfig
from models.simulator.world import SERVICES
from models.sketch import ALPHA
from models.topics import (
    LOG_EVENTS,
    METRICS_EVENTS,
    PAGE_VIEWS,
    PURCHASES,
    USER_BEHAVIOR,
    USER_EVENTS,
)

CONFIG = SimConfig(
    seed=5,
    events_per_s=300,
    duration_s=420,
    late_fraction=0.02,
    duplicate_fraction=0.05,
    malformed_fraction=0.02,
)
LATENESS = timedelta(seconds=CONFIG.allowed_lateness_s)
CLOCK = Clock(LATENESS, now=frozen_now)
MESSAGES = simulated_messages(CONFIG)


def run(module, topics, batch_size: int = 4_000, **options) -> dict[str, list]:
    captured: dict[str, list] = {}
    source = TestingSource(batches(MESSAGES, batch_size))
    sources = [f"{t}#0" for t in topics]
    run_main(module.build(source, Outputs(captured=captured), CLOCK, sources=sources, **options))
    return captured


def late_set(events, length: timedelta, where: str = "TRUE") -> list[tuple]:
    sql = (
        windowed_sql(length, LATENESS, where).replace("FROM marked WHERE NOT late", "FROM marked")
        + "SELECT event_id, epoch_us(to_timestamp(win * $len)) FROM windowed WHERE late"
    )
    sql = sql.replace("$len", str(length.total_seconds()))
    return sorted(
        (r["event_id"], r[next(iter(r.keys() - {"event_id"}))]) for r in query(events, sql)
    )


def late_rows(captured: dict[str, list]) -> list[tuple]:
    return sorted(
        (r["event_id"], int(r["window_start"].timestamp() * 1_000_000))
        for r in captured_rows(captured, "late_events")
    )


# --- user_activity ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def activity() -> dict[str, list]:
    return run(user_activity, [USER_BEHAVIOR])


def test_user_activity_equals_the_duckdb_reference(activity) -> None:
    events = decoded_events(MESSAGES, [USER_BEHAVIOR])
    five = timedelta(minutes=5)
    expected = query(
        events,
        windowed_sql(five, LATENESS)
        + """
        SELECT user_id, to_timestamp(win * 300) AS window_start,
            count(*) FILTER (WHERE NOT duplicate) AS events,
            count(*) FILTER (WHERE NOT duplicate AND action = 'view') AS views,
            count(*) FILTER (WHERE NOT duplicate AND action = 'click') AS clicks,
            count(*) FILTER (WHERE NOT duplicate AND action = 'add_to_cart') AS add_to_cart,
            count(*) FILTER (WHERE NOT duplicate AND action = 'purchase') AS purchases,
            count(*) FILTER (WHERE NOT duplicate AND action = 'search') AS searches,
            count(DISTINCT item_id) AS distinct_items,
            count(DISTINCT session_id) AS sessions,
            min(ts) AS first_seen, max(ts) AS last_seen,
            count(*) FILTER (WHERE duplicate) AS duplicates_ignored
        FROM windowed GROUP BY ALL
        """,
    )
    got = {
        (r["user_id"], r["window_start"]): r for r in captured_rows(activity, "user_activity_5m")
    }
    assert len(got) == len(expected) > 100
    for want in expected:
        row = got[want["user_id"], want["window_start"]]
        assert {k: row[k] for k in want} == want
    assert late_rows(activity) == late_set(events, five)


# --- log_alerts ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def errors() -> dict[str, list]:
    return run(log_alerts, [LOG_EVENTS])


def test_error_counts_equal_the_duckdb_reference(errors) -> None:
    events = decoded_events(MESSAGES, [LOG_EVENTS])
    where = "level IN ('ERROR', 'FATAL')"
    expected = query(
        events,
        windowed_sql(MINUTE, LATENESS, where)
        + """
        SELECT service, coalesce(error_type, 'unspecified') AS error_type,
            to_timestamp(win * 60) AS window_start,
            count(*) FILTER (WHERE NOT duplicate) AS errors,
            count(*) FILTER (WHERE NOT duplicate AND level = 'FATAL') AS fatal,
            count(*) FILTER (WHERE duplicate) AS duplicates_ignored
        FROM windowed GROUP BY ALL
        """,
    )
    got = {
        (r["service"], r["error_type"], r["window_start"]): r
        for r in captured_rows(errors, "error_counts_minute")
    }
    assert len(got) == len(expected) > 20
    for want in expected:
        row = got[want["service"], want["error_type"], want["window_start"]]
        assert {k: row[k] for k in want} == want
    assert late_rows(errors) == late_set(events, MINUTE, where)


def test_an_error_burst_is_one_alert_that_fires_and_resolves(errors) -> None:
    """Breaching minutes of a service (all its error types) less than the resolve time
    apart are one incident: one alert, fired at the first and resolved after the last."""
    totals: dict[tuple[str, object], int] = {}
    for r in captured_rows(errors, "error_counts_minute"):
        key = (r["service"], r["window_start"])
        totals[key] = totals.get(key, 0) + r["errors"]
    breaching = sorted(k for k, n in totals.items() if n >= 20)
    assert breaching, "the simulated error burst should breach the default threshold"
    quiet = AlertPolicy().resolve_after
    incidents: list[tuple[str, object, object]] = []  # service, first start, last end
    for service, start in breaching:
        if incidents and incidents[-1][0] == service and start - incidents[-1][2] < quiet:
            incidents[-1] = (service, incidents[-1][1], start + MINUTE)
        else:
            incidents.append((service, start, start + MINUTE))
    alerts = [a for a in captured_rows(errors, "alerts") if a["rule"] == "log_error_count"]
    fired = sorted((a["subject"], a["first_seen"]) for a in alerts if a["state"] == "firing")
    assert fired == [(service, first) for service, first, _ in incidents]
    resolved = {(a["subject"], a["first_seen"]): a for a in alerts if a["state"] == "resolved"}
    stream_end = max(start for _, start in totals) + MINUTE  # the flow's event time at the end
    for service, first, last in incidents:
        if last + quiet > stream_end:  # not quiet long enough before the input ended
            assert (service, first) not in resolved
            continue
        row = resolved[service, first]
        assert row["last_seen"] == last and row["version"] == 2
        assert row["observed"] == max(
            n for (s, t), n in totals.items() if s == service and first <= t < last
        )
    assert len(captured_rows(errors, "alerts-topic")) == len(captured_rows(errors, "alerts"))


def test_per_service_thresholds_apply() -> None:
    strict = log_alerts.ErrorThresholds(default=10_000, per_service={"api-gateway": 1})
    captured = run(log_alerts, [LOG_EVENTS], thresholds=strict)
    alerts = captured_rows(captured, "alerts")
    assert {a["subject"] for a in alerts if a["rule"] == "log_error_count"} == {"api-gateway"}


def test_unparseable_log_lines_are_dead_letters_with_reasons(errors) -> None:
    dead = captured_rows(errors, "dead_letters")
    assert dead
    reasons = {d["reason"].split(":")[0] for d in dead}
    assert "not UTF-8" in reasons


# --- api_metrics -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def latency() -> dict[str, list]:
    return run(api_metrics, [METRICS_EVENTS])


def test_api_latency_equals_the_duckdb_reference(latency) -> None:
    events = decoded_events(MESSAGES, [METRICS_EVENTS])
    expected = query(
        events,
        windowed_sql(MINUTE, LATENESS)
        + """
        SELECT service, method, route, to_timestamp(win * 60) AS window_start,
            count(*) AS requests,
            count(*) FILTER (WHERE status >= 500) AS errors_5xx,
            sum(round(duration_ms * 1000)::BIGINT) / count(*) / 1000 AS mean_ms,
            max(duration_ms) AS max_ms,
            list_sort(list(duration_ms)) AS sorted_ms
        FROM windowed WHERE NOT duplicate GROUP BY ALL
        """,
    )
    got = {
        (r["service"], r["method"], r["route"], r["window_start"]): r
        for r in captured_rows(latency, "api_latency_minute")
    }
    assert len(got) == len(expected) > 50
    for want in expected:
        row = got[want["service"], want["method"], want["route"], want["window_start"]]
        assert row["requests"] == want["requests"]
        assert row["errors_5xx"] == want["errors_5xx"]
        assert row["mean_ms"] == pytest.approx(want["mean_ms"], rel=1e-12)
        assert row["max_ms"] == pytest.approx(want["max_ms"], abs=1e-3)
        values = want["sorted_ms"]
        for column, q in api_metrics.PERCENTILES.items():
            exact = values[math.ceil(q * len(values)) - 1]  # nearest rank
            assert row[column] == pytest.approx(exact, rel=ALPHA * 1.0001, abs=1e-3), column
    assert late_rows(latency) == late_set(events, MINUTE)


def test_5xx_bursts_raise_error_rate_alerts(latency) -> None:
    alerts = captured_rows(latency, "alerts")
    assert {a["rule"] for a in alerts} >= {"api_error_rate"}
    for a in alerts:
        if a["threshold"] is not None:
            assert a["observed"] >= a["threshold"]
    assert {a["subject"] for a in alerts if a["rule"] == "api_error_rate"} <= {
        s.name for s in SERVICES
    }


# --- the same results however the input is cut ------------------------------------------


@pytest.mark.parametrize(
    ("module", "topics", "fixture"),
    [
        (user_activity, [USER_BEHAVIOR], "activity"),
        (log_alerts, [LOG_EVENTS], "errors"),
        (api_metrics, [METRICS_EVENTS], "latency"),
    ],
)
def test_windowed_results_do_not_depend_on_batches_or_shards(
    module, topics, fixture, request
) -> None:
    first = request.getfixturevalue(fixture)
    other = run(module, topics, batch_size=611, shards=3)
    for name in first:
        assert captured_rows(other, name) == captured_rows(first, name), name


# --- behavior_etl --------------------------------------------------------------------------

BEHAVIOR = [USER_EVENTS, PAGE_VIEWS, PURCHASES]


@pytest.fixture(scope="module")
def behavior() -> dict[str, list]:
    return run(behavior_etl, BEHAVIOR)


def test_behavior_records_are_every_on_time_event_once(behavior) -> None:
    events = decoded_events(MESSAGES, BEHAVIOR)
    tick = timedelta(microseconds=1)
    expected = query(
        events,
        windowed_sql(tick, LATENESS)
        + "SELECT event_id, type, user_id FROM windowed WHERE NOT duplicate",
    )
    records = captured_rows(behavior, "behavior_records")
    assert sorted((r["record_id"], r["kind"], r["user_id"]) for r in records) == sorted(
        (r["event_id"], r["type"], r["user_id"]) for r in expected
    )
    late = captured_rows(behavior, "late_events")
    assert len(late) + len(records) + len(captured_rows(behavior, "dead_letters")) <= len(
        [m for m in MESSAGES if m.topic in BEHAVIOR]
    )
    assert {r["kind"] for r in records} == {
        "signup",
        "login",
        "profile_update",
        "page_view",
        "purchase",
    }


def test_user_summary_latest_matches_the_records(behavior) -> None:
    records = captured_rows(behavior, "behavior_records")
    latest: dict[str, dict] = {}
    for row in captured_rows(behavior, "user_summary"):
        if row["version"] > latest.get(row["user_id"], {"version": 0})["version"]:
            latest[row["user_id"]] = row
    for user, summary in list(latest.items())[:200]:
        mine = [r for r in records if r["user_id"] == user]
        assert summary["version"] == len(mine)
        assert summary["page_views"] == sum(r["kind"] == "page_view" for r in mine)
        spend = sum(r["amount"] for r in mine if r["kind"] == "purchase")
        assert summary["total_spend"] == pytest.approx(round(spend, 2), abs=0.011)


def test_recommendations_exclude_bought_items_and_change_versions(behavior) -> None:
    recs = captured_rows(behavior, "user_recommendations")
    assert recs and {r["basis"] for r in recs} == {"co_views", "trending"}
    by_user: dict[str, list[int]] = {}
    for r in recs:
        assert 1 <= len(r["items"]) <= 3
        by_user.setdefault(r["user_id"], []).append(r["version"])
    for versions in by_user.values():
        assert sorted(versions) == list(range(1, len(versions) + 1))


def test_behavior_results_do_not_depend_on_batches(behavior) -> None:
    other = run(behavior_etl, BEHAVIOR, batch_size=613)
    for name in behavior:
        assert captured_rows(other, name) == captured_rows(behavior, name), name
