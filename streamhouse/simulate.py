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
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import msgspec
from tqdm import tqdm

from models.simulator import SimRecord, Simulator
from sinks.kafka import KafkaMessage, ReliableProducer


@dataclass
class SendReport:
    records: int = 0
    seconds: float = 0.0

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
    """Produce the whole simulation; raise KafkaDeliveryError if any message was not delivered.

    A full local queue is waited out, never dropped."""
    producer = ReliableProducer(config, topic_prefix)
    report = SendReport()
    began = time.perf_counter()
    with _progress(sim, show_progress, "msg") as bar:
        for record in _paced(sim.records(), speed):
            producer.send(KafkaMessage(record.topic, record.key, record.value, record.headers))
            report.records += 1
            if report.records % 5_000 == 0:
                producer.poll()
                bar.update(5_000)
        bar.update(report.records % 5_000)
        producer.flush(120)
    report.seconds = time.perf_counter() - began
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
