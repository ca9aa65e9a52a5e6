"""A real crash: `streamhouse run` is killed with SIGKILL mid-run, restarted, and the lake ends
exactly as an uninterrupted run leaves it. No in-process abort: the kill can land anywhere,
including between a file's rename and the snapshot that covers it."""

from __future__ import annotations

import os
import random
import resource
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from bytewax.testing import run_main
from helpers import lake_rows

from dataflows import land_events
from dataflows.inputs import SimulatorSource
from dataflows.outputs import Outputs
from models.simulator import SimConfig
from warehouse.lake import Lake

CLI = str(Path(sys.executable).parent / "streamhouse")
RATE, DURATION = 2000, 150
START = "2026-01-05T23:58:45+00:00"
"""The run crosses midnight, so the lake has two date partitions and a replayed epoch need
not overwrite the files of the epoch it replaces: only deleting them on resume keeps the
lake exact."""
KILLS = 3


def test_sigkill_and_restart_leave_the_lake_as_an_uninterrupted_run(tmp_path: Path) -> None:
    lake, recovery = tmp_path / "lake", tmp_path / "recovery"
    env = {
        **os.environ,
        "STREAMHOUSE_LAKE_DIR": str(lake),
        "STREAMHOUSE_SIM_RATE": str(RATE),
        "STREAMHOUSE_SIM_DURATION_S": str(DURATION),
        "STREAMHOUSE_SIM_START": START,
    }
    command = [CLI, "run", "land_events", "--input", "simulator", "--recovery-dir",
               str(recovery), "--snapshot-interval", "1"]  # fmt: skip
    rng = random.Random(7)
    kills = 0
    for _ in range(KILLS):
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip
        # Wait until it has written something, then kill it at a random moment after.
        deadline = time.monotonic() + 120
        while not list(lake.glob("events/date=*/*.parquet")) and proc.poll() is None:
            assert time.monotonic() < deadline, "the flow wrote nothing"
            time.sleep(0.05)
        time.sleep(rng.uniform(0.2, 1.5))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert kills >= 2, "the run finished before it could be killed: make it longer"

    clean = tmp_path / "clean"
    config = SimConfig(events_per_s=RATE, duration_s=DURATION,
                       start=datetime.fromisoformat(START))  # fmt: skip
    run_main(land_events.build(SimulatorSource(config), Outputs(lake=Lake(clean))))
    assert {p.name for p in (lake / "events").glob("date=*")} == {
        "date=2026-01-05", "date=2026-01-06",
    }  # fmt: skip
    for table in ("events", "dead_letters"):
        expected = lake_rows(clean, table)
        assert len(expected) > 100, table
        assert lake_rows(lake, table) == expected, table


def _file_size_limit(limit_bytes: int):
    """In the child: writes past `limit_bytes` fail with EFBIG, as on a full disk."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, resource.RLIM_INFINITY))

    return apply


def test_a_full_disk_stops_the_flow_loudly_and_a_restart_loses_nothing(tmp_path: Path) -> None:
    lake, recovery = tmp_path / "lake", tmp_path / "recovery"
    env = {**os.environ, "STREAMHOUSE_LAKE_DIR": str(lake), "STREAMHOUSE_SIM_RATE": "1000",
           "STREAMHOUSE_SIM_DURATION_S": "60"}  # fmt: skip
    command = [CLI, "run", "land_events", "--input", "simulator", "--recovery-dir",
               str(recovery), "--snapshot-interval", "30"]  # fmt: skip
    full = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300,
                          preexec_fn=_file_size_limit(1_000_000))  # fmt: skip
    assert full.returncode != 0
    assert "cannot write" in full.stderr and "File too large" in full.stderr, full.stderr[-3000:]
    assert not list(lake.glob("events/date=*/*.parquet"))  # nothing half-written is visible

    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    clean = tmp_path / "clean"
    run_main(land_events.build(SimulatorSource(SimConfig(events_per_s=1000, duration_s=60)),
                               Outputs(lake=Lake(clean))))  # fmt: skip
    assert lake_rows(lake, "events") == lake_rows(clean, "events")
