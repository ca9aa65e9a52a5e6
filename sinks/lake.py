"""A Bytewax sink that lands rows or Arrow batches in one lake table, with an exactly-once effect.

Items are `(key, value)`; the key picks the sink partition, the value is an
Arrow table or record batch, a mapping, or a msgspec Struct. A partition
buffers what an epoch writes and, when Bytewax asks for its snapshot at the
epoch's end, writes the buffer as one file per date and returns the next file
number as its state. Resuming from a snapshot, it first deletes its files
numbered at or past that state: the input replays from the same snapshot and
writes those rows again. So a crash at any point leaves the lake as an
uninterrupted run would, with neither loss nor duplicates.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition

from sinks.telemetry import sink_write
from warehouse.lake import Lake, check_writer_name, conform, writer_file_name
from warehouse.tables import Table, table

LakeValue = pa.Table | pa.RecordBatch | Mapping[str, Any] | msgspec.Struct

MAX_BUFFER_ROWS = 1_000_000
"""A partition writes early when it holds this many rows, to bound memory in long epochs."""


def _as_row(value: Mapping[str, Any] | msgspec.Struct) -> Mapping[str, Any]:
    if isinstance(value, msgspec.Struct):
        return msgspec.structs.asdict(value)
    return value


class _LakePartition(StatefulSinkPartition[LakeValue, int]):
    def __init__(
        self, lake: Lake, tbl: Table, writer: str, part: str, next_seq: int, max_buffer_rows: int
    ) -> None:
        self._lake, self._table, self._writer, self._part = lake, tbl, writer, part
        self._next_seq = next_seq
        self._max = max_buffer_rows
        self._batches: list[pa.Table] = []
        self._rows: list[Mapping[str, Any]] = []
        self._buffered = 0

    def write_batch(self, values: list[LakeValue]) -> None:
        for value in values:
            if isinstance(value, pa.Table | pa.RecordBatch):
                batch = conform(self._table, value)  # fail at the step that got the bad batch
                self._batches.append(batch)
                self._buffered += batch.num_rows
            else:
                self._rows.append(_as_row(value))
                self._buffered += 1
        if self._buffered >= self._max:
            self._flush()

    def _flush(self) -> None:
        if not self._buffered:
            return
        parts = list(self._batches)
        if self._rows:
            parts.append(conform(self._table, self._rows))
        data = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
        name = writer_file_name(self._writer, self._part, self._next_seq)
        with sink_write("lake", self._table.name, data.num_rows) as span:
            span.set_attribute("streamhouse.file", name)
            self._lake.write(self._table, data, name)
        self._next_seq += 1
        self._batches, self._rows, self._buffered = [], [], 0

    def snapshot(self) -> int:
        self._flush()
        self._lake.record_snapshot(
            self._table.name, self._writer, self._part, self._next_seq, time.time()
        )
        return self._next_seq

    def close(self) -> None:
        # Whatever an aborted epoch buffered is not written: it was not snapshotted,
        # so the input replays it after a restart.
        self._batches, self._rows, self._buffered = [], [], 0


class LakeSink(FixedPartitionedSink[LakeValue, int]):
    """Land a stream in lake table `table`. `writer` names the files (use the flow's name;
    two flows writing one table need different writers). `parts` sink partitions spread
    the writing over workers; keep it fixed for a recovery store's lifetime."""

    def __init__(
        self,
        lake: Lake | Path | str,
        tbl: Table | str,
        writer: str,
        parts: int = 1,
        max_buffer_rows: int = MAX_BUFFER_ROWS,
    ) -> None:
        self.lake = lake if isinstance(lake, Lake) else Lake(lake)
        self.table = tbl if isinstance(tbl, Table) else table(tbl)
        self.writer = check_writer_name(writer)
        self.parts = parts
        self.max_buffer_rows = max_buffer_rows

    def list_parts(self) -> list[str]:
        return [f"p{i}" for i in range(self.parts)]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _LakePartition:
        next_seq = resume_state or 0
        self.lake.remove_uncommitted(self.table.name, self.writer, for_part, next_seq)
        return _LakePartition(
            self.lake, self.table, self.writer, for_part, next_seq, self.max_buffer_rows
        )
