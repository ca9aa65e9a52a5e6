"""A broker outage mid-run: `streamhouse run land_events` keeps running while its broker is
shut down for 30 s and started again, reconnects by itself, and the lake ends as a clean
run over the same topics leaves it. The broker here is a broker of this test's own: the
session's shared one is never stopped."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import lake_rows

from models.simulator import SimConfig, Simulator
from sinks.kafka import KafkaMessage, ReliableProducer
from streamhouse.broker import BrokerError, LocalBroker
from streamhouse.topics import create_topics
from warehouse.lake import Lake
from warehouse.query import Warehouse

CLI = str(Path(sys.executable).parent / "streamhouse")
OUTAGE_S = 30


def produce(bootstrap: str, prefix: str, records: list) -> None:
    producer = ReliableProducer({"bootstrap.servers": bootstrap}, prefix)
    producer.send_many(KafkaMessage(r.topic, r.key, r.value, r.headers) for r in records)
    producer.flush(60)


def count(lake: Path) -> int:
    with Warehouse(Lake(lake)) as wh:
        return wh.sql("SELECT count(*) AS n FROM events").to_pylist()[0]["n"]


def test_a_30_s_broker_outage_mid_run_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    try:
        broker = LocalBroker(workdir=tmp_path / "broker").start()
    except BrokerError as e:
        pytest.fail(f"could not start the outage test's own Kafka broker: {e}", pytrace=False)
    try:
        prefix = "outage-"
        create_topics({"bootstrap.servers": broker.bootstrap}, 2, 1, prefix)
        records = list(Simulator(SimConfig(seed=4, events_per_s=200, duration_s=300)).records())
        half = len(records) // 2
        produce(broker.bootstrap, prefix, records[:half])
        env = {**os.environ, "STREAMHOUSE_BOOTSTRAP_SERVERS": broker.bootstrap,
               "STREAMHOUSE_TOPIC_PREFIX": prefix, "STREAMHOUSE_LAKE_DIR": str(tmp_path / "lake")}  # fmt: skip
        log = open(tmp_path / "flow.log", "wb")  # noqa: SIM115 - closed with the process
        flow = subprocess.Popen([CLI, "run", "land_events", "--snapshot-interval", "1"], env=env,
                                stdout=log, stderr=log)  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while not list((tmp_path / "lake").glob("events/*/*.parquet")):
                assert flow.poll() is None, (tmp_path / "flow.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "the flow landed nothing"
                time.sleep(0.2)
            broker.outage(OUTAGE_S)
            assert flow.poll() is None, (
                "the flow gave up during the outage:\n"
                + (tmp_path / "flow.log").read_text()[-3000:]
            )
            produce(broker.bootstrap, prefix, records[half:])
            clean = subprocess.run(
                [CLI, "run", "land_events", "--until-eof", "--no-recovery"],
                env={**env, "STREAMHOUSE_LAKE_DIR": str(tmp_path / "clean"), "STREAMHOUSE_KAFKA_OUTPUT": "0"},
                capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            assert clean.returncode == 0, clean.stderr[-3000:]
            total = count(tmp_path / "clean")
            deadline = time.monotonic() + 120
            while count(tmp_path / "lake") < total:
                assert flow.poll() is None, (tmp_path / "flow.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "the flow never caught up after the outage"
                time.sleep(0.5)
            time.sleep(2)  # an epoch more: anything extra would show now
        finally:
            flow.terminate()
            code = flow.wait(30)
            log.close()
        assert code in (0, -15, 143), (tmp_path / "flow.log").read_text()[-3000:]
        for table in ("events", "dead_letters"):
            assert lake_rows(tmp_path / "lake", table) == lake_rows(tmp_path / "clean", table), (
                table
            )
        assert total > 10_000
    finally:
        broker.stop()
