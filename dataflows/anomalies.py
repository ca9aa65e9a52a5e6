"""anomalies: every business metric scored by its series' detector, models updated live.

    business-events ─► decode frames ─┐
    anomaly-models  ─► decode models ─┼─► dead letters ─► lake dead_letters, <topic>.dlq
                                      └─► by shard of the series key (metric:entity)
                                           ─► score: the live model table (newest record per
                                              model_key; no record: the default detector),
                                              one detector state per series, duplicates once
                                           ─┬─► lake anomaly_scores
                                            └─► anomalous points ─► one alert per incident
                                                 ─► lake alerts, Kafka alerts, webhook

A model record takes effect for the next event of its series that this flow
processes: no restart. A record with another method starts the series' detector
afresh (warm-up again); the same method keeps what it learned and uses the new
parameters. `enabled: false` stops scoring the series and resolves its open alert;
a tombstone (null value) removes the model, so the default applies again. Records
older (`ts`) than the model in force are ignored, so replaying the compacted topic
from the start ends with the same table.

Each series is scored in the order its events arrive (one key, one partition).
Run it: `streamhouse run anomalies`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import bytewax.operators as op
import polars as pl
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source

from dataflows.alerting import SignalBatch, track_signals
from dataflows.decode import FrameDecoders, dead_letter
from dataflows.entry import flow_attribute
from dataflows.messages import DeadLetter, MessageBatch
from dataflows.metrics import observed_batches
from dataflows.outputs import Outputs
from dataflows.windowing import HASH_SEED, Frame, shard_of, to_table
from models.alerts import AlertPolicy, Signal
from models.business import AnomalyModel
from models.codec import BatchDecoder
from models.detectors import Detector, Ewma, ParameterError, detector, ewma_frame, parse_spec
from models.projections import BusinessMetricFields
from models.topics import ANOMALY_MODELS, BUSINESS_EVENTS
from warehouse.tables import ANOMALY_SCORES

FLOW = "anomalies"
INPUT_TOPICS = (BUSINESS_EVENTS, ANOMALY_MODELS)
RULE = "business_anomaly"
DEFAULT_DETECTOR = "ewma:alpha=0.05,z=6,warmup=20"
"""For series without a model (STREAMHOUSE_ANOMALY_DEFAULT)."""
DEFAULT_MODEL_ID = "default"
ROW = "_scored_at"
RECENT_IDS = 200_000
"""Event-id hashes a shard remembers to score a re-delivered event once: duplicates
further apart than this many events of one shard are scored twice."""


@dataclass(frozen=True)
class ModelChange:
    """A record of `anomaly-models`: a model (checked) or a tombstone (model None)."""

    model_key: str
    model: AnomalyModel | None


@dataclass
class LiveModel:
    model_id: str
    method: str
    params: dict[str, float]
    enabled: bool
    ts: datetime | None


@dataclass
class Series:
    model_id: str
    method: str
    state: Any


@dataclass
class ShardState:
    models: dict[str, LiveModel] = field(default_factory=dict)
    series: dict[str, Series] = field(default_factory=dict)
    recent: pl.Series | None = None
    """Hashes of the newest RECENT_IDS event ids, oldest first."""


class AnomalyDecoder:
    """Business events -> frames; model records -> ModelChange (their detector built once
    here, so bad parameters are a dead letter with the reason, not a crash later)."""

    def __init__(self) -> None:
        self._frames = FrameDecoders(FLOW, {BUSINESS_EVENTS: BusinessMetricFields})
        self._models = BatchDecoder(ANOMALY_MODELS)

    def __call__(self, batch: MessageBatch) -> list[Frame | ModelChange | DeadLetter]:
        if batch.topic != ANOMALY_MODELS:
            return self._frames(batch)  # type: ignore[return-value]
        out: list[Frame | ModelChange | DeadLetter] = []
        for message in batch:
            if message.value is None and message.key:
                out.append(ModelChange(message.key.decode("utf-8", "replace"), None))
                continue
            try:
                model = self._models.decode(message.value)
                assert isinstance(model, AnomalyModel)
                detector(model.method.value, model.params)
            except (ValueError, ParameterError) as e:
                out.append(dead_letter(message, str(e), FLOW))
                continue
            out.append(ModelChange(model.model_key, model))
        return out


def to_shards(shards: int):
    """Frames and model changes -> (shard, item): a series' events and its model meet."""

    def route(item: Frame | ModelChange) -> list[tuple[str, Frame | ModelChange]]:
        if isinstance(item, ModelChange):
            key = pl.DataFrame({"series": [item.model_key]})
            return [(f"shard-{shard_of(key, ['series'], shards)[0]}", item)]
        events = item.events.with_columns(
            pl.concat_str(pl.col("metric"), pl.col("entity"), separator=":").alias("series")
        )
        if shards == 1:
            return [("shard-0", Frame(item.source, events))]
        shard = shard_of(events, ["series"], shards)
        return [
            (f"shard-{i}", Frame(item.source, events.filter(shard == i)))
            for i in range(shards)
            if (shard == i).any()
        ]

    return route


