"""The order API: commands in (`POST`), the read model out (`GET`). An ASGI app (Starlette).

    POST /orders                       create_order  ─┐
    POST /orders/{order_id}/pay        pay_order      │  validated body -> command
    POST /orders/{order_id}/ship       ship_order     ├─ (key order_id, traceparent header)
    POST /orders/{order_id}/deliver    deliver_order  │  -> order-commands, acknowledged
    POST /orders/{order_id}/cancel     cancel_order  ─┘  by Kafka -> 202 + Location
    GET  /orders/{order_id}            order_view_latest row (+ rejected commands) or 404
    GET  /orders?customer_id=&status=&limit=
    GET  /healthz                      the process is up
    GET  /readyz                       Kafka answers and the lake is readable, else 503
    GET  /metrics                      Prometheus text (streamhouse/telemetry.py)

A `202` means the command is in Kafka, not that it was accepted by the state
machine: the order view shows the outcome (its new status, or the command
among its `rejections`). Errors are JSON `{"error": ..., "errors": [...]}`:
422 for a bad body, id or query parameter (with the field path), 413 for a
body over the limit, 401 without the bearer token when one is configured,
503 when Kafka does not take the command.
"""

from __future__ import annotations

import hmac
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec
from opentelemetry.trace import SpanKind
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from models.codec import encode
from models.orders import OrderCommandType, OrderStatus
from models.topics import ORDER_COMMANDS
from sinks.kafka import KafkaMessage
from sinks.kafka_async import ProduceError
from streamhouse.api.bodies import ACTIONS, ORDER_ID, NewOrder, command_for, new_ids
from streamhouse.api.idempotency import IdempotencyCache, Reused
from streamhouse.api.reader import OrderReader
from streamhouse.tracing import producer_traceparent, tracer

MAX_PAGE = 1000
_json = msgspec.json.Encoder()
_FIELD_PATH = re.compile(r"^(?P<message>.*?)(?: - at `(?P<path>[^`]*)`)?$", re.S)


class CommandBus(Protocol):
    """Where commands go: Kafka (`sinks.kafka_async.AsyncProducer`), or memory in the demo."""

    async def send(self, message: KafkaMessage) -> None: ...

    def reachable(self) -> bool: ...


@dataclass(frozen=True)
class ApiConfig:
    token: str | None = None
    """With a token, every endpoint but /healthz and /readyz needs `Authorization: Bearer`."""
    max_body_bytes: int = 256 * 1024
    idempotency_keys: int = 100_000
    """How many idempotency keys are remembered (the oldest are forgotten first)."""


class ApiError(Exception):
    def __init__(self, status: int, error: str, errors: list[dict[str, str]] | None = None):
        super().__init__(error)
        self.status, self.error, self.errors = status, error, errors or []


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(_json.encode(body), status, headers, media_type="application/json")


def error_response(e: ApiError) -> Response:
    headers = {"WWW-Authenticate": "Bearer"} if e.status == 401 else None
    return json_response(e.status, {"error": e.error, "errors": e.errors}, headers)


def validation_error(e: msgspec.ValidationError | msgspec.DecodeError) -> ApiError:
    if isinstance(e, msgspec.ValidationError):
        m = _FIELD_PATH.match(str(e))
        assert m is not None
        path = m["path"] or "$"
        return ApiError(422, "invalid request body", [{"path": path, "message": m["message"]}])
    return ApiError(422, "request body is not valid JSON", [{"path": "$", "message": str(e)}])


