"""Spans of a dataflow's steps, continuing the traces producers put in message headers.

Producers (the API, the simulator, other services) put a W3C `traceparent` in each
message's headers. A step that handles messages a batch at a time opens one span per
batch, *linked* to the producer spans of its messages (at most `MAX_LINKS`, spread
over the batch): a batch has many parents, so a parent-child tree cannot hold it.
A step that handles one entity's message at a time (the CQRS flows) opens a child span
of that message's producer span and hands its own context on (`Traced.parent`), so one
order is one trace from the API to its read-model row.

Nothing here costs more than a check per batch unless the process exports spans
(streamhouse/telemetry.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import msgspec
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from dataflows.messages import MessageBatch

MAX_LINKS = 32
"""Links per batch span: enough to find a batch from its producers' traces, bounded so a
50 k-message batch is one span, not a span with 50 k links."""

tracer = trace.get_tracer("streamhouse.dataflows")
_propagator = TraceContextTextMapPropagator()


class Traced(msgspec.Struct, frozen=True):
    """A value with the `traceparent` of the span it came from (None: untraced)."""

    value: Any
    parent: bytes | None = None


def recording() -> bool:
    """Whether this process records spans at all (an SDK provider is installed)."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def _text(value: bytes | str) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


def context_of(
    traceparent: bytes | str | None, tracestate: bytes | str | None = None
) -> Context | None:
    """The remote span context a `traceparent` header names (with its `tracestate`, if
    any); None if absent or invalid."""
    if not traceparent:
        return None
    carrier = {"traceparent": _text(traceparent)}
    if tracestate:
        carrier["tracestate"] = _text(tracestate)
    context = _propagator.extract(carrier)
    return context if trace.get_current_span(context).get_span_context().is_valid else None


def current_traceparent() -> bytes | None:
    """The `traceparent` of the current span, to put in what this step produces."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    value = carrier.get("traceparent")
    return value.encode() if value else None


def traceparent_header(headers: Sequence[tuple[str, bytes]] | None) -> bytes | None:
    for name, value in headers or ():
        if name == "traceparent":
            return value
    return None


def _links(batch: MessageBatch) -> list[Link]:
    n = len(batch)
    step = max(1, n // MAX_LINKS)
    links = []
    for i in range(0, n, step):
        context = context_of(traceparent_header(batch.message(i).headers))
        if context is not None:
            links.append(Link(trace.get_current_span(context).get_span_context()))
        if len(links) == MAX_LINKS:
            break
    return links


@contextmanager
def batch_span(flow: str, step: str, batch: MessageBatch) -> Iterator[Span | None]:
    """A CONSUMER span for one batch of one topic-partition, linked to its producers."""
    if not recording():
        yield None
        return
    with tracer.start_as_current_span(
        f"{flow} {step}",
        kind=SpanKind.CONSUMER,
        links=_links(batch),
        attributes={
            "messaging.system": "kafka",
            "messaging.destination.name": batch.topic,
            "messaging.destination.partition.id": str(batch.partition),
            "messaging.batch.message_count": len(batch),
            "streamhouse.flow": flow,
        },
    ) as span:
        yield span


@contextmanager
def child_span(name: str, parent: bytes | None, **attributes: str | int) -> Iterator[Span | None]:
    """A span for one message's work, the child of the span that produced it."""
    if not recording():
        yield None
        return
    with tracer.start_as_current_span(
        name, context=context_of(parent), attributes=attributes
    ) as span:
        yield span
