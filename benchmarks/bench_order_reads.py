"""`GET /orders/{id}` latency with --orders orders in the lake's order_view, after compaction.

The lake is filled the way order_projection fills it: a change log of 1 to 4 versions
per order (created, paid, shipped, delivered), landed by `LakeSink` in a Bytewax flow
one file per epoch, then compacted (`streamhouse warehouse compact`: sorted by id,
small row groups). The API (`streamhouse api`, its own process, uvicorn) then serves
GETs of random known orders from a load generator in another process, at --rate
requests/s for --seconds; latency is from request sent to response read, over
keep-alive connections. Side by side, in the same run:
  API, compacted lake         the target: p99 < 50 ms
  API, before compaction      the same requests over the landed files (one per epoch)
  DuckDB lookup, in-process   OrderReader.order() without HTTP: the query's own cost

Usage: python benchmarks/bench_order_reads.py [--orders 1000000] [--rate 500] [--seconds 20]
No broker needed: GETs never touch Kafka.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pyarrow as pa
from loadgen import Target, percentiles, run_load, start_api
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
START = datetime(2026, 12, 1, tzinfo=UTC)
STATUSES = ("created", "paid", "shipped", "delivered")


def view_rows(order_ids: list[str], first: int) -> pa.Table:
    """The change-log rows of these orders: versions 1..k, k = 1 + i % 4, built column-wise."""
    from warehouse.tables import ORDER_VIEW

    n = len(order_ids)
    base = pl.DataFrame({"order_id": order_ids, "i": pl.int_range(first, first + n, eager=True)})
    rows = (
        base.with_columns(versions=pl.int_ranges(1, 2 + pl.col("i") % 4))
        .explode("versions")
        .rename({"versions": "version"})
        .with_columns(
            created_at=pl.lit(START) + pl.duration(seconds=pl.col("i") % 86_400),
            total=(pl.col("i") % 997 + 1).cast(pl.Float64),
        )
        .with_columns(
            updated_at=pl.col("created_at") + pl.duration(minutes=pl.col("version") - 1),
            status=pl.lit(pl.Series(STATUSES)).get(pl.col("version") - 1),
        )
    )
    history = pl.concat_list(
        pl.struct(
            status=pl.lit("created"),
            version=pl.lit(1, pl.Int64),
            at=pl.col("created_at"),
            event_id=pl.col("order_id") + "-1",
        )
    )
    frame = rows.select(
        "order_id",
        pl.col("version").cast(pl.Int64),
        "status",
        customer_id=pl.format("c-{}", pl.col("i") % 50_000),
        currency=pl.lit("EUR"),
        total="total",
        items=pl.concat_list(
            pl.struct(sku=pl.lit("p-00001"), qty=pl.lit(1, pl.Int64), unit_price="total")
        ),
        created_at="created_at",
        updated_at="updated_at",
        paid_amount=pl.when(pl.col("version") >= 2).then("total"),
        payment_method=pl.when(pl.col("version") >= 2).then(pl.lit("card")),
        carrier=pl.when(pl.col("version") >= 3).then(pl.lit("dhl")),
        cancel_reason=pl.lit(None, pl.String),
        history=history,
        last_event_id=pl.format("{}-{}", "order_id", "version"),
    )
    return frame.to_arrow().cast(ORDER_VIEW.schema)


def fill_lake(lake_dir: Path, orders: int, per_file: int) -> list[str]:
    """Land the change log through LakeSink in a Bytewax flow, one epoch per batch."""
    import bytewax.operators as op
    from bytewax.dataflow import Dataflow
    from bytewax.testing import TestingSource, run_main

    from sinks.lake import LakeSink
    from warehouse.lake import Lake
    from warehouse.tables import ORDER_VIEW

    rng = random.Random(3)
    ids = [f"o-{uuid.UUID(int=rng.getrandbits(128)).hex}" for _ in range(orders)]
    batches = [("all", view_rows(ids[i : i + per_file], i)) for i in range(0, orders, per_file)]
    flow = Dataflow("bench_fill")
    landed = op.input(
        "in", flow, TestingSource(tqdm(batches, desc="landing order_view", unit="file"))
    )
    op.output("lake", landed, LakeSink(Lake(lake_dir), ORDER_VIEW, "order_projection"))
    run_main(flow, epoch_interval=timedelta(0))
    return ids


def serve(lake_dir: Path) -> tuple[subprocess.Popen, str]:
    # No broker: GETs never touch Kafka (readiness would fail, so wait for /healthz).
    settings = {
        "STREAMHOUSE_LAKE_DIR": str(lake_dir),
        "STREAMHOUSE_BOOTSTRAP_SERVERS": "127.0.0.1:9",
    }
    return start_api(settings, ready="/healthz")


def measure_api(lake_dir: Path, ids: list[str], rate: float, seconds: float) -> dict[str, float]:
    proc, base = serve(lake_dir)
    try:
        rng = random.Random(11)
        requests = [Target("GET", f"/orders/{rng.choice(ids)}") for _ in range(int(rate * seconds))]
        run_load(base, requests[:200], rate=200, connections=8)  # warm-up
        result = run_load(base, requests, rate=rate, connections=32)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    bad = [s for s in result.statuses if s != 200]
    assert not bad, f"{len(bad)} GETs failed, e.g. status {bad[0]}"
    return {"achieved": result.rate, **percentiles(result.latencies)}


def measure_in_process(lake_dir: Path, ids: list[str], lookups: int) -> dict[str, float]:
    from streamhouse.api.reader import OrderReader
    from warehouse.lake import Lake

    reader = OrderReader(Lake(lake_dir))
    rng = random.Random(12)
    latencies = []
    for _ in range(lookups):
        order_id = rng.choice(ids)
        began = time.perf_counter()
        view = reader.order(order_id)
        latencies.append(time.perf_counter() - began)
        assert view is not None and view["order_id"] == order_id
    reader.close()
    return {"achieved": lookups / sum(latencies), **percentiles(latencies)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--per-file", type=int, default=10_000, help="orders per landed file")
    parser.add_argument("--rate", type=float, default=500.0, help="GETs per second offered")
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()

    from warehouse.compaction import compact
    from warehouse.lake import Lake

    with tempfile.TemporaryDirectory() as tmp:
        lake_dir = Path(tmp) / "lake"
        began = time.perf_counter()
        ids = fill_lake(lake_dir, args.orders, args.per_file)
        lake = Lake(lake_dir)
        files = len(lake.data_files("order_view"))
        print(
            f"landed {args.orders:,} orders in {files} files in {time.perf_counter() - began:.1f} s"
        )
        results = {
            "API, before compaction": measure_api(lake_dir, ids, args.rate, args.seconds / 2)
        }
        began = time.perf_counter()
        report = compact(lake, "order_view", settle_s=0, grace_s=0, now=time.time() + 1)
        print(
            f"compacted {report.files_merged} files into {len(lake.data_files('order_view'))} "
            f"({report.rows:,} rows) in {time.perf_counter() - began:.1f} s"
        )
        results["API, compacted lake"] = measure_api(lake_dir, ids, args.rate, args.seconds)
        results["DuckDB lookup, in-process"] = measure_in_process(lake_dir, ids, 2_000)
    print(
        f"\n| reader | req/s | p50 ms | p95 ms | p99 ms |  ({args.orders:,} orders, offered {args.rate:.0f}/s)"
    )
    print("|---|---:|---:|---:|---:|")
    for name, r in results.items():
        print(
            f"| {name} | {r['achieved']:.0f} | {r['p50']:.1f} | {r['p95']:.1f} | {r['p99']:.1f} |"
        )
    p99 = results["API, compacted lake"]["p99"]
    print(
        f"\nGET /orders/{{id}} p99 after compaction: {p99:.1f} ms (target < 50 ms: {'met' if p99 < 50 else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
