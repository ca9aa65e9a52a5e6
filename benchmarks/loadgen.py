"""A small open-loop HTTP/1.1 load generator for the API benchmarks (loopback only).

Request i is due at start + i / rate, whatever happened to the ones before it,
and its latency runs from when it was due to when its response was read: a
slow server cannot hide its queueing by slowing the sender down (coordinated
omission). Connections are keep-alive; each sends its next due request once its
previous response is in. Plain asyncio streams on uvloop: one process drives
several thousand requests a second, more than one API process serves.
"""

from __future__ import annotations

import asyncio
import math
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from streamhouse.broker import free_port


@dataclass(frozen=True)
class Target:
    method: str
    path: str
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.statuses) / self.seconds if self.seconds else 0.0


def wait_ready(url: str, proc: subprocess.Popen, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with {proc.returncode}") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer in {timeout_s:.0f} s") from None
            time.sleep(0.1)


def start_api(settings: dict[str, str], ready: str = "/readyz") -> tuple[subprocess.Popen, str]:
    """`streamhouse api` in a process of its own on a free port, with these environment
    settings; returns it and its base URL once `ready` answers."""
    import os
    import sys
    from pathlib import Path

    port = free_port()
    cli = str(Path(sys.executable).parent / "streamhouse")
    proc = subprocess.Popen(
        [cli, "api", "--port", str(port)],
        env={**os.environ, **settings},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    wait_ready(base + ready, proc)
    return proc, base


def percentiles(latencies: list[float]) -> dict[str, float]:
    """p50/p95/p99/max in milliseconds (nearest rank)."""
    ordered = sorted(latencies)

    def rank(q: float) -> float:
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)] * 1000

    return {"p50": rank(0.50), "p95": rank(0.95), "p99": rank(0.99), "max": ordered[-1] * 1000}


def _request_bytes(target: Target, host: str) -> bytes:
    lines = [f"{target.method} {target.path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in target.headers]
    body = target.body or b""
    if target.body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length) if length else b""


async def _drive(
    base: str, targets: list[Target], rate: float | None, connections: int, keep_bodies: bool
) -> LoadResult:
    url = urlsplit(base)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    payloads = [_request_bytes(t, f"{host}:{port}") for t in targets]
    result = LoadResult(
        latencies=[0.0] * len(targets), statuses=[0] * len(targets), bodies=[b""] * len(targets)
    )
    next_index = 0
    started = time.perf_counter()

    async def connection() -> None:
        nonlocal next_index
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while next_index < len(payloads):
                i = next_index
                next_index += 1
                due = started + i / rate if rate else time.perf_counter()
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                writer.write(payloads[i])
                status, body = await _read_response(reader)
                result.latencies[i] = time.perf_counter() - due
                result.statuses[i] = status
                if keep_bodies:
                    result.bodies[i] = body
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))
    result.seconds = time.perf_counter() - started
    return result


def run_load(
    base: str,
    targets: list[Target],
    rate: float | None,
    connections: int,
    keep_bodies: bool = False,
) -> LoadResult:
    """Send `targets` at `rate` per second (None: as fast as `connections` allow)."""
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency of the API
        runner = asyncio.run
    return runner(_drive(base, targets, rate, connections, keep_bodies))


class Pool:
    """Keep-alive connections shared by concurrent requests (for scenarios that mix
    requests, such as POST then poll GET until visible)."""

    def __init__(self, base: str, size: int) -> None:
        url = urlsplit(base)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.size = size
        self._free: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.Queue()
        )

    async def open(self) -> None:
        for _ in range(self.size):
            self._free.put_nowait(await asyncio.open_connection(self.host, self.port))

    async def request(self, target: Target) -> tuple[int, bytes]:
        reader, writer = await self._free.get()
        try:
            writer.write(_request_bytes(target, f"{self.host}:{self.port}"))
            return await _read_response(reader)
        finally:
            self._free.put_nowait((reader, writer))

    def close(self) -> None:
        while not self._free.empty():
            self._free.get_nowait()[1].close()
