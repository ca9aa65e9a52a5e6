"""An OTLP/HTTP receiver on a real socket, for tests: what an OpenTelemetry collector would
get from streamhouse's processes, decoded from protobuf."""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


@dataclass
class Span:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int
    attributes: dict[str, Any]
    links: list[tuple[str, str]] = field(default_factory=list)


class Receiver:
    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.metrics: dict[tuple[str, str], list[Any]] = {}
        """(service, metric name) -> data points received."""
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                encoding = self.headers.get("Content-Encoding")
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                if self.path == "/v1/traces":
                    receiver._traces(ExportTraceServiceRequest.FromString(body))
                elif self.path == "/v1/metrics":
                    receiver._metrics(ExportMetricsServiceRequest.FromString(body))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @staticmethod
    def _service(resource: Any) -> str:
        for a in resource.attributes:
            if a.key == "service.name":
                return _value(a.value)
        return ""

    def _traces(self, request: ExportTraceServiceRequest) -> None:
        got = []
        for rs in request.resource_spans:
            service = self._service(rs.resource)
            for ss in rs.scope_spans:
                for s in ss.spans:
                    got.append(Span(
                        service, s.name, s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex(),
                        s.kind, {a.key: _value(a.value) for a in s.attributes},
                        [(link.trace_id.hex(), link.span_id.hex()) for link in s.links],
                    ))  # fmt: skip
        with self._lock:
            self.spans += got

    def _metrics(self, request: ExportMetricsServiceRequest) -> None:
        with self._lock:
            for rm in request.resource_metrics:
                service = self._service(rm.resource)
                for sm in rm.scope_metrics:
                    for m in sm.metrics:
                        data = getattr(m, m.WhichOneof("data"))
                        self.metrics.setdefault((service, m.name), []).extend(data.data_points)

    def wait(self, what: str, found: Callable[[], Any], timeout_s: float = 60) -> Any:
        deadline = time.monotonic() + timeout_s
        while not (result := found()):
            assert time.monotonic() < deadline, f"never received {what}"
            time.sleep(0.2)
        return result

    def close(self) -> None:
        self.server.shutdown()


def span_tree(spans: list[Span], trace_id: str) -> str:
    """One trace as indented text: each span under its parent, with its service; a batch
    span that links to one of them shows under it, marked `(link)`."""
    mine = [s for s in spans if s.trace_id == trace_id]
    ids = {s.span_id for s in mine}
    children: dict[str, list[Span]] = {}
    for s in mine:
        children.setdefault(s.parent_id if s.parent_id in ids else "", []).append(s)
    lines: list[str] = []

    linking: dict[str, list[Span]] = {}
    for s in spans:
        for trace, span in s.links:
            if trace == trace_id:
                linking.setdefault(span, []).append(s)

    def walk(parent: str, depth: int) -> None:
        for s in children.get(parent, []):
            lines.append(f"{'  ' * depth}{s.name}  [{s.service}]")
            for batch in linking.get(s.span_id, []):
                count = batch.attributes.get("messaging.batch.message_count", "?")
                lines.append(
                    f"{'  ' * (depth + 1)}{batch.name}  [{batch.service}] (link; batch of {count})"
                )
            walk(s.span_id, depth + 1)

    walk("", 0)
    return "\n".join(lines)
