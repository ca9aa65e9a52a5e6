"""The lake: exactly-once effect across crashes, schema checks, compaction, concurrent readers."""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path

import bytewax.operators as op
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSource, run_main
from helpers import CrashingSource, frozen_now

from dataflows import land_events, order_stats
from dataflows.messages import MessageBatch, RawMessage
from dataflows.outputs import Outputs
from dataflows.windowing import Clock
from models.simulator import SimConfig, Simulator
from sinks.lake import LakeSink
from warehouse.compaction import compact
from warehouse.lake import Lake, LakeError, writer_file_name
from warehouse.query import Warehouse
from warehouse.tables import EVENTS, UnknownTableError

CONFIG = SimConfig(
    seed=21, events_per_s=200, duration_s=180, late_fraction=0.02, malformed_fraction=0.01
)


def simulated_batches(config: SimConfig, size: int) -> list[MessageBatch]:
    start_ms = int(config.start.timestamp() * 1000)
    offsets: dict[str, int] = {}
    messages = []
    for r in Simulator(config).records():
        offset = offsets.get(r.topic, 0)
        offsets[r.topic] = offset + 1
        messages.append(
            RawMessage(
                r.topic, 0, offset, r.key, r.value, r.headers, start_ms + int(r.emit_s * 1000)
            )
        )
    it = iter(messages)
    chunks = iter(lambda: list(islice(it, size)), [])
    return [batch for chunk in chunks for batch in MessageBatch.split(chunk)]


def table_rows(lake: Lake, name: str, drop: tuple[str, ...] = ()) -> list[tuple]:
    with Warehouse(lake) as wh:
        data = wh.sql(f'SELECT * FROM "{name}"')
    rows = [tuple(v for k, v in row.items() if k not in drop) for row in data.to_pylist()]
    return sorted(rows, key=repr)


def run_with_crashes(build, batches, lake_dir: Path, recovery: Path, crash_at: set[int]) -> int:
    """Run until the input is exhausted, crashing at each index in `crash_at` once."""
    source = CrashingSource(batches, crash_at)
    recovery.mkdir()
    init_db_dir(recovery, 1)
    runs = 0
    while True:
        runs += 1
        run_main(
            build(source, Outputs(lake=Lake(lake_dir))),
            epoch_interval=timedelta(0),
            recovery_config=RecoveryConfig(str(recovery)),
        )
        if source.crashed == source.crash_at:
            # One more run finishes the input after the last crash.
            run_main(
                build(source, Outputs(lake=Lake(lake_dir))),
                epoch_interval=timedelta(0),
                recovery_config=RecoveryConfig(str(recovery)),
            )
            return runs + 1


