"""Where a dataflow's results go, decided once per run: the lake, Kafka, stdout, memory.

A flow module says *what* it emits (`to_table`, `to_topic`, `dead_letters`,
`late_events`); an `Outputs` says *where*. The same flow then runs in
production (lake + Kafka), in the demo (lake) and in tests (memory), unchanged.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import bytewax.operators as op
import msgspec
import pyarrow as pa
from bytewax.dataflow import Stream
from bytewax.testing import TestingSink

from dataflows.dead_letters import count_dead_letter, dead_letter_message, dead_letter_row
from dataflows.messages import DeadLetter
from dataflows.metrics import late_events, record_output
from models.alerts import Alert
from models.topics import ALERTS as ALERTS_TOPIC
from sinks.jsonl import JsonLinesSink
from sinks.kafka import KafkaMessage, KafkaSink
from sinks.lake import LakeSink
from sinks.webhook import WebhookConfig, WebhookSink
from warehouse.lake import Lake
from warehouse.tables import ALERTS, DEAD_LETTERS, LATE_EVENTS, Table


def alert_messages(alerts: pa.Table) -> list[KafkaMessage]:
    return [
        KafkaMessage(ALERTS_TOPIC, row["subject"].encode(), msgspec.json.encode(Alert(**row)))
        for row in alerts.to_pylist()
    ]


def _flow_of(stream: Stream[Any]) -> str:
    """The flow a stream belongs to: the first part of its id (`order_stats.decode.down`)."""
    return stream.stream_id.split(".", 1)[0]


@dataclass
class Outputs:
    lake: Lake | None = None
    kafka: Mapping[str, object] | None = None
    """Producer config; None sends nothing to Kafka (dead letters then go to the lake only)."""
    topic_prefix: str = ""
    stdout_tables: frozenset[str] = frozenset()
    """Tables whose rows are also printed as JSON lines (small result tables)."""
    captured: dict[str, list[Any]] | None = None
    """If set, every table's and topic's values are also kept here, by name (tests, demo)."""
    webhook: WebhookConfig | None = None
    """Where alert changes are also POSTed (sinks/webhook.py); None: nowhere."""
    lake_parts: int = 1
    """Sink partitions per lake table; more spread the writing over workers. Keep it fixed
    for the lifetime of a recovery store."""

    @staticmethod
    def _measure(
        step_id: str, stream: Stream[tuple[str, Any]], output: str, time_column: str | None
    ) -> None:
        """Count what leaves by this output, and how far its event time trails the clock."""
        op.inspect(
            f"{step_id}_metrics", stream, record_output(_flow_of(stream), output, time_column)
        )

    def _capture(self, step_id: str, stream: Stream[tuple[str, Any]], name: str) -> None:
        if self.captured is not None:
            values = op.map(f"{step_id}_values", stream, lambda kv: kv[1])
            op.output(f"{step_id}_memory", values, TestingSink(self.captured.setdefault(name, [])))

    def to_table(
        self, step_id: str, stream: Stream[tuple[str, Any]], table: Table, writer: str
    ) -> None:
        """Land keyed rows (structs, mappings or Arrow tables) in `table`."""
        self._measure(step_id, stream, table.name, table.partition_by)
        if self.lake is not None:
            op.output(
                f"{step_id}_lake", stream, LakeSink(self.lake, table, writer, self.lake_parts)
            )
        if table.name in self.stdout_tables:
            op.output(
                f"{step_id}_stdout",
                op.map(f"{step_id}_v", stream, lambda kv: kv[1]),
                JsonLinesSink(sys.stdout),
            )
        self._capture(step_id, stream, table.name)

    def to_topic(self, step_id: str, stream: Stream[tuple[str, KafkaMessage]], name: str) -> None:
        """Produce keyed messages (each names its topic); `name` labels them in `captured`."""
        self._measure(step_id, stream, name, None)
        if self.kafka is not None:
            op.output(
                f"{step_id}_kafka", stream, KafkaSink(self.kafka, topic_prefix=self.topic_prefix)
            )
        self._capture(step_id, stream, name)

    def dead_letters(self, stream: Stream[DeadLetter], writer: str) -> None:
        """Lake table `dead_letters` and, with Kafka, `<topic>.dlq`; counted either way."""
        op.inspect("count_dead_letters", stream, lambda _step, d: count_dead_letter(d))
        keyed = op.key_on("dead_letter_key", stream, lambda d: f"{d.topic}/{d.partition}")
        self.to_table(
            "dead_letters",
            op.map_value("dead_letter_row", keyed, dead_letter_row),
            DEAD_LETTERS,
            writer,
        )
        if self.kafka is not None:
            self.to_topic("dlq", op.map_value("dlq_message", keyed, dead_letter_message), "dlq")

    def alerts(self, stream: Stream[tuple[str, pa.Table]], writer: str) -> None:
        """Alert changes (models/alerts.py) to lake table `alerts`, Kafka topic `alerts`
        (keyed by subject, so one subject's changes stay in order) and the webhook."""
        self.to_table("alerts", stream, ALERTS, writer)
        messages = op.flat_map_value("alert_messages", stream, alert_messages)
        self.to_topic("alert_topic", messages, "alerts-topic")
        if self.webhook is not None:
            op.output("alert_webhook", stream, WebhookSink(self.webhook))

    def late_events(self, stream: Stream[tuple[str, pa.Table]], writer: str) -> None:
        """`late_events` rows (dataflows/windowing.py builds them)."""
        flow = _flow_of(stream)
        op.inspect(
            "count_late_events",
            stream,
            lambda _step, kv: late_events.add(kv[1].num_rows, {"flow": flow}),
        )
        self.to_table("late_events", stream, LATE_EVENTS, writer)
