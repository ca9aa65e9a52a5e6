"""Per-request HTTP metrics that services publish to `metrics-events`."""

from __future__ import annotations

from typing import Annotated

import msgspec

from models.base import DurationMs, Event, Name

HttpMethod = Annotated[str, msgspec.Meta(pattern="^(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS)$")]
HttpStatus = Annotated[int, msgspec.Meta(ge=100, le=599)]
Route = Annotated[str, msgspec.Meta(min_length=1, max_length=512, pattern="^/")]


class HttpRequest(Event, frozen=True, kw_only=True, tag="http_request"):
    """One served request. `route` is the template (`/orders/{id}`), never the raw path."""

    service: Name
    method: HttpMethod
    route: Route
    status: HttpStatus
    duration_ms: DurationMs

    def key(self) -> str:
        """The series api_metrics aggregates: one key per (service, method, route)."""
        return f"{self.service} {self.method} {self.route}"
