"""Command to visible: from `POST /orders` to the order in `GET /orders/{id}`, under load.

Everything real and in its own process: Apache Kafka, `streamhouse api`, and
`streamhouse run order_commands` and `order_projection` (1-second epochs: the
projection lands its rows in the lake when an epoch ends). A load generator posts
create-order commands at --rate/s for --seconds (open loop); every --sample-th order
is then polled with `GET /orders/{id}` every --poll-s until it answers 200 (so the
figures are up to one poll interval late; the polls are a read load of their own, about
rate / sample x visibility / poll-s GETs a second, kept small beside the writes). Side by side:
  command -> event in order-events   the write side alone (a consumer tails the topic)
  command -> visible in GET          the whole round trip: the target, p95 < 3 s
At the end every posted order must be in order_view exactly once.

Usage: python benchmarks/bench_cqrs_latency.py [--rate 500] [--seconds 60] [--sample 50] [--poll-s 0.2]
Starts its own broker unless KAFKA_BOOTSTRAP_SERVERS is set.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from confluent_kafka import OFFSET_END, Consumer, TopicPartition
from loadgen import Pool, Target, free_port, percentiles, wait_ready
from tqdm import tqdm

CLI = str(Path(sys.executable).parent / "streamhouse")
BODY = json.dumps(
    {"customer_id": "c-latency", "items": [{"sku": "p-00007", "qty": 1, "unit_price": 5.0}]}
).encode()
GIVE_UP_S = 60.0


class EventTail(threading.Thread):
    """Records when each order's first event reaches order-events."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        self.seen: dict[str, float] = {}
        self.stop = threading.Event()
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-tail"})
        meta = self.consumer.list_topics(topic, timeout=30).topics[topic]
        self.consumer.assign([TopicPartition(topic, p, OFFSET_END) for p in meta.partitions])

    def run(self) -> None:
        while not self.stop.is_set():
            for m in self.consumer.consume(10_000, timeout=0.05):
                if m.error() is None and m.key() is not None:
                    self.seen.setdefault(m.key().decode(), time.perf_counter())
        self.consumer.close()


