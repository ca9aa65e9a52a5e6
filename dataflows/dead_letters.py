"""Where every flow's dead letters go: the lake table `dead_letters` and `<topic>.dlq`.

dead letters ─► count ─┬─► lake: dead_letters
                       └─► Kafka: <topic>.dlq (raw bytes, key and headers kept,
                                  the reason in headers)
"""

from __future__ import annotations

from datetime import UTC, datetime

import bytewax.operators as op
from bytewax.dataflow import Stream
from bytewax.outputs import Sink
from opentelemetry import metrics

from dataflows.messages import DeadLetter
from models.base import derived_id
from models.topics import dlq
from sinks.kafka import KafkaMessage

_dead_letters = metrics.get_meter("streamhouse").create_counter(
    "streamhouse.dead_letters",
    unit="{message}",
    description="Input messages that could not be decoded or validated, per flow and topic",
)


def dead_letter_row(letter: DeadLetter) -> dict[str, object]:
    """The lake row. Its id is the message's position, so a replay writes the same row."""
    return {
        "dead_letter_id": derived_id(letter.flow, letter.topic, letter.partition, letter.offset),
        "flow": letter.flow,
        "topic": letter.topic,
        "partition": letter.partition,
        "offset": letter.offset,
        "raw": letter.raw,
        "reason": letter.reason,
        "seen_at": datetime.fromtimestamp(letter.timestamp_ms / 1000, UTC),
    }


def dead_letter_message(letter: DeadLetter) -> KafkaMessage:
    """The original bytes, key and headers, plus where they came from and why they failed."""
    return KafkaMessage(
        topic=dlq(letter.topic),
        key=letter.key,
        value=letter.raw,
        headers=(
            *letter.headers,
            ("dlq.reason", letter.reason.encode()),
            ("dlq.flow", letter.flow.encode()),
            ("dlq.source", f"{letter.topic}/{letter.partition}/{letter.offset}".encode()),
        ),
    )


def route_dead_letters(
    letters: Stream[DeadLetter],
    lake: Sink[tuple[str, object]] | None,
    kafka: Sink[tuple[str, KafkaMessage]] | None,
) -> None:
    """Send a flow's dead letters to the lake and/or Kafka; at least one must be given."""
    if lake is None and kafka is None:
        raise ValueError("dead letters need somewhere to go: a lake sink, a Kafka sink or both")
    op.inspect("count_dead_letters", letters, _count)
    keyed = op.key_on("dead_letter_key", letters, lambda d: f"{d.topic}/{d.partition}")
    if lake is not None:
        op.output("dead_letters_lake", op.map("dead_letter_row", keyed, _row), lake)
    if kafka is not None:
        op.output("dead_letters_kafka", op.map("dead_letter_msg", keyed, _message), kafka)


def _count(_step: str, letter: DeadLetter) -> None:
    _dead_letters.add(1, {"flow": letter.flow, "topic": letter.topic})


def _row(item: tuple[str, DeadLetter]) -> tuple[str, dict[str, object]]:
    return item[0], dead_letter_row(item[1])


def _message(item: tuple[str, DeadLetter]) -> tuple[str, KafkaMessage]:
    return item[0], dead_letter_message(item[1])
