"""land_events: every valid input event, as landed, in the lake table `events`.

    all input topics ─► decode ─┬─► dead letters ─► lake dead_letters, <topic>.dlq
                                └─► one Arrow table per batch ─► lake events

The raw landing zone: SQL over every event before (or instead of) a dedicated
dataflow, and the reference the windowed tables are checked against. The
payload is the event's canonical JSON; DuckDB reads fields with `->>`.

Run it: `streamhouse run land_events` or `python -m bytewax.run dataflows.land_events:flow`.
"""

from __future__ import annotations

from collections.abc import Iterator

import bytewax.operators as op
import pyarrow as pa
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source

from dataflows.decode import TopicDecoder
from dataflows.entry import flow_attribute, from_env
from dataflows.messages import DeadLetter, MessageBatch
from dataflows.metrics import observed_batches
from dataflows.outputs import Outputs
from models.codec import encode
from models.topics import INPUT_TOPICS
from warehouse.tables import EVENTS

FLOW = "land_events"


class Lander:
    """One batch of messages -> one Arrow table of its valid events, plus its dead letters."""

    def __init__(self) -> None:
        self._decoder = TopicDecoder(FLOW, INPUT_TOPICS)

    def __call__(self, batch: MessageBatch) -> Iterator[pa.Table | DeadLetter]:
        columns: dict[str, list[object]] = {name: [] for name in EVENTS.schema.names}
        for message, result in self._decoder.pairs(batch):
            if isinstance(result, DeadLetter):
                yield result
                continue
            columns["event_id"].append(result.event_id)
            columns["topic"].append(message.topic)
            columns["type"].append(type(result).__struct_config__.tag)
            columns["key"].append(result.key())
            columns["ts"].append(result.ts)
            columns["payload"].append(encode(result).decode())
            columns["source_partition"].append(message.partition)
            columns["source_offset"].append(message.offset)
        if columns["event_id"]:
            yield pa.Table.from_pydict(columns, schema=EVENTS.schema)


def build(source: Source[MessageBatch], outputs: Outputs) -> Dataflow:
    flow = Dataflow(FLOW)
    batches = op.input("input_topics", flow, source)
    landed = op.flat_map("decode", batches, observed_batches(FLOW, "decode", Lander()))
    split = op.branch("split_dead_letters", landed, lambda x: isinstance(x, pa.Table))
    outputs.dead_letters(split.falses, writer=FLOW)
    outputs.to_table("events", op.key_on("key", split.trues, lambda _t: FLOW), EVENTS, FLOW)
    return flow


flow_from_env = from_env(build, INPUT_TOPICS)

__getattr__ = flow_attribute(flow_from_env)
"""`python -m bytewax.run dataflows.land_events:flow` builds the flow from the environment."""
