"""ASGI middleware that publishes one `http_request` event per served request to `metrics-events`.

Any Python ASGI service (Starlette, FastAPI, ...) can add it; `api_metrics`
then windows its latency and error rate like any other service's:

    app = HttpMetricsMiddleware(app, service="checkout", publish=producer.offer)

It never slows a request down: the event is built after the response is sent
and handed to `publish`, which must not wait (`AsyncProducer.offer` only
enqueues; a full queue is counted and logged there). The route is the
template the router matched (`/orders/{order_id}`), never the raw path, so one
route is one series; requests no route matched share the route `/{unmatched}`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any

from models.codec import encode
from models.http import HttpRequest
from models.topics import METRICS_EVENTS
from sinks.kafka import KafkaMessage

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

UNMATCHED = "/{unmatched}"
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


def route_template(scope: Scope) -> str:
    """The template of the route that served the request (Starlette records it in the scope)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path.startswith("/") else UNMATCHED


class HttpMetricsMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        service: str,
        publish: Callable[[KafkaMessage], bool],
        topic: str = METRICS_EVENTS,
    ) -> None:
        self.app, self.service, self.publish, self.topic = app, service, publish, topic
        self.published = 0
        self.refused = 0
        """Events `publish` could not take (a full queue): counted here, logged there."""
        self.unrecordable = 0
        """Requests with a method outside the http_request schema's, not published."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before responding

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            self._record(scope, status, (time.perf_counter() - started) * 1000)

    def _record(self, scope: Scope, status: int, duration_ms: float) -> None:
        method = scope.get("method", "")
        if method not in METHODS:  # TRACE, CONNECT, ...: no series of the contract fits them
            self.unrecordable += 1
            return
        event = HttpRequest(
            event_id=uuid.uuid4().hex,
            ts=datetime.now(UTC),
            service=self.service,
            method=method,
            route=route_template(scope),
            status=min(max(status, 100), 599),
            duration_ms=min(duration_ms, 86_400_000.0),
        )
        if self.publish(KafkaMessage(self.topic, event.key().encode(), encode(event))):
            self.published += 1
        else:
            self.refused += 1
