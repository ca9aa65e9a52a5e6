"""Alerts: one schema for every source, and the lifecycle that turns anomalous points
into incidents.

A *signal* is one anomalous point of one series: a rule (what was watched), a
subject (which route, service or business series), the window or instant it is
about, the value observed and the range or threshold it broke. Signals of one
(rule, subject) that keep coming are one incident: one alert that fires once,
stays firing, and resolves when no signal has come for `resolve_after` of event
time. Every change is one row (version 1 firing, version 2 resolved), the same on
the `alerts` topic, in the lake table `alerts` and at a webhook.

Time is the flow's event time (the newest window end or event time it has seen),
not the wall clock, so a replay resolves at the same point and ids never change:
`alert_id` = hash(rule, subject, first_seen).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import msgspec

from models.base import derived_id

FIRING = "firing"
RESOLVED = "resolved"
SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True)
class AlertPolicy:
    """When an incident is over (STREAMHOUSE_ALERT_RESOLVE_S)."""

    resolve_after: timedelta = timedelta(minutes=3)
    """Event time with no anomalous point of the series before its alert resolves."""


class Alert(msgspec.Struct, frozen=True, kw_only=True):
    """One alert change, as on the `alerts` topic, in the lake table `alerts` and at a
    webhook. A firing alert's row is replaced by its resolved row (same id, version 2)."""

    alert_id: str
    version: int
    source: str
    """The flow that raised it: api_metrics, log_alerts, order_stats, anomalies."""
    rule: str
    severity: str
    subject: str
    state: str
    """firing or resolved."""
    window_start: datetime
    window_end: datetime
    """The window (or, for a point, the instant) of the worst point so far."""
    observed: float
    """The worst value so far (largest |score|)."""
    threshold: float | None
    """The bound it crossed, for threshold rules."""
    expected_low: float | None
    expected_high: float | None
    """The range a detector expected, for anomaly rules."""
    score: float
    first_seen: datetime
    last_seen: datetime
    """Start of the first and end of the last anomalous window (or point)."""


@dataclass(frozen=True)
class Signal:
    """One anomalous point of one series."""

    rule: str
    severity: str
    subject: str
    window_start: datetime
    window_end: datetime
    observed: float
    score: float
    threshold: float | None = None
    expected_low: float | None = None
    expected_high: float | None = None


@dataclass
class OpenAlert:
    alert_id: str
    severity: str
    first_seen: datetime
    last_seen: datetime
    worst: Signal


@dataclass
class AlertBook:
    """The tracker's state: the open alert per (rule, subject) and the event time reached."""

    open: dict[tuple[str, str], OpenAlert] = field(default_factory=dict)
    now: datetime | None = None


class AlertTracker:
    """Signals in, alert changes out (see the module doc)."""

    def __init__(self, source: str, policy: AlertPolicy | None = None) -> None:
        self.source = source
        self.policy = policy or AlertPolicy()

    def track(
        self, book: AlertBook, signals: Iterable[Signal], now: datetime | None
    ) -> list[Alert]:
        """Apply `signals` (in event-time order), then resolve what has been quiet long
        enough by `now`, the newest event time the flow has seen (anomalous or not)."""
        out: list[Alert] = []
        quiet = self.policy.resolve_after
        for signal in signals:
            book.now = max(book.now or signal.window_end, signal.window_end)
            key = (signal.rule, signal.subject)
            current = book.open.get(key)
            if current is not None and signal.window_start - current.last_seen >= quiet:
                out.append(self._row(book.open.pop(key), RESOLVED, 2))
                current = None
            if current is None:
                first = signal.window_start
                alert = OpenAlert(
                    derived_id(signal.rule, signal.subject, first.isoformat()),
                    signal.severity,
                    first,
                    signal.window_end,
                    signal,
                )
                book.open[key] = alert
                out.append(self._row(alert, FIRING, 1))
                continue
            current.last_seen = max(current.last_seen, signal.window_end)
            if abs(signal.score) > abs(current.worst.score):
                current.worst = signal
        if now is not None:
            book.now = max(book.now or now, now)
        if book.now is not None:
            done = [k for k, a in book.open.items() if book.now - a.last_seen >= quiet]
            out += [self._row(book.open.pop(k), RESOLVED, 2) for k in sorted(done)]
        return out

    def resolve(self, book: AlertBook, subjects: Mapping[str, str]) -> list[Alert]:
        """Resolve the open alerts of these (subject -> rule) now: their series stopped
        being watched (a disabled model)."""
        done = [(r, s) for (r, s) in book.open if subjects.get(s) == r]
        return [self._row(book.open.pop(k), RESOLVED, 2) for k in sorted(done)]

    def _row(self, alert: OpenAlert, state: str, version: int) -> Alert:
        worst = alert.worst
        return Alert(
            alert_id=alert.alert_id,
            version=version,
            source=self.source,
            rule=worst.rule,
            severity=alert.severity,
            subject=worst.subject,
            state=state,
            window_start=worst.window_start,
            window_end=worst.window_end,
            observed=worst.observed,
            threshold=worst.threshold,
            expected_low=worst.expected_low,
            expected_high=worst.expected_high,
            score=worst.score,
            first_seen=alert.first_seen,
            last_seen=alert.last_seen,
        )
