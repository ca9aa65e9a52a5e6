"""log_alerts: errors per service and error type per minute, from `log-events`.

    log-events ─► parse (JSON lines column-wise, plain-text lines one by one)
                ─┬─► unparseable lines ─► dead letters with the reason
                 └─► ERROR | FATAL ─► 1-min event-time windows per (service, error type)
                      ─┬─► lake error_counts_minute
                       ├─► per service and minute: errors >= threshold (default, or the
                       │   service's own) | errors anomalous for the service's detector
                       │     ─► one alert per incident ─► lake alerts, Kafka alerts, webhook
                       └─► late events ─► lake late_events

Plain-text lines look like `<ts> <LEVEL> [<service>] [ErrorType: ]message` (models/logs.py);
their `event_id` is a hash of the line, so a re-delivered line counts once.
Run it: `streamhouse run log_alerts`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import bytewax.operators as op
import msgspec
import polars as pl
import pyarrow as pa
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source

from dataflows.alerting import SeriesRule, watch_rows
from dataflows.decode import dead_letter
from dataflows.entry import flow_attribute
from dataflows.inputs import topic_partitions
from dataflows.messages import DeadLetter, MessageBatch
from dataflows.metrics import observed_batches
from dataflows.outputs import Outputs
from dataflows.windowing import (
    DUPS,
    MINUTE,
    Clock,
    Frame,
    WindowAggregation,
    to_table,
    window_aggregate,
    with_row_ids,
    with_window_bounds,
)
from models.alerts import AlertPolicy
from models.codec import check_raw
from models.detectors import Detector, Threshold, parse_spec
from models.frames import ROW, FrameDecoder
from models.logs import parse_plain
from models.projections import LogFields
from models.topics import LOG_EVENTS
from warehouse.tables import ERROR_COUNTS_MINUTE

FLOW = "log_alerts"
INPUT_TOPICS = (LOG_EVENTS,)
NO_ERROR_TYPE = "unspecified"
"""The error type of an error line that names none."""


ERROR_DETECTOR = "mad:window=60,z=5,warmup=5,direction=up,counts=1"
"""Errors per service and minute are counts: a robust baseline that only rises alarm."""


@dataclass(frozen=True)
class ErrorThresholds:
    """Errors per service and minute (all error types) that raise an alert
    (STREAMHOUSE_ERROR_THRESHOLD, and STREAMHOUSE_ERROR_THRESHOLDS=service=N,...), and the
    detector that watches the same series (STREAMHOUSE_ERROR_DETECTOR)."""

    default: int = 20
    per_service: Mapping[str, int] = field(default_factory=dict)
    detector: Detector = field(default_factory=lambda: parse_spec(ERROR_DETECTOR))

    def rules(self) -> list[SeriesRule]:
        service, errors = pl.col("service"), pl.col("errors").sum()
        own = sorted(self.per_service.items())
        rules = [
            SeriesRule(
                "log_error_count",
                "critical",
                Threshold({"above": n}),
                service,
                errors,
                where=pl.col("subject") == name,
            )
            for name, n in own
        ]
        rules.append(
            SeriesRule(
                "log_error_count",
                "critical",
                Threshold({"above": self.default}),
                service,
                errors,
                where=~pl.col("subject").is_in([name for name, _ in own]),
            )
        )
        rules.append(SeriesRule("log_error_anomaly", "warning", self.detector, service, errors))
        return rules


class LogDecoder:
    """One batch of log lines -> a frame of records and dead letters. JSON lines go through
    the columnar FrameDecoder; plain-text lines are parsed one by one (a regex each)."""

    def __init__(self) -> None:
        self._json = FrameDecoder(LogFields)

    def __call__(self, batch: MessageBatch) -> list[Frame | DeadLetter]:
        if batch.topic != LOG_EVENTS or not len(batch):
            return []
        values = batch.values
        json_rows = [i for i, v in enumerate(values) if v is not None and v.lstrip()[:1] == b"{"]
        frame, failures = self._json.decode([values[i] for i in json_rows])
        positions = pl.Series(ROW, json_rows, dtype=pl.Int64)
        frame = frame.with_columns(positions.gather(frame[ROW]))
        failures = [(json_rows[i], reason) for i, reason in failures]
        plain = set(range(len(values))) - set(json_rows)
        records = []
        for i in sorted(plain):
            problem = check_raw(values[i])
            try:
                if problem is not None:
                    raise ValueError(problem)
                record = parse_plain(values[i])  # type: ignore[arg-type]
            except (ValueError, msgspec.ValidationError) as e:
                failures.append((i, str(e)))
                continue
            row = msgspec.structs.asdict(record)
            row["level"] = record.level.value
            records.append({**row, ROW: i, "type": "log"})
        if records:
            parsed = pl.DataFrame(records, schema=self._json.output_schema)
            frame = pl.concat([frame, parsed]).sort(ROW)
        out: list[Frame | DeadLetter] = [
            dead_letter(batch.message(i), reason, FLOW) for i, reason in sorted(failures)
        ]
        out.append(Frame(batch.source, frame))
        return out


def errors_only(frame: Frame) -> Frame:
    events = frame.events.filter(pl.col("level").is_in(["ERROR", "FATAL"])).with_columns(
        pl.col("error_type").fill_null(NO_ERROR_TYPE)
    )
    return Frame(frame.source, events)


ERRORS = WindowAggregation(
    flow=FLOW,
    key=("service", "error_type"),
    shard_key=("service",),
    length=MINUTE,
    partial=(
        pl.len().cast(pl.Int64).alias("errors"),
        (pl.col("level") == "FATAL").sum().cast(pl.Int64).alias("fatal"),
    ),
    merge=(pl.col("errors").fill_null(0).sum(), pl.col("fatal").fill_null(0).sum()),
    finish=lambda closed: to_rows(closed),
)


def to_rows(closed: pl.DataFrame) -> pa.Table:
    rows = with_window_bounds(closed, MINUTE).with_columns(pl.col(DUPS).alias("duplicates_ignored"))
    rows = with_row_ids(rows, "count_id", FLOW, ["service", "error_type"])
    return to_table(rows.filter(pl.col("errors") > 0), ERROR_COUNTS_MINUTE)


def build(
    source: Source[MessageBatch],
    outputs: Outputs,
    clock: Clock | None = None,
    shards: int = 1,
    sources: Sequence[str] | None = None,
    thresholds: ErrorThresholds | None = None,
    policy: AlertPolicy | None = None,
) -> Dataflow:
    limits = thresholds or ErrorThresholds()
    flow = Dataflow(FLOW)
    batches = op.input("log_events", flow, source)
    parsed = op.flat_map("parse", batches, observed_batches(FLOW, "parse", LogDecoder()))
    frames = op.branch("split_dead_letters", parsed, lambda item: isinstance(item, Frame))
    outputs.dead_letters(frames.falses, writer=FLOW)
    errors = op.map("errors_only", frames.trues, errors_only)
    windows = window_aggregate(
        "minute_windows",
        errors,
        ERRORS,
        clock or Clock(),
        topic_partitions(source, INPUT_TOPICS) if sources is None else sources,
        shards,
    )
    outputs.to_table("error_counts", windows.rows, ERROR_COUNTS_MINUTE, writer=FLOW)
    alerts = watch_rows("alerting", windows.rows, limits.rules(), FLOW, policy or AlertPolicy())
    outputs.alerts(alerts, writer=FLOW)
    outputs.late_events(windows.late, FLOW)
    return flow


def flow_from_env() -> Dataflow:
    from dataflows.runtime import (
        alert_policy_from_env,
        clock_from_env,
        error_thresholds_from_env,
        outputs_from_env,
        source_from_env,
    )
    from streamhouse.config import from_env

    settings = from_env()
    return build(
        source_from_env(settings, INPUT_TOPICS),
        outputs_from_env(settings),
        clock_from_env(settings),
        settings.shards,
        thresholds=error_thresholds_from_env(),
        policy=alert_policy_from_env(),
    )


__getattr__ = flow_attribute(flow_from_env)
"""`python -m bytewax.run dataflows.log_alerts:flow` builds the flow from the environment."""
