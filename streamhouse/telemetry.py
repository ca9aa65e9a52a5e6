"""OpenTelemetry for a streamhouse process: where its spans and metrics go, set once at start.

Every instrumented module uses only the OpenTelemetry *API* (`trace.get_tracer`,
`metrics.get_meter`). Until `configure` installs SDK providers, those are
no-ops: a process that exports nothing pays next to nothing for its spans.

- Traces go over OTLP/HTTP (protobuf) when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
  `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, and to stderr as JSON when
  `STREAMHOUSE_OTEL_CONSOLE=1`; otherwise none are recorded.
- Metrics go over OTLP the same way, and always to the Prometheus client registry,
  which bytewax's own `/metrics` serves next to its own metrics (and the API's
  `/metrics`).
- `service.name` is given per process (`streamhouse-<flow>`, `streamhouse-api`);
  `OTEL_RESOURCE_ATTRIBUTES` adds to it. The standard `OTEL_*` settings of the
  exporters and batch processor apply (e.g. `OTEL_BSP_SCHEDULE_DELAY`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

from streamhouse.config import ConfigError, env_flag

ENDPOINTS = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
)
_configured = False


def _endpoint(env: Mapping[str, str], signal: str) -> str | None:
    return env.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT") or env.get(ENDPOINTS[0]) or None


def check(env: Mapping[str, str] = os.environ) -> None:
    """Raise ConfigError for telemetry settings `configure` could not use."""
    for name in ENDPOINTS:
        url = env.get(name)
        if url and not url.startswith(("http://", "https://")):
            raise ConfigError(f"{name}={url!r} is not an http(s) URL (OTLP over HTTP)")


def configure(service: str, env: Mapping[str, str] = os.environ) -> None:
    """Install this process's tracer and meter providers, once (later calls do nothing).
    Whether spans are recorded is then `dataflows.tracing.recording()`."""
    global _configured
    if _configured:
        return
    check(env)
    _configured = True
    if env_flag(env, "OTEL_SDK_DISABLED"):
        return
    resource = Resource.create({SERVICE_NAME: service})
    _configure_traces(resource, env)
    _configure_metrics(resource, env)


def _configure_traces(resource: Resource, env: Mapping[str, str]) -> None:
    processors = []
    if _endpoint(env, "TRACES"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        processors.append(BatchSpanProcessor(OTLPSpanExporter()))
    if env_flag(env, "STREAMHOUSE_OTEL_CONSOLE"):
        processors.append(BatchSpanProcessor(ConsoleSpanExporter(out=sys.stderr)))
    if not processors:
        return
    provider = TracerProvider(resource=resource)
    for processor in processors:
        provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)


def _configure_metrics(resource: Resource, env: Mapping[str, str]) -> None:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader

    readers: list[MetricReader] = [PrometheusMetricReader()]
    if _endpoint(env, "METRICS"):
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers))


def service_name(component: str) -> str:
    """The `service.name` of a streamhouse process: a dataflow's, or the API's."""
    return f"streamhouse-{component}"
