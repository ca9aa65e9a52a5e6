"""Scale-out: one windowed dataflow as 1 process and as 2 (`streamhouse run --processes`),
side by side in one run, over the same Kafka topics.

The simulator preloads every input topic (--rate x --duration records, seeded) on a real
Apache Kafka broker, once with 4 partitions per topic and once with 3: 3 partitions over 2
processes is the uneven split of bytewax #556. Each run is `streamhouse run FLOW
--until-eof --no-recovery` from the start of its topic to its end; throughput = the
flow's input messages / (the run's wall time - its start-up), the start-up being the
wall time of the same run over empty topics (printed apart).
The broker runs on the same 2 cores, so 2 processes compete with it and with each other.
Set STREAMHOUSE_SHARDS (default 1) to spread the windowed aggregation over the workers:
with one shard, one worker aggregates everything whatever the process count.
Usage: python benchmarks/bench_cluster.py [--rate 4000] [--duration 300] [--flows user_activity,api_metrics]
Starts its own broker unless KAFKA_BOOTSTRAP_SERVERS is set.
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

CLI = str(Path(sys.executable).parent / "streamhouse")


def messages_in(bootstrap: str, topics: list[str]) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-cluster"})
    try:
        total = 0
        for topic in topics:
            for p in consumer.list_topics(topic, timeout=30).topics[topic].partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
                total += high - low
        return total
    finally:
        consumer.close()


def timed_run(flow: str, processes: int, env: dict[str, str]) -> float:
    """Wall seconds of one run, start-up included."""
    with tempfile.TemporaryDirectory() as lake:
        began = time.perf_counter()
        done = subprocess.run(
            [CLI, "run", flow, "--until-eof", "--no-recovery", "--processes", str(processes)],
            env={**env, "STREAMHOUSE_LAKE_DIR": lake}, capture_output=True, text=True,
        )  # fmt: skip
        seconds = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"{flow} x{processes} failed:\n{done.stderr[-3000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=4000)
    parser.add_argument("--duration", type=int, default=300)
    parser.add_argument("--flows", default="user_activity,api_metrics")
    parser.add_argument("--repeat", type=int, default=2, help="runs per case; the best is kept")
    args = parser.parse_args()
    from streamhouse.broker import kafka_bootstrap
    from streamhouse.cli import FLOWS
    from streamhouse.topics import create_topics

    rows = []
    with kafka_bootstrap() as (bootstrap, local):
        if local is not None:
            print(f"broker: Apache Kafka {local.version} started in {local.start_seconds:.2f} s")
        for partitions in (4, 3):
            prefix = f"bench-cluster-{partitions}-{uuid.uuid4().hex[:6]}-"
            create_topics({"bootstrap.servers": bootstrap}, partitions, 1, prefix)
            env = {**os.environ, "STREAMHOUSE_BOOTSTRAP_SERVERS": bootstrap,
                   "STREAMHOUSE_TOPIC_PREFIX": prefix, "STREAMHOUSE_KAFKA_OUTPUT": "0"}  # fmt: skip
            print(
                f"preloading {partitions}-partition topics: {args.rate:.0f}/s x {args.duration} s ..."
            )
            sim = subprocess.run(
                [CLI, "simulate", "--rate", str(args.rate), "--duration", str(args.duration),
                 "--quiet"], env=env, capture_output=True, text=True,
            )  # fmt: skip
            if sim.returncode != 0:
                raise SystemExit(sim.stderr[-3000:])
            empty_prefix = f"empty-{prefix}"
            create_topics({"bootstrap.servers": bootstrap}, partitions, 1, empty_prefix)
            empty = {**env, "STREAMHOUSE_TOPIC_PREFIX": empty_prefix}
            for flow in args.flows.split(","):
                topics = importlib.import_module(FLOWS[flow]).INPUT_TOPICS
                n = messages_in(bootstrap, [prefix + t for t in topics])
                for processes in (1, 2):
                    startup = min(timed_run(flow, processes, empty) for _ in range(args.repeat))
                    best = min(timed_run(flow, processes, env) for _ in range(args.repeat))
                    rate = n / max(best - startup, 1e-3)
                    print(f"  {flow:<14} {partitions} partitions  {processes} process(es)  "
                          f"{n:>9,} msgs  {best:6.2f} s ({startup:.2f} s start-up)  "
                          f"{rate / 1e3:7.1f} k msgs/s")  # fmt: skip
                    rows.append((flow, partitions, processes, n, best, rate))
    print()
    print("| flow | partitions | 1 process k msgs/s | 2 processes k msgs/s | 2 vs 1 |")
    print("|---|---:|---:|---:|---:|")
    for flow, partitions, processes, _n, _s, rate in rows:
        if processes == 2:
            one = next(r[5] for r in rows if r[:3] == (flow, partitions, 1))
            print(
                f"| {flow} | {partitions} | {one / 1e3:.1f} | {rate / 1e3:.1f} | {rate / one:.2f}x |"
            )


if __name__ == "__main__":
    main()
