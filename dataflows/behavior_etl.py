"""behavior_etl: three topics merged into one record stream, a per-user summary and
recommendations.

    user-events ─┐
    page-views  ─┼─► decode, normalise ─┬─► dead letters ─► lake dead_letters, <topic>.dlq
    purchases   ─┘                      └─► in event-time order (held until the watermark)
                                             ─┬─► lake behavior_records (partitioned by date)
                                              ├─► per-user summary ─► lake user_summary
                                              │     (change log; user_summary_latest)
                                              ├─► recommendations ─► lake user_recommendations
                                              └─► late events ─► lake late_events

The summary and the recommendations are running state fed by three topics; they
are updated in event-time order so a replay gives the same versions and rows
(dataflows/ordering.py). Run it: `streamhouse run behavior_etl`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import bytewax.operators as op
import polars as pl
import pyarrow as pa
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source

from dataflows.decode import TopicDecoder
from dataflows.entry import flow_attribute
from dataflows.inputs import topic_partitions
from dataflows.messages import DeadLetter, MessageBatch
from dataflows.metrics import observed_batches
from dataflows.ordering import in_event_time_order
from dataflows.outputs import Outputs
from dataflows.windowing import Clock, Frame
from models.behavior import Login, PageView, ProfileUpdate, Purchase, Signup
from models.frames import ROW
from models.recommend import Recommender
from models.topics import PAGE_VIEWS, PURCHASES, USER_EVENTS
from warehouse.tables import BEHAVIOR_RECORDS, USER_RECOMMENDATIONS, USER_SUMMARY

FLOW = "behavior_etl"
INPUT_TOPICS = (USER_EVENTS, PAGE_VIEWS, PURCHASES)
PRODUCT_PAGE = "/product/"

RECORD_COLUMNS = {
    ROW: pl.Int64(),
    "event_id": pl.String(),
    "user_id": pl.String(),
    "kind": pl.String(),
    "ts": pl.Datetime("us", "UTC"),
    "source_topic": pl.String(),
    "url": pl.String(),
    "item_ids": pl.List(pl.String()),
    "amount": pl.Float64(),
    "currency": pl.String(),
    "detail": pl.String(),
    "source_partition": pl.Int32(),
    "source_offset": pl.Int64(),
}


def normalise(event: Any) -> dict[str, Any]:
    """One event of any of the three topics -> the fields of a behavior record."""
    record: dict[str, Any] = {"url": None, "item_ids": None, "amount": None, "currency": None}
    record["detail"] = None
    if isinstance(event, PageView):
        record["url"] = event.url
        if event.url.startswith(PRODUCT_PAGE):
            record["item_ids"] = [event.url[len(PRODUCT_PAGE) :]]
    elif isinstance(event, Purchase):
        record["item_ids"] = [item.sku for item in event.items]
        record["amount"], record["currency"] = event.amount, event.currency
        record["detail"] = event.order_id
    elif isinstance(event, Signup):
        record["detail"] = f"country={event.country} channel={event.channel}"
    elif isinstance(event, Login):
        record["detail"] = f"method={event.method} success={str(event.success).lower()}"
    elif isinstance(event, ProfileUpdate):
        record["detail"] = "fields=" + ",".join(event.fields)
    return record


class BehaviorDecoder:
    """A batch of one of the three topics -> one Frame of normalised records + dead letters."""

    def __init__(self) -> None:
        self._decoder = TopicDecoder(FLOW, INPUT_TOPICS)

    def __call__(self, batch: MessageBatch) -> list[Frame | DeadLetter]:
        if batch.topic not in INPUT_TOPICS or not len(batch):
            return []
        out: list[Frame | DeadLetter] = []
        rows = []
        for index, (message, result) in enumerate(self._decoder.pairs(batch)):
            if isinstance(result, DeadLetter):
                out.append(result)
                continue
            rows.append(
                {
                    ROW: index,
                    "event_id": result.event_id,
                    "user_id": result.user_id,
                    "kind": result.__struct_config__.tag,
                    "ts": result.ts,
                    "source_topic": message.topic,
                    **normalise(result),
                    "source_partition": message.partition,
                    "source_offset": message.offset,
                }
            )
        out.append(Frame(batch.source, pl.DataFrame(rows, schema=RECORD_COLUMNS)))
        return out


def process(model: Recommender | None, events: pl.DataFrame) -> tuple[Recommender, list]:
    """Released events, in order -> records, summary changes, recommendation changes."""
    model = model or Recommender()
    summaries, recommendations = [], []
    for e in events.iter_rows(named=True):
        summary, recommendation = model.apply(
            e["user_id"], e["kind"], e["ts"], e["item_ids"] or [], e["amount"], e["currency"]
        )
        summaries.append(summary)
        if recommendation is not None:
            recommendations.append(recommendation)
    records = events.rename({"event_id": "record_id"}).select(BEHAVIOR_RECORDS.schema.names)
    out = [("behavior_records", records.to_arrow().cast(BEHAVIOR_RECORDS.schema))]
    out.append(("user_summary", pa.Table.from_pylist(summaries, schema=USER_SUMMARY.schema)))
    if recommendations:
        table = pa.Table.from_pylist(recommendations, schema=USER_RECOMMENDATIONS.schema)
        out.append(("user_recommendations", table))
    return model, out


def named(name: str):
    return lambda kv: kv[0] == name


def build(
    source: Source[MessageBatch],
    outputs: Outputs,
    clock: Clock | None = None,
    sources: Sequence[str] | None = None,
) -> Dataflow:
    flow = Dataflow(FLOW)
    batches = op.input("behavior_topics", flow, source)
    decoded = op.flat_map(
        "decode_normalise", batches, observed_batches(FLOW, "decode_normalise", BehaviorDecoder())
    )
    frames = op.branch("split_dead_letters", decoded, lambda item: isinstance(item, Frame))
    outputs.dead_letters(frames.falses, writer=FLOW)
    ordered = in_event_time_order(
        "event_time_order",
        frames.trues,
        FLOW,
        ["user_id"],
        process,
        clock or Clock(),
        topic_partitions(source, INPUT_TOPICS) if sources is None else sources,
    )
    keyed = op.key_on("by_output", ordered, lambda named_table: named_table[0])
    tables = op.map_value("table", keyed, lambda named_table: named_table[1])
    for table in (BEHAVIOR_RECORDS, USER_SUMMARY, USER_RECOMMENDATIONS):
        rows = op.filter(f"{table.name}_only", tables, named(table.name))
        outputs.to_table(table.name, rows, table, writer=FLOW)
    outputs.late_events(op.filter("late_only", tables, named("late_events")), FLOW)
    return flow


def flow_from_env() -> Dataflow:
    from dataflows.runtime import clock_from_env, outputs_from_env, source_from_env
    from streamhouse.config import from_env

    settings = from_env()
    return build(
        source_from_env(settings, INPUT_TOPICS),
        outputs_from_env(settings),
        clock_from_env(settings),
    )


__getattr__ = flow_attribute(flow_from_env)
"""`python -m bytewax.run dataflows.behavior_etl:flow` builds the flow from the environment."""
