"""The CQRS round trip over real parts: the API (`streamhouse api`, a real socket) produces
commands to a real broker, `streamhouse run order_commands` turns them into events,
`streamhouse run order_projection` lands the view in the lake, and GET reads it back."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer
from helpers import read_all
from otlp import Receiver, span_tree

from models.topics import METRICS_EVENTS, ORDER_COMMANDS, ORDER_EVENTS, ORDER_REJECTIONS
from streamhouse.broker import free_port
from streamhouse.topics import create_topics
from warehouse.lake import Lake
from warehouse.query import Warehouse

CLI = str(Path(sys.executable).parent / "streamhouse")
TOKEN = "test-token-9f2c"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ITEMS = [
    {"sku": "p-00001", "qty": 2, "unit_price": 10.5},
    {"sku": "p-00002", "qty": 1, "unit_price": 3.0},
]
VISIBLE_S = 60.0


class Stack:
    def __init__(
        self,
        bootstrap: str,
        prefix: str,
        lake: Path,
        base: str,
        otlp: Receiver,
        metrics_ports: dict[str, int],
    ) -> None:
        self.bootstrap, self.prefix, self.lake, self.base = bootstrap, prefix, lake, base
        self.otlp, self.metrics_ports = otlp, metrics_ports
        self.http = httpx.Client(base_url=base, headers=AUTH, timeout=30)

    def wait_for(self, order_id: str, check: Any = lambda v: True) -> dict[str, Any]:
        """GET the order until `check(view)` holds."""
        deadline = time.monotonic() + VISIBLE_S
        last = None
        while time.monotonic() < deadline:
            r = self.http.get(f"/orders/{order_id}")
            if r.status_code == 200:
                last = r.json()
                if check(last):
                    return last
            else:
                assert r.status_code == 404, r.text
            time.sleep(0.2)
        raise AssertionError(f"order {order_id} never reached the expected view; last: {last}")

    def create(self, **extra: Any) -> str:
        r = self.http.post("/orders", json={"customer_id": "c-1", "items": ITEMS, **extra})
        assert r.status_code == 202, r.text
        assert r.headers["location"] == f"/orders/{r.json()['order_id']}"
        return r.json()["order_id"]

    def sql(self, query: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        with Warehouse(Lake(self.lake)) as wh:
            return wh.sql(query, params).to_pylist()


@pytest.fixture(scope="module")
def otlp() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def stack(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory, otlp: Receiver
) -> Iterator[Stack]:
    """The API and both CQRS flows, exporting traces and metrics to `otlp` (as to a
    collector), the flows serving /metrics too."""
    prefix = f"cqrs{os.getpid()}-"
    create_topics({"bootstrap.servers": kafka_bootstrap}, 3, 1, prefix)
    lake = tmp_path_factory.mktemp("cqrs") / "lake"
    port = free_port()
    metrics_ports = {"order_commands": free_port(), "order_projection": free_port()}
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "OTEL_METRIC_EXPORT_INTERVAL": "1000",
        **os.environ,
        "STREAMHOUSE_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "STREAMHOUSE_TOPIC_PREFIX": prefix,
        "STREAMHOUSE_LAKE_DIR": str(lake),
        "STREAMHOUSE_API_TOKEN": TOKEN,
        "STREAMHOUSE_API_MAX_BODY_BYTES": "65536",
    }
    logs = tmp_path_factory.mktemp("cqrs-logs")
    procs = []
    for name, command in {
        **{
            flow: [
                CLI,
                "run",
                flow,
                "--snapshot-interval",
                "1",
                "--metrics-port",
                str(metrics_ports[flow]),
            ]
            for flow in ("order_commands", "order_projection")
        },
        "api": [CLI, "api", "--port", str(port)],
    }.items():
        out = open(logs / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        procs.append((name, subprocess.Popen(command, env=env, stdout=out, stderr=out), out))
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(base, procs, logs)
        yield Stack(kafka_bootstrap, prefix, lake, base, otlp, metrics_ports)
    finally:
        for _name, proc, _out in procs:
            proc.terminate()
        ended = {}
        for name, proc, out in procs:
            try:
                ended[name] = proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                ended[name] = proc.wait()
            out.close()
        for name, code in ended.items():
            assert code in (0, -15, 143), (
                f"{name} ended with {code}:\n{(logs / f'{name}.log').read_text()[-3000:]}"
            )


def wait_until_ready(base: str, procs: list, logs: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(base + "/readyz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        for name, proc, _ in procs:
            assert proc.poll() is None, (
                f"{name} exited:\n{(logs / f'{name}.log').read_text()[-3000:]}"
            )
        assert time.monotonic() < deadline, "the API never became ready"
        time.sleep(0.2)


def test_round_trip_create_pay_ship_shows_each_step_with_history(stack: Stack) -> None:
    order_id = stack.create()
    view = stack.wait_for(order_id)
    assert view["status"] == "created" and view["version"] == 1
    assert "date" not in view and "last_event_id" not in view
    assert view["total"] == 24.0 and view["customer_id"] == "c-1"
    assert [i["sku"] for i in view["items"]] == ["p-00001", "p-00002"]

    r = stack.http.post(f"/orders/{order_id}/pay", json={"amount": 24.0, "payment_method": "card"})
    assert r.status_code == 202, r.text
    view = stack.wait_for(order_id, lambda v: v["version"] >= 2)
    assert view["status"] == "paid" and view["paid_amount"] == 24.0

    assert stack.http.post(f"/orders/{order_id}/ship", json={"carrier": "dhl"}).status_code == 202
    view = stack.wait_for(order_id, lambda v: v["version"] >= 3)
    assert view["status"] == "shipped" and view["carrier"] == "dhl"
    assert [(h["status"], h["version"]) for h in view["history"]] == [
        ("created", 1),
        ("paid", 2),
        ("shipped", 3),
    ]
    assert view["rejections"] == []
    page = stack.http.get("/orders", params={"customer_id": "c-1", "status": "shipped"}).json()
    assert order_id in [o["order_id"] for o in page["orders"]]


def test_one_order_is_one_trace_from_post_to_its_view_row(stack: Stack) -> None:
    """The client's trace runs through the API, the command handler and the projection to
    the `order_view` row, whose `traceparent` names the span that projected it."""
    trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
    r = stack.http.post("/orders", json={"customer_id": "c-trace", "items": ITEMS},
                        headers={"traceparent": f"00-{trace_id}-{client_span}-01"})  # fmt: skip
    assert r.status_code == 202, r.text
    order_id = r.json()["order_id"]
    stack.wait_for(order_id)
    [row] = stack.sql(
        "SELECT traceparent, filename FROM read_parquet($files, filename = true) "
        "WHERE order_id = $id",
        {"files": [str(f) for f in Lake(stack.lake).data_files("order_view")], "id": order_id},
    )
    _, row_trace, row_span, _ = row["traceparent"].split("-")
    assert row_trace == trace_id

    def chain() -> list | None:
        """The spans from the row's up to the client's, once all have arrived."""
        by_id = {s.span_id: s for s in stack.otlp.spans if s.trace_id == trace_id}
        spans, at = [], row_span
        while at in by_id:
            spans.append(by_id[at])
            at = by_id[at].parent_id
        return spans[::-1] if at == client_span else None

    spans = stack.otlp.wait("the order's spans", chain)
    assert [(s.service, s.name) for s in spans] == [
        ("streamhouse-orders-api", "POST /orders"),
        ("streamhouse-orders-api", "order-commands publish"),
        ("streamhouse-order_commands", "order_commands create_order"),
        ("streamhouse-order_projection", "order_projection order_created"),
    ], span_tree(stack.otlp.spans, trace_id)
    server, publish, handled, _ = spans
    assert server.attributes["http.response.status_code"] == 202
    assert publish.attributes["order_id"] == handled.attributes["order_id"] == order_id
    assert handled.attributes["outcome"] == "accepted"

    # Each flow's batch span links to the producer span of the message it decoded...
    def linked(service: str, name: str, producer: str) -> bool:
        return any(s.service == service and s.name == name and (trace_id, producer) in s.links
                   for s in stack.otlp.spans)  # fmt: skip

    stack.otlp.wait("the command handler's batch span",
                    lambda: linked("streamhouse-order_commands", "order_commands decode",
                                   publish.span_id))  # fmt: skip
    stack.otlp.wait("the projection's batch span",
                    lambda: linked("streamhouse-order_projection", "order_projection decode",
                                   handled.span_id))  # fmt: skip
    # ... and the lake write that landed the row is a span naming its file.
    file = Path(row["filename"]).name
    stack.otlp.wait("the lake write of the row's file", lambda: [
        s for s in stack.otlp.spans if s.service == "streamhouse-order_projection"
        and s.name == "lake write order_view" and s.attributes["streamhouse.file"] == file
    ])  # fmt: skip
    print(span_tree(stack.otlp.spans, trace_id))


def test_flows_and_api_export_their_metrics(stack: Stack) -> None:
    """Over OTLP to the collector, and as Prometheus text: the flows' beside bytewax's own
    on /metrics, the API's on its /metrics."""
    order_id = stack.create()
    stack.wait_for(order_id)

    def total(service: str, name: str) -> float:
        points = stack.otlp.metrics.get((service, name), [])
        return max((getattr(p, "as_int", 0) or getattr(p, "as_double", 0) for p in points
                    if hasattr(p, "as_int")), default=0)  # fmt: skip

    stack.otlp.wait("events in and out of order_commands", lambda: (
        total("streamhouse-order_commands", "streamhouse.events.in") >= 1
        and total("streamhouse-order_commands", "streamhouse.events.out") >= 1
    ))  # fmt: skip
    stack.otlp.wait("the projection's lake write durations", lambda: any(
        p.count >= 1 for p in stack.otlp.metrics.get(
            ("streamhouse-order_projection", "streamhouse.sink.write.duration"), [])
    ))  # fmt: skip
    stack.otlp.wait("the projection's event-time lag", lambda: stack.otlp.metrics.get(
        ("streamhouse-order_projection", "streamhouse.event_time.lag")))  # fmt: skip
    stack.otlp.wait("consumer lag per partition", lambda: {
        dict((a.key, a.value.string_value) for a in p.attributes).get("partition")
        for p in stack.otlp.metrics.get(("streamhouse-order_commands", "streamhouse.consumer.lag"), [])
    } >= {"0", "1", "2"})  # fmt: skip

    text = httpx.get(f"http://127.0.0.1:{stack.metrics_ports['order_commands']}/metrics").text
    assert "streamhouse_events_in_total{" in text and 'flow="order_commands"' in text
    assert "streamhouse_sink_write_duration_seconds_bucket{" in text
    assert "bytewax_" in text or "item_inp_count" in text, text[:2000]  # bytewax's own, beside
    assert stack.http.get("/metrics").status_code == 200
    assert httpx.get(stack.base + "/metrics").status_code == 401  # the token guards it too


