"""Shared fixtures. The Kafka broker is real: started here from Maven jars, or the one
named by KAFKA_BOOTSTRAP_SERVERS. If it cannot start, every test that needs it fails
with the cause and the broker log's last lines; none is skipped."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamhouse import broker
from streamhouse.broker import BrokerError

_broker_start: dict[str, object] = {}


@pytest.fixture(scope="session", autouse=True)
def recovery_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """`streamhouse run` keeps recovery on by default, under STREAMHOUSE_RECOVERY_DIR: every
    flow a test starts keeps its store in this session's temp dir, never in the checkout."""
    root = tmp_path_factory.mktemp("recovery")
    before = os.environ.get("STREAMHOUSE_RECOVERY_DIR")
    os.environ["STREAMHOUSE_RECOVERY_DIR"] = str(root)
    yield root
    if before is None:
        del os.environ["STREAMHOUSE_RECOVERY_DIR"]
    else:
        os.environ["STREAMHOUSE_RECOVERY_DIR"] = before


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    try:
        kafka = broker.kafka_bootstrap()
        bootstrap, local = kafka.__enter__()
    except BrokerError as e:
        pytest.fail(f"could not start the test Kafka broker: {e}", pytrace=False)
    if local is None:
        _broker_start["external"] = bootstrap
    else:
        _broker_start["seconds"] = local.start_seconds
        _broker_start["bootstrap"] = bootstrap
    try:
        yield bootstrap
    finally:
        kafka.__exit__(None, None, None)


@pytest.fixture
def topic_prefix() -> str:
    """Tests share one broker: each names its topics uniquely."""
    return f"t{uuid.uuid4().hex[:10]}-"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if "seconds" in _broker_start:
        terminalreporter.write_line(
            f"Kafka broker (Apache Kafka from Maven jars) at {_broker_start['bootstrap']} "
            f"started in {_broker_start['seconds']:.2f} s"
        )
    elif "external" in _broker_start:
        terminalreporter.write_line(f"Kafka broker: external, {_broker_start['external']}")
