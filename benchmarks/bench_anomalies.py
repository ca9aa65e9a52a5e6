"""anomalies throughput: business events scored per series and landed, against a per-item
bytewax pipeline doing the same work, side by side in one run.

Input: --events `business_metric` events (~190-byte JSON) over --series series, each with
its own EWMA model on `anomaly-models` for half of them (the rest use the default), held
in memory as messages, so both contenders read the same bytes at no cost:
  streamhouse anomalies   dataflows/anomalies.py on batches of 50 000 messages (the Kafka
                          source's poll): batch decode into frames, the EWMA column-wise,
                          scores landed in the lake
  per-item bytewax        TestingSource -> map(msgspec decode, one event) -> key_on(series)
                          -> stateful_map(the same EWMA, one event) -> lake rows
Both run one worker, in this process with the flows' GC thresholds (streamhouse.process),
and write `anomaly_scores` to a Parquet lake in a temp dir.
Reading from Kafka costs about 1 µs an event more (the consume ceiling measured by
bench_windowed.py is 0.8-0.95 M events/s).

Target: streamhouse >= 200 k events/s on one worker.
Usage: python benchmarks/bench_anomalies.py [--events 1000000] [--series 1000]
"""

from __future__ import annotations

import argparse
import inspect
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import bytewax.operators as op
import msgspec
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource, run_main

from dataflows import anomalies
from dataflows.inputs import KafkaBatchSource, MemorySource
from dataflows.messages import RawMessage
from dataflows.outputs import Outputs
from models.business import AnomalyModel, BusinessMetric, DetectorMethod
from models.detectors import parse_spec
from models.topics import ANOMALY_MODELS, BUSINESS_EVENTS
from sinks.lake import LakeSink
from streamhouse.process import tune_gc
from warehouse.lake import Lake
from warehouse.query import Warehouse
from warehouse.tables import ANOMALY_SCORES

START = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
PARAMS = {"alpha": 0.05, "z": 5.0, "warmup": 20.0}
KAFKA_POLL: int = inspect.signature(KafkaBatchSource).parameters["batch_size"].default
"""Messages per batch: what the Kafka source hands over per poll under load."""


def messages(events: int, series: int, seed: int = 1) -> list[RawMessage]:
    rng = random.Random(seed)
    out = [
        RawMessage(
            ANOMALY_MODELS,
            0,
            k,
            f"m{k}:e".encode(),
            msgspec.json.encode(
                AnomalyModel(
                    event_id=f"model-{k}",
                    ts=START,
                    model_key=f"m{k}:e",
                    method=DetectorMethod.EWMA,
                    params=PARAMS,
                )
            ),
        )
        for k in range(0, series, 2)
    ]
    encode = msgspec.json.Encoder().encode
    for i in range(events):
        k = rng.randrange(series)
        value = 100.0 * (1 + k % 7) * (1 + rng.gauss(0, 0.05)) * (4 if rng.random() < 1e-4 else 1)
        event = BusinessMetric(
            event_id=f"e{i:09d}",
            ts=START + timedelta(microseconds=i * 1000),
            metric=f"m{k}",
            entity="e",
            value=round(value, 3),
        )
        out.append(RawMessage(BUSINESS_EVENTS, 0, i, f"m{k}:e".encode(), encode(event)))
    return out


def run_streamhouse(log: list[RawMessage], lake: Lake) -> float:
    began = time.perf_counter()
    source = MemorySource(log, batch_size=KAFKA_POLL)
    run_main(anomalies.build(source, Outputs(lake=lake)))
    return time.perf_counter() - began


def per_item_flow(log: list[RawMessage], lake: Lake) -> Dataflow:
    """What the flow looks like written event by event: bytewax's usual style."""
    detector = parse_spec("ewma:alpha=0.05,z=5,warmup=20")
    business = msgspec.json.Decoder(BusinessMetric)

    def decode(message: RawMessage) -> BusinessMetric | None:
        if message.topic != BUSINESS_EVENTS:
            return None  # models: the baseline applies one fixed EWMA to every series
        try:
            return business.decode(message.value)
        except (msgspec.DecodeError, ValueError):
            return None

    def score(state, event: BusinessMetric):
        state = state or detector.new_state()
        s = detector.score(state, [event.value], [event.ts.timestamp()])
        row = {
            "event_id": event.event_id,
            "series": event.key(),
            "ts": event.ts,
            "value": event.value,
            "method": "ewma",
            "model_id": "default",
            "score": s.score[0],
            "expected": s.expected[0],
            "expected_low": s.low[0],
            "expected_high": s.high[0],
            "anomalous": s.anomalous[0],
        }
        return state, row

    flow = Dataflow("per_item")
    events = op.filter_map("decode", op.input("in", flow, TestingSource(log)), decode)
    keyed = op.key_on("series", events, lambda e: e.key())
    scored = op.stateful_map("ewma", keyed, score)
    op.output("lake", scored, LakeSink(lake, ANOMALY_SCORES, "per_item"))
    return flow


def run_per_item(log: list[RawMessage], lake: Lake) -> float:
    began = time.perf_counter()
    run_main(per_item_flow(log, lake))
    return time.perf_counter() - began


def landed(lake: Lake) -> int:
    with Warehouse(lake) as wh:
        return wh.sql("SELECT count(*) AS n FROM anomaly_scores").to_pylist()[0]["n"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--series", type=int, default=1_000)
    parser.add_argument("--baseline-events", type=int, default=200_000)
    args = parser.parse_args()
    tune_gc()  # as every flow process does (dataflows.runtime.source_from_env): both contenders
    print(f"generating {args.events:,} events over {args.series:,} series ...", flush=True)
    log = messages(args.events, args.series)
    with tempfile.TemporaryDirectory() as tmp:
        ours_lake, base_lake = Lake(Path(tmp) / "ours"), Lake(Path(tmp) / "base")
        print("streamhouse anomalies ...", flush=True)
        ours_s = run_streamhouse(log, ours_lake)
        assert landed(ours_lake) == args.events, "every event is scored once"
        n_base = min(args.baseline_events, args.events)
        models = [m for m in log if m.topic == ANOMALY_MODELS]
        base_log = models + [m for m in log if m.topic == BUSINESS_EVENTS][:n_base]
        print(f"per-item bytewax on the first {n_base:,} events ...", flush=True)
        base_s = run_per_item(base_log, base_lake)
        assert landed(base_lake) == n_base
    ours, base = args.events / ours_s, n_base / base_s
    print()
    print(f"{'contender':<24} {'events':>10} {'seconds':>8} {'events/s':>10}")
    print(f"{'streamhouse anomalies':<24} {args.events:>10,} {ours_s:>8.2f} {ours:>10,.0f}")
    print(f"{'per-item bytewax':<24} {n_base:>10,} {base_s:>8.2f} {base:>10,.0f}")
    print(f"\nstreamhouse / per-item: {ours / base:.1f}x")
    print(f"target >= 200 k events/s on one worker: {'met' if ours >= 200_000 else 'NOT met'}")


if __name__ == "__main__":
    main()
