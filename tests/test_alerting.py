"""Alerts end to end in-process: webhook delivery over a real socket, alert state across a
restart with recovery, and the anomalies flow's live model table and duplicates."""

from __future__ import annotations

import json
import random
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import msgspec
import pytest
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import run_main
from helpers import CrashingSource, captured_rows, frozen_now

from dataflows import anomalies, log_alerts
from dataflows.inputs import MemorySource, simulated_messages
from dataflows.messages import MessageBatch, RawMessage
from dataflows.outputs import Outputs
from dataflows.windowing import Clock
from models.business import AnomalyModel, BusinessMetric, DetectorMethod
from models.simulator import SimConfig
from models.topics import ANOMALY_MODELS, BUSINESS_EVENTS, LOG_EVENTS
from sinks.webhook import WebhookConfig
from warehouse.lake import Lake
from warehouse.query import Warehouse

CONFIG = SimConfig(seed=11, events_per_s=150, duration_s=1200)
CLOCK = Clock(timedelta(seconds=10), now=frozen_now)
LOGS = [m for m in simulated_messages(CONFIG) if m.topic == LOG_EVENTS]


class Receiver:
    """A webhook endpoint on a real socket that fails the first `failures` requests (500),
    then hangs `hangs` of them past the client's timeout, then accepts."""

    def __init__(self, failures: int = 3, hangs: int = 1, hang_s: float = 1.5) -> None:
        self.failures, self.hangs, self.hang_s = failures, hangs, hang_s
        self.requests = 0
        self.accepted: list[tuple[str, dict]] = []
        self.auth: set[str | None] = set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests += 1
                receiver.auth.add(self.headers.get("Authorization"))
                if receiver.failures > 0:
                    receiver.failures -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                if receiver.hangs > 0:
                    receiver.hangs -= 1
                    threading.Event().wait(receiver.hang_s)
                    return  # no answer: the client timed out already
                receiver.accepted.append((self.headers["Idempotency-Key"], json.loads(body)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_webhook_gets_each_alert_change_once_after_failures_and_a_hang() -> None:
    receiver = Receiver()
    try:
        config = WebhookConfig(
            receiver.url, token="hook-secret", timeout_s=0.5, first_backoff_s=0.05
        )
        captured: dict[str, list] = {}
        flow = log_alerts.build(
            MemorySource(LOGS, batch_size=2_000),
            Outputs(captured=captured, webhook=config),
            CLOCK,
            sources=[f"{LOG_EVENTS}#0"],
        )
        run_main(flow)
    finally:
        receiver.close()
    changes = captured_rows(captured, "alerts")
    assert changes, "the simulated error burst should raise alerts"
    assert {s for a in changes for s in [a["state"]]} == {"firing", "resolved"}
    keys = [key for key, _ in receiver.accepted]
    assert sorted(keys) == sorted(f"{a['alert_id']}:{a['version']}" for a in changes)
    assert len(set(keys)) == len(keys)  # once each
    assert receiver.requests > len(keys)  # it did retry
    assert receiver.auth == {"Bearer hook-secret"}
    for key, body in receiver.accepted:
        assert key == f"{body['alert_id']}:{body['version']}"
        assert datetime.fromisoformat(body["first_seen"]) <= datetime.fromisoformat(
            body["last_seen"]
        )
    order = [key for key, _ in receiver.accepted]
    for a in changes:  # firing before resolved, per alert
        if a["version"] == 2:
            assert order.index(f"{a['alert_id']}:1") < order.index(f"{a['alert_id']}:2")


def test_alert_state_survives_a_crash_and_restart_with_recovery(tmp_path: Path) -> None:
    """log_alerts crashes while an error burst is on and resumes from its recovery
    snapshot: the lake's alerts equal one uninterrupted run's (the ongoing alert does not
    fire a second time, its resolve is not lost)."""
    batches = [
        b for i in range(0, len(LOGS), 1_000) for b in MessageBatch.split(LOGS[i : i + 1_000])
    ]
    sources = [f"{LOG_EVENTS}#0"]

    def lake_alerts(lake: Lake) -> list[dict]:
        with Warehouse(lake) as wh:
            return wh.sql("SELECT * FROM alerts ORDER BY alert_id, version").to_pylist()

    clean = Lake(tmp_path / "clean")
    run_main(
        log_alerts.build(
            CrashingSource(batches, set()), Outputs(lake=clean), CLOCK, sources=sources
        )
    )
    expected = lake_alerts(clean)
    firing = [a for a in expected if a["state"] == "firing"]
    assert firing and any(a["state"] == "resolved" for a in expected)

    during = min(a["first_seen"] for a in firing) + timedelta(minutes=1)
    crash_at = next(
        i for i, b in enumerate(batches) if b.message(0).timestamp_ms / 1000 > during.timestamp()
    )
    (tmp_path / "recovery").mkdir()
    init_db_dir(tmp_path / "recovery", 1)
    crashed = Lake(tmp_path / "crashed")
    source = CrashingSource(batches, {crash_at, crash_at + 3})
    for _ in range(3):  # crash, crash, finish: an abort ends run_main like a kill
        run_main(
            log_alerts.build(source, Outputs(lake=crashed), CLOCK, sources=sources),
            recovery_config=RecoveryConfig(str(tmp_path / "recovery")),
            epoch_interval=timedelta(seconds=0),
        )
    assert source.crashed == {crash_at, crash_at + 3}
    assert lake_alerts(crashed) == expected


# --- anomalies --------------------------------------------------------------------------

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


def metric(
    i: int, value: float, entity: str = "store-x", event_id: str | None = None
) -> RawMessage:
    event = BusinessMetric(
        event_id=event_id or f"e-{entity}-{i}",
        ts=T0 + timedelta(seconds=i),
        metric="signups",
        entity=entity,
        value=value,
    )
    return RawMessage(
        BUSINESS_EVENTS, 0, i, b"signups:" + entity.encode(), msgspec.json.encode(event)
    )


def model(n: int, method: DetectorMethod, params: dict, enabled: bool = True) -> RawMessage:
    record = AnomalyModel(
        event_id=f"model-{n}",
        ts=T0 + timedelta(hours=n),
        model_key="signups:store-x",
        method=method,
        params=params,
        enabled=enabled,
    )
    return RawMessage(ANOMALY_MODELS, 0, n, record.model_key.encode(), msgspec.json.encode(record))


def run_anomalies(log: list[RawMessage], batch_size: int = 50) -> dict[str, list]:
    captured: dict[str, list] = {}
    source = MemorySource(log, batch_size=batch_size)
    run_main(anomalies.build(source, Outputs(captured=captured)))
    return captured


def test_scores_use_the_model_in_force_when_each_event_is_processed() -> None:
    """One message per batch: the log's order is the processing order, and each model
    applies from the next event on."""
    normal = [metric(i, 40.0 + (i % 5)) for i in range(60)]
    later = [metric(i, 40.0 + (i % 5)) for i in range(60, 120)]
    log = (
        normal
        + [model(1, DetectorMethod.THRESHOLD, {"above": 43.5})]
        + later
        + [model(2, DetectorMethod.EWMA, {"z": 5}, enabled=False)]
        + [metric(i, 500.0) for i in range(120, 130)]
    )
    captured = run_anomalies(log, batch_size=1)
    scores = {r["event_id"]: r for r in captured_rows(captured, "anomaly_scores")}
    assert {scores[f"e-store-x-{i}"]["model_id"] for i in range(60)} == {"default"}
    assert {scores[f"e-store-x-{i}"]["method"] for i in range(60, 120)} == {"threshold"}
    flagged = sorted(i for i in range(60, 120) if scores[f"e-store-x-{i}"]["anomalous"])
    assert flagged == [i for i in range(60, 120) if 40 + i % 5 >= 43.5]
    assert not any(f"e-store-x-{i}" in scores for i in range(120, 130))  # disabled
    alerts = captured_rows(captured, "alerts")
    assert [a["state"] for a in alerts] == ["firing", "resolved"]  # the disable resolved it


def test_a_spike_raises_one_alert_and_duplicates_are_scored_once() -> None:
    values = [100.0 + (i % 7) for i in range(200)]
    for i in range(120, 130):
        values[i] = 400.0
    log = [metric(i, v) for i, v in enumerate(values)]
    log += [metric(i, values[i]) for i in range(115, 125)]  # re-delivered
    log += [metric(i, 100.0, entity="store-y") for i in range(100)]  # a quiet series
    captured = run_anomalies(log)
    scores = captured_rows(captured, "anomaly_scores")
    assert len(scores) == 300 and len({r["event_id"] for r in scores}) == 300
    anomalous = sorted(r["event_id"] for r in scores if r["anomalous"])
    assert anomalous == sorted(f"e-store-x-{i}" for i in range(120, 130))
    alerts = captured_rows(captured, "alerts")
    assert [(a["subject"], a["state"]) for a in alerts] == [("signups:store-x", "firing")]
    assert alerts[0]["observed"] == 400.0 and alerts[0]["expected_high"] < 400.0


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (
            b'{"type":"anomaly_model","event_id":"m","ts":"2026-01-05T10:00:00Z",'
            b'"model_key":"k","method":"ewma","params":{"alpha":7}}',
            "alpha=7.0 is outside",
        ),
        (
            b'{"type":"anomaly_model","event_id":"m","ts":"2026-01-05T10:00:00Z",'
            b'"model_key":"k","method":"zscore"}',
            "method",
        ),
        (b"not json", "malformed"),
    ],
)
def test_bad_model_records_are_dead_letters(value: bytes, reason: str) -> None:
    log = [RawMessage(ANOMALY_MODELS, 0, 0, b"k", value), metric(0, 1.0)]
    captured = run_anomalies(log)
    (dead,) = captured_rows(captured, "dead_letters")
    assert reason in dead["reason"] and dead["topic"] == ANOMALY_MODELS
    assert len(captured_rows(captured, "anomaly_scores")) == 1