def test_illegal_transition_is_rejected_with_a_reason_and_the_view_is_unchanged(
    stack: Stack,
) -> None:
    order_id = stack.create()
    stack.wait_for(order_id)
    assert (
        stack.http.post(f"/orders/{order_id}/cancel", json={"reason": "changed mind"}).status_code
        == 202
    )
    before = stack.wait_for(order_id, lambda v: v["status"] == "cancelled")
    assert before["cancel_reason"] == "changed mind"
    assert stack.http.post(f"/orders/{order_id}/ship", json={}).status_code == 202
    after = stack.wait_for(order_id, lambda v: v["rejections"])
    assert after["rejections"][0]["command_type"] == "ship_order"
    assert "not allowed in status cancelled" in after["rejections"][0]["reason"]
    after.pop("rejections"), before.pop("rejections")
    assert after == before
    # The lake row and the Kafka message are written at the same epoch's end, in no fixed
    # order: the message may land a moment after the view showed the rejection.
    deadline = time.monotonic() + 30
    while True:
        messages = read_all(stack.bootstrap, stack.prefix + ORDER_REJECTIONS)
        if any(json.loads(m.value())["order_id"] == order_id for m in messages):
            break
        assert time.monotonic() < deadline, "the rejection never reached order-rejections"
        time.sleep(0.5)


