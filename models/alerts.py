"""Threshold alerts: a rule, a series that crossed it, and the alert row that says so.

An alert is about one subject (a route, a service and error type) in one window;
its id is derived from rule, subject and window, so a replay raises the same alert
with the same id instead of a second one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import msgspec
import polars as pl

from models.base import derived_id


@dataclass(frozen=True)
class ThresholdRule:
    """Fire when `column` of a window's row is >= `threshold` (and `where` holds)."""

    name: str
    column: str
    threshold: float
    severity: str = "warning"
    where: pl.Expr | None = None


class Alert(msgspec.Struct, frozen=True, kw_only=True):
    """One alert change, as on the `alerts` topic and in the lake table `alerts`."""

    alert_id: str
    version: int
    rule: str
    severity: str
    subject: str
    state: str
    observed: float | None
    threshold: float | None
    first_seen: object
    last_seen: object


def threshold_alerts(
    rows: pl.DataFrame, rules: Sequence[ThresholdRule], subject: pl.Expr
) -> pl.DataFrame:
    """The alerts `rows` (windowed results with window_start/window_end) raise: one per
    rule and row over its threshold, firing, version 1."""
    found = []
    for rule in rules:
        hit = pl.col(rule.column) >= rule.threshold
        if rule.where is not None:
            hit &= rule.where
        found.append(
            rows.filter(hit).select(
                pl.lit(rule.name).alias("rule"),
                pl.lit(rule.severity).alias("severity"),
                subject.alias("subject"),
                pl.lit("firing").alias("state"),
                pl.col(rule.column).cast(pl.Float64).alias("observed"),
                pl.lit(float(rule.threshold)).alias("threshold"),
                pl.col("window_start").alias("first_seen"),
                pl.col("window_end").alias("last_seen"),
            )
        )
    alerts = pl.concat(found) if found else pl.DataFrame()
    if alerts.is_empty():
        return alerts
    ids = [
        derived_id(rule, subject, start.isoformat())
        for rule, subject, start in zip(
            alerts["rule"], alerts["subject"], alerts["first_seen"], strict=True
        )
    ]
    return alerts.with_columns(
        pl.Series("alert_id", ids, dtype=pl.String), pl.lit(1, pl.Int64).alias("version")
    )
