"""Cluster mode: `streamhouse run FLOW --processes 2` runs one dataflow as two bytewax
processes on loopback, and its results are exactly those of one process.

Over 4 partitions each process reads 2. Over 3, one reads 2 and the other 1: the
uneven split of bytewax #556 (a worker that runs out of work waits on the other), which
must still finish, with the same results."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from torture import lake_rows

from streamhouse.topics import create_topics

CLI = str(Path(sys.executable).parent / "streamhouse")
FLOWS = ("user_activity", "api_metrics")


def run(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([CLI, *args], env=env, capture_output=True, text=True,
                              timeout=timeout)  # fmt: skip
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"`streamhouse {' '.join(args)}` stalled: {e.stderr!r:.3000}") from e


@pytest.mark.kafka
@pytest.mark.parametrize("partitions", [4, 3], ids=["even-4-partitions", "uneven-3-partitions"])
def test_two_processes_give_the_results_of_one(
    kafka_bootstrap: str, tmp_path: Path, partitions: int
) -> None:
    prefix = f"cluster{partitions}p{os.getpid()}-"
    create_topics({"bootstrap.servers": kafka_bootstrap}, partitions, 1, prefix)
    env = {**os.environ, "STREAMHOUSE_BOOTSTRAP_SERVERS": kafka_bootstrap,
           "STREAMHOUSE_TOPIC_PREFIX": prefix, "STREAMHOUSE_KAFKA_OUTPUT": "0"}  # fmt: skip
    done = run(["simulate", "--duration", "240", "--rate", "300", "--quiet"], env)
    assert done.returncode == 0, done.stderr[-3000:]

    lakes = {}
    for processes in (1, 2):
        lake = tmp_path / f"lake-{processes}"
        for flow in FLOWS:
            done = run(["run", flow, "--until-eof", "--no-recovery", "--processes",
                        str(processes)], {**env, "STREAMHOUSE_LAKE_DIR": str(lake)})  # fmt: skip
            assert done.returncode == 0, done.stderr[-3000:]
            started = [line for line in done.stderr.splitlines() if line.startswith("+ ")]
            assert len(started) == processes, started
            if processes == 2:  # one cluster: each process knows its id and both addresses
                assert [line.split(" -i ")[1][0] for line in started] == ["0", "1"]
        lakes[processes] = lake_rows(lake)

    one, two = lakes[1], lakes[2]
    assert {"user_activity_5m", "api_latency_minute"} <= set(one), sorted(one)
    assert sum(len(rows) for rows in one.values()) > 500
    assert two.keys() == one.keys()
    for table in one:
        assert two[table] == one[table], f"{table}: 2 processes differ from 1"
