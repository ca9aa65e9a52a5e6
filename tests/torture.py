"""Crash torture: a flow run as users run it, SIGKILLed at random moments and restarted from
its recovery store, must leave the lake exactly as one uninterrupted run leaves it.

Used by tests/test_torture.py (a few kills per flow, in CI) and tests/soak_crash.py (many).
The input is the simulator, so every run reads the same fixed dataset; the clean run is
the same command with --no-recovery in a lake (and under a topic prefix) of its own. The
flows publish to Kafka too, so their output topics (alerts, order-statistics, the
dead-letter topics), deduplicated by id, are compared as well.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers import read_all

from models.topics import OUTPUT_TOPICS
from streamhouse.topics import create_topics
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
    messages: int = 0
    """Distinct output-topic messages compared (with Kafka output)."""


def _identity(message: Any) -> str:
    """What makes an output message the same one again: its id, or for a dead letter the
    offset it came from."""
    for name, value in message.headers() or ():
        if name == "dlq.source":
            return value.decode()
    body = json.loads(message.value())
    return f"{body.get('alert_id') or body.get('stats_id')}:{body.get('version', '')}"


def topic_messages(bootstrap: str, prefix: str) -> dict[str, dict[str, tuple]]:
    """Every output topic's messages under `prefix`, deduplicated by identity; a repeat must
    be byte-identical."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = [t for t in admin.list_topics(timeout=30).topics if t.startswith(prefix)]
    out: dict[str, dict[str, tuple]] = {}
    for name in names:
        if not (name.endswith(".dlq") or name[len(prefix) :] in OUTPUT_TOPICS):
            continue
        seen: dict[str, tuple] = {}
        for m in read_all(bootstrap, name):
            row = (m.partition(), m.key(), m.value())
            assert seen.setdefault(_identity(m), row) == row, f"{name}: a repeat differs"
        if seen:
            out[name[len(prefix) :]] = seen
    return out


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


def start_and_kill(
    command: list[str],
    env: dict[str, str],
    lake: Path,
    rng: random.Random,
    give_up_s: float | None = None,
    after_s: tuple[float, float] = (0.1, 1.2),
) -> bool:
    """Start the flow and SIGKILL it mid-work: a random `after_s` after this run has landed
    a lake file of its own, or `give_up_s` after its start if it has landed none by then
    (None: it must land one within 120 s). True when the kill hit a running flow."""
    proc = _run(command, env)
    before = set(lake.glob("*/date=*/*.parquet"))
    began = time.monotonic()
    while proc.poll() is None:
        if set(lake.glob("*/date=*/*.parquet")) - before:
            time.sleep(rng.uniform(*after_s))
            break
        waited = time.monotonic() - began
        if give_up_s is not None and waited >= give_up_s:
            break
        assert give_up_s is not None or waited < 120, f"{command[2]} wrote nothing"
        time.sleep(0.05)
    killed = proc.poll() is None
    if killed:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode in (0, -signal.SIGKILL), proc.stderr.read().decode()[-3000:]  # type: ignore[union-attr]
    return killed


def torture(
    flow: str,
    work: Path,
    kills: int,
    seed: int = 7,
    duration_s: int | None = None,
    bootstrap: str | None = None,
) -> Outcome:
    """With `bootstrap`, the flow also publishes to Kafka (a topic prefix of its own for the
    tortured and for the clean run), and the output topics are compared too."""
    lake, clean, recovery = work / "lake", work / "clean", work / "recovery"
    env = {**os.environ, **SIM}
    if duration_s is not None:  # a longer input leaves room for more kills
        env["STREAMHOUSE_SIM_DURATION_S"] = str(duration_s)
    prefixes = {"lake": "", "clean": ""}
    if bootstrap is not None:
        tag = f"{flow.replace('_', '')}{os.getpid()}s{seed}"
        prefixes = {"lake": f"t{tag}-", "clean": f"c{tag}-"}
        for prefix in prefixes.values():
            create_topics({"bootstrap.servers": bootstrap}, 1, 1, prefix)
        env |= {"STREAMHOUSE_BOOTSTRAP_SERVERS": bootstrap, "STREAMHOUSE_KAFKA_OUTPUT": "1"}

    def env_for(target: str) -> dict[str, str]:
        return {**env, "STREAMHOUSE_LAKE_DIR": str(work / target),
                "STREAMHOUSE_TOPIC_PREFIX": prefixes[target]}  # fmt: skip

    command = [CLI, "run", flow, "--input", "simulator", "--snapshot-interval", "1"]
    rng = random.Random(seed)
    done = 0
    for _ in range(kills):
        done += start_and_kill(
            [*command, "--recovery-dir", str(recovery)], env_for("lake"), lake, rng
        )
    final = subprocess.run([*command, "--recovery-dir", str(recovery)], env=env_for("lake"),
                           capture_output=True, text=True, timeout=600)  # fmt: skip
    assert final.returncode == 0, final.stderr[-3000:]
    reference = subprocess.run([*command, "--no-recovery"], env=env_for("clean"),
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
    messages = 0
    if bootstrap is not None:
        sent, expected = (topic_messages(bootstrap, prefixes[t]) for t in ("lake", "clean"))
        for name in sorted(set(sent) | set(expected)):
            if sent.get(name) != expected.get(name):
                a, b = sent.get(name, {}), expected.get(name, {})
                differences.append(f"topic {name}: {len(a)} vs {len(b)} distinct messages")
        messages = sum(len(v) for v in expected.values())
    return Outcome(flow, done, len(want), rows, differences, messages)


def summary(outcomes: list[Outcome]) -> str:
    head = f"{'flow':<14} {'kills':>5} {'tables':>6} {'rows compared':>13} {'messages':>9}"
    lines = [head + "  differences"]
    for o in outcomes:
        found = "; ".join(o.differences) or "0"
        lines.append(
            f"{o.flow:<14} {o.kills:>5} {o.tables:>6} {o.rows:>13,} {o.messages:>9,}  {found}"
        )
    return "\n".join(lines)
