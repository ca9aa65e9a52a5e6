"""`streamhouse sql` over 10 M rows in the lake: how long a grouped aggregate takes to answer.

Builds a lake table `events` of --rows rows in files of 100 k rows (as the lake sink
leaves them), then times, side by side on the same files:
  streamhouse sql (CLI)    the whole command a user runs: process start, listing the
                           lake, creating the views, the query, printing the result
  Warehouse.sql            the same query through the library (no process start)
  polars scan_parquet      the same aggregate in polars over the same files (a peer)
for a grouped aggregate over plain columns, and one over fields of the JSON payload.

Target: a grouped aggregate over 10 M rows answers in under 2 s.
Usage: python benchmarks/bench_sql.py [--rows 10000000]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from warehouse.lake import Lake, writer_file_name
from warehouse.query import Warehouse
from warehouse.tables import EVENTS

FILE_ROWS = 100_000
START_US = 1_767_607_200_000_000
TYPES = pa.array(["user_action", "http_request", "page_view", "log", "order_created",
                  "order_paid", "purchase", "login", "business_metric", "signup"])  # fmt: skip

QUERIES = {
    "columns": (
        "SELECT type, count(*) AS n, count(DISTINCT key) AS keys, min(ts) AS first, "
        "max(ts) AS last "
        "FROM events GROUP BY type ORDER BY n DESC",
        lambda lf: lf.group_by("type").agg(
            pl.len().alias("n"), pl.col("key").n_unique().alias("keys"),
            pl.col("ts").min().alias("first"), pl.col("ts").max().alias("last"),
        ),
    ),
    "json payload": (
        "SELECT payload ->> '$.route' AS route, count(*) AS n, "
        "avg(CAST(payload ->> '$.duration_ms' AS DOUBLE)) AS mean_ms "
        "FROM events WHERE type = 'http_request' GROUP BY route ORDER BY n DESC",
        lambda lf: lf.filter(pl.col("type") == "http_request")
        .with_columns(pl.col("payload").str.json_decode(
            pl.Struct({"route": pl.String, "duration_ms": pl.Float64})).alias("p"))
        .group_by(pl.col("p").struct.field("route"))
        .agg(pl.len().alias("n"), pl.col("p").struct.field("duration_ms").mean()),
    ),
}  # fmt: skip


def file_rows(first: int, n: int) -> pa.Table:
    ids = pa.array(range(first, first + n), pa.int64())
    kinds = pc.take(TYPES, pc.bit_wise_and(ids, 7))
    text = pc.cast(ids, pa.string())
    route = pc.binary_join_element_wise("/r", pc.cast(pc.bit_wise_and(ids, 15), pa.string()), "")
    payload = pc.binary_join_element_wise(
        '{"route":"',
        route,
        '","duration_ms":',
        pc.cast(pc.bit_wise_and(ids, 1023), pa.string()),
        "}",
        "",
    )
    return pa.table(
        {
            "event_id": text,
            "topic": pa.repeat(pa.scalar("bench"), n).cast(pa.string()),
            "type": kinds,
            "key": pc.binary_join_element_wise(
                "u-", pc.cast(pc.bit_wise_and(pc.multiply(ids, 7919), 65535), pa.string()), ""),
            "ts": pc.add(pc.multiply(ids, 1000), START_US).cast(EVENTS.schema.field("ts").type),
            "payload": payload,
            "source_partition": pa.repeat(pa.scalar(0, pa.int32()), n),
            "source_offset": ids,
        },
        schema=EVENTS.schema,
    )  # fmt: skip


def timed(fn) -> float:
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-sql-"))
    lake = Lake(work)
    try:
        for i, first in enumerate(
            tqdm(range(0, args.rows, FILE_ROWS), desc="building lake", unit="file")
        ):
            lake.write(
                EVENTS,
                file_rows(first, min(FILE_ROWS, args.rows - first)),
                writer_file_name("bench", "p0", i),
            )
        files = lake.data_files("events")
        size = sum(f.stat().st_size for f in files) / 1e6
        print(f"lake: {args.rows:,} rows in {len(files)} files, {size:.0f} MB, at {work}")
        cli = str(Path(sys.executable).parent / "streamhouse")
        table = []
        for label, (sql, polars_query) in QUERIES.items():

            def run_cli(sql: str = sql) -> None:
                subprocess.run(
                    [cli, "sql", "--lake", str(work), sql], check=True, stdout=subprocess.DEVNULL
                )

            def run_lib(sql: str = sql) -> None:
                with Warehouse(lake) as wh:
                    wh.sql(sql)

            def run_polars(q=polars_query) -> None:
                q(pl.scan_parquet([str(f) for f in files])).collect()

            for name, fn in (("streamhouse sql (CLI)", run_cli), ("Warehouse.sql", run_lib),
                             ("polars scan_parquet", run_polars)):  # fmt: skip
                best = min(timed(fn) for _ in range(args.repeat))
                table.append((label, name, best))
                print(f"{label}: {name}: {best:.2f} s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\n| {'query':<13} | {'engine':<22} | {'seconds':>7} | {'M rows/s':>8} |")
    print(f"|{'-' * 15}|{'-' * 24}|{'-' * 9}|{'-' * 10}|")
    for label, name, seconds in table:
        print(f"| {label:<13} | {name:<22} | {seconds:>7.2f} | {args.rows / seconds / 1e6:>8.1f} |")
    cli_columns = next(s for q, n, s in table if q == "columns" and n.startswith("streamhouse"))
    verdict = "meets" if cli_columns < 2.0 else "MISSES"
    print(
        f"\ntarget < 2 s for a grouped aggregate over {args.rows:,} rows: "
        f"streamhouse sql {verdict} it ({cli_columns:.2f} s, whole command)"
    )


if __name__ == "__main__":
    main()
