"""The reference side of the windowed flows' checks: the same simulated input decoded
message by message with the full msgspec schemas, loaded into DuckDB, and aggregated by
plain SQL under the same rules (lateness per source partition, ids counted once per
window). A flow is right when its rows equal these."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import duckdb
import msgspec
import pyarrow as pa

from dataflows import inputs
from dataflows.messages import MessageBatch, RawMessage
from models.codec import BatchDecoder
from models.simulator import SimConfig


def simulated_messages(config: SimConfig) -> list[RawMessage]:
    return list(inputs.simulated_messages(config))


def batches(messages: list[RawMessage], size: int) -> list[MessageBatch]:
    out: list[MessageBatch] = []
    for i in range(0, len(messages), size):
        out += MessageBatch.split(messages[i : i + size])
    return out


def decoded_events(messages: Iterable[RawMessage], topics: Iterable[str]) -> pa.Table:
    """Every valid event of `topics`, flat fields only, with `seq` (arrival order in its
    topic-partition) and `source` (`topic#partition`); and the count of dead letters."""
    wanted = set(topics)
    decoders = {t: BatchDecoder(t) for t in wanted}
    rows: list[dict[str, Any]] = []
    for m in messages:
        if m.topic not in wanted:
            continue
        try:
            event = decoders[m.topic].decode(m.value)
        except ValueError:
            continue
        row = {
            k: (v.value if hasattr(v, "value") and not isinstance(v, bytes) else v)
            for k, v in msgspec.structs.asdict(event).items()
            if isinstance(v, str | int | float | bool) or v is None or hasattr(v, "isoformat")
        }
        row["type"] = event.__struct_config__.tag
        row["seq"] = m.offset
        row["source"] = f"{m.topic}#{m.partition}"
        rows.append(row)
    names = list(dict.fromkeys(name for row in rows for name in row))
    return pa.table({name: [row.get(name) for row in rows] for name in names})


def dead_letter_count(messages: Iterable[RawMessage], topics: Iterable[str]) -> int:
    wanted = set(topics)
    decoders = {t: BatchDecoder(t) for t in wanted}
    dead = 0
    for m in messages:
        if m.topic in wanted:
            try:
                decoders[m.topic].decode(m.value)
            except ValueError:
                dead += 1
    return dead


def windowed_sql(length: timedelta, lateness: timedelta, where: str = "TRUE") -> str:
    """A CTE `windowed` over table `events`: each event's window, whether it came late
    (its window had ended before the largest earlier event time in its source minus the
    lateness), and whether it repeats an id already counted in its window."""
    length_us = length // timedelta(microseconds=1)
    lateness_us = lateness // timedelta(microseconds=1)
    return f"""
    WITH kept AS (SELECT *, epoch_us(ts) AS t FROM events WHERE {where}),
    ordered AS (
        SELECT *, max(t) OVER (PARTITION BY source ORDER BY seq
                               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before
        FROM kept
    ),
    marked AS (
        SELECT *, t // {length_us} AS win,
               coalesce((t // {length_us} + 1) * {length_us} <= before - {lateness_us}, FALSE)
                   AS late
        FROM ordered
    ),
    windowed AS (
        SELECT *, row_number() OVER (PARTITION BY win, event_id ORDER BY source, seq) > 1
                  AS duplicate
        FROM marked WHERE NOT late
    )
    """


def query(events: pa.Table, sql: str) -> list[dict[str, Any]]:
    con = duckdb.connect()
    con.register("events", events)
    con.execute("SET TimeZone = 'UTC'")
    return con.sql(sql).to_arrow_table().to_pylist()
