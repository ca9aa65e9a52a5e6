"""Dead letters as they are kept: a lake row (`dead_letters`), a `<topic>.dlq` message, a count.

The `.dlq` message keeps the raw bytes, key and headers, and adds the reason and the
source position as headers, so it can be inspected or replayed as is. Where they go
is decided by `dataflows.outputs.Outputs.dead_letters`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from dataflows.messages import DeadLetter
from dataflows.metrics import dead_letters
from models.base import derived_id
from models.topics import dlq
from sinks.kafka import KafkaMessage


def dead_letter_row(letter: DeadLetter) -> dict[str, object]:
    """The lake row. Its id is the message's position, so a replay writes the same row."""
    return {
        "dead_letter_id": derived_id(letter.flow, letter.topic, letter.partition, letter.offset),
        "flow": letter.flow,
        "topic": letter.topic,
        "source_partition": letter.partition,
        "source_offset": letter.offset,
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


def count_dead_letter(letter: DeadLetter) -> None:
    """The `streamhouse.dead_letters` counter, by flow and source topic, for monitoring."""
    dead_letters.add(1, {"flow": letter.flow, "topic": letter.topic})
