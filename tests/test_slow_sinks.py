"""Sinks that fail or hang: the flow fails loudly or waits, never drops anything, and once
the cause is gone a restart (or the endpoint's return) completes the work."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from bytewax.testing import run_main
from helpers import captured_rows, frozen_now, lake_rows
from test_alerting import LOGS, Receiver

from dataflows import log_alerts
from dataflows.inputs import MemorySource
from dataflows.outputs import Outputs
from dataflows.windowing import Clock
from models.topics import LOG_EVENTS
from sinks.webhook import WebhookConfig

CLI = str(Path(sys.executable).parent / "streamhouse")


def test_a_lake_that_becomes_unwritable_stops_the_flow_loudly_and_a_restart_completes(
    tmp_path: Path,
) -> None:
    lake = tmp_path / "lake"
    env = {**os.environ, "STREAMHOUSE_LAKE_DIR": str(lake), "STREAMHOUSE_SIM_RATE": "1000",
           "STREAMHOUSE_SIM_DURATION_S": "240", "STREAMHOUSE_RECOVERY_DIR": str(tmp_path / "rec")}  # fmt: skip
    command = [CLI, "run", "land_events", "--input", "simulator", "--snapshot-interval", "1"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not list(lake.glob("events/*/*.parquet")):
        assert proc.poll() is None and time.monotonic() < deadline, "the flow landed nothing"
        time.sleep(0.05)
    (lake / "events").rename(tmp_path / "events-aside")
    (lake / "events").write_text("in the way: the table's folder is now a file")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode != 0, "the flow went on although it could not write"
    # It fails writing the next file ("cannot write ...") or, in an epoch with nothing to
    # write, reading its writer history ("cannot read writer history ..."): either way with
    # the path and the reason.
    reason = err.decode()
    assert "LakeError: cannot " in reason and "Not a directory" in reason, reason[-3000:]
    assert str(lake / "events") in reason, reason[-3000:]

    (lake / "events").unlink()  # the cause is gone
    (tmp_path / "events-aside").rename(lake / "events")
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    clean = subprocess.run([*command, "--no-recovery"], capture_output=True, text=True, timeout=300,
                           env={**env, "STREAMHOUSE_LAKE_DIR": str(tmp_path / "clean")})  # fmt: skip
    assert clean.returncode == 0, clean.stderr[-3000:]
    assert lake_rows(lake, "events") == lake_rows(tmp_path / "clean", "events")
    assert len(lake_rows(lake, "events")) > 10_000


def test_a_hanging_webhook_holds_the_flow_back_without_dropping_and_it_completes_later(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The endpoint hangs on every request for a while: past `max_pending` undelivered
    changes the flow waits (logged), and when the endpoint answers again every change is
    delivered once and the flow completes."""
    receiver = Receiver(failures=0, hangs=10_000, hang_s=0.3)
    try:
        config = WebhookConfig(receiver.url, timeout_s=0.2, first_backoff_s=0.05,
                               max_backoff_s=0.2, max_pending=2, drain_s=30)  # fmt: skip
        captured: dict[str, list] = {}
        flow = log_alerts.build(
            MemorySource(LOGS, batch_size=500),
            Outputs(captured=captured, webhook=config),
            Clock(timedelta(seconds=10), now=frozen_now),
            sources=[f"{LOG_EVENTS}#0"],
        )

        back: dict[str, int] = {}

        def endpoint_back() -> None:
            time.sleep(4)
            back["accepted before"] = len(receiver.accepted)
            receiver.hangs = 0

        threading.Thread(target=endpoint_back, daemon=True).start()
        with caplog.at_level(logging.WARNING, logger="sinks.webhook"):
            run_main(flow)
    finally:
        receiver.close()
    changes = captured_rows(captured, "alerts")
    assert len(changes) > 2, "needs more alert changes than max_pending"
    keys = sorted(k for k, _ in receiver.accepted)
    assert keys == sorted(f"{a['alert_id']}:{a['version']}" for a in changes)
    assert any("waiting for the endpoint" in r.getMessage() for r in caplog.records)
    # The run ended only after the endpoint came back, and nothing got through before it.
    assert back == {"accepted before": 0}, "the flow did not wait for the endpoint"
