"""Windowed aggregation end to end (Kafka -> 1-min windows -> lake) against the stock
bytewax pipeline, Quix Streams and the raw consume loop, on one topic, in one run.

The topic (1 partition, on a real Apache Kafka broker) is preloaded with ~115-byte JSON
`order_paid` events keyed by `order_id`, drawn from --keys distinct values, with event
times spread over 5 minutes. Each contender runs as its own process, one worker, reading
the whole topic from the start. Throughput = events / time from the first event in to the
end of the run (the last window landed; for Quix, whose run only ends on an idle timeout,
to the last event processed); the start-up before the first event is printed apart:
  streamhouse columnar   dataflows.windowing: batch decode, partials per (key, window),
                         rows landed in a Parquet lake
  stock bytewax          kop.input -> map(json.loads) -> count_window (EventClock)
  quixstreams 3.x        tumbling_window(60 s).count().final(), in its own venv
                         (it needs confluent-kafka < 2.13): .cache/bench-quix-venv
  raw consume loop       confluent-kafka consume(), nothing else: the ceiling
Then peak RSS of the columnar flow holding --rss-keys distinct keys in one open window.

Targets: columnar >= 400 k events/s, >= 5x stock bytewax, >= 5x Quix Streams;
peak RSS with 1 M open keys < 1.5 GB.
Usage: python benchmarks/bench_windowed.py [--events 1000000] [--keys 1000,100000]
Starts its own broker unless KAFKA_BOOTSTRAP_SERVERS is set.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pyarrow as pa

from dataflows.windowing import MINUTE, WINDOW, WindowAggregation, window_starts
from models.base import Currency, Id, Money
from models.projections import Envelope
from warehouse.tables import TABLES, TS, Table

ROOT = Path(__file__).resolve().parents[1]
QUIX_VENV = ROOT / ".cache" / "bench-quix-venv"
QUIX_VERSION = "3.28.1"
START = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
SPAN = timedelta(minutes=5)
CONTENDERS = ("columnar", "stock", "quix", "ceiling")
LABELS = {
    "columnar": "streamhouse columnar",
    "stock": "stock bytewax",
    "quix": f"quixstreams {QUIX_VERSION}",
    "ceiling": "raw consume loop",
}


# --- the input ------------------------------------------------------------------------


def event(i: int, key: int, ts: datetime, amount: float) -> bytes:
    stamp = ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"
    return (
        f'{{"event_id":"e{i:09d}","type":"order_paid","ts":"{stamp}",'
        f'"order_id":"k{key:07d}","amount":{amount:.2f},"currency":"EUR"}}'
    ).encode()


def preload(bootstrap: str, topic: str, events: int, keys: int, span: timedelta) -> float:
    """Create the topic and fill it; returns the mean message size."""
    from confluent_kafka.admin import AdminClient, NewTopic
    from tqdm import tqdm

    from sinks.kafka import KafkaMessage, ReliableProducer

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    rng = random.Random(7)
    producer = ReliableProducer({"bootstrap.servers": bootstrap})
    size = 0
    step = span / events
    with tqdm(total=events, unit="ev", unit_scale=True, desc=f"preload {topic}") as bar:
        for start in range(0, events, 50_000):
            batch = []
            for i in range(start, min(events, start + 50_000)):
                key = rng.randrange(keys) if keys < events else i
                value = event(i, key, START + i * step, rng.random() * 200)
                size += len(value)
                batch.append(KafkaMessage(topic, f"k{key:07d}".encode(), value))
            producer.send_many(batch)
            bar.update(len(batch))
    producer.flush()
    return size / events


# --- the columnar flow's aggregation: order_stats' shape, keyed by order_id ------------


class PaidFields(Envelope, frozen=True, kw_only=True, tag="order_paid"):
    order_id: Id
    amount: Money
    currency: Currency


BENCH_TABLE = Table(
    "bench_windows",
    pa.schema(
        [
            ("order_id", pa.string()),
            ("window_start", TS),
            ("orders", pa.int64()),
            ("revenue", pa.float64()),
            ("duplicates", pa.int64()),
        ]
    ),
    partition_by="window_start",
    id_column="order_id",
    description="benchmark output",
)
TABLES[BENCH_TABLE.name] = BENCH_TABLE  # known to the lake for this process only


def finish(closed: pl.DataFrame) -> pa.Table:
    return (
        closed.select(
            "order_id",
            window_starts(closed[WINDOW], MINUTE).alias("window_start"),
            pl.col("orders"),
            (pl.col("micros") / 1e6).alias("revenue"),
            pl.col("_duplicates").alias("duplicates"),
        )
        .to_arrow()
        .cast(BENCH_TABLE.schema)
    )


BENCH_AGGREGATION = WindowAggregation(
    flow="bench",
    key=("order_id",),
    length=MINUTE,
    partial=(
        pl.len().cast(pl.Int64).alias("orders"),
        (pl.col("amount") * 1e6).round(0).cast(pl.Int64).sum().alias("micros"),
    ),
    merge=(pl.col("orders").fill_null(0).sum(), pl.col("micros").fill_null(0).sum()),
    finish=finish,
)


# --- contenders, each in its own process ----------------------------------------------


def run_columnar(bootstrap: str, topic: str, events: int) -> tuple[float, float]:
    import bytewax.operators as op
    from bytewax.dataflow import Dataflow
    from bytewax.testing import run_main

    from dataflows.decode import FrameDecoders
    from dataflows.inputs import KafkaBatchSource
    from dataflows.windowing import Clock, Frame, window_aggregate
    from sinks.lake import LakeSink
    from streamhouse.process import tune_gc
    from warehouse.lake import Lake

    tune_gc()  # as `streamhouse run` does (dataflows/runtime.py)

    done = {"first": 0.0, "events": 0}

    def count(frame: Frame) -> Frame:
        if not done["events"]:
            done["first"] = time.perf_counter()
        done["events"] += frame.events.height
        return frame

    source = KafkaBatchSource({"bootstrap.servers": bootstrap}, [topic], until_eof=True)
    with tempfile.TemporaryDirectory() as lake_dir:
        flow = Dataflow("bench_columnar")
        batches = op.input("in", flow, source)
        decoded = op.flat_map("decode", batches, FrameDecoders("bench", {topic: PaidFields}))
        frames = op.map(
            "count", op.filter("frames", decoded, lambda x: isinstance(x, Frame)), count
        )
        windows = window_aggregate("windows", frames, BENCH_AGGREGATION, Clock(), [f"{topic}#0"])
        op.output("lake", windows.rows, LakeSink(Lake(lake_dir), BENCH_TABLE, "bench"))
        began = time.perf_counter()
        run_main(flow)
        ended = time.perf_counter()
        files = sum(1 for _ in Path(lake_dir).rglob("*.parquet"))
    assert done["events"] == events, f"read {done['events']} of {events} events"
    assert files > 0, "no lake files written"
    return done["first"] - began, ended - done["first"]


def run_stock(bootstrap: str, topic: str, events: int) -> tuple[float, float]:
    import bytewax.operators as op
    import bytewax.operators.windowing as win
    from bytewax.connectors.kafka import operators as kop
    from bytewax.dataflow import Dataflow
    from bytewax.testing import run_main

    done = {"first": 0.0, "events": 0, "windows": 0}

    def count(_step: str, _item: object) -> None:
        if not done["events"]:
            done["first"] = time.perf_counter()
        done["events"] += 1

    flow = Dataflow("bench_stock")
    messages = kop.input("in", flow, brokers=[bootstrap], topics=[topic], tail=False)
    parsed = op.map("json", messages.oks, lambda m: json.loads(m.value))
    op.inspect("count", parsed, count)
    windows = win.count_window(
        "count_window",
        parsed,
        win.EventClock(
            lambda e: datetime.fromisoformat(e["ts"]),
            wait_for_system_duration=timedelta(seconds=10),
        ),
        win.TumblingWindower(length=timedelta(minutes=1), align_to=START),
        lambda e: e["order_id"],
    )
    op.inspect("windows", windows.down, lambda *_: done.__setitem__("windows", done["windows"] + 1))
    began = time.perf_counter()
    run_main(flow)
    ended = time.perf_counter()
    assert done["events"] == events, f"read {done['events']} of {events} events"
    assert done["windows"] > 0
    return done["first"] - began, ended - done["first"]


def run_ceiling(bootstrap: str, topic: str, events: int) -> tuple[float, float]:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    from dataflows.inputs import TUNED_CONSUMER

    consumer = Consumer(
        {**TUNED_CONSUMER, "bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4()}"}
    )
    began = time.perf_counter()
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    seen, first = 0, 0.0
    while seen < events:
        got = len(consumer.consume(50_000, timeout=0.5))
        if got and not seen:
            first = time.perf_counter()
        seen += got
    ended = time.perf_counter()
    consumer.close()
    return first - began, ended - first


def quix_python() -> Path:
    """Quix Streams in a venv of its own: it pins confluent-kafka below ours."""
    python = QUIX_VENV / "bin" / "python"
    stamp = QUIX_VENV / f".installed-{QUIX_VERSION}"
    if not stamp.exists():
        subprocess.run([sys.executable, "-m", "venv", str(QUIX_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", f"quixstreams=={QUIX_VERSION}", "tqdm"],
            check=True,
        )
        stamp.touch()
    return python


QUIX_CHILD = """
import json, sys, tempfile, time, uuid
from datetime import datetime
from quixstreams import Application