def test_duplicate_commands_and_events_change_nothing(stack: Stack) -> None:
    key = {"Idempotency-Key": "retry-me-1", **AUTH}
    body = {"customer_id": "c-dup", "items": ITEMS}
    first = stack.http.post("/orders", json=body, headers=key)
    again = stack.http.post("/orders", json=body, headers=key)
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    order_id = first.json()["order_id"]
    pay = {"Idempotency-Key": "retry-pay-1", **AUTH}
    for _ in range(2):
        assert (
            stack.http.post(
                f"/orders/{order_id}/pay", json={"amount": 24.0}, headers=pay
            ).status_code
            == 202
        )
    stack.wait_for(order_id, lambda v: v["version"] >= 2)
    commands = [
        m
        for m in read_all(stack.bootstrap, stack.prefix + ORDER_COMMANDS)
        if m.key() == order_id.encode()
    ]
    assert len(commands) == 2, "the retried requests produced a second command"

    # Re-deliver the commands and the events themselves, as at-least-once producers may.
    events = [
        m
        for m in read_all(stack.bootstrap, stack.prefix + ORDER_EVENTS)
        if m.key() == order_id.encode()
    ]
    assert [json.loads(m.value())["version"] for m in events] == [1, 2]
    producer = Producer({"bootstrap.servers": stack.bootstrap})
    for m in commands:
        producer.produce(m.topic(), m.value(), m.key(), headers=m.headers())
    for m in reversed(events):  # older version after the newer one too
        producer.produce(m.topic(), m.value(), m.key(), headers=m.headers())
    assert producer.flush(30) == 0
    # A marker order sent after the duplicates: once its view is visible, they were processed.
    marker = stack.create()
    stack.wait_for(marker)
    time.sleep(1.5)
    view = stack.wait_for(order_id)
    assert view["version"] == 2 and view["status"] == "paid"
    events = [
        m
        for m in read_all(stack.bootstrap, stack.prefix + ORDER_EVENTS)
        if m.key() == order_id.encode()
    ]
    assert len(events) == 4, "a re-delivered command produced a new event"
    rows = stack.sql(
        "SELECT version, count(*) AS n FROM order_view WHERE order_id = $id GROUP BY ALL ORDER BY 1",
        {"id": order_id},
    )
    assert rows == [{"version": 1, "n": 1}, {"version": 2, "n": 1}]
    history = stack.sql(
        "SELECT status FROM order_status_history WHERE order_id = $id ORDER BY version",
        {"id": order_id},
    )
    assert [h["status"] for h in history] == ["created", "paid"]


