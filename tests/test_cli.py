"""Smoke tests of every command, run as a user would: the installed `streamhouse` script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from helpers import read_all

from models.topics import INPUT_TOPICS, all_topics

CLI = str(Path(sys.executable).parent / "streamhouse")


def sh(*args: str, env: dict[str, str] | None = None, timeout: float = 300):
    """The command in a fresh recovery root: a bounded run must not resume another's store."""
    fresh = {"STREAMHOUSE_RECOVERY_DIR": tempfile.mkdtemp(prefix="recovery-")}
    return subprocess.run(
        [CLI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **fresh, **(env or {})},
    )


@pytest.mark.parametrize(
    ("command", "mentions"),
    [
        ((), "simulate"),
        (("simulate",), "--labels"),
        (("topics", "create"), "--partitions"),
        (("run",), "--recovery-dir"),
        (("demo",), "--duration"),
        (("broker",), "--data-dir"),
    ],
)
def test_every_command_has_help(command: tuple[str, ...], mentions: str) -> None:
    done = sh(*command, "--help")
    assert done.returncode == 0, done.stderr
    assert mentions in done.stdout


def test_demo_shows_the_main_job_working() -> None:
    done = sh("demo", "--duration", "180", "--rate", "300", "--quiet")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Orders per minute and currency" in out
    assert "| 2026-01-05 10:00 | EUR" in out
    assert "injected order drop" in out
    assert "dead letters" in out and "late events" in out
    assert "injected error_burst" in out and "alert log_error_count" in out
    assert "alerts that match no incident" in out
    assert "CQRS round trip" in out
    assert "created → paid → shipped" in out
    assert "ship_order is not allowed in status cancelled" in out


def test_simulate_to_files_writes_every_topic_and_labels(tmp_path: Path) -> None:
    done = sh(
        "simulate", "--to", "files", "--out", str(tmp_path), "--duration", "120",
        "--rate", "100", "--labels", str(tmp_path / "labels.jsonl"), "--quiet",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "records to" in done.stdout
    for topic in INPUT_TOPICS:
        lines = (tmp_path / f"{topic}.jsonl").read_text().splitlines()
        assert lines, topic
        first = json.loads(lines[0])
        assert set(first) >= {"key", "headers"} and ("value" in first or "value_b64" in first)
    labels = [json.loads(x) for x in (tmp_path / "labels.jsonl").read_text().splitlines()]
    assert {label["kind"] for label in labels} == {
        "latency_spike", "error_burst", "order_drop", "metric_spike",
    }  # fmt: skip


def test_configuration_errors_are_one_line_and_name_the_setting() -> None:
    done = sh("topics", "create", env={"STREAMHOUSE_TOPIC_PARTITIONS": "many"})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "streamhouse: configuration error: STREAMHOUSE_TOPIC_PARTITIONS='many' is not a valid int"
    ]
    done = sh("simulate", "--to", "files", "--quiet")
    assert done.returncode == 2 and "--out DIR is required" in done.stderr
    done = sh("run", "no_such_flow")
    assert done.returncode == 2 and "invalid choice" in done.stderr
    done = sh("demo", "--rate", "-5")
    assert done.returncode == 2 and "must be > 0" in done.stderr
    done = sh("run", "order_stats", "--input", "simulator", env={"STREAMHOUSE_SIM_RATE": "fast"})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "streamhouse: configuration error: STREAMHOUSE_SIM_RATE='fast' is not a valid float"
    ]


