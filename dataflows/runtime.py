"""How a dataflow module run by `bytewax.run` finds its input and outputs: the environment.

`STREAMHOUSE_INPUT` picks the source: `kafka` (default) or `simulator`. With
`STREAMHOUSE_UNTIL_EOF=1` the Kafka source stops at the end offsets it saw at
start (batch jobs, tests). Results land in the lake (`STREAMHOUSE_LAKE_DIR`) and,
with Kafka input or `STREAMHOUSE_KAFKA_OUTPUT=1`, in Kafka topics.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from bytewax.inputs import Source

from dataflows.anomalies import DEFAULT_DETECTOR
from dataflows.api_metrics import LATENCY_DETECTOR, ApiThresholds
from dataflows.inputs import KafkaBatchSource, SimulatorSource
from dataflows.log_alerts import ERROR_DETECTOR, ErrorThresholds
from dataflows.messages import MessageBatch
from dataflows.order_stats import ORDER_RATE_DETECTOR
from dataflows.outputs import Outputs
from dataflows.windowing import Clock
from models.alerts import AlertPolicy
from models.detectors import Detector, ParameterError, parse_spec
from models.simulator import SimConfig
from sinks.webhook import WebhookConfig
from streamhouse.config import ConfigError, Settings, env_flag, env_number
from streamhouse.process import tune_gc
from warehouse.lake import Lake

INPUTS = ("kafka", "simulator")


def simulator_config_from_env(settings: Settings, env: Mapping[str, str] = os.environ) -> SimConfig:
    """The simulator input's settings; a bad one is a ConfigError naming its variable."""
    seed = int(env_number(env, "STREAMHOUSE_SIM_SEED", 42, kind=int))
    rate = env_number(env, "STREAMHOUSE_SIM_RATE", 200.0)
    duration = int(env_number(env, "STREAMHOUSE_SIM_DURATION_S", 600, kind=int))
    start = env.get("STREAMHOUSE_SIM_START")
    try:
        extra = {"start": datetime.fromisoformat(start)} if start else {}
    except ValueError:
        raise ConfigError(f"STREAMHOUSE_SIM_START={start!r} is not an ISO 8601 time") from None
    try:
        return SimConfig(
            seed=seed,
            events_per_s=rate,
            duration_s=duration,
            allowed_lateness_s=settings.allowed_lateness_s,
            **extra,
        )
    except ValueError as e:
        raise ConfigError(f"{e} (STREAMHOUSE_SIM_*)") from None


def clock_from_env(settings: Settings) -> Clock:
    """The windowed flows' clock: event or processing time, lateness, idle timeout."""
    return Clock(
        allowed_lateness=timedelta(seconds=settings.allowed_lateness_s),
        idle=None
        if settings.idle_timeout_s is None
        else timedelta(seconds=settings.idle_timeout_s),
        processing_time=settings.window_clock == "processing",
    )


def detector_from_env(name: str, default: str, env: Mapping[str, str] = os.environ) -> Detector:
    """A detector spelled `method:param=value,...` in setting `name` (models/detectors.py)."""
    spec = env.get(name, "").strip() or default
    try:
        return parse_spec(spec)
    except ParameterError as e:
        raise ConfigError(f"{name}={spec!r}: {e}") from None


def order_rate_detector_from_env(env: Mapping[str, str] = os.environ) -> Detector:
    """order_stats' detector on orders created per minute (STREAMHOUSE_ORDER_RATE_DETECTOR)."""
    return detector_from_env("STREAMHOUSE_ORDER_RATE_DETECTOR", ORDER_RATE_DETECTOR, env)


def anomaly_default_from_env(env: Mapping[str, str] = os.environ) -> Detector:
    """anomalies' detector for series without a model (STREAMHOUSE_ANOMALY_DEFAULT)."""
    return detector_from_env("STREAMHOUSE_ANOMALY_DEFAULT", DEFAULT_DETECTOR, env)


def alert_policy_from_env(env: Mapping[str, str] = os.environ) -> AlertPolicy:
    """STREAMHOUSE_ALERT_RESOLVE_S: event-time seconds without an anomalous point before an
    alert resolves."""
    default = AlertPolicy().resolve_after.total_seconds()
    quiet = env_number(env, "STREAMHOUSE_ALERT_RESOLVE_S", default, minimum=1)
    return AlertPolicy(resolve_after=timedelta(seconds=quiet))


