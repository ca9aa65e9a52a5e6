"""Crash torture: a flow run as users run it, SIGKILLed at random moments and restarted from
its recovery store, must leave the lake exactly as one uninterrupted run leaves it.

Used by tests/test_torture.py (a few kills per flow, in CI) and tests/soak_crash.py (many).
The input is the simulator, so every run reads the same fixed dataset; the clean run is
the same command with --no-recovery in a lake of its own.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from warehouse.lake import Lake
from warehouse.query import Warehouse
from warehouse.tables import TABLES

CLI = str(Path(sys.executable).parent / "streamhouse")
SIM = {"STREAMHOUSE_SIM_RATE": "400", "STREAMHOUSE_SIM_DURATION_S": "420"}
"""Seven simulated minutes: every flow writes several epochs, and the incidents happen."""
FLOWS = ("order_stats", "user_activity", "log_alerts", "api_metrics", "behavior_etl", "anomalies")
"""The flows that run on the simulator input (land_events has tests/test_crash.py; the CQRS
flows read what the API and each other produce)."""
TOLERANT = {"anomaly_scores": ("score", "expected", "expected_low", "expected_high")}
"""Columns equal to rounding only: scored column-wise or point by point depending on where
a batch starts (dataflows/anomalies.py)."""


@dataclass
class Outcome:
    flow: str
    kills: int
    tables: int
    rows: int
    differences: list[str]


def lake_rows(lake: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows, sorted, floats of tolerant columns rounded to 9 digits."""
    out = {}
    with Warehouse(Lake(lake)) as wh:
        for name in TABLES:
            rows = wh.sql(f'SELECT * FROM "{name}"').to_pylist()
            if not rows:
                continue
            rounded = TOLERANT.get(name, ())
            for row in rows:
                for column in rounded:
                    if row[column] is not None:
                        row[column] = float(f"{row[column]:.9g}")
            out[name] = sorted((tuple(r.values()) for r in rows), key=repr)
    return out


def _run(command: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)  # fmt: skip


def torture(
    flow: str, work: Path, kills: int, seed: int = 7, duration_s: int | None = None
) -> Outcome:
    lake, clean, recovery = work / "lake", work / "clean", work / "recovery"
    env = {**os.environ, **SIM}
    if duration_s is not None:  # a longer input leaves room for more kills
        env["STREAMHOUSE_SIM_DURATION_S"] = str(duration_s)
    command = [CLI, "run", flow, "--input", "simulator", "--snapshot-interval", "1"]
    rng = random.Random(seed)
    done = 0
    for _ in range(kills):
        proc = _run(
            [*command, "--recovery-dir", str(recovery)], {**env, "STREAMHOUSE_LAKE_DIR": str(lake)}
        )
        # Kill it mid-work: once this run has landed a file of its own, a random moment later.
        before = set(lake.glob("*/date=*/*.parquet"))
        deadline = time.monotonic() + 120
        while not set(lake.glob("*/date=*/*.parquet")) - before and proc.poll() is None:
            assert time.monotonic() < deadline, f"{flow} wrote nothing"
            time.sleep(0.05)
        time.sleep(rng.uniform(0.1, 1.2))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            done += 1
        proc.wait()
        assert proc.returncode in (0, -signal.SIGKILL), proc.stderr.read().decode()[-3000:]  # type: ignore[union-attr]
    final = subprocess.run([*command, "--recovery-dir", str(recovery)], env={**env, "STREAMHOUSE_LAKE_DIR": str(lake)},
                           capture_output=True, text=True, timeout=600)  # fmt: skip
    assert final.returncode == 0, final.stderr[-3000:]
    reference = subprocess.run([*command, "--no-recovery"], env={**env, "STREAMHOUSE_LAKE_DIR": str(clean)},
                               capture_output=True, text=True, timeout=600)  # fmt: skip
    assert reference.returncode == 0, reference.stderr[-3000:]
    got, want = lake_rows(lake), lake_rows(clean)
    differences = []
    for name in sorted(set(got) | set(want)):
        a, b = got.get(name, []), want.get(name, [])
        if a != b:
            extra, missing = len(set(a) - set(b)), len(set(b) - set(a))
            differences.append(
                f"{name}: {len(a)} rows vs {len(b)} ({extra} extra, {missing} missing)"
            )
    rows = sum(len(v) for v in want.values())
    return Outcome(flow, done, len(want), rows, differences)


def summary(outcomes: list[Outcome]) -> str:
    lines = [f"{'flow':<14} {'kills':>5} {'tables':>6} {'rows compared':>13}  differences"]
    for o in outcomes:
        lines.append(
            f"{o.flow:<14} {o.kills:>5} {o.tables:>6} {o.rows:>13,}  {'; '.join(o.differences) or 0}"
        )
    return "\n".join(lines)
