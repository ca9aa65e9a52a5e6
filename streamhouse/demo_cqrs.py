"""The demo's CQRS round trip: commands in through the order API, the view read back.

The API is the real one (streamhouse/api/) on a real loopback socket, and the
command handler and projection are the real dataflows with bytewax recovery on;
only Kafka is replaced, by two in-memory logs (no broker in the demo): the API's
command bus appends to `order-commands`, the handler's events are appended to
`order-events`. After each round of requests both flows run until they have
caught up, resuming from their snapshots as a restarted flow does, and the API's
GET reads what the projection landed in the lake.
"""

from __future__ import annotations

import json
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, TextIO

import pyarrow as pa
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import run_main

from dataflows import order_commands, order_projection
from dataflows.inputs import MemorySource
from dataflows.messages import RawMessage
from dataflows.outputs import Outputs
from models.topics import ORDER_COMMANDS, ORDER_EVENTS
from sinks.kafka import KafkaMessage
from streamhouse.api.app import ApiConfig, OrderApi
from streamhouse.api.reader import OrderReader
from streamhouse.api.server import background_server
from streamhouse.render import print_table
from warehouse.lake import Lake

ITEMS = [
    {"sku": "p-00042", "qty": 2, "unit_price": 19.9},
    {"sku": "p-00007", "qty": 1, "unit_price": 5.0},
]
TOTAL = 44.8


class MemoryBus:
    """The API's command bus, appending to an in-memory `order-commands` log."""

    def __init__(self) -> None:
        self.log: list[RawMessage] = []

    async def send(self, message: KafkaMessage) -> None:
        self.log.append(
            RawMessage(
                ORDER_COMMANDS, 0, len(self.log), message.key, message.value, message.headers
            )
        )

    def reachable(self) -> bool:
        return True


class RoundTrip:
    def __init__(self, lake: Lake, work: Path) -> None:
        self.lake, self.bus = lake, MemoryBus()
        self.events: list[RawMessage] = []
        self.recovery = {}
        for flow in ("order_commands", "order_projection"):
            (work / flow).mkdir()
            init_db_dir(work / flow, 1)
            self.recovery[flow] = RecoveryConfig(str(work / flow))
        self.api = OrderApi(self.bus, OrderReader(lake, refresh_s=0), ApiConfig())
        self.port = 0
        """Set once the API listens (`run`)."""

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def catch_up(self) -> None:
        """Run the command handler, then the projection, over what arrived since last time."""
        captured: dict[str, list[Any]] = {}
        handler = order_commands.build(
            MemorySource(self.bus.log), Outputs(lake=self.lake, captured=captured)
        )
        run_main(handler, recovery_config=self.recovery["order_commands"])
        for message in captured.get(ORDER_EVENTS, []):
            self.events.append(
                RawMessage(ORDER_EVENTS, 0, len(self.events), message.key, message.value)
            )
        projection = order_projection.build(MemorySource(self.events), Outputs(lake=self.lake))
        run_main(projection, recovery_config=self.recovery["order_projection"])


def run(lake: Lake, out: TextIO = sys.stdout) -> dict[str, dict[str, Any]]:
    """The round trip; returns the final view of each order (tests check it)."""
    with tempfile.TemporaryDirectory() as work:
        trip = RoundTrip(lake, Path(work))
        with background_server(trip.api.app()) as trip.port:
            print(f"\nCQRS round trip: the order API on http://127.0.0.1:{trip.port} "
                  "(commands to an in-memory log in place of Kafka)", file=out)  # fmt: skip
            orders = []
            for customer in ("c-ada", "c-bob", "c-cy"):
                status, body = trip.call(
                    "POST", "/orders", {"customer_id": customer, "items": ITEMS}
                )
                print(
                    f"  POST /orders {'(' + customer + ')':<15} -> {status} {body['order_id']}",
                    file=out,
                )
                orders.append(body["order_id"])
            trip.catch_up()
            steps = [
                (orders[0], "pay", {"amount": TOTAL}),
                (orders[0], "ship", {"carrier": "dhl"}),
                (orders[1], "pay", {"amount": TOTAL}),
                (orders[2], "cancel", {"reason": "changed mind"}),
                (orders[2], "ship", {}),  # after a cancel: the state machine rejects it
            ]
            for order_id, action, body in steps:
                status, _ = trip.call("POST", f"/orders/{order_id}/{action}", body)
                print(f"  POST /orders/{order_id[:10]}…/{action:<7} -> {status}", file=out)
            trip.catch_up()
            views = {}
            for order_id in orders:
                status, view = trip.call("GET", f"/orders/{order_id}")
                views[order_id] = view
            rows = [
                {
                    "order": order_id[:12] + "…",
                    "customer": view["customer_id"],
                    "status": view["status"],
                    "version": view["version"],
                    "history": " → ".join(h["status"] for h in view["history"]),
                    "rejected": "; ".join(r["reason"] for r in view["rejections"]) or "-",
                }
                for order_id, view in views.items()
            ]
            print(
                "\nGET /orders/{id} after the flows caught up (order_view_latest in the lake)",
                file=out,
            )
            print_table(pa.Table.from_pylist(rows), out)
            return views
