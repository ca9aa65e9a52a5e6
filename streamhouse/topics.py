"""`streamhouse topics create`: every topic of the contract, idempotently."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from models.topics import all_topics


@dataclass(frozen=True)
class TopicResult:
    name: str
    outcome: str  # "created" | "exists"


def create_topics(
    config: Mapping[str, object],
    partitions: int,
    replication_factor: int,
    topic_prefix: str = "",
    timeout_s: float = 30.0,
) -> list[TopicResult]:
    """Create missing topics; existing ones are left as they are. Compacted topics get
    `cleanup.policy=compact`. Raises KafkaException on any other failure."""
    admin = AdminClient(dict(config))
    wanted = [
        NewTopic(
            topic_prefix + spec.name,
            num_partitions=partitions,
            replication_factor=replication_factor,
            config={"cleanup.policy": "compact"} if spec.compacted else {},
        )
        for spec in all_topics()
    ]
    results = []
    for name, future in admin.create_topics(wanted, request_timeout=timeout_s).items():
        try:
            future.result(timeout=timeout_s)
            results.append(TopicResult(name, "created"))
        except KafkaException as e:
            if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
            results.append(TopicResult(name, "exists"))
    return sorted(results, key=lambda r: r.name)