class OrderApi:
    """The endpoints; `app()` wires them into Starlette."""

    def __init__(self, bus: CommandBus, reader: OrderReader, config: ApiConfig) -> None:
        self.bus, self.reader, self.config = bus, reader, config
        self.idempotency = IdempotencyCache(config.idempotency_keys)
        self._decoders = {name: msgspec.json.Decoder(body) for name, body in ACTIONS.items()}
        self._decoders["create"] = msgspec.json.Decoder(NewOrder)

    # --- plumbing -------------------------------------------------------------------

    def _authorize(self, request: Request) -> None:
        token = self.config.token
        if token is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, credential = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            credential.strip().encode(), token.encode()
        ):
            raise ApiError(401, "missing or wrong bearer token")

    async def _body(self, request: Request) -> bytes:
        limit = self.config.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise ApiError(413, f"request body over the {limit}-byte limit")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, f"request body over the {limit}-byte limit")
            chunks.append(chunk)
        return b"".join(chunks)

    @staticmethod
    def _order_id(request: Request) -> str:
        order_id = request.path_params["order_id"]
        if not ORDER_ID.match(order_id):
            raise ApiError(
                422,
                "invalid order id",
                [{"path": "order_id", "message": "1-128 of A-Z a-z 0-9 . _ : -"}],
            )
        return order_id

    def endpoint(
        self, handler: Callable[[Request], Awaitable[Response]], public: bool = False
    ) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                if not public:
                    self._authorize(request)
                return await handler(request)
            except ApiError as e:
                return error_response(e)

        return run

    # --- commands -------------------------------------------------------------------

    async def _command(self, request: Request, action: str, order_id: str | None) -> Response:
        raw = await self._body(request)
        if action == "deliver" and not raw.strip():
            raw = b"{}"
        try:
            body = self._decoders[action].decode(raw)
        except (msgspec.ValidationError, msgspec.DecodeError) as e:
            raise validation_error(e) from None
        key = request.headers.get("idempotency-key")
        if key is not None and not 1 <= len(key) <= 200:
            raise ApiError(
                422,
                "invalid Idempotency-Key",
                [{"path": "Idempotency-Key", "message": "1 to 200 characters"}],
            )
        order_id, command_id = new_ids(key, action, order_id)
        command = command_for(action, body, order_id, command_id)
        incoming = request.headers.get("traceparent")

        async def publish() -> tuple[int, bytes, dict[str, str]]:
            await self._publish(command, incoming)
            return (
                202,
                _json.encode({"order_id": order_id, "command_id": command_id, "command": action}),
                {"Location": f"/orders/{order_id}"},
            )

        if key is None:
            status, content, headers = await publish()
        else:
            fingerprint = (request.method, request.url.path, raw)
            try:
                status, content, headers = await self.idempotency.once(key, fingerprint, publish)
            except Reused:
                raise ApiError(
                    422,
                    "Idempotency-Key was used for a different request",
                    [
                        {
                            "path": "Idempotency-Key",
                            "message": "reuse needs the same method, path and body",
                        }
                    ],
                ) from None
        return Response(content, status, headers, media_type="application/json")

    async def _publish(self, command: OrderCommandType, incoming: str | None) -> None:
        """Produce the command in a PRODUCER span, whose context its `traceparent` carries."""
        with tracer.start_as_current_span(
            f"{ORDER_COMMANDS} publish",
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": ORDER_COMMANDS,
                "order_id": command.order_id,
                "command_id": command.command_id,
            },
        ):
            message = KafkaMessage(
                ORDER_COMMANDS,
                command.order_id.encode(),
                encode(command),
                (("traceparent", producer_traceparent(incoming).encode()),),
            )
            try:
                await self.bus.send(message)
            except ProduceError as e:
                raise ApiError(503, f"the command was not stored: {e}") from None

    async def create(self, request: Request) -> Response:
        return await self._command(request, "create", None)

    def act(self, action: str) -> Callable[[Request], Awaitable[Response]]:
        async def on_order(request: Request) -> Response:
            return await self._command(request, action, self._order_id(request))

        return on_order

    # --- queries --------------------------------------------------------------------

    async def get(self, request: Request) -> Response:
        order_id = self._order_id(request)
        view = await run_in_threadpool(self.reader.order, order_id)
        if view is None:
            raise ApiError(404, f"order {order_id} is not known (yet)")
        return json_response(200, view)

    async def page(self, request: Request) -> Response:
        q = request.query_params
        unknown = sorted(set(q) - {"customer_id", "status", "limit"})
        errors = [{"path": name, "message": "unknown query parameter"} for name in unknown]
        status = q.get("status")
        if status is not None and status not in {s.value for s in OrderStatus}:
            errors.append({"path": "status", "message": f"one of {', '.join(OrderStatus)}"})
        limit_text = q.get("limit", "50")
        limit = int(limit_text) if limit_text.isdigit() else 0
        if not 1 <= limit <= MAX_PAGE:
            errors.append({"path": "limit", "message": f"a whole number from 1 to {MAX_PAGE}"})
        customer = q.get("customer_id")
        if customer is not None and not 1 <= len(customer) <= 128:
            errors.append({"path": "customer_id", "message": "1 to 128 characters"})
        if errors:
            raise ApiError(422, "invalid query parameters", errors)
        orders = await run_in_threadpool(self.reader.page, customer, status, limit)
        return json_response(200, {"orders": orders, "count": len(orders)})

    # --- health ---------------------------------------------------------------------

    async def healthz(self, _request: Request) -> Response:
        return json_response(200, {"status": "ok"})

    async def readyz(self, _request: Request) -> Response:
        kafka = await run_in_threadpool(self.bus.reachable)
        lake = self.reader.readable()
        body = {"kafka": "ok" if kafka else "unreachable", "lake": "ok" if lake else "unreadable"}
        return json_response(200 if kafka and lake else 503, body)

    async def metrics(self, _request: Request) -> Response:
        """The process's metrics as Prometheus text: what a scraper reads; with a token
        configured, it needs it like every endpoint but the health checks."""
        return Response(generate_latest(REGISTRY), 200, media_type=CONTENT_TYPE_LATEST)

    def app(self) -> Starlette:
        e = self.endpoint
        routes = [
            Route("/orders", e(self.create), methods=["POST"]),
            Route("/orders", e(self.page), methods=["GET"]),
            Route("/orders/{order_id}", e(self.get), methods=["GET"]),
            *(
                Route(f"/orders/{{order_id}}/{action}", e(self.act(action)), methods=["POST"])
                for action in ACTIONS
            ),
            Route("/healthz", e(self.healthz, public=True), methods=["GET"]),
            Route("/readyz", e(self.readyz, public=True), methods=["GET"]),
            Route("/metrics", e(self.metrics), methods=["GET"]),
        ]
        return Starlette(
            routes=routes,
            exception_handlers={404: _http_error, 405: _http_error},  # JSON, like every error
        )


async def _http_error(_request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 500)
    return error_response(ApiError(status, str(getattr(exc, "detail", "error"))))


def config_from_env(env: dict[str, str] | None = None) -> ApiConfig:
    from streamhouse.config import env_number

    env = dict(os.environ) if env is None else env
    return ApiConfig(
        token=env.get("STREAMHOUSE_API_TOKEN") or None,
        max_body_bytes=int(
            env_number(env, "STREAMHOUSE_API_MAX_BODY_BYTES", 256 * 1024, kind=int, minimum=1)
        ),
        idempotency_keys=int(
            env_number(env, "STREAMHOUSE_API_IDEMPOTENCY_KEYS", 100_000, kind=int, minimum=1)
        ),
    )