bootstrap, topic_name, events = sys.argv[1], sys.argv[2], int(sys.argv[3])
done = {"first": 0.0, "last": 0.0, "events": 0, "windows": 0}

def ts_ms(value, headers, timestamp, kind):
    return int(datetime.fromisoformat(value["ts"]).timestamp() * 1000)

def seen(value):
    if not done["events"]:
        done["first"] = time.perf_counter()
    done["events"] += 1
    if done["events"] == events:
        done["last"] = time.perf_counter()

def window(value):
    done["windows"] += 1

with tempfile.TemporaryDirectory() as state:
    app = Application(broker_address=bootstrap, consumer_group=f"bench-{uuid.uuid4()}",
                      auto_offset_reset="earliest", state_dir=state, loglevel="WARNING")
    topic = app.topic(topic_name, value_deserializer="json", timestamp_extractor=ts_ms)
    sdf = app.dataframe(topic)
    sdf = sdf.update(seen)
    sdf = sdf.tumbling_window(duration_ms=60_000, grace_ms=10_000).count().final()
    sdf = sdf.update(window)
    began = time.perf_counter()
    app.run(timeout=5.0)
assert done["events"] == events, done
print(json.dumps({"startup": done["first"] - began, "seconds": done["last"] - done["first"]}))
"""


def child(
    contender: str, bootstrap: str, topic: str, events: int, timeout_s: float
) -> dict[str, float]:
    """Run one contender in a fresh process: its own RSS, no warm caches from the others.
    A contender still running after `timeout_s` is stopped and reported as slower than
    `events / timeout_s` (its ratio is then a lower bound)."""
    if contender == "quix":
        command = [str(quix_python()), "-c", QUIX_CHILD, bootstrap, topic, str(events)]
    else:
        command = [sys.executable, __file__, "--child", contender, bootstrap, topic, str(events)]
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            check=False,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        return {"startup": float("nan"), "seconds": timeout_s, "timed_out": True}
    if done.returncode != 0:
        raise RuntimeError(f"{contender} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def child_main(contender: str, bootstrap: str, topic: str, events: int) -> None:
    runs = {"columnar": run_columnar, "stock": run_stock, "ceiling": run_ceiling}
    startup, seconds = runs[contender](bootstrap, topic, events)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"startup": startup, "seconds": seconds, "rss_mb": rss_mb}))


# --- the run ---------------------------------------------------------------------------


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--keys", default="1000,100000", help="comma-separated key counts")
    parser.add_argument("--rss-keys", type=int, default=1_000_000)
    parser.add_argument(
        "--timeout", type=float, default=180.0, help="seconds before a contender is stopped"
    )
    parser.add_argument(
        "--contenders", default=",".join(CONTENDERS), help=f"subset of {','.join(CONTENDERS)}"
    )
    args = parser.parse_args()
    contenders = [c for c in args.contenders.split(",") if c]
    from streamhouse.broker import kafka_bootstrap

    results: list[tuple[int, str, float, bool]] = []
    with kafka_bootstrap() as (bootstrap, local):
        if local is not None:
            print(f"broker: Apache Kafka {local.version} started in {local.start_seconds:.2f} s")
        for keys in [int(k) for k in args.keys.split(",")]:
            topic = f"bench-windowed-{keys}-{uuid.uuid4().hex[:6]}"
            size = preload(bootstrap, topic, args.events, keys, SPAN)
            print(f"{args.events:,} events of {size:.0f} bytes, {keys:,} keys, topic {topic}")
            for contender in contenders:
                got = child(contender, bootstrap, topic, args.events, args.timeout)
                rate = args.events / got["seconds"]
                timed_out = bool(got.get("timed_out"))
                note = (
                    f"stopped after {args.timeout:.0f} s: slower than this"
                    if timed_out
                    else f"start-up before the first event {got['startup']:.2f} s"
                )
                print(f"  {LABELS[contender]:<22} {rate / 1e3:8.0f} k events/s  ({note})")
                results.append((keys, contender, rate, timed_out))
        rss = None
        if args.rss_keys:
            topic = f"bench-windowed-rss-{uuid.uuid4().hex[:6]}"
            preload(bootstrap, topic, args.rss_keys, args.rss_keys, timedelta(seconds=50))
            rss = child("columnar", bootstrap, topic, args.rss_keys, args.timeout)["rss_mb"]
    report(results, rss, args)


def report(
    results: list[tuple[int, str, float, bool]], rss: float | None, args: argparse.Namespace
) -> None:
    print()
    print(f"| keys | contender | k events/s | columnar is |  ({args.events:,} events, 1 worker)")
    print("|---:|---|---:|---:|")
    ours = {keys: rate for keys, who, rate, _ in results if who == "columnar"}
    for keys, who, rate, timed_out in results:
        bound = "< " if timed_out else ""
        more = "> " if timed_out else ""
        if who == "columnar":
            ratio = "target >= 400 k/s: " + ("met" if rate >= 400_000 else "NOT met")
        elif who == "ceiling" and keys in ours:
            ratio = f"{ours[keys] / rate:.0%} of the ceiling"
        elif keys in ours:
            verdict = "met" if ours[keys] / rate >= 5 else "NOT met"
            ratio = f"{more}{ours[keys] / rate:.1f}x (target 5x: {verdict})"
        else:
            ratio = ""
        print(f"| {keys:,} | {LABELS[who]} | {bound}{rate / 1e3:.0f} | {ratio} |")
    if rss is not None:
        verdict = "met" if rss < 1536 else "NOT met"
        print(f"\npeak RSS, {args.rss_keys:,} distinct keys in one open window: {rss:.0f} MB "
              f"(target < 1536 MB: {verdict})")  # fmt: skip


if __name__ == "__main__":
    main()
