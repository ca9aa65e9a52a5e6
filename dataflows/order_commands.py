"""order_commands: the CQRS write side. Commands in, validated events out.

    order-commands ─► decode ─┬─► dead letters ─► lake dead_letters, order-commands.dlq
                              └─► key by order_id ─► order aggregate (state machine,
                                  recoverable state, one per order)
                                  (a span per command, continuing its trace)
                                   ─┬─► accepted: events ─► Kafka order-events (traceparent)
                                    ├─► rejected: reasons ─► Kafka order-rejections, lake order_rejections
                                    └─► re-delivered command_id: nothing

The aggregate is `models.order_state.OrderState`. Events derive their id, time
and version from the command and the order's past only, so a replay after a
crash re-emits identical events (Kafka output is at-least-once; the projection
ignores versions it has applied).

Run it: `streamhouse run order_commands` or `python -m bytewax.run dataflows.order_commands:flow`.
"""

from __future__ import annotations

import bytewax.operators as op
import msgspec
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source

from dataflows.decode import TopicDecoder
from dataflows.entry import flow_attribute, from_env
from dataflows.messages import DeadLetter, MessageBatch
from dataflows.metrics import observed_batches
from dataflows.outputs import Outputs
from dataflows.tracing import Traced, child_span, current_traceparent
from models.base import Event, type_tag
from models.codec import encode
from models.order_state import OrderRejected, OrderState
from models.orders import OrderCommand
from models.topics import ORDER_COMMANDS, ORDER_EVENTS, ORDER_REJECTIONS
from sinks.kafka import KafkaMessage
from warehouse.tables import ORDER_REJECTIONS as REJECTIONS_TABLE

FLOW = "order_commands"
INPUT_TOPICS = (ORDER_COMMANDS,)


def decide(
    state: OrderState | None, command: OrderCommand
) -> tuple[OrderState, Event | OrderRejected | None]:
    """One command against its order's state: the new state and what it produced."""
    state = state or OrderState(order_id=command.order_id)
    return state, state.handle(command)  # type: ignore[arg-type]


def handle(state: OrderState | None, command: Traced) -> tuple[OrderState, Traced | None]:
    """`decide`, in a span that continues the command's trace; what it produced carries
    that span's `traceparent` (or the command's, when this process records no spans)."""
    c: OrderCommand = command.value
    with child_span(
        f"{FLOW} {type_tag(c)}", command.parent, order_id=c.order_id, command_id=c.command_id
    ) as span:
        state, result = decide(state, c)
        if span is not None:
            span.set_attribute("outcome", outcome(result))
        if result is None:
            return state, None
        return state, Traced(result, current_traceparent() or command.parent)


def outcome(result: Event | OrderRejected | None) -> str:
    """What a command came to, as its span records it."""
    if result is None:
        return "redelivery"
    return "rejected" if isinstance(result, OrderRejected) else "accepted"


def event_message(event: Traced) -> KafkaMessage:
    e: Event = event.value
    headers = (("traceparent", event.parent),) if event.parent else ()
    return KafkaMessage(ORDER_EVENTS, e.key().encode(), encode(e), headers)


def rejection_message(rejection: OrderRejected) -> KafkaMessage:
    return KafkaMessage(
        ORDER_REJECTIONS, rejection.order_id.encode(), msgspec.json.encode(rejection)
    )


def build(source: Source[MessageBatch], outputs: Outputs) -> Dataflow:
    flow = Dataflow(FLOW)
    batches = op.input("order_commands", flow, source)
    decoded = op.flat_map(
        "decode",
        batches,
        observed_batches(FLOW, "decode", TopicDecoder(FLOW, INPUT_TOPICS, traced=True)),
    )
    commands = op.branch("split_dead_letters", decoded, lambda x: not isinstance(x, DeadLetter))
    outputs.dead_letters(commands.falses, writer=FLOW)  # type: ignore[arg-type]
    by_order = op.key_on("by_order", commands.trues, lambda c: c.value.order_id)  # type: ignore[union-attr]
    results = op.stateful_map("order_aggregate", by_order, handle)
    produced = op.filter_value("drop_redeliveries", results, lambda r: r is not None)
    outcome = op.branch("accepted_or_rejected", produced, lambda kv: isinstance(kv[1].value, Event))
    outputs.to_topic(
        "events", op.map_value("event_message", outcome.trues, event_message), ORDER_EVENTS
    )
    rejections = op.map_value("untraced", outcome.falses, lambda r: r.value)
    outputs.to_topic(
        "rejections",
        op.map_value("rejection_message", rejections, rejection_message),
        ORDER_REJECTIONS,
    )
    outputs.to_table("rejection_rows", rejections, REJECTIONS_TABLE, writer=FLOW)
    return flow


flow_from_env = from_env(build, INPUT_TOPICS)

__getattr__ = flow_attribute(flow_from_env)
"""`python -m bytewax.run dataflows.order_commands:flow` builds the flow from the environment."""