class Scorer:
    """The stateful step: applies model changes, scores frames (see the module doc)."""

    def __init__(self, default: Detector) -> None:
        self.default = default
        self._detectors: dict[tuple[str, tuple[tuple[str, float], ...]], Detector] = {}

    def __call__(
        self, state: ShardState | None, item: Frame | ModelChange
    ) -> tuple[ShardState, list[tuple[str, Any]]]:
        state = state or ShardState()
        if isinstance(item, ModelChange):
            return state, self._apply(state, item)
        return state, self._score(state, item.events)

    def _detector(self, model: LiveModel | None) -> Detector:
        if model is None:
            return self.default
        key = (model.method, tuple(sorted(model.params.items())))
        if key not in self._detectors:
            self._detectors[key] = detector(model.method, model.params)
        return self._detectors[key]

    def _apply(self, state: ShardState, change: ModelChange) -> list[tuple[str, Any]]:
        key, model, current = change.model_key, change.model, state.models.get(change.model_key)
        if model is None:
            state.models.pop(key, None)
            return []
        if current is not None and current.ts is not None and model.ts < current.ts:
            return []  # an older record: the newest per key wins
        state.models[key] = LiveModel(
            model.event_id, model.method.value, dict(model.params), model.enabled, model.ts
        )
        if not model.enabled and key in state.series:
            del state.series[key]
            return [("signals", SignalBatch([], None, {key: RULE}))]
        return []

    def _score(self, state: ShardState, events: pl.DataFrame) -> list[tuple[str, Any]]:
        """Score a frame: series whose detector is an EWMA with a history go through the
        column-wise EWMA (models.detectors.ewma_frame) together; a series with an
        anomalous point in the frame, a new series, or any other method goes point by
        point through its detector."""
        events = self._fresh(state, events)
        if events is None:
            return []
        runs = events.select(pl.col("series").rle()).unnest("series")
        names, lengths = runs["value"].to_list(), runs["len"].to_list()
        plans: dict[str, tuple[str, str, Detector, Series]] = {}
        for name in names:
            model = state.models.get(name)
            if model is not None and not model.enabled:
                continue
            method = self.default.method if model is None else model.method
            model_id = DEFAULT_MODEL_ID if model is None else model.model_id
            series = state.series.get(name)
            watched = self._detector(model)
            if series is None or series.method != method:
                series = state.series[name] = Series(model_id, method, watched.new_state())
            series.model_id = model_id
            plans[name] = (model_id, method, watched, series)
        columnar = {
            n for n, (_, _, d, s) in plans.items() if isinstance(d, Ewma) and s.state.n >= 1
        }
        parts: list[pl.DataFrame] = []
        if columnar:
            done, part = self._score_columnar(events, names, lengths, plans, columnar)
            parts.append(part)
        else:
            done = set()
        at, rows, signals = 0, _Rows(), []
        value_col, ts_col = events["value"], events["ts"]
        for name, n in zip(names, lengths, strict=True):
            if name in plans and name not in done:
                values = value_col.slice(at, n).to_list()
                starts = ts_col.slice(at, n).to_list()
                model_id, method, watched, series = plans[name]
                scores = watched.score(series.state, values, [t.timestamp() for t in starts])
                rows.add(at, n, model_id, method, scores)
                for i in (i for i, bad in enumerate(scores.anomalous) if bad):
                    signals.append(
                        Signal(RULE, "warning", name, starts[i], starts[i], values[i],
                               scores.score[i], None, scores.low[i], scores.high[i])
                    )  # fmt: skip
            at += n
        if rows.at:
            parts.append(rows.frame())
        out: list[tuple[str, Any]] = []
        if parts:
            results = pl.concat(parts).sort(ROW)
            scored = events.with_row_index(ROW).join(results, on=ROW, how="inner").sort(ROW)
            out.append(("scores", to_table(scored, ANOMALY_SCORES)))
        signals.sort(key=lambda s: (s.window_start, s.subject))
        out.append(("signals", SignalBatch(signals, events["ts"].max())))  # type: ignore[arg-type]
        return out

    @staticmethod
    def _fresh(state: ShardState, events: pl.DataFrame) -> pl.DataFrame | None:
        """The frame without events seen before (by id), sorted by series (stable)."""
        if not events.height:
            return None
        hashes = events["event_id"].hash(HASH_SEED)
        repeated = ~hashes.is_first_distinct()
        if state.recent is not None:
            repeated |= hashes.is_in(state.recent.implode())
        if repeated.any():
            hashes, events = hashes.filter(~repeated), events.filter(~repeated)
        kept = hashes if state.recent is None else pl.concat([state.recent, hashes])
        state.recent = kept.tail(RECENT_IDS)
        events = events.sort("series", maintain_order=True)
        return events if events.height else None

    @staticmethod
    def _score_columnar(
        events: pl.DataFrame,
        names: list[str],
        lengths: list[int],
        plans: dict[str, tuple[str, str, Detector, Series]],
        columnar: set[str],
    ) -> tuple[set[str], pl.DataFrame]:
        """(series done, their score rows) for the EWMA series in `columnar`: one row of
        state and parameters per run, spread to the run's points by gather."""
        fields = ("take", "alpha", "n0", "mean0", "var0", "weight0", "z", "warmup", "pct",
                  "counts", "direction", "model_id", "method")  # fmt: skip
        per_run: list[tuple[Any, ...]] = []
        for name in names:
            if name not in columnar:
                per_run.append((False, 1.0, 1, 0.0, 0.0, 0.0, 0.0, 0, 0.0, False, 0, "", ""))
                continue
            model_id, method, d, series = plans[name]
            st = series.state
            per_run.append(
                (True, d.alpha, st.n, st.mean, st.var, st.weight, d.z, d.warmup, d.min_std,
                 d.counts, d.direction, model_id, method)
            )  # fmt: skip
        runs = pl.DataFrame(per_run, schema=list(fields), orient="row")
        run_of = events["series"].rle_id()
        rows = pl.concat(
            [
                events.select("series", "value").with_row_index(ROW),
                runs.select(pl.all().gather(run_of)),
                pl.DataFrame({"len": lengths}).select(pl.int_ranges(0, "len").explode().alias("k")),
            ],
            how="horizontal",
        ).filter(pl.col("take"))
        alphas = rows["alpha"].unique().to_list()
        scored = pl.concat(
            [ewma_frame(rows.filter(pl.col("alpha") == a), a) for a in alphas]
            if len(alphas) > 1
            else [ewma_frame(rows, alphas[0])]
        )
        spoiled = set(scored.filter(pl.col("anomalous"))["series"].unique().to_list())
        clean = scored.filter(~pl.col("series").is_in(list(spoiled))) if spoiled else scored
        run_len = dict(zip(names, lengths, strict=True))
        last = clean.filter(pl.col("k") == pl.col("series").replace_strict(run_len) - 1)
        for name, n1, mean1, var1, weight1 in last.select(
            "series", "n1", "mean1", "var1", "weight1"
        ).iter_rows():
            st = plans[name][3].state
            st.n, st.mean, st.var, st.weight, st.streak = n1, mean1, var1, weight1, 0
        return columnar - spoiled, clean.select(
            ROW,
            "model_id",
            "method",
            "score",
            "expected",
            pl.col("low").alias("expected_low"),
            pl.col("high").alias("expected_high"),
            "anomalous",
        )


