"""Send simulated traffic somewhere: a Kafka cluster, or JSON-lines files. With a progress bar.

Kafka output uses librdkafka's `murmur2_random` partitioner, which is the Java
client's murmur2 for keyed messages: a key lands on the partition a Java
service would have put it on.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import msgspec
from confluent_kafka import KafkaError, Producer
from tqdm import tqdm

from models.simulator import SimRecord, Simulator

PRODUCER_DEFAULTS: dict[str, str | int | bool] = {
    "partitioner": "murmur2_random",
    "enable.idempotence": True,
    "linger.ms": 20,
    "batch.num.messages": 10_000,
    "batch.size": 1_000_000,
    "compression.type": "lz4",
    "queue.buffering.max.messages": 500_000,
    "queue.buffering.max.kbytes": 512 * 1024,
}


class DeliveryError(RuntimeError):
    """Kafka refused or lost messages after librdkafka's own retries."""


@dataclass
class SendReport:
    records: int = 0
    seconds: float = 0.0
    failed: int = 0
    first_errors: list[str] = field(default_factory=list)

    @property
    def per_second(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


def _paced(records: Iterator[SimRecord], speed: float | None) -> Iterator[SimRecord]:
    """Deliver at `speed` simulated seconds per wall second; None means as fast as possible."""
    if not speed:
        yield from records
        return
    began = time.monotonic()
    for record in records:
        wait = record.emit_s / speed - (time.monotonic() - began)
        if wait > 0:
            time.sleep(wait)
        yield record


def _progress(sim: Simulator, show: bool, unit: str) -> tqdm:
    return tqdm(
        total=sim.expected_records(),
        unit=unit,
        unit_scale=True,
        disable=not show,
        desc="simulate",
        mininterval=0.5,
    )


def to_kafka(
    sim: Simulator,
    config: Mapping[str, object],
    *,
    speed: float | None = None,
    show_progress: bool = True,
    topic_prefix: str = "",
) -> SendReport:
    """Produce the whole simulation; raise DeliveryError if any message was not delivered.

    A full local queue is waited out (poll until deliveries free room), never dropped."""
    report = SendReport()

    def delivered(err: KafkaError | None, _msg: object) -> None:
        if err is not None:
            report.failed += 1
            if len(report.first_errors) < 5:
                report.first_errors.append(str(err))

    producer = Producer({**PRODUCER_DEFAULTS, **config})
    began = time.perf_counter()
    with _progress(sim, show_progress, "msg") as bar:
        pending = 0
        for record in _paced(sim.records(), speed):
            while True:
                try:
                    producer.produce(
                        topic_prefix + record.topic,
                        record.value,
                        record.key,
                        headers=list(record.headers),
                        on_delivery=delivered,
                    )
                    break
                except BufferError:  # local queue full: wait for deliveries, don't drop
                    producer.poll(0.05)
            report.records += 1
            pending += 1
            if pending >= 5_000:
                producer.poll(0)
                bar.update(pending)
                pending = 0
        bar.update(pending)
        remaining = producer.flush(120)
    report.seconds = time.perf_counter() - began
    if remaining:
        report.failed += remaining
        report.first_errors.append(f"{remaining} messages still queued after 120 s flush")
    if report.failed:
        raise DeliveryError(
            f"{report.failed} of {report.records} messages were not delivered: "
            + "; ".join(report.first_errors)
        )
    return report


_envelope = msgspec.json.Encoder()


def envelope(record: SimRecord) -> bytes:
    """One JSON line per message; a value that is not UTF-8 is carried as `value_b64`."""
    line: dict[str, object] = {
        "key": record.key.decode() if record.key is not None else None,
        "headers": {name: value.decode() for name, value in record.headers},
    }
    try:
        line["value"] = record.value.decode("utf-8")
    except UnicodeDecodeError:
        line["value_b64"] = base64.b64encode(record.value).decode()
    return _envelope.encode(line) + b"\n"


def to_files(sim: Simulator, out_dir: Path, *, show_progress: bool = True) -> SendReport:
    """Write `<out_dir>/<topic>.jsonl`, one envelope line per message, in delivery order."""
    out_dir.mkdir(parents=True, exist_ok=True)
    report = SendReport()
    began = time.perf_counter()
    files: dict[str, IO[bytes]] = {}
    with ExitStack() as stack, _progress(sim, show_progress, "rec") as bar:
        for record in sim.records():
            out = files.get(record.topic)
            if out is None:
                out = files[record.topic] = stack.enter_context(
                    open(out_dir / f"{record.topic}.jsonl", "wb")
                )
            out.write(envelope(record))
            report.records += 1
            if report.records % 5_000 == 0:
                bar.update(5_000)
        bar.update(report.records % 5_000)
    report.seconds = time.perf_counter() - began
    return report


def write_labels(sim: Simulator, path: Path) -> None:
    """The injected incidents, one JSON object per line: the ground truth for detectors."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(_envelope.encode(i.as_label()) + b"\n" for i in sim.incidents))
