"""Lake sink throughput: narrow rows written from Arrow batches through a Bytewax flow, 1 worker.

Side by side, on the same in-memory batches:
  pyarrow write_table   the same rows written straight to one Parquet file (the ceiling:
                        no dataflow, no partitioning by date, no atomic rename)
  LakeSink              a Bytewax flow (1 worker) whose items are Arrow batches, landing
                        them in lake table `late_events` (6 narrow columns) by date,
                        one file per epoch, atomically, with the snapshot bookkeeping

Target: >= 1 M narrow rows/s for LakeSink.
Usage: python benchmarks/bench_lake_sink.py [--rows 5000000 --batch 100000]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import bytewax.operators as op
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource, run_main
from tqdm import tqdm

from sinks.lake import LakeSink
from warehouse.lake import PARQUET_OPTIONS, Lake
from warehouse.tables import LATE_EVENTS

START_US = 1_767_607_200_000_000  # 2026-01-05T10:00:00Z


def narrow_batch(first: int, n: int) -> pa.Table:
    """`late_events`-shaped rows: 6 narrow columns, two dates per batch boundary at most."""
    ids = pa.array(range(first, first + n), pa.int64())
    ts = pc.add(pc.multiply(ids, 20_000), START_US).cast(LATE_EVENTS.schema.field("ts").type)
    text = pc.cast(pc.bit_wise_and(ids, 4095), pa.string())
    return pa.table(
        {
            "late_id": pc.cast(ids, pa.string()),
            "flow": pa.repeat(pa.scalar("bench"), n).cast(pa.string()),
            "key": text,
            "event_id": text,
            "ts": ts,
            "window_start": ts,
        },
        schema=LATE_EVENTS.schema,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--batch", type=int, default=100_000)
    args = parser.parse_args()
    batches = [narrow_batch(i, min(args.batch, args.rows - i))
               for i in range(0, args.rows, args.batch)]  # fmt: skip
    rows = sum(b.num_rows for b in batches)
    work = Path(tempfile.mkdtemp(prefix="bench-lake-"))
    print(f"{rows:,} rows of 6 narrow columns in {len(batches)} Arrow batches; writing to {work}")
    try:
        began = time.perf_counter()
        pq.write_table(pa.concat_tables(batches), work / "ceiling.parquet", **PARQUET_OPTIONS)
        ceiling_s = time.perf_counter() - began

        lake = Lake(work / "lake")
        flow = Dataflow("bench_lake")
        stream = op.input("in", flow, TestingSource(batches))
        with tqdm(total=rows, unit="row", unit_scale=True, desc="LakeSink") as bar:
            counted = op.inspect("progress", stream, lambda _s, b: bar.update(b.num_rows))
            keyed = op.key_on("key", counted, lambda _b: "all")
            op.output("lake", keyed, LakeSink(lake, LATE_EVENTS, "bench"))
            began = time.perf_counter()
            run_main(flow, epoch_interval=timedelta(seconds=1))
            sink_s = time.perf_counter() - began
        files = lake.data_files(LATE_EVENTS.name)
        landed = sum(pq.read_metadata(f).num_rows for f in files)
        assert landed == rows, f"landed {landed} of {rows} rows"
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\n| {'writer':<38} | {'rows/s':>12} | {'seconds':>7} | vs ceiling |")
    print(f"|{'-' * 40}|{'-' * 14}|{'-' * 9}|------------|")
    for name, seconds in (("pyarrow write_table (ceiling)", ceiling_s),
                          (f"LakeSink, 1 worker ({len(files)} files)", sink_s)):  # fmt: skip
        print(
            f"| {name:<38} | {rows / seconds:>12,.0f} | {seconds:>7.2f} | {ceiling_s / seconds:>9.2f}x |"
        )
    verdict = "meets" if rows / sink_s >= 1_000_000 else "MISSES"
    print(f"\ntarget >= 1,000,000 rows/s: LakeSink {verdict} it ({rows / sink_s:,.0f} rows/s)")


if __name__ == "__main__":
    main()
