"""The anomalies flow against a real broker: `streamhouse run anomalies` keeps running while
new records on the compacted `anomaly-models` topic change how a series is scored, from
the next event on, with no restart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, ConfigResource
from helpers import read_all

from models.business import AnomalyModel, BusinessMetric, DetectorMethod
from models.topics import ALERTS, ANOMALY_MODELS, BUSINESS_EVENTS
from streamhouse.topics import create_topics
from warehouse.lake import Lake
from warehouse.query import Warehouse

CLI = str(Path(sys.executable).parent / "streamhouse")
SERIES = "signups:store-k"
T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


def scores(lake: Path) -> list[dict]:
    with Warehouse(Lake(lake)) as wh:
        return wh.sql("SELECT * FROM anomaly_scores ORDER BY ts").to_pylist()


def test_a_model_update_changes_scoring_from_the_next_event(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    prefix = f"anom{os.getpid()}-"
    kafka = {"bootstrap.servers": kafka_bootstrap}
    create_topics(kafka, 3, 1, prefix)
    resource = ConfigResource(ConfigResource.Type.TOPIC, prefix + ANOMALY_MODELS)
    admin = AdminClient(kafka)  # kept alive until the result is in
    described = admin.describe_configs([resource])[resource].result(timeout=30)
    assert described["cleanup.policy"].value == "compact"

    lake = tmp_path / "lake"
    env = {
        **os.environ,
        "STREAMHOUSE_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "STREAMHOUSE_TOPIC_PREFIX": prefix,
        "STREAMHOUSE_LAKE_DIR": str(lake),
    }
    log = open(tmp_path / "flow.log", "wb")  # noqa: SIM115 - closed with the process
    flow = subprocess.Popen(
        [CLI, "run", "anomalies", "--snapshot-interval", "1"], env=env, stdout=log, stderr=log
    )
    producer = Producer(kafka)
    sent = 0

    def send_event(value: float) -> str:
        nonlocal sent
        event = BusinessMetric(
            event_id=f"ev-{sent:04d}",
            ts=T0 + timedelta(seconds=sent),
            metric="signups",
            entity="store-k",
            value=value,
        )
        sent += 1
        producer.produce(prefix + BUSINESS_EVENTS, msgspec.json.encode(event), SERIES.encode())
        producer.flush(10)
        return event.event_id

    def send_model(n: int, above: float) -> str:
        model = AnomalyModel(
            event_id=f"model-{n}", ts=T0 + timedelta(hours=n), model_key=SERIES,
            method=DetectorMethod.THRESHOLD, params={"above": above},
        )  # fmt: skip
        producer.produce(prefix + ANOMALY_MODELS, msgspec.json.encode(model), SERIES.encode())
        producer.flush(10)
        return model.event_id

    def trickle_until(model_id: str) -> list[str]:
        """Send an event every 0.3 s until one is scored with `model_id`; the ids sent."""
        ids = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert flow.poll() is None, (tmp_path / "flow.log").read_text()[-3000:]
            ids.append(send_event(2_000.0))
            time.sleep(0.3)
            if any(r["model_id"] == model_id for r in scores(lake)):
                return ids
        raise AssertionError(f"no event was scored with {model_id}")

    try:
        first = send_model(1, above=1_000.0)
        trickle_until(first)
        second = send_model(2, above=10_000.0)
        trickle_until(second)
        tail = [send_event(2_000.0) for _ in range(5)]
        deadline = time.monotonic() + 60
        while not {r["event_id"] for r in scores(lake)} >= set(tail):
            assert time.monotonic() < deadline, "the last events were never scored"
            time.sleep(0.5)
    finally:
        flow.terminate()
        code = flow.wait(30)
        log.close()
    assert code in (0, -15, 143), (tmp_path / "flow.log").read_text()[-3000:]

    rows = scores(lake)
    assert [r["event_id"] for r in rows] == [f"ev-{i:04d}" for i in range(sent)]  # each once
    used = [r["model_id"] for r in rows]
    # Each model takes over at one event and keeps it: default..., model-1..., model-2...
    switches = [used[i] for i in range(len(used)) if i == 0 or used[i] != used[i - 1]]
    assert switches[-2:] == [first, second] and switches[0] in ("default", first)
    for r in rows:  # the same value, judged by whichever model was in force
        assert r["anomalous"] == (r["model_id"] == first), r
    alerts = [json.loads(m.value()) for m in read_all(kafka_bootstrap, prefix + ALERTS)]
    mine = [a for a in alerts if a["subject"] == SERIES]
    assert [a["state"] for a in mine][:1] == ["firing"]
    assert len({a["alert_id"] for a in mine if a["state"] == "firing"}) == 1
