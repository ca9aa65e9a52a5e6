"""Scoring alerts against the incidents the simulator injected (its labels).

Each incident kind is the business of a family of rules; an alert *matches* an
incident when its rule is of the incident's family, its subject is the incident's
subject, and it fired between the incident's start and `grace` after its end.
Per kind:

- recall: incidents matched by at least one alert;
- precision: the family's alerts that match an incident, of all the family's alerts;
- delay: from the incident's start to the end of the first window (or the instant)
  that raised its first alert, in windows of `window`;
- storm: alerts per incident and rule (1 is the goal: one incident, one alert).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

RULES: dict[str, tuple[str, ...]] = {
    "latency_spike": ("api_latency_anomaly", "api_p99_latency", "api_mean_latency"),
    "error_burst": ("api_error_rate", "log_error_count", "log_error_anomaly"),
    "order_drop": ("order_rate_anomaly",),
    "metric_spike": ("business_anomaly",),
}
"""Incident kind -> the rules whose business it is."""
GRACE = timedelta(minutes=2)
"""How long after an incident's end an alert still counts as raised by it."""


@dataclass
class KindQuality:
    kind: str
    incidents: int = 0
    detected: int = 0
    alerts: int = 0
    """The family's firing alerts (distinct ids)."""
    matching: int = 0
    delays: list[float] = field(default_factory=list)
    """Per detected incident, in windows."""
    most_per_rule: int = 0
    """The most alerts one incident raised under one rule."""

    @property
    def recall(self) -> float:
        return self.detected / self.incidents if self.incidents else float("nan")

    @property
    def precision(self) -> float:
        return self.matching / self.alerts if self.alerts else float("nan")

    @property
    def median_delay(self) -> float:
        return statistics.median(self.delays) if self.delays else float("nan")


def _at(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def matches(alert: Mapping[str, Any], incident: Mapping[str, Any], grace: timedelta) -> bool:
    if alert["rule"] not in RULES.get(str(incident["kind"]), ()):
        return False
    if alert["subject"] != incident["subject"]:
        return False
    fired = _at(alert["first_seen"])
    return _at(incident["start"]) - grace / 2 <= fired < _at(incident["end"]) + grace


def firing_alerts(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The first row (version 1, firing) of each alert in a change log."""
    first: dict[str, Mapping[str, Any]] = {}
    for row in rows:
        if row["version"] == 1:
            first[row["alert_id"]] = row
    return sorted(first.values(), key=lambda r: (_at(r["first_seen"]), r["rule"], r["subject"]))


def quality(
    alerts: Sequence[Mapping[str, Any]],
    incidents: Sequence[Mapping[str, Any]],
    window: timedelta = timedelta(minutes=1),
    grace: timedelta = GRACE,
) -> dict[str, KindQuality]:
    """Per incident kind, how `alerts` (firing rows) found `incidents` (labels)."""
    out = {kind: KindQuality(kind) for kind in RULES}
    for kind, rules in RULES.items():
        family = [a for a in alerts if a["rule"] in rules]
        out[kind].alerts = len(family)
        of_kind = [i for i in incidents if i["kind"] == kind]
        out[kind].incidents = len(of_kind)
        matched: set[str] = set()
        for incident in of_kind:
            found = [a for a in family if matches(a, incident, grace)]
            matched |= {a["alert_id"] for a in found}
            if not found:
                continue
            out[kind].detected += 1
            first_end = min(_at(a["window_end"]) for a in found)
            out[kind].delays.append((first_end - _at(incident["start"])) / window)
            per_rule: dict[str, int] = {}
            for a in found:
                per_rule[a["rule"]] = per_rule.get(a["rule"], 0) + 1
            out[kind].most_per_rule = max(out[kind].most_per_rule, *per_rule.values())
        out[kind].matching = len(matched)
    return out


def merge(parts: Iterable[dict[str, KindQuality]]) -> dict[str, KindQuality]:
    """Sum per-run qualities (several seeds) into one per kind."""
    total = {kind: KindQuality(kind) for kind in RULES}
    for part in parts:
        for kind, q in part.items():
            t = total[kind]
            t.incidents += q.incidents
            t.detected += q.detected
            t.alerts += q.alerts
            t.matching += q.matching
            t.delays += q.delays
            t.most_per_rule = max(t.most_per_rule, q.most_per_rule)
    return total
