"""Settings: environment and files in, a clear error naming the setting out."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamhouse.config import ConfigError, Settings, check_kafka_config, from_env


def test_defaults() -> None:
    settings = from_env({})
    assert settings == Settings()
    assert settings.kafka_config() == {"bootstrap.servers": "127.0.0.1:9092"}


def test_kafka_settings_pass_through_including_sasl_and_tls(tmp_path: Path) -> None:
    secrets = tmp_path / "client.properties"
    secrets.write_text(
        "# secrets live in a mounted file\nsasl.password = s3cret\nssl.ca.location=/etc/ca.pem\n"
    )
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": "broker-1:9093,broker-2:9093",
        "STREAMHOUSE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "STREAMHOUSE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "STREAMHOUSE_KAFKA_SASL_USERNAME": "streamhouse",
        "STREAMHOUSE_KAFKA_CONFIG_FILE": str(secrets),
        "STREAMHOUSE_KAFKA_OUTPUT": "0",  # streamhouse's own setting, not a client property
    }
    conf = from_env(env).kafka_config()
    assert conf == {
        "bootstrap.servers": "broker-1:9093,broker-2:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "streamhouse",
        "sasl.password": "s3cret",
        "ssl.ca.location": "/etc/ca.pem",
    }
    # librdkafka accepts every one of them (checked without connecting).
    check_kafka_config({k: v for k, v in conf.items() if k != "ssl.ca.location"})


def test_streamhouse_bootstrap_wins_over_the_generic_variable() -> None:
    env = {"KAFKA_BOOTSTRAP_SERVERS": "a:1", "STREAMHOUSE_BOOTSTRAP_SERVERS": "b:2"}
    assert from_env(env).bootstrap_servers == "b:2"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"STREAMHOUSE_TOPIC_PARTITIONS": "three"}, "STREAMHOUSE_TOPIC_PARTITIONS='three'"),
        ({"STREAMHOUSE_TOPIC_PARTITIONS": "0"}, "STREAMHOUSE_TOPIC_PARTITIONS='0' must be >= 1"),
        ({"STREAMHOUSE_ALLOWED_LATENESS_S": "-1"}, "STREAMHOUSE_ALLOWED_LATENESS_S"),
        ({"STREAMHOUSE_TOPIC_PREFIX": "a b"}, "STREAMHOUSE_TOPIC_PREFIX"),
        ({"STREAMHOUSE_KAFKA_CONFIG_FILE": "/nonexistent/x.properties"}, "cannot be read"),
    ],
)
def test_a_bad_setting_fails_naming_it(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace("(", r"\(")):
        from_env(env)


def test_unknown_kafka_property_is_rejected_by_name() -> None:
    with pytest.raises(ConfigError, match=r'"foo\.bar"'):
        check_kafka_config(from_env({"STREAMHOUSE_KAFKA_FOO_BAR": "1"}).kafka_config())
    with pytest.raises(ConfigError, match=r"security\.protocol"):
        check_kafka_config({"security.protocol": "CARRIER_PIGEON"})


def test_properties_file_rejects_lines_that_are_not_key_value(tmp_path: Path) -> None:
    bad = tmp_path / "bad.properties"
    bad.write_text("sasl.username=a\njust words\n")
    with pytest.raises(ConfigError, match="line 2"):
        from_env({"STREAMHOUSE_KAFKA_CONFIG_FILE": str(bad)})