def test_scores_do_not_depend_on_batching_to_rounding() -> None:
    """Runs of a series go through the column-wise EWMA or point by point (a new series,
    an anomalous point, another method): whatever the batches, the same flags and
    alerts, and scores equal to rounding."""
    rng = random.Random(5)
    log = [model(1, DetectorMethod.MAD, {"window": 20, "z": 6})]
    log[0] = RawMessage(
        ANOMALY_MODELS, 0, 0, b"signups:store-m", log[0].value.replace(b"store-x", b"store-m")
    )
    for i in range(1_500):
        entity = rng.choice(["store-x", "store-y", "store-z", "store-m"])
        value = 100.0 + rng.gauss(0, 3) + (80.0 if rng.random() < 0.008 else 0.0)
        log.append(metric(i, value, entity=entity, event_id=f"e{i}"))
    results = [run_anomalies(log, batch_size=size) for size in (7, 256, 5_000)]
    base = sorted(captured_rows(results[0], "anomaly_scores"), key=lambda r: r["event_id"])
    assert len(base) == 1_500 and sum(r["anomalous"] for r in base) > 5
    for other in results[1:]:
        rows = sorted(captured_rows(other, "anomaly_scores"), key=lambda r: r["event_id"])
        assert [r["anomalous"] for r in rows] == [r["anomalous"] for r in base]
        assert [r["method"] for r in rows] == [r["method"] for r in base]
        assert [r["score"] for r in rows] == pytest.approx([r["score"] for r in base], rel=1e-9)
        alerts, expected = captured_rows(other, "alerts"), captured_rows(results[0], "alerts")
        exact = ("alert_id", "version", "state", "subject", "first_seen", "last_seen")
        assert [[a[k] for k in exact] for a in alerts] == [[a[k] for k in exact] for a in expected]
        for got, want in zip(alerts, expected, strict=True):
            for k in ("observed", "score", "expected_low", "expected_high"):
                assert got[k] == pytest.approx(want[k], rel=1e-9), k
