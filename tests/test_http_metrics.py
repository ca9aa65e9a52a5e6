"""The HTTP metrics middleware and the API's Kafka failure path, over a real socket, with a
Kafka client that cannot reach any broker: requests never wait on it, every event that
cannot be queued is counted, and a command Kafka does not take is a 503, never a 202."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from sinks.kafka import KafkaMessage
from sinks.kafka_async import AsyncProducer
from streamhouse.api.app import ApiConfig, OrderApi
from streamhouse.api.reader import OrderReader
from streamhouse.api.server import KafkaBus, background_server
from streamhouse.http_metrics import UNMATCHED, HttpMetricsMiddleware
from warehouse.lake import Lake

NOWHERE = {"bootstrap.servers": "127.0.0.1:9", "message.timeout.ms": 1500, "log_level": 0}
"""Port 9 (discard) has no Kafka: nothing this client queues is ever delivered."""


@contextmanager
def serving(app: Any) -> Iterator[str]:
    with background_server(app) as port:
        yield f"http://127.0.0.1:{port}"


def service() -> Starlette:
    async def item(request):
        return PlainTextResponse(request.path_params["item_id"])

    async def boom(_request):
        raise RuntimeError("handler failed")

    return Starlette(routes=[Route("/items/{item_id}", item), Route("/boom", boom)])


def test_events_carry_the_route_template_status_and_duration() -> None:
    published: list[KafkaMessage] = []
    app = HttpMetricsMiddleware(
        service(), service="shop", publish=lambda m: published.append(m) or True
    )
    with serving(app) as base:
        assert httpx.get(base + "/items/42").text == "42"
        assert httpx.get(base + "/items/43").status_code == 200
        assert httpx.get(base + "/nowhere").status_code == 404
        assert httpx.get(base + "/boom").status_code == 500
    events = [json.loads(m.value) for m in published]
    assert [(e["route"], e["status"]) for e in events] == [
        ("/items/{item_id}", 200),
        ("/items/{item_id}", 200),
        (UNMATCHED, 404),
        ("/boom", 500),
    ]
    assert all(
        e["type"] == "http_request" and e["service"] == "shop" and e["method"] == "GET"
        for e in events
    )
    assert all(e["duration_ms"] >= 0 for e in events)
    assert {m.topic for m in published} == {"metrics-events"}
    assert published[0].key == b"shop GET /items/{item_id}"
    assert app.published == 4 and app.refused == 0


def test_a_full_queue_never_holds_a_request_and_every_drop_is_counted() -> None:
    producer = AsyncProducer({**NOWHERE, "queue.buffering.max.messages": 5})
    app = HttpMetricsMiddleware(service(), service="shop", publish=producer.offer)
    try:
        with serving(app) as base, httpx.Client(base_url=base) as client:
            statuses = [client.get(f"/items/{i}").status_code for i in range(40)]
    finally:
        producer.close(timeout_s=0)
    assert statuses == [200] * 40
    assert app.published == 5, "the queue holds five"
    assert app.refused == producer.dropped == 35


def test_a_command_kafka_does_not_take_is_a_503_with_the_reason(tmp_path: Path) -> None:
    producer = AsyncProducer(NOWHERE)
    api = OrderApi(KafkaBus(producer), OrderReader(Lake(tmp_path)), ApiConfig())
    try:
        with serving(api.app()) as base:
            body = {"customer_id": "c-1", "items": [{"sku": "p", "qty": 1, "unit_price": 1.0}]}
            r = httpx.post(base + "/orders", json=body, timeout=30)
            ready = httpx.get(base + "/readyz", timeout=30)
    finally:
        producer.close(timeout_s=0)
    assert r.status_code == 503, r.text
    assert "the command was not stored" in r.json()["error"]
    assert ready.status_code == 503 and ready.json()["kafka"] == "unreachable"
