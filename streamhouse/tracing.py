"""W3C trace context for the API (https://www.w3.org/TR/trace-context/): a server span per
request, a producer span per command, and the `traceparent` header the command carries.

A request that brings a valid `traceparent` continues that trace; any other request
starts one. When this process records no spans (no exporter configured,
streamhouse/telemetry.py), the command still carries a `traceparent`, a child of the
incoming one with a span id of its own, so the flows downstream continue the client's
trace either way.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind

from dataflows.tracing import context_of, current_traceparent
from streamhouse.http_metrics import route_template

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]

_TRACEPARENT = re.compile(r"^00-(?P<trace>[0-9a-f]{32})-[0-9a-f]{16}-(?P<flags>[0-9a-f]{2})$")
_ZERO_TRACE = "0" * 32
tracer = trace.get_tracer("streamhouse.api")


def child_traceparent(incoming: str | None) -> str:
    """The `traceparent` of a child of `incoming`, or of a new sampled trace."""
    m = _TRACEPARENT.match(incoming.strip().lower()) if incoming else None
    span = secrets.token_hex(8)
    if m is None or m["trace"] == _ZERO_TRACE:
        return f"00-{secrets.token_hex(16)}-{span}-01"
    return f"00-{m['trace']}-{span}-{m['flags']}"


def producer_traceparent(incoming: str | None) -> str:
    """The `traceparent` for a message produced now: the current span's (the producer span
    the caller opened), else a child of `incoming` (spans not recorded)."""
    current = current_traceparent()
    return current.decode() if current else child_traceparent(incoming)


class TracingMiddleware:
    """A SERVER span per HTTP request, named by its route template (`POST /orders`), the
    parent of whatever the request produces."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        method = scope.get("method", "")
        with tracer.start_as_current_span(
            method,
            context=context_of(headers.get(b"traceparent"), headers.get(b"tracestate")),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": scope.get("path", "")},
        ) as span:

            async def send_and_note(message: MutableMapping[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    span.set_attribute("http.response.status_code", message["status"])
                await send(message)

            try:
                await self.app(scope, receive, send_and_note)
            finally:
                route = route_template(scope)
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
