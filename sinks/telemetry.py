"""What every sink reports about its writes: a span per write and its duration.

Sinks know nothing of dataflows; this is all they share with the rest of the
telemetry: the OpenTelemetry API, a no-op until the process installs providers
(streamhouse/telemetry.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import metrics, trace
from opentelemetry.trace import Span, SpanKind

tracer = trace.get_tracer("streamhouse.sinks")
write_duration = metrics.get_meter("streamhouse.sinks").create_histogram(
    "streamhouse.sink.write.duration",
    unit="s",
    description="Time a sink took to write one batch (lake file, Kafka produce, webhook POST)",
)


@contextmanager
def sink_write(sink: str, target: str, records: int) -> Iterator[Span]:
    """One write of `records` to `target` (a table, topic or URL) by `sink`: a PRODUCER
    span, and its duration in `streamhouse.sink.write.duration`, even when it fails."""
    started = time.perf_counter()
    try:
        with tracer.start_as_current_span(
            f"{sink} write {target}",
            kind=SpanKind.PRODUCER,
            attributes={
                "streamhouse.sink": sink,
                "streamhouse.target": target,
                "streamhouse.records": records,
            },
        ) as span:
            yield span
    finally:
        write_duration.record(time.perf_counter() - started, {"sink": sink, "target": target})