def test_a_thousand_concurrent_posts_each_appear_exactly_once(stack: Stack) -> None:
    async def post_all() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(
            base_url=stack.base, headers=AUTH, limits=limits, timeout=60
        ) as client:
            return await asyncio.gather(
                *(
                    client.post("/orders", json={"customer_id": "c-burst", "items": ITEMS[:1]})
                    for _ in range(1000)
                )
            )

    responses = asyncio.run(post_all())
    assert [r.status_code for r in responses] == [202] * 1000
    ids = {r.json()["order_id"] for r in responses}
    assert len(ids) == 1000
    deadline = time.monotonic() + VISIBLE_S
    while True:
        rows = stack.sql(
            "SELECT order_id, count(*) AS n FROM order_view WHERE customer_id = 'c-burst' GROUP BY ALL"
        )
        if len(rows) >= 1000 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert {r["order_id"] for r in rows} == ids
    assert all(r["n"] == 1 for r in rows)
    page = stack.http.get("/orders", params={"customer_id": "c-burst", "limit": 1000}).json()
    assert page["count"] == 1000 and {o["order_id"] for o in page["orders"]} == ids


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "says"),
    [
        ("POST", "/orders", {"items": ITEMS}, AUTH, 422, "customer_id"),
        ("POST", "/orders", {"customer_id": "c", "items": []}, AUTH, 422, "$.items"),
        (
            "POST",
            "/orders",
            {"customer_id": "c", "items": [{"sku": "a", "qty": "2", "unit_price": 1}]},
            AUTH,
            422,
            "$.items[0].qty",
        ),
        (
            "POST",
            "/orders",
            {"customer_id": "c", "items": ITEMS, "currency": "euro"},
            AUTH,
            422,
            "$.currency",
        ),
        (
            "POST",
            "/orders",
            {"customer_id": "c", "items": ITEMS, "coupon": "x"},
            AUTH,
            422,
            "coupon",
        ),
        (
            "POST",
            "/orders",
            {"customer_id": "c", "items": [{"sku": "a", "qty": 1, "unit_price": 1e300}]},
            AUTH,
            422,
            "unit_price",
        ),
        ("POST", "/orders", b'{"customer_id": "c", "items": [', AUTH, 422, "not valid JSON"),
        ("POST", "/orders", b"\xff\xfe", AUTH, 422, "not valid JSON"),
        (
            "POST",
            "/orders",
            b'{"customer_id": "' + b"x" * 70_000 + b'"}',
            AUTH,
            413,
            "65536-byte limit",
        ),
        ("POST", "/orders/o-1/pay", {"amount": -5}, AUTH, 422, "$.amount"),
        ("POST", "/orders/o-1/pay", {}, AUTH, 422, "amount"),
        ("POST", "/orders/bad%20id/ship", {}, AUTH, 422, "order_id"),
        ("POST", "/orders/o-1/refund", {}, AUTH, 404, "Not Found"),
        ("GET", "/orders/o-never-created", None, AUTH, 404, "not known"),
        ("GET", "/orders?limit=0", None, AUTH, 422, "limit"),
        ("GET", "/orders?status=lost", None, AUTH, 422, "status"),
        ("GET", "/orders?colour=red", None, AUTH, 422, "colour"),
        ("POST", "/orders", {"customer_id": "c", "items": ITEMS}, {}, 401, "bearer token"),
        ("GET", "/orders/o-1", None, {"Authorization": "Bearer wrong"}, 401, "bearer token"),
        ("DELETE", "/orders/o-1", None, AUTH, 405, "Method Not Allowed"),
    ],
)
def test_bad_requests_get_their_status_and_a_useful_message(
    stack: Stack, method: str, path: str, body: Any, headers: dict, status: int, says: str
) -> None:
    content = body if isinstance(body, bytes) else None
    json_body = None if isinstance(body, bytes) else body
    r = httpx.request(method, stack.base + path, json=json_body, content=content, headers=headers)
    assert r.status_code == status, r.text
    assert says in r.text, r.text
    assert "error" in r.json()
    if status == 401:
        assert r.headers["www-authenticate"] == "Bearer"