async def scenario(
    base: str, rate: float, seconds: float, sample: int, poll_s: float
) -> dict[str, object]:
    posts, polls = Pool(base, 64), Pool(base, 16)
    await posts.open()
    await polls.open()
    n = int(rate * seconds)
    visible: dict[str, float] = {}
    due_at: dict[str, float] = {}
    failed: list[int] = []
    ids: list[str] = []
    bar = tqdm(total=n, unit="cmd", desc=f"POST /orders at {rate:.0f}/s")

    async def one(i: int, due: float) -> None:
        status, body = await posts.request(Target("POST", "/orders", BODY))
        bar.update()
        if status != 202:
            failed.append(status)
            return
        order_id = json.loads(body)["order_id"]
        ids.append(order_id)
        if i % sample:
            return
        due_at[order_id] = due
        while time.perf_counter() - due < GIVE_UP_S:
            got, _ = await polls.request(Target("GET", f"/orders/{order_id}"))
            if got == 200:
                visible[order_id] = time.perf_counter() - due
                return
            await asyncio.sleep(poll_s)

    start = time.perf_counter() + 0.1
    tasks = []
    for i in range(n):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    bar.close()
    posts.close()
    polls.close()
    return {"ids": ids, "visible": visible, "due_at": due_at, "failed": failed}


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    out = open(log, "wb")  # noqa: SIM115 - lives as long as the process
    return subprocess.Popen(command, env=env, stdout=out, stderr=out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--sample", type=int, default=50, help="poll every N-th order")
    parser.add_argument("--poll-s", type=float, default=0.2, help="seconds between polls")
    args = parser.parse_args()

    import uvloop

    from streamhouse.broker import kafka_bootstrap
    from streamhouse.topics import create_topics
    from warehouse.lake import Lake
    from warehouse.query import Warehouse

    with kafka_bootstrap() as (bootstrap, local), tempfile.TemporaryDirectory() as tmp:
        if local is not None:
            print(f"broker: Apache Kafka {local.version} started in {local.start_seconds:.2f} s")
        prefix = f"bench-cqrs-{uuid.uuid4().hex[:6]}-"
        create_topics({"bootstrap.servers": bootstrap}, 3, 1, prefix)
        lake = Path(tmp) / "lake"
        port = free_port()
        env = {
            **os.environ,
            "STREAMHOUSE_BOOTSTRAP_SERVERS": bootstrap,
            "STREAMHOUSE_TOPIC_PREFIX": prefix,
            "STREAMHOUSE_LAKE_DIR": str(lake),
            "STREAMHOUSE_RECOVERY_DIR": str(Path(tmp) / "recovery"),
        }
        procs = [
            start([CLI, "run", flow, "--snapshot-interval", "1"], env, Path(tmp) / f"{flow}.log")
            for flow in ("order_commands", "order_projection")
        ]
        procs.append(start([CLI, "api", "--port", str(port)], env, Path(tmp) / "api.log"))
        tail = EventTail(bootstrap, prefix + "order-events")
        try:
            base = f"http://127.0.0.1:{port}"
            wait_ready(base + "/readyz", procs[-1])
            time.sleep(3)  # the flows' consumers assigned and polling
            tail.start()
            result = uvloop.run(scenario(base, args.rate, args.seconds, args.sample, args.poll_s))
            ids = result["ids"]
            deadline = time.monotonic() + 60
            while True:
                with Warehouse(Lake(lake)) as wh:
                    counts = wh.sql(
                        "SELECT count(*) AS n, count(DISTINCT order_id) AS d FROM order_view "
                        "WHERE customer_id = 'c-latency'"
                    ).to_pylist()[0]
                if counts["d"] >= len(ids) or time.monotonic() > deadline:
                    break
                time.sleep(1)
        finally:
            tail.stop.set()
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=30)
    visible, due_at = result["visible"], result["due_at"]
    events = [tail.seen[o] - due_at[o] for o in due_at if o in tail.seen]
    rows = [
        ("command -> event in order-events", events),
        ("command -> visible in GET", list(visible.values())),
    ]
    print(
        f"\n| path | orders | p50 s | p95 s | p99 s | max s |  ({args.rate:.0f} commands/s for {args.seconds:.0f} s, every {args.sample}th polled every {args.poll_s} s)"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, latencies in rows:
        p = percentiles(latencies)
        print(
            f"| {name} | {len(latencies):,} | {p['p50'] / 1000:.2f} | {p['p95'] / 1000:.2f} | {p['p99'] / 1000:.2f} | {p['max'] / 1000:.2f} |"
        )
    first = min(due_at.values(), default=0.0)
    print("\nover time (p95 s per 10 s of the run): event | visible")
    for bucket in range(0, int(args.seconds), 10):
        in_bucket = [o for o, t in due_at.items() if bucket <= t - first < bucket + 10]
        ev = [tail.seen[o] - due_at[o] for o in in_bucket if o in tail.seen]
        vi = [visible[o] for o in in_bucket if o in visible]
        if ev and vi:
            print(
                f"  {bucket:3d}-{bucket + 10:<3d} s  {percentiles(ev)['p95'] / 1000:6.2f} | {percentiles(vi)['p95'] / 1000:6.2f}"
            )
    missing = len(due_at) - len(visible)
    print(
        f"\nposted {len(ids):,} (failed {len(result['failed'])}); in order_view: {counts['d']:,} orders, {counts['n']:,} rows"
        f"{'' if counts['d'] == counts['n'] == len(ids) else '  MISMATCH'}; never visible in {GIVE_UP_S:.0f} s: {missing}"
    )
    p95 = percentiles(list(visible.values()))["p95"] / 1000 if visible else float("inf")
    print(
        f"target p95 < 3 s at {args.rate:.0f}/s: {p95:.2f} s: {'met' if p95 < 3 and not missing else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