@pytest.mark.parametrize(
    ("flow", "tables"),
    [
        ("land_events", ("events", "dead_letters")),
        ("order_stats", ("order_stats_minute", "late_events", "dead_letters")),
    ],
)
def test_crashes_and_restarts_leave_the_lake_as_an_uninterrupted_run(
    tmp_path: Path, flow: str, tables: tuple[str, ...]
) -> None:
    batches = simulated_batches(CONFIG, 500)
    builders = {
        "land_events": land_events.build,
        "order_stats": lambda s, o: order_stats.build(
            s, o, Clock(timedelta(seconds=CONFIG.allowed_lateness_s), now=frozen_now)
        ),
    }
    build = builders[flow]
    clean = tmp_path / "clean"
    run_main(build(CrashingSource(batches, set()), Outputs(lake=Lake(clean))))
    crashed = tmp_path / "crashed"
    crash_at = {1, 2, 9, len(batches) // 2, len(batches) - 1}
    runs = run_with_crashes(build, batches, crashed, tmp_path / "recovery", crash_at)
    assert runs == len(crash_at) + 1
    compared = 0
    for name in tables:
        expected = table_rows(Lake(clean), name)
        assert expected, name
        assert table_rows(Lake(crashed), name) == expected, name
        compared += len(expected)
    assert compared >= 30


def test_files_written_after_the_last_snapshot_are_removed_on_resume(tmp_path: Path) -> None:
    lake, recovery = Lake(tmp_path / "lake"), tmp_path / "recovery"
    recovery.mkdir()
    init_db_dir(recovery, 1)
    rows = [
        {"event_id": f"e{i}", "topic": "t", "type": "x", "key": "k",
         "ts": datetime(2026, 1, 5, tzinfo=UTC) + timedelta(hours=5 * i), "payload": "{}",
         "source_partition": 0, "source_offset": i}
        for i in range(12)
    ]  # fmt: skip

    def flow() -> Dataflow:
        f = Dataflow("w")
        s = op.input("in", f, TestingSource(rows, batch_size=4))
        op.output("out", op.key_on("k", s, lambda _: "k"), LakeSink(lake, EVENTS, "w"))
        return f

    run_main(flow(), epoch_interval=timedelta(0), recovery_config=RecoveryConfig(str(recovery)))
    committed = lake.writer_files("events", "w", "p0")
    next_seq = max(f.seq for f in committed) + 1
    # A crash after writing a file but before the snapshot that covers it leaves this:
    stray = lake.write(
        EVENTS,
        pa.Table.from_pylist(rows[:2], schema=EVENTS.schema),
        writer_file_name("w", "p0", next_seq),
    )
    half = stray[0].with_name(f".{stray[0].name}.123.tmp")
    half.write_bytes(b"PAR1 half a file")
    run_main(flow(), epoch_interval=timedelta(0), recovery_config=RecoveryConfig(str(recovery)))
    assert not any(p.exists() for p in stray) and not half.exists()
    assert sorted(r[0] for r in table_rows(lake, "events")) == sorted(r["event_id"] for r in rows)


def test_a_batch_that_does_not_fit_its_table_is_a_loud_error(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    good = pa.Table.from_pylist([], schema=EVENTS.schema)
    wrong_type = good.set_column(7, "source_offset", pa.array([], pa.string()))
    missing = good.drop_columns(["payload"])
    for batch, message in (
        (wrong_type, "column source_offset is string"),
        (missing, "missing column payload"),
    ):
        sink_part = LakeSink(lake, EVENTS, "w").build_part("s", "p0", None)
        with pytest.raises(LakeError, match=message):
            sink_part.write_batch([batch])
    sink_part = LakeSink(lake, EVENTS, "w").build_part("s", "p0", None)
    sink_part.write_batch(
        [
            {
                "event_id": "e",
                "topic": "t",
                "type": "x",
                "key": "k",
                "ts": "not a time",
                "payload": "{}",
                "source_partition": 0,
                "source_offset": 1,
            }
        ]
    )
    with pytest.raises(LakeError, match="rows do not fit table 'events'"):
        sink_part.snapshot()


def test_unknown_tables_and_paths_outside_the_lake_are_clear_errors(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    for name in ("nope", "../etc", "/etc/passwd"):
        with pytest.raises(UnknownTableError, match="unknown table"):
            lake.table_dir(name)
    with Warehouse(lake) as wh:
        with pytest.raises(Exception, match="nope"):
            wh.sql("SELECT * FROM nope")
        with pytest.raises(Exception, match="Permission Error"):
            wh.sql("SELECT * FROM read_csv('/etc/passwd')")
        with pytest.raises(Exception, match="lock"):
            wh.sql("SET enable_external_access = true")


def test_an_unwritable_lake_stops_the_flow_and_a_restart_loses_nothing(tmp_path: Path) -> None:
    batches = simulated_batches(SimConfig(seed=3, events_per_s=100, duration_s=60), 400)
    lake_dir, recovery = tmp_path / "lake", tmp_path / "recovery"
    recovery.mkdir()
    init_db_dir(recovery, 1)
    lake_dir.mkdir()
    (lake_dir / "events").write_text("a file where the table's folder should be")
    source = CrashingSource(batches, set())
    with pytest.raises(Exception) as failure:
        run_main(
            land_events.build(source, Outputs(lake=Lake(lake_dir))),
            epoch_interval=timedelta(0),
            recovery_config=RecoveryConfig(str(recovery)),
        )
    assert re.search(r"cannot write .*events.*Not a directory", causes(failure.value))
    (lake_dir / "events").unlink()  # the cause is fixed; the flow is restarted
    run_main(
        land_events.build(source, Outputs(lake=Lake(lake_dir))),
        epoch_interval=timedelta(0),
        recovery_config=RecoveryConfig(str(recovery)),
    )
    clean = tmp_path / "clean"
    run_main(land_events.build(CrashingSource(batches, set()), Outputs(lake=Lake(clean))))
    assert table_rows(Lake(lake_dir), "events") == table_rows(Lake(clean), "events")


def causes(error: BaseException | None) -> str:
    """bytewax wraps a step's exception; the reason is down the cause chain."""
    messages = []
    while error is not None:
        messages.append(str(error))
        error = error.__cause__ or error.__context__
    return " <- ".join(messages)


def _write_small_files(lake: Lake, n: int, rows_per_file: int, writer: str = "w") -> None:
    for seq in range(n):
        rows = [
            {"event_id": f"{writer}-{seq}-{i}", "topic": "t", "type": f"x{i % 3}", "key": f"k{i % 7}",
             "ts": datetime(2026, 1, 5, tzinfo=UTC) + timedelta(hours=seq * 3 + i % 2),
             "payload": f'{{"v": {i}}}', "source_partition": 0, "source_offset": seq * 1000 + i}
            for i in range(rows_per_file)
        ]  # fmt: skip
        lake.write(
            EVENTS,
            pa.Table.from_pylist(rows, schema=EVENTS.schema),
            writer_file_name(writer, "p0", seq),
        )


QUERIES = (
    "SELECT count(*), count(DISTINCT event_id), sum(source_offset) FROM events",
    "SELECT type, key, count(*), min(ts), max(ts) FROM events GROUP BY ALL ORDER BY ALL",
    "SELECT * FROM events ORDER BY event_id",
)


def test_compaction_leaves_every_query_result_unchanged(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    _write_small_files(lake, 20, 50)
    now = time.time()
    lake.record_snapshot("events", "w", "p0", 15, now - 3600)  # files 0-14 long settled
    lake.record_snapshot("events", "w", "p0", 20, now)  # 15-19 too recent to touch
    with Warehouse(lake) as wh:
        before = [wh.sql(q) for q in QUERIES]
    files_before = len(lake.data_files("events"))

    report = compact(lake, "events", settle_s=600, grace_s=300, now=now)
    assert report.files_merged == 15 and report.skipped_unsettled == 5
    assert len(lake.data_files("events")) < files_before
    unsettled = {f.seq for f in lake.writer_files("events", "w", "p0") if f.seq >= 15}
    assert unsettled == {15, 16, 17, 18, 19}
    with Warehouse(lake) as wh:
        assert [wh.sql(q) for q in QUERIES] == before

    later = compact(lake, "events", settle_s=600, grace_s=300, now=now + 301)
    assert later.sources_deleted == 15  # superseded sources go after the grace period
    with Warehouse(lake) as wh:
        assert [wh.sql(q) for q in QUERIES] == before
    journals = lake.table_dir("events") / "_compactions"
    first = set(journals.glob("*.json"))
    # Later still: the first journals go, and files 15-19 have settled, so they are
    # merged with the compacted file of their partition.
    last = compact(lake, "events", settle_s=600, grace_s=300, now=now + 602)
    assert first and not first & set(journals.glob("*.json"))
    assert last.files_merged >= 5
    with Warehouse(lake) as wh:
        assert [wh.sql(q) for q in QUERIES] == before


def test_readers_never_fail_or_see_partial_data_while_writers_and_compaction_run(
    tmp_path: Path,
) -> None:
    lake = Lake(tmp_path)
    rows_per_file, stop = 40, threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            seq = 0
            while not stop.is_set() and seq < 400:
                _write_one(lake, seq, rows_per_file)
                lake.record_snapshot("events", "w", "p0", seq + 1, time.time() - 3600)
                seq += 1
        except BaseException as e:
            errors.append(e)

    def compactor() -> None:
        try:
            while not stop.is_set():
                # grace must exceed the longest read; a reader here takes ~10-50 ms.
                compact(lake, "events", settle_s=600, grace_s=0.5, min_files=3)
                time.sleep(0.01)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=writer), threading.Thread(target=compactor)]
    for t in threads:
        t.start()
    seen, deadline = [], time.monotonic() + 8
    try:
        while time.monotonic() < deadline and not errors:
            with Warehouse(lake) as wh:
                count, distinct = (
                    wh.sql("SELECT count(*), count(DISTINCT event_id) FROM events")
                    .to_pylist()[0]
                    .values()
                )
            assert count == distinct, "a reader saw the same row twice"
            assert count % rows_per_file == 0, "a reader saw part of a file"
            seen.append(count)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors
    assert len(seen) > 10 and seen[-1] > seen[0]
    assert any(f.name.startswith("compact-") for f in lake.data_files("events"))


def _write_one(lake: Lake, seq: int, rows_per_file: int) -> None:
    rows = [
        {"event_id": f"{seq}-{i}", "topic": "t", "type": "x", "key": "k",
         "ts": datetime(2026, 1, 5, tzinfo=UTC), "payload": "{}", "source_partition": 0,
         "source_offset": seq * rows_per_file + i}
        for i in range(rows_per_file)
    ]  # fmt: skip
    lake.write(
        EVENTS, pa.Table.from_pylist(rows, schema=EVENTS.schema), writer_file_name("w", "p0", seq)
    )


def test_written_files_are_readable_parquet_with_the_table_schema(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    _write_small_files(lake, 2, 10)
    for f in lake.data_files("events"):
        assert pq.read_schema(f).equals(EVENTS.schema, check_metadata=False)
        assert f.parent.name.startswith("date=2026-01-0")