def test_a_missing_broker_or_topic_or_a_bad_recovery_dir_is_one_line(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    nobody = sh("run", "order_stats", env={"STREAMHOUSE_BOOTSTRAP_SERVERS": "127.0.0.1:1"})
    assert nobody.returncode == 2
    (line,) = nobody.stderr.strip().splitlines()
    assert "STREAMHOUSE_BOOTSTRAP_SERVERS=127.0.0.1:1: no Kafka broker answered" in line
    env = {"STREAMHOUSE_BOOTSTRAP_SERVERS": kafka_bootstrap, "STREAMHOUSE_TOPIC_PREFIX": "absent-"}
    no_topic = sh("run", "anomalies", env=env)
    assert no_topic.returncode == 2
    (line,) = no_topic.stderr.strip().splitlines()
    assert "topic absent-anomaly-models, absent-business-events does not exist" in line
    (tmp_path / "a-file").write_text("not a directory")
    bad = sh(
        "run",
        "order_stats",
        "--input",
        "simulator",
        "--recovery-dir",
        str(tmp_path / "a-file" / "x"),
    )
    assert bad.returncode == 2
    (line,) = bad.stderr.strip().splitlines()
    assert f"--recovery-dir {tmp_path / 'a-file' / 'x'}: cannot create it" in line


def test_run_with_the_simulator_input_and_recovery_needs_no_broker(tmp_path: Path) -> None:
    recovery = tmp_path / "recovery"
    env = {
        "STREAMHOUSE_SIM_DURATION_S": "120",
        "STREAMHOUSE_SIM_RATE": "200",
        "STREAMHOUSE_LAKE_DIR": str(tmp_path / "lake"),
    }
    done = sh("run", "order_stats", "--input", "simulator", "--recovery-dir", str(recovery),
              env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert {row["window_start"] for row in rows} == {
        "2026-01-05T10:00:00Z", "2026-01-05T10:01:00Z",
    }  # fmt: skip
    assert (recovery / "part-0.sqlite3").exists()
    assert "python -m bytewax.run dataflows.order_stats:flow" in done.stderr.replace(
        sys.executable, "python"
    )
    # The same rows landed in the lake, where SQL finds them.
    done = sh("sql", "SELECT count(*) AS n FROM order_stats_minute", "--format", "json",
              "--lake", str(tmp_path / "lake"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"n": len(rows)}
    # Compaction is a command too; it names what it did and changes no answer.
    lake = ["--lake", str(tmp_path / "lake")]
    done = sh("warehouse", "compact", "--settle-s", "0", "--min-files", "1", *lake)
    assert done.returncode == 0, done.stderr
    assert "order_stats_minute   merged 1 files into 1" in done.stdout
    done = sh("sql", "SELECT count(*) AS n FROM order_stats_minute", "--format", "json", *lake)
    assert json.loads(done.stdout) == {"n": len(rows)}
    done = sh("warehouse", "compact", "--table", "nope", *lake)
    assert done.returncode == 2 and "unknown table 'nope'" in done.stderr


@pytest.mark.kafka
def test_topics_simulate_and_run_against_the_broker(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "STREAMHOUSE_TOPIC_PREFIX": topic_prefix,
        "STREAMHOUSE_LAKE_DIR": str(tmp_path / "lake"),
    }
    done = sh("topics", "create", "--partitions", "2", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("created ") == len(all_topics())
    again = sh("topics", "create", env=env)
    assert again.stdout.count("exists ") == len(all_topics())

    done = sh("simulate", "--duration", "90", "--rate", "300", "--late-fraction", "0",
              "--no-incidents", "--quiet", env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "records to Kafka at" in done.stdout

    done = sh("run", "order_stats", "--until-eof", env=env)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    windows = {row["window_start"] for row in rows}
    assert windows == {"2026-01-05T10:00:00Z", "2026-01-05T10:01:00Z"}
    assert sum(row["orders_created"] for row in rows) > 100
    assert {row["currency"] for row in rows} == {"EUR", "USD", "GBP"}
    # With Kafka input the results are also published, and bad input dead-lettered.
    stats = read_all(kafka_bootstrap, topic_prefix + "order-statistics")
    assert sorted(json.loads(m.value())["stats_id"] for m in stats) == sorted(
        row["stats_id"] for row in rows
    )
    dlq = read_all(kafka_bootstrap, topic_prefix + "order-events.dlq")
    done = sh("query", "dead_letters_by_reason", "--format", "json", env=env)
    assert done.returncode == 0, done.stderr
    in_lake = sum(json.loads(line)["dead_letters"] for line in done.stdout.splitlines())
    assert in_lake == len(dlq) > 0
    assert all(dict(m.headers())["dlq.reason"] for m in dlq)

    done = sh("run", "land_events", "--until-eof", env=env)
    assert done.returncode == 0, done.stderr
    done = sh("tables", "--format", "json", env=env)
    tables = {t["table"]: t for t in map(json.loads, done.stdout.splitlines())}
    assert tables["events"]["rows"] > 10_000
    assert tables["order_stats_minute"]["rows"] == len(rows)


def test_simulate_to_an_unreachable_broker_fails_loudly() -> None:
    done = sh(
        "simulate", "--duration", "2", "--rate", "10", "--quiet",
        env={"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "STREAMHOUSE_KAFKA_MESSAGE_TIMEOUT_MS": "3000"},
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    # librdkafka logs its connection attempts; our own verdict is one line among them.
    [message] = [line for line in done.stderr.splitlines() if line.startswith("streamhouse:")]
    assert message.startswith("streamhouse: Kafka delivery failed:")
    assert "were not delivered" in message


@pytest.mark.parametrize(
    ("flow", "tables"),
    [
        ("user_activity", ["user_activity_5m"]),
        ("log_alerts", ["error_counts_minute", "alerts"]),
        ("api_metrics", ["api_latency_minute", "alerts"]),
        ("behavior_etl", ["behavior_records", "user_summary", "user_recommendations"]),
        ("anomalies", ["anomaly_scores"]),
    ],
)
def test_every_flow_runs_under_streamhouse_run(
    tmp_path: Path, flow: str, tables: list[str]
) -> None:
    env = {
        "STREAMHOUSE_SIM_DURATION_S": "330",
        "STREAMHOUSE_SIM_RATE": "150",
        "STREAMHOUSE_LAKE_DIR": str(tmp_path / "lake"),
    }
    done = sh("run", flow, "--input", "simulator", env=env)
    assert done.returncode == 0, done.stderr
    assert f"python -m bytewax.run dataflows.{flow}:flow" in done.stderr.replace(
        sys.executable, "python"
    )
    for table in tables:
        done = sh("sql", f"SELECT count(*) AS n FROM {table}", "--format", "json",
                  "--lake", str(tmp_path / "lake"))  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["n"] > 0, table


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("STREAMHOUSE_WINDOW_CLOCK", "sundial", "STREAMHOUSE_WINDOW_CLOCK"),
        ("STREAMHOUSE_ERROR_THRESHOLDS", "api-gateway:5", "STREAMHOUSE_ERROR_THRESHOLDS"),
        ("STREAMHOUSE_API_P99_MS", "fast", "STREAMHOUSE_API_P99_MS"),
        ("STREAMHOUSE_SHARDS", "0", "STREAMHOUSE_SHARDS"),
        ("STREAMHOUSE_IDLE_TIMEOUT_S", "-3", "STREAMHOUSE_IDLE_TIMEOUT_S"),
        ("STREAMHOUSE_LATENCY_DETECTOR", "mad:windw=3", "STREAMHOUSE_LATENCY_DETECTOR"),
        ("STREAMHOUSE_LATENCY_DETECTOR", "zscore:z=3", "STREAMHOUSE_LATENCY_DETECTOR"),
        ("STREAMHOUSE_ALERT_RESOLVE_S", "0", "STREAMHOUSE_ALERT_RESOLVE_S"),
        ("STREAMHOUSE_WEBHOOK_URL", "ftp://hooks.example", "STREAMHOUSE_WEBHOOK_URL"),
    ],
)
def test_bad_window_and_threshold_settings_are_one_line(
    tmp_path: Path, variable: str, value: str, named: str
) -> None:
    env = {variable: value, "STREAMHOUSE_LAKE_DIR": str(tmp_path / "lake")}
    done = sh("run", "api_metrics", "--input", "simulator", env=env)
    assert done.returncode == 2
    assert named in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_alerts_lists_open_and_recent_alerts(tmp_path: Path) -> None:
    lake = str(tmp_path / "lake")
    env = {"STREAMHOUSE_SIM_DURATION_S": "330", "STREAMHOUSE_SIM_RATE": "150",
           "STREAMHOUSE_LAKE_DIR": lake}  # fmt: skip
    assert sh("run", "log_alerts", "--input", "simulator", env=env).returncode == 0
    done = sh("alerts", "--lake", lake, "--format", "json")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert rows and {r["rule"] for r in rows} >= {"log_error_count"}
    assert all(r["state"] in ("firing", "resolved") for r in rows if "state" in r)
    table = sh("alerts", "--lake", lake, "--open-only")
    assert table.returncode == 0 and table.stdout.startswith("Open alerts (")


def test_recovery_is_on_by_default_one_store_per_prefix_and_flow(tmp_path: Path) -> None:
    """A second bounded run resumes the first's snapshot: the input was done, so it writes
    nothing; --no-recovery reads it all again (and rewrites the same files)."""
    lake = tmp_path / "lake"
    env = {"STREAMHOUSE_RECOVERY_DIR": str(tmp_path / "recovery"), "STREAMHOUSE_LAKE_DIR": str(lake),
           "STREAMHOUSE_SIM_DURATION_S": "120", "STREAMHOUSE_TOPIC_PREFIX": "blue-"}  # fmt: skip

    def count() -> int:
        done = sh(
            "sql", "SELECT count(*) AS n FROM events", "--format", "json", "--lake", str(lake)
        )
        return json.loads(done.stdout)["n"]

    first = sh("run", "land_events", "--input", "simulator", env=env)
    assert first.returncode == 0, first.stderr
    assert list((tmp_path / "recovery" / "blue-land_events").glob("part-*.sqlite3"))
    assert f"-r {tmp_path / 'recovery' / 'blue-land_events'}" in first.stderr
    landed = count()
    assert landed > 0

    def written() -> float:
        return max(f.stat().st_mtime_ns for f in lake.glob("events/*/*.parquet"))

    before = written()
    again = sh("run", "land_events", "--input", "simulator", env=env)
    assert again.returncode == 0, again.stderr
    assert count() == landed and written() == before
    fresh = sh("run", "land_events", "--input", "simulator", "--no-recovery", env=env)
    assert fresh.returncode == 0 and " -r " not in fresh.stderr
    assert count() == landed and written() > before
