"""Simulator throughput: events generated, and generated + produced to a real Kafka broker.

Side by side in one run, on the same simulated traffic:
  generate only          Simulator.records(), nothing else (the generator's ceiling)
  produce pre-generated  the same producer (sinks.kafka.ReliableProducer) sending records
                         already in memory (the producer + broker ceiling)
  generate + produce     `streamhouse simulate --to kafka` as users run it

Usage: python benchmarks/bench_simulator.py [--rate 2000 --duration 300]
Starts its own broker unless KAFKA_BOOTSTRAP_SERVERS is set.
"""

from __future__ import annotations

import argparse
import time
import uuid

from models.simulator import SimConfig, Simulator
from sinks.kafka import KafkaMessage, ReliableProducer
from streamhouse.broker import kafka_bootstrap
from streamhouse.simulate import to_kafka
from streamhouse.topics import create_topics


def produce_all(records: list, config: dict, prefix: str) -> float:
    producer = ReliableProducer(config, prefix)
    began = time.perf_counter()
    producer.send_many(KafkaMessage(r.topic, r.key, r.value, r.headers) for r in records)
    producer.flush(120)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--duration", type=int, default=300)
    parser.add_argument("--partitions", type=int, default=3)
    args = parser.parse_args()
    config = SimConfig(events_per_s=args.rate, duration_s=args.duration)

    with kafka_bootstrap() as (bootstrap, local):
        if local is not None:
            print(f"broker: Apache Kafka {local.version} started in {local.start_seconds:.2f} s")
        kafka = {"bootstrap.servers": bootstrap}
        print(f"simulation: {args.rate:g} events/s x {args.duration} s, seed {config.seed}")
        began = time.perf_counter()
        records = list(Simulator(config).records())
        generate_s = time.perf_counter() - began
        n = len(records)
        mb = sum(len(r.value) for r in records) / 1e6
        print(f"{n:,} records, {mb:.1f} MB of values (avg {mb * 1e6 / n:.0f} B)")

        prefix_a, prefix_b = f"bench-{uuid.uuid4().hex[:6]}-", f"bench-{uuid.uuid4().hex[:6]}-"
        for prefix in (prefix_a, prefix_b):
            create_topics(kafka, args.partitions, 1, prefix)
        produce_s = produce_all(records, kafka, prefix_a)
        del records
        report = to_kafka(Simulator(config), kafka, show_progress=True, topic_prefix=prefix_b)
        both_s = report.seconds

    rows = [
        ("generate only", generate_s),
        ("produce pre-generated (baseline)", produce_s),
        ("generate + produce (streamhouse simulate)", both_s),
    ]
    print(f"\n| {'pipeline':<42} | {'records/s':>10} | {'seconds':>7} | vs baseline |")
    print(f"|{'-' * 44}|{'-' * 12}|{'-' * 9}|-------------|")
    for name, seconds in rows:
        print(
            f"| {name:<42} | {n / seconds:>10,.0f} | {seconds:>7.2f} | {produce_s / seconds:>10.2f}x |"
        )


if __name__ == "__main__":
    main()
