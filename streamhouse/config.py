"""Settings from the environment (`STREAMHOUSE_…`) and flags, checked once at start.

A wrong setting fails before any work starts, with a message that names it
(`ConfigError`). Kafka client settings pass straight through to librdkafka:
`STREAMHOUSE_KAFKA_SASL_USERNAME=alice` becomes `sasl.username=alice`, and a
properties file named by `STREAMHOUSE_KAFKA_CONFIG_FILE` is read first, so
secrets can live in a mounted file instead of the environment. Credentials are
never defaults in code.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

ENV_PREFIX = "STREAMHOUSE_"
KAFKA_ENV_PREFIX = "STREAMHOUSE_KAFKA_"
KAFKA_CONFIG_FILE_ENV = "STREAMHOUSE_KAFKA_CONFIG_FILE"
NOT_CLIENT_PROPERTIES = frozenset({KAFKA_CONFIG_FILE_ENV, "STREAMHOUSE_KAFKA_OUTPUT"})
"""STREAMHOUSE_KAFKA_* settings of streamhouse's own, not librdkafka properties."""
DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


class ConfigError(ValueError):
    """A setting is missing or wrong; the message names it."""


@dataclass(frozen=True)
class Settings:
    """Everything a command or dataflow needs to know about its surroundings."""

    bootstrap_servers: str = DEFAULT_BOOTSTRAP
    kafka: Mapping[str, str] = field(default_factory=dict)
    topic_partitions: int = 3
    replication_factor: int = 1
    allowed_lateness_s: float = 10.0
    idle_timeout_s: float | None = None
    """A source silent this long stops holding windows open; None: the allowed lateness."""
    window_clock: str = "event"
    """`event` (windows on the events' `ts`) or `processing` (on the wall clock)."""
    shards: int = 1
    """Key shards of the windowed flows: more spread one flow's keys over more workers."""
    topic_prefix: str = ""
    """Prepended to every topic name on the cluster (`staging.` -> `staging.order-events`),
    so several environments or test runs can share one cluster."""
    lake_dir: Path = Path("lake")
    recovery_dir: Path = Path("recovery")

    def kafka_config(
        self, **overrides: str | int | float | bool
    ) -> dict[str, str | int | float | bool]:
        """librdkafka config for a client: bootstrap + pass-through settings + overrides."""
        conf: dict[str, str | int | float | bool] = {"bootstrap.servers": self.bootstrap_servers}
        conf.update(self.kafka)
        conf.update(overrides)
        return conf

    def with_(self, **changes: object) -> Settings:
        """A copy with some settings changed (flags override the environment)."""
        return replace(self, **changes)  # type: ignore[arg-type]


TRUE = frozenset({"1", "true", "yes", "on"})


