"""`streamhouse api`: the order API over Kafka and the lake, served by uvicorn.

The app measures itself: `HttpMetricsMiddleware` publishes an `http_request`
event per request to `metrics-events` (service `orders-api`), so `api_metrics`
watches the API like any other service.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from sinks.kafka_async import AsyncProducer
from streamhouse.api.app import ApiConfig, OrderApi
from streamhouse.api.reader import OrderReader
from streamhouse.broker import free_port
from streamhouse.config import ConfigError, Settings
from streamhouse.http_metrics import HttpMetricsMiddleware
from streamhouse.process import tune_gc
from streamhouse.telemetry import configure, service_name
from streamhouse.tracing import TracingMiddleware
from warehouse.lake import Lake

SERVICE = "orders-api"
log = logging.getLogger(__name__)


class KafkaBus:
    """Commands to Kafka: `send` returns once the broker has them."""

    def __init__(self, producer: AsyncProducer) -> None:
        self.producer = producer
        self.send = producer.send

    def reachable(self) -> bool:
        return self.producer.reachable()


def build_app(settings: Settings, config: ApiConfig) -> tuple[Any, AsyncProducer, OrderReader]:
    """The ASGI app with its producer and reader (the caller closes both)."""
    try:  # the projection may not have written yet; the folder is where it will
        settings.lake_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"STREAMHOUSE_LAKE_DIR={settings.lake_dir}: {e.strerror}") from None
    producer = AsyncProducer(settings.kafka_config(), topic_prefix=settings.topic_prefix)
    reader = OrderReader(Lake(settings.lake_dir))
    api = OrderApi(KafkaBus(producer), reader, config)
    app = HttpMetricsMiddleware(api.app(), service=SERVICE, publish=producer.offer)
    return TracingMiddleware(app), producer, reader


@contextmanager
def background_server(app: Any) -> Iterator[int]:
    """Serve `app` on a free loopback port from a thread, for as long as the block runs
    (the demo, tests); yields the port."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True, name="api")
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"the API could not listen on 127.0.0.1:{port}")
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def serve(settings: Settings, config: ApiConfig, host: str, port: int) -> None:
    tune_gc()  # as in the dataflows: collections every 700 objects showed in the API's p99
    configure(service_name(SERVICE))
    app, producer, reader = build_app(settings, config)
    try:
        uvicorn.run(
            app,
            host=host,
            port=port,
            loop="uvloop",
            http="httptools",
            access_log=False,
            log_level="warning",
        )
    finally:
        left = producer.close()
        if left:
            log.error("%d message(s) were still undelivered at shutdown", left)
        reader.close()
