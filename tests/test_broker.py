"""The broker harness: cached jars, a clear failure, a clean stop with no stray JVM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

import streamhouse.broker as broker_mod
from streamhouse.broker import BrokerError, LocalBroker, kafka_libs

pytestmark = pytest.mark.kafka


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def test_second_start_downloads_nothing(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    libs = kafka_libs()  # fetched by the session broker, unless an external one is used
    monkeypatch.setattr(broker_mod.shutil, "which", lambda name: None)  # no mvn, no java
    assert kafka_libs() == libs
    assert (libs / f"kafka_2.13-{broker_mod.KAFKA_VERSION}.jar").exists()


def test_a_broker_that_cannot_start_fails_with_cause_and_log_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kafka_libs()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ports = iter([port, broker_mod.free_port()])
        monkeypatch.setattr(broker_mod, "free_port", lambda: next(ports))
        broker = LocalBroker(workdir=tmp_path / "kafka")
        with pytest.raises(BrokerError) as failure:
            broker.start()
    message = str(failure.value)
    assert "before it was ready" in message
    assert "broker.log" in message
    assert "Address already in use" in message  # the cause, from the log's last lines
    assert _processes_mentioning(str(tmp_path / "kafka")) == []


def test_broker_command_serves_then_stops_cleanly(tmp_path: Path) -> None:
    data = tmp_path / "broker-data"
    cli = Path(sys.executable).parent / "streamhouse"
    proc = subprocess.Popen(
        [str(cli), "broker", "--data-dir", str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()  # blocks until ready (or the command died)
        assert "ready at 127.0.0.1:" in line, line + proc.stderr.read()
        assert "started in" in line
        bootstrap = line.split("ready at ")[1].split()[0]
        meta = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=30)
        assert meta.brokers
        assert _processes_mentioning(str(data))  # the JVM runs
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    deadline = time.monotonic() + 10
    while _processes_mentioning(str(data)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_mentioning(str(data)) == []
    assert os.path.exists(data / "broker.log")


def test_a_cluster_id_starting_with_a_dash_formats(tmp_path, monkeypatch) -> None:
    """A random cluster id can start with '-'; the storage tool must not read it as a flag."""
    import streamhouse.broker as broker

    monkeypatch.setattr(broker, "_cluster_id", lambda: "-" + "A" * 21)
    with broker.LocalBroker(workdir=tmp_path / "kafka") as local:
        assert local.bootstrap