def test_an_idempotency_key_reused_for_another_request_is_refused(stack: Stack) -> None:
    key = {"Idempotency-Key": "reuse-1", **AUTH}
    assert (
        stack.http.post(
            "/orders", json={"customer_id": "c-a", "items": ITEMS}, headers=key
        ).status_code
        == 202
    )
    r = stack.http.post("/orders", json={"customer_id": "c-b", "items": ITEMS}, headers=key)
    assert r.status_code == 422 and "different request" in r.text


def test_the_api_publishes_its_own_request_metrics(stack: Stack) -> None:
    stack.create()
    stack.http.get("/orders/o-metrics-probe")
    stack.http.get("/healthz")
    deadline = time.monotonic() + 30
    while True:
        events = [
            json.loads(m.value()) for m in read_all(stack.bootstrap, stack.prefix + METRICS_EVENTS)
        ]
        routes = {(e["service"], e["method"], e["route"], e["status"]) for e in events}
        if (
            "orders-api",
            "GET",
            "/orders/{order_id}",
            404,
        ) in routes or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert ("orders-api", "GET", "/orders/{order_id}", 404) in routes
    assert ("orders-api", "POST", "/orders", 202) in routes
    assert ("orders-api", "GET", "/healthz", 200) in routes
    assert all(e["duration_ms"] >= 0 for e in events)
