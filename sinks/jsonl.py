"""JSON-lines output to a text stream or file: the simplest sink a person can read or pipe."""

from __future__ import annotations

import sys
from typing import Any, TextIO

import msgspec
import pyarrow as pa
from bytewax.outputs import DynamicSink, StatelessSinkPartition

_encoder = msgspec.json.Encoder()


class _JsonLinesPartition(StatelessSinkPartition[Any]):
    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write_batch(self, items: list[Any]) -> None:
        rows: list[Any] = []
        for item in items:
            if isinstance(item, pa.Table | pa.RecordBatch):
                rows += item.to_pylist()
            else:
                rows.append(item)
        self._stream.write("".join(_encoder.encode(row).decode() + "\n" for row in rows))
        self._stream.flush()


class JsonLinesSink(DynamicSink[Any]):
    """Writes each item (msgspec Struct, dict, ...) as one JSON line, and each row of an
    Arrow table as one; bytes become base64."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _JsonLinesPartition:
        return _JsonLinesPartition(self._stream or sys.stdout)
