"""The topics of the event contract: name, schema, and whether one record per key is kept.

Input topics carry the events services publish; output topics carry what the
dataflows derive. Every input topic has a dead-letter twin, `<topic>.dlq`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models.behavior import PageView, Purchase, UserAction, UserLifecycleEvent
from models.business import AnomalyModel, BusinessMetric
from models.http import HttpRequest
from models.logs import LogRecord
from models.orders import OrderCommandType, OrderEventType

ORDER_COMMANDS = "order-commands"
ORDER_EVENTS = "order-events"
USER_BEHAVIOR = "user-behavior"
USER_EVENTS = "user-events"
PAGE_VIEWS = "page-views"
PURCHASES = "purchases"
LOG_EVENTS = "log-events"
METRICS_EVENTS = "metrics-events"
BUSINESS_EVENTS = "business-events"
ANOMALY_MODELS = "anomaly-models"

ORDER_STATISTICS = "order-statistics"
ORDER_REJECTIONS = "order-rejections"
ALERTS = "alerts"

DLQ_SUFFIX = ".dlq"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    schema: Any
    """The event type or tagged union a message of this topic decodes to."""
    compacted: bool = False
    """Only the newest record per key matters (a live table, not a history)."""


INPUT_TOPICS: dict[str, TopicSpec] = {
    spec.name: spec
    for spec in (
        TopicSpec(ORDER_COMMANDS, OrderCommandType),
        TopicSpec(ORDER_EVENTS, OrderEventType),
        TopicSpec(USER_BEHAVIOR, UserAction),
        TopicSpec(USER_EVENTS, UserLifecycleEvent),
        TopicSpec(PAGE_VIEWS, PageView),
        TopicSpec(PURCHASES, Purchase),
        TopicSpec(LOG_EVENTS, LogRecord),
        TopicSpec(METRICS_EVENTS, HttpRequest),
        TopicSpec(BUSINESS_EVENTS, BusinessMetric),
        TopicSpec(ANOMALY_MODELS, AnomalyModel, compacted=True),
    )
}

OUTPUT_TOPICS: tuple[str, ...] = (ORDER_STATISTICS, ORDER_REJECTIONS, ALERTS)


def dlq(topic: str) -> str:
    """The dead-letter topic of an input topic."""
    return topic + DLQ_SUFFIX


def all_topics() -> list[TopicSpec]:
    """Every topic a deployment needs: inputs, their dead letters, and outputs."""
    specs = list(INPUT_TOPICS.values())
    specs += [TopicSpec(dlq(name), bytes) for name in INPUT_TOPICS]
    specs += [TopicSpec(name, dict) for name in OUTPUT_TOPICS]
    return specs


def spec(topic: str) -> TopicSpec:
    try:
        return INPUT_TOPICS[topic]
    except KeyError:
        known = ", ".join(INPUT_TOPICS)
        raise KeyError(f"unknown input topic {topic!r}; known topics: {known}") from None