def env_flag(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    """An on/off setting from `env`: 1, true, yes or on (any case) is on; unset or empty is
    `default`; anything else is off."""
    raw = env.get(name, "").strip()
    return default if raw == "" else raw.lower() in TRUE


def env_number(
    env: Mapping[str, str],
    name: str,
    default: float,
    *,
    kind: type = float,
    minimum: float = float("-inf"),
) -> float:
    """A numeric setting from `env`; a bad value is a ConfigError naming the variable."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a valid {kind.__name__}") from None
    if value < minimum:
        raise ConfigError(f"{name}={raw!r} must be >= {minimum}")
    return value


def _topic_prefix(prefix: str) -> str:
    if prefix and not re.fullmatch(r"[A-Za-z0-9._-]{1,100}", prefix):
        raise ConfigError(
            f"STREAMHOUSE_TOPIC_PREFIX={prefix!r} may only hold letters, digits, '.', '_', '-'"
        )
    return prefix


WINDOW_CLOCKS = ("event", "processing")


def _window_clock(value: str) -> str:
    if value not in WINDOW_CLOCKS:
        raise ConfigError(
            f"STREAMHOUSE_WINDOW_CLOCK={value!r} is not one of {', '.join(WINDOW_CLOCKS)}"
        )
    return value


def read_properties(path: Path) -> dict[str, str]:
    """Java-style `key=value` lines; `#` and `!` start comments."""
    props: dict[str, str] = {}
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(
            f"{KAFKA_CONFIG_FILE_ENV}={str(path)!r} cannot be read: {e.strerror}"
        ) from None
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line[0] in "#!":
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ConfigError(f"{KAFKA_CONFIG_FILE_ENV}: line {number} of {path} is not key=value")
        props[key.strip()] = value.strip()
    return props


def kafka_passthrough(env: Mapping[str, str]) -> dict[str, str]:
    """librdkafka settings from a properties file and `STREAMHOUSE_KAFKA_*` variables.

    librdkafka property names use dots and never underscores, so the mapping from
    variable name to property name is unambiguous.
    """
    conf: dict[str, str] = {}
    if path := env.get(KAFKA_CONFIG_FILE_ENV):
        conf.update(read_properties(Path(path)))
    for name, value in env.items():
        if name.startswith(KAFKA_ENV_PREFIX) and name not in NOT_CLIENT_PROPERTIES:
            conf[name[len(KAFKA_ENV_PREFIX) :].lower().replace("_", ".")] = value
    conf.pop("bootstrap.servers", None)  # has its own setting, below
    return conf


_QUIET = logging.getLogger("streamhouse.preflight")
"""librdkafka's own log of the checks' clients: the check's one line says what failed."""
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


def _kafka_reason(error: Exception) -> str:
    """librdkafka's own words for a KafkaException (its KafkaError's text)."""
    first = error.args[0] if error.args else None
    return first.str() if hasattr(first, "str") else str(error)


def check_kafka_config(conf: Mapping[str, object]) -> None:
    """Let librdkafka itself judge every property now, instead of at first use.

    Creating a producer parses the whole config without sending anything yet.
    """
    from confluent_kafka import KafkaException, Producer

    try:
        Producer(dict(conf), logger=_QUIET)
    except KafkaException as e:
        reason = _kafka_reason(e)
        raise ConfigError(
            f"Kafka client setting rejected: {reason} "
            f"(set via STREAMHOUSE_KAFKA_* or {KAFKA_CONFIG_FILE_ENV})"
        ) from None


def check_broker(settings: Settings, topics: Iterable[str], timeout_s: float = 10.0) -> None:
    """The broker answers and holds `topics` (prefixed): checked before a flow starts, so a
    wrong address or a missing topic is one line now, not a traceback half a minute later."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(settings.kafka_config(), logger=_QUIET)
    try:
        known = set(admin.list_topics(timeout=timeout_s).topics)
    except KafkaException as e:
        reason = _kafka_reason(e)
        raise ConfigError(
            f"STREAMHOUSE_BOOTSTRAP_SERVERS={settings.bootstrap_servers}: no Kafka broker "
            f"answered in {timeout_s:g} s ({reason})"
        ) from None
    missing = sorted(
        settings.topic_prefix + t for t in topics if settings.topic_prefix + t not in known
    )
    if missing:
        raise ConfigError(
            f"topic {', '.join(missing)} does not exist on {settings.bootstrap_servers} "
            "(create the topics: streamhouse topics create; prefix: STREAMHOUSE_TOPIC_PREFIX)"
        )


def from_env(env: Mapping[str, str] | None = None) -> Settings:
    """Read and check every setting; raise ConfigError naming the first bad one."""
    env = os.environ if env is None else env
    bootstrap = (
        env.get("STREAMHOUSE_BOOTSTRAP_SERVERS")
        or env.get("STREAMHOUSE_KAFKA_BOOTSTRAP_SERVERS")
        or env.get("KAFKA_BOOTSTRAP_SERVERS")
        or DEFAULT_BOOTSTRAP
    )
    return Settings(
        bootstrap_servers=bootstrap,
        kafka=kafka_passthrough(env),
        topic_partitions=int(
            env_number(env, "STREAMHOUSE_TOPIC_PARTITIONS", 3, kind=int, minimum=1)
        ),
        replication_factor=int(
            env_number(env, "STREAMHOUSE_REPLICATION_FACTOR", 1, kind=int, minimum=1)
        ),
        allowed_lateness_s=env_number(
            env, "STREAMHOUSE_ALLOWED_LATENESS_S", 10.0, kind=float, minimum=0.0
        ),
        idle_timeout_s=(
            env_number(env, "STREAMHOUSE_IDLE_TIMEOUT_S", 0.0, minimum=0.0)
            if env.get("STREAMHOUSE_IDLE_TIMEOUT_S")
            else None
        ),
        window_clock=_window_clock(env.get("STREAMHOUSE_WINDOW_CLOCK") or "event"),
        shards=int(env_number(env, "STREAMHOUSE_SHARDS", 1, kind=int, minimum=1)),
        topic_prefix=_topic_prefix(env.get("STREAMHOUSE_TOPIC_PREFIX", "")),
        lake_dir=Path(env.get("STREAMHOUSE_LAKE_DIR") or "lake"),
        recovery_dir=Path(env.get("STREAMHOUSE_RECOVERY_DIR") or "recovery"),
    )