class _Rows:
    """Score rows of the point-by-point path, as columns."""

    def __init__(self) -> None:
        self.at: list[int] = []
        self.columns: dict[str, list[Any]] = {
            c: [] for c in ("model_id", "method", "score", "expected", "low", "high", "anomalous")
        }

    def add(self, start: int, n: int, model_id: str, method: str, scores: Any) -> None:
        c = self.columns
        self.at += range(start, start + n)
        c["model_id"] += [model_id] * n
        c["method"] += [method] * n
        c["score"] += scores.score
        c["expected"] += scores.expected
        c["low"] += scores.low
        c["high"] += scores.high
        c["anomalous"] += scores.anomalous

    def frame(self) -> pl.DataFrame:
        c = self.columns
        return pl.DataFrame(
            {
                ROW: pl.Series(self.at, dtype=pl.UInt32),
                "model_id": pl.Series(c["model_id"], dtype=pl.String),
                "method": pl.Series(c["method"], dtype=pl.String),
                "score": pl.Series(c["score"], dtype=pl.Float64),
                "expected": pl.Series(c["expected"], dtype=pl.Float64),
                "expected_low": pl.Series(c["low"], dtype=pl.Float64),
                "expected_high": pl.Series(c["high"], dtype=pl.Float64),
                "anomalous": pl.Series(c["anomalous"], dtype=pl.Boolean),
            }
        )


