"""Shared fixtures. The Kafka broker is real: started here from Maven jars, or the one
named by KAFKA_BOOTSTRAP_SERVERS. If it cannot start, every test that needs it fails
with the cause and the broker log's last lines; none is skipped."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from streamhouse.broker import BrokerError, LocalBroker

_broker_start: dict[str, object] = {}


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        _broker_start["external"] = external
        yield external
        return
    broker = LocalBroker()
    try:
        broker.start()
    except BrokerError as e:
        pytest.fail(f"could not start the test Kafka broker: {e}", pytrace=False)
    _broker_start["seconds"] = broker.start_seconds
    _broker_start["bootstrap"] = broker.bootstrap
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


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