def api_thresholds_from_env(env: Mapping[str, str] = os.environ) -> ApiThresholds:
    """api_metrics' alert thresholds: STREAMHOUSE_API_P99_MS, _MEAN_MS, _ERROR_RATE,
    _MIN_REQUESTS, and the route latency detector STREAMHOUSE_LATENCY_DETECTOR."""
    default = ApiThresholds()
    return ApiThresholds(
        p99_ms=env_number(env, "STREAMHOUSE_API_P99_MS", default.p99_ms, minimum=0),
        mean_ms=env_number(env, "STREAMHOUSE_API_MEAN_MS", default.mean_ms, minimum=0),
        error_rate=env_number(env, "STREAMHOUSE_API_ERROR_RATE", default.error_rate, minimum=0),
        min_requests=int(
            env_number(env, "STREAMHOUSE_API_MIN_REQUESTS", default.min_requests, kind=int)
        ),
        detector=detector_from_env("STREAMHOUSE_LATENCY_DETECTOR", LATENCY_DETECTOR, env),
    )


def error_thresholds_from_env(env: Mapping[str, str] = os.environ) -> ErrorThresholds:
    """log_alerts' thresholds: STREAMHOUSE_ERROR_THRESHOLD (errors per minute per service
    and error type) and STREAMHOUSE_ERROR_THRESHOLDS=service=N,... for services of their own."""
    default = int(env_number(env, "STREAMHOUSE_ERROR_THRESHOLD", 20, kind=int, minimum=1))
    per_service: dict[str, int] = {}
    raw = env.get("STREAMHOUSE_ERROR_THRESHOLDS", "")
    for item in filter(None, (part.strip() for part in raw.split(","))):
        service, sep, number = item.partition("=")
        if not sep or not service.strip() or not number.strip().isdigit():
            raise ConfigError(
                f"STREAMHOUSE_ERROR_THRESHOLDS: {item!r} is not service=N (N a whole number)"
            )
        per_service[service.strip()] = int(number)
    detector = detector_from_env("STREAMHOUSE_ERROR_DETECTOR", ERROR_DETECTOR, env)
    return ErrorThresholds(default, per_service, detector)


def source_from_env(settings: Settings, topics: Iterable[str]) -> Source[MessageBatch]:
    """The flow's input; every flow run by `bytewax.run` comes here, so it also tunes the
    process (tune_gc)."""
    tune_gc()
    kind = os.environ.get("STREAMHOUSE_INPUT", "kafka")
    if kind == "kafka":
        return KafkaBatchSource(
            settings.kafka_config(),
            topics,
            until_eof=env_flag(os.environ, "STREAMHOUSE_UNTIL_EOF"),
            topic_prefix=settings.topic_prefix,
        )
    if kind == "simulator":
        return SimulatorSource(simulator_config_from_env(settings))
    raise ConfigError(f"STREAMHOUSE_INPUT={kind!r} is not one of {', '.join(INPUTS)}")


def outputs_from_env(settings: Settings, stdout_tables: set[str] | None = None) -> Outputs:
    """Lake always (STREAMHOUSE_LAKE_DIR); Kafka outputs when the input is Kafka, or when
    STREAMHOUSE_KAFKA_OUTPUT=1 (0 turns them off)."""
    kafka_input = os.environ.get("STREAMHOUSE_INPUT", "kafka") == "kafka"
    kafka_on = env_flag(os.environ, "STREAMHOUSE_KAFKA_OUTPUT", default=kafka_input)
    return Outputs(
        lake=Lake(settings.lake_dir),
        kafka=settings.kafka_config() if kafka_on else None,
        topic_prefix=settings.topic_prefix,
        stdout_tables=frozenset(stdout_tables or ()),
        webhook=webhook_from_env(),
    )


def webhook_from_env(env: Mapping[str, str] = os.environ) -> WebhookConfig | None:
    """STREAMHOUSE_WEBHOOK_URL (http or https; unset: no webhook), STREAMHOUSE_WEBHOOK_TOKEN
    (a bearer token), STREAMHOUSE_WEBHOOK_TIMEOUT_S (per attempt, default 5)."""
    url = env.get("STREAMHOUSE_WEBHOOK_URL", "").strip()
    if not url:
        return None
    parsed = urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(f"STREAMHOUSE_WEBHOOK_URL={url!r} is not an http(s) URL")
    timeout = env_number(env, "STREAMHOUSE_WEBHOOK_TIMEOUT_S", 5.0, minimum=0.1)
    return WebhookConfig(url, env.get("STREAMHOUSE_WEBHOOK_TOKEN") or None, timeout)