def build(
    source: Source[MessageBatch],
    outputs: Outputs,
    shards: int = 1,
    default: Detector | None = None,
    policy: AlertPolicy | None = None,
) -> Dataflow:
    flow = Dataflow(FLOW)
    batches = op.input("business_and_models", flow, source)
    decoded = op.flat_map("decode", batches, observed_batches(FLOW, "decode", AnomalyDecoder()))
    valid = op.branch("split_dead_letters", decoded, lambda item: not isinstance(item, DeadLetter))
    outputs.dead_letters(valid.falses, writer=FLOW)
    sharded = op.flat_map("to_shards", valid.trues, to_shards(shards))
    results = op.stateful_flat_map(
        "score", sharded, Scorer(default or parse_spec(DEFAULT_DETECTOR))
    )
    split = op.branch("scores_or_signals", results, lambda kv: kv[1][0] == "scores")
    scores = op.map_value("scores", split.trues, lambda v: v[1])
    outputs.to_table("scores", scores, ANOMALY_SCORES, writer=FLOW)
    signals = op.map("signals", split.falses, lambda kv: kv[1][1])
    outputs.alerts(track_signals("alerting", signals, FLOW, policy or AlertPolicy()), FLOW)
    return flow


def flow_from_env() -> Dataflow:
    from dataflows.runtime import (
        alert_policy_from_env,
        anomaly_default_from_env,
        outputs_from_env,
        source_from_env,
    )
    from streamhouse.config import from_env

    settings = from_env()
    return build(
        source_from_env(settings, INPUT_TOPICS),
        outputs_from_env(settings),
        settings.shards,
        default=anomaly_default_from_env(),
        policy=alert_policy_from_env(),
    )


__getattr__ = flow_attribute(flow_from_env)
"""`python -m bytewax.run dataflows.anomalies:flow` builds the flow from the environment."""
