"""Where simulated traffic goes: pacing, and the JSON-lines envelope."""

from __future__ import annotations

import base64
import json

import pytest

from models.simulator import SimConfig, SimRecord, Simulator
from streamhouse import simulate


class FakeClock:
    """Time passes only when the code under test sleeps: no real waiting, no timing flakes."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_speed_paces_delivery_by_simulated_time(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(simulate.time, "monotonic", clock.monotonic)
    monkeypatch.setattr(simulate.time, "sleep", clock.sleep)
    records = list(Simulator(SimConfig(duration_s=20, events_per_s=50)).records())
    paced = list(simulate._paced(iter(records), speed=4.0))
    assert paced == records
    # Delivering 20+ simulated seconds at 4x takes a quarter of that in wall time.
    assert clock.now == pytest.approx(records[-1].emit_s / 4.0)
    assert all(s > 0 for s in clock.slept)


def test_no_speed_means_no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(simulate.time, "sleep", clock.sleep)
    records = list(Simulator(SimConfig(duration_s=5, events_per_s=50)).records())
    assert list(simulate._paced(iter(records), speed=None)) == records
    assert clock.slept == []


def test_envelope_keeps_non_utf8_bytes_exactly() -> None:
    raw = b'{"type":"x"\xff\xfe}'
    record = SimRecord("page-views", b"u-1", raw, (("traceparent", b"00-ab-cd-01"),), 0.0)
    line = json.loads(simulate.envelope(record))
    assert base64.b64decode(line["value_b64"]) == raw
    assert "value" not in line
    assert line["key"] == "u-1" and line["headers"] == {"traceparent": "00-ab-cd-01"}
    ok = json.loads(simulate.envelope(SimRecord("page-views", None, b"{}", (), 0.0)))
    assert ok == {"key": None, "headers": {}, "value": "{}"}
