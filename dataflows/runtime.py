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

from bytewax.inputs import Source

from dataflows.inputs import KafkaBatchSource, SimulatorSource
from dataflows.messages import MessageBatch
from dataflows.outputs import Outputs
from dataflows.windowing import Clock
from models.simulator import SimConfig
from streamhouse.config import ConfigError, Settings, env_number
from warehouse.lake import Lake

INPUTS = ("kafka", "simulator")
TRUE = {"1", "true", "yes", "on"}


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in TRUE


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


def source_from_env(settings: Settings, topics: Iterable[str]) -> Source[MessageBatch]:
    kind = os.environ.get("STREAMHOUSE_INPUT", "kafka")
    if kind == "kafka":
        return KafkaBatchSource(
            settings.kafka_config(),
            topics,
            until_eof=_flag("STREAMHOUSE_UNTIL_EOF"),
            topic_prefix=settings.topic_prefix,
        )
    if kind == "simulator":
        return SimulatorSource(simulator_config_from_env(settings))
    raise ConfigError(f"STREAMHOUSE_INPUT={kind!r} is not one of {', '.join(INPUTS)}")


def outputs_from_env(settings: Settings, stdout_tables: set[str] | None = None) -> Outputs:
    """Lake always (STREAMHOUSE_LAKE_DIR); Kafka outputs when the input is Kafka, or when
    STREAMHOUSE_KAFKA_OUTPUT=1 (0 turns them off)."""
    kafka_input = os.environ.get("STREAMHOUSE_INPUT", "kafka") == "kafka"
    to_kafka = os.environ.get("STREAMHOUSE_KAFKA_OUTPUT")
    kafka_on = kafka_input if to_kafka in (None, "") else to_kafka.strip().lower() in TRUE
    return Outputs(
        lake=Lake(settings.lake_dir),
        kafka=settings.kafka_config() if kafka_on else None,
        topic_prefix=settings.topic_prefix,
        stdout_tables=frozenset(stdout_tables or ()),
    )
