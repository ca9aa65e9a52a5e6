"""Each detector on synthetic series with known anomalies: flags them, stays quiet on clean
noise, raises nothing while warming up; and the alert lifecycle over their signals."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from models.alerts import FIRING, RESOLVED, AlertBook, AlertPolicy, AlertTracker, Signal
from models.detectors import ParameterError, detector, parse_spec

START = 1_767_600_000.0  # a Monday 08:00 UTC


def noisy(n: int, level: float = 100.0, sd: float = 5.0, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    return [level + rng.gauss(0.0, sd) for _ in range(n)]


def flagged(method: str, params: dict, values: list[float], times: list[float] | None = None):
    d = detector(method, params)
    state = d.new_state()
    times = times or [START + 60 * i for i in range(len(values))]
    scores = d.score(state, values, times)
    return [i for i, bad in enumerate(scores.anomalous) if bad], scores


LEARNING = [
    ("ewma", {"alpha": 0.05, "z": 5, "warmup": 20}),
    ("mad", {"window": 60, "z": 6, "warmup": 10}),
    ("seasonal", {"period_s": 3600, "slots": 12, "z": 5, "warmup": 20}),
]


@pytest.mark.parametrize(("method", "params"), LEARNING)
def test_quiet_on_clean_noise(method: str, params: dict) -> None:
    for seed in range(5):
        found, _ = flagged(method, params, noisy(2_000, seed=seed))
        assert found == [], (seed, found[:5])


@pytest.mark.parametrize(("method", "params"), LEARNING)
def test_flags_injected_spikes_and_drops(method: str, params: dict) -> None:
    values = noisy(600)
    injected = {150: 160.0, 300: 40.0, 301: 45.0, 450: 170.0}
    for i, v in injected.items():
        values[i] = v
    found, scores = flagged(method, params, values)
    assert found == sorted(injected)
    for i in injected:
        low, high = scores.low[i], scores.high[i]
        assert low is not None and high is not None
        assert not low <= values[i] <= high
        assert (scores.score[i] > 0) == (values[i] > 100)


@pytest.mark.parametrize(("method", "params"), LEARNING)
def test_warm_up_raises_nothing(method: str, params: dict) -> None:
    warmup = int(params["warmup"])
    wild = [100.0, 1e6, -1e6, 5.0] * 10
    found, _ = flagged(method, params, wild[: warmup - 1] + noisy(5))
    assert [i for i in found if i < warmup - 1] == []


def test_direction_up_ignores_drops() -> None:
    values = noisy(200)
    values[100], values[150] = 20.0, 180.0
    found, _ = flagged("mad", {"direction": "up", "z": 5}, values)
    assert found == [150]


def test_counts_floor_keeps_small_counts_quiet() -> None:
    values = [6, 6, 6, 11, 10, 8, 6, 6, 9, 7, 6, 10, 11, 10, 7, 2, 10, 7, 6, 3] * 5
    assert flagged("mad", {"z": 5, "counts": 1}, [float(v) for v in values])[0] == []
    burst = [float(v) for v in values] + [140.0]
    assert flagged("mad", {"z": 5, "counts": 1}, burst)[0] == [len(values)]


def test_seasonal_learns_the_shape_of_a_period() -> None:
    """A strong hourly shape: an EWMA of the level counts the shape as noise, so its range
    is too wide to see a spike; the seasonal baseline learns the shape and sees it."""
    times = [START + 60 * i for i in range(24 * 60)]
    rng = random.Random(3)
    values = [100 + 40 * math.sin(2 * math.pi * (t % 3600) / 3600) + rng.gauss(0, 2) for t in times]
    values[20 * 60 + 7] += 60
    seasonal = {"period_s": 3600, "slots": 60, "gamma": 0.5, "z": 6, "warmup": 120}
    found, _ = flagged("seasonal", seasonal, values, times)
    assert found == [20 * 60 + 7]
    plain, _ = flagged("ewma", {"alpha": 0.05, "z": 6, "warmup": 120}, values, times)
    assert 20 * 60 + 7 not in plain


def test_a_new_level_is_learned_after_adapt_after_points() -> None:
    values = noisy(100) + noisy(200, level=300.0, seed=2)
    found, _ = flagged("ewma", {"alpha": 0.05, "z": 5, "warmup": 20, "adapt_after": 10}, values)
    assert found == list(range(100, 110))


def test_threshold_bounds_and_scores() -> None:
    found, scores = flagged("threshold", {"above": 10, "below": 2}, [5, 10, 1, 20, 2.5])
    assert found == [1, 2, 3]
    assert scores.score[0] == 0 and scores.score[3] > scores.score[1] > 0 > scores.score[2]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("ewma:alpha=2", "alpha=2"),
        ("ewma:alpha=x", "not a number"),
        ("mad:windw=3", "no parameter windw"),
        ("zscore", "unknown detector method 'zscore'"),
        ("threshold", "needs above or below"),
        ("ewma:direction=sideways", "direction='sideways'"),
        ("ewma:alpha", "not name=value"),
    ],
)
def test_bad_parameters_name_the_problem(spec: str, message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        parse_spec(spec)


def test_state_carries_over_between_calls() -> None:
    """Scoring a series in pieces (batches) gives what scoring it whole gives."""
    values = noisy(500)
    values[250] = 200.0
    times = [START + i for i in range(500)]
    for method, params in LEARNING:
        d = detector(method, params)
        whole = d.score(d.new_state(), values, times)
        state = d.new_state()
        pieces = [d.score(state, values[i : i + 37], times[i : i + 37]) for i in range(0, 500, 37)]
        assert [b for p in pieces for b in p.anomalous] == whole.anomalous
        assert [s for p in pieces for s in p.score] == pytest.approx(whole.score)


# --- the lifecycle --------------------------------------------------------------------------

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def signal(minute: int, subject: str = "svc", value: float = 50.0) -> Signal:
    start = T0 + minute * MIN
    return Signal("errors", "critical", subject, start, start + MIN, value, value / 10, 10.0)


def test_an_incident_is_one_alert_firing_then_resolved() -> None:
    tracker, book = AlertTracker("log_alerts", AlertPolicy(timedelta(minutes=3))), AlertBook()
    out = tracker.track(book, [signal(0), signal(1, value=90.0), signal(3)], T0 + 4 * MIN)
    assert [(a.state, a.version) for a in out] == [(FIRING, 1)]
    assert tracker.track(book, [], T0 + 6 * MIN) == []  # 2 quiet minutes: still firing
    (resolved,) = tracker.track(book, [], T0 + 7 * MIN)
    assert resolved.state == RESOLVED and resolved.version == 2
    assert resolved.alert_id == out[0].alert_id
    assert (resolved.first_seen, resolved.last_seen) == (T0, T0 + 4 * MIN)
    assert resolved.observed == 90.0  # the worst point
    again = tracker.track(book, [signal(9)], T0 + 10 * MIN)
    assert [a.state for a in again] == [FIRING] and again[0].alert_id != out[0].alert_id


def test_alerts_do_not_depend_on_how_signals_are_batched() -> None:
    rng = random.Random(7)
    minutes = sorted(rng.sample(range(200), 60))
    signals = [signal(m, subject=f"s{m % 3}") for m in minutes]
    policy = AlertPolicy(timedelta(minutes=4))

    def run(cut: int) -> list:
        tracker, book, out = AlertTracker("x", policy), AlertBook(), []
        for i in range(0, len(signals), cut):
            part = signals[i : i + cut]
            out += tracker.track(book, part, part[-1].window_end)
        return sorted(out, key=lambda a: (a.alert_id, a.version))

    assert run(1) == run(7) == run(60)


def test_resolving_a_stopped_series() -> None:
    tracker, book = AlertTracker("anomalies"), AlertBook()
    tracker.track(book, [signal(0, subject="m:e")], T0 + MIN)
    (done,) = tracker.resolve(book, {"m:e": "errors"})
    assert done.state == RESOLVED and book.open == {}
