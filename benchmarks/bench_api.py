"""Order API write throughput and latency: `POST /orders` on loopback, one API process.

`streamhouse api` (uvicorn, its own process) runs against a real Apache Kafka broker;
a `202` is sent only once Kafka has acknowledged the command (acks=all). A load
generator in another process (benchmarks/loadgen.py, open loop: each request is due
at its time whatever happened before, latency counted from then) sends create-order
bodies. Side by side, in one run:
  POST /orders at --rate/s        the target: >= 2,000 accepted commands/s, p99 < 25 ms
  POST /orders, as fast as it goes  the most one process accepts (closed loop)
  GET /healthz at --rate/s        the HTTP stack alone (no body, no Kafka): the ceiling
Every POST must be answered 202; afterwards the commands in `order-commands` are counted
and must equal the 202s.

Usage: python benchmarks/bench_api.py [--rate 2000] [--seconds 20] [--connections 64]
Starts its own broker unless KAFKA_BOOTSTRAP_SERVERS is set.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import uuid
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition
from loadgen import LoadResult, Target, percentiles, run_load, start_api

BODY = json.dumps(
    {
        "customer_id": "c-bench",
        "items": [{"sku": "p-00042", "qty": 2, "unit_price": 19.9}],
        "currency": "EUR",
    }
).encode()


def serve(bootstrap: str, prefix: str, lake: Path) -> tuple[subprocess.Popen, str]:
    return start_api(
        {
            "STREAMHOUSE_BOOTSTRAP_SERVERS": bootstrap,
            "STREAMHOUSE_TOPIC_PREFIX": prefix,
            "STREAMHOUSE_LAKE_DIR": str(lake),
        }
    )


def commands_in(bootstrap: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-count"})
    try:
        meta = consumer.list_topics(topic, timeout=30).topics[topic]
        total = 0
        for p in meta.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
            total += high - low
        return total
    finally:
        consumer.close()


def row(name: str, result: LoadResult, expected: int = 202) -> dict[str, object]:
    bad = [s for s in result.statuses if s != expected]
    assert not bad, f"{name}: {len(bad)} of {len(result.statuses)} answered {sorted(set(bad))}"
    return {"name": name, "rate": result.rate, **percentiles(result.latencies)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=2000.0, help="requests/s offered")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()

    from streamhouse.broker import kafka_bootstrap
    from streamhouse.topics import create_topics

    n = int(args.rate * args.seconds)
    posts = [Target("POST", "/orders", BODY)] * n
    rows = []
    with kafka_bootstrap() as (bootstrap, local), tempfile.TemporaryDirectory() as tmp:
        if local is not None:
            print(f"broker: Apache Kafka {local.version} started in {local.start_seconds:.2f} s")
        prefix = f"bench-api-{uuid.uuid4().hex[:6]}-"
        create_topics({"bootstrap.servers": bootstrap}, 3, 1, prefix)
        proc, base = serve(bootstrap, prefix, Path(tmp) / "lake")
        try:
            run_load(base, posts[:2000], rate=1000, connections=16)  # warm-up
            print(
                f"POST /orders: {n:,} at {args.rate:.0f}/s over {args.connections} connections ..."
            )
            rows.append(
                row(
                    f"POST /orders at {args.rate:.0f}/s",
                    run_load(base, posts, args.rate, args.connections),
                )
            )
            rows.append(
                row("POST /orders, closed loop", run_load(base, posts, None, args.connections))
            )
            health = [Target("GET", "/healthz")] * n
            rows.append(
                row(
                    f"GET /healthz at {args.rate:.0f}/s",
                    run_load(base, health, args.rate, args.connections),
                    200,
                )
            )
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        stored = commands_in(bootstrap, prefix + "order-commands")
    accepted = 2000 + 2 * n
    print(
        f"\n| load | req/s | p50 ms | p95 ms | p99 ms | max ms |  (1 API process, {args.connections} connections)"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['name']} | {r['rate']:,.0f} | {r['p50']:.1f} | {r['p95']:.1f} | {r['p99']:.1f} | {r['max']:.1f} |"
        )
    target = rows[0]
    met = target["rate"] >= 2000 * 0.99 and target["p99"] < 25
    print(
        f"\ncommands in order-commands: {stored:,} for {accepted:,} 202s"
        f"{'' if stored == accepted else '  MISMATCH'}"
    )
    print(
        f"target >= 2,000 accepted/s with p99 < 25 ms: {target['rate']:,.0f}/s, p99 {target['p99']:.1f} ms: "
        f"{'met' if met else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
