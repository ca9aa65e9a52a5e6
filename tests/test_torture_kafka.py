"""Crash torture over Kafka, the CQRS round: `streamhouse run order_commands` reads a
preloaded `order-commands` topic and is SIGKILLed three times at random moments; then
`order_projection` reads the events it wrote (with whatever the kills made it write twice)
and is killed three times too. The output topics, deduplicated by id, and the lake tables
(`order_rejections`, `order_view`, `order_status_history`) equal those of clean runs over
an identical copy of the input (same records, same partitions, another topic prefix)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

from helpers import lake_rows, read_all
from torture import start_and_kill

from models.simulator import SimConfig, Simulator
from models.topics import ORDER_COMMANDS, ORDER_EVENTS, ORDER_REJECTIONS
from sinks.kafka import KafkaMessage, ReliableProducer
from streamhouse.topics import create_topics

CLI = str(Path(sys.executable).parent / "streamhouse")
KILLS = 3
ID = {ORDER_EVENTS: "event_id", ORDER_REJECTIONS: "rejection_id"}


def preload(bootstrap: str, prefix: str, records: list) -> None:
    create_topics({"bootstrap.servers": bootstrap}, 3, 1, prefix)
    producer = ReliableProducer({"bootstrap.servers": bootstrap}, prefix)
    producer.send_many(KafkaMessage(r.topic, r.key, r.value, r.headers) for r in records)
    producer.flush(60)


def deduplicated(bootstrap: str, topic: str, id_field: str) -> tuple[int, dict[str, tuple]]:
    """(messages read, {id: (partition, key, value)}); a repeat must be byte-identical."""
    messages = read_all(bootstrap, topic)
    out: dict[str, tuple] = {}
    for m in messages:
        row = (m.partition(), m.key(), m.value())
        ident = json.loads(m.value())[id_field]
        assert out.setdefault(ident, row) == row, f"{ident} was produced twice, differently"
    return len(messages), out


def kill_repeatedly(command: list[str], env: dict[str, str], lake: Path, rng: random.Random) -> int:
    """Start and SIGKILL the flow KILLS times, each a random moment after start-up (~2 s)
    or just after it landed a file; how many kills hit a running flow."""
    return sum(
        start_and_kill(command, env, lake, rng, give_up_s=rng.uniform(2.0, 4.0), after_s=(0.1, 0.5))
        for _ in range(KILLS)
    )


def test_the_cqrs_flows_killed_three_times_each_produce_what_clean_runs_produce(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    config = SimConfig(seed=12, events_per_s=2_000, duration_s=600, order_events=False)
    records = [r for r in Simulator(config).records() if r.topic == ORDER_COMMANDS]
    tortured, clean = f"tort{os.getpid()}-", f"clean{os.getpid()}-"
    for prefix in (tortured, clean):
        preload(kafka_bootstrap, prefix, records)

    def env(prefix: str, lake: str) -> dict[str, str]:
        return {**os.environ, "STREAMHOUSE_BOOTSTRAP_SERVERS": kafka_bootstrap,
                "STREAMHOUSE_TOPIC_PREFIX": prefix, "STREAMHOUSE_LAKE_DIR": str(tmp_path / lake),
                "STREAMHOUSE_RECOVERY_DIR": str(tmp_path / "recovery")}  # fmt: skip

    rng = random.Random(3)
    for flow in ("order_commands", "order_projection"):  # the projection reads what it wrote
        command = [CLI, "run", flow, "--until-eof", "--snapshot-interval", "1"]
        kills = kill_repeatedly(command, env(tortured, "lake"), tmp_path / "lake", rng)
        done = subprocess.run(command, env=env(tortured, "lake"), capture_output=True, text=True,
                              timeout=600)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        reference = subprocess.run([*command, "--no-recovery"], env=env(clean, "clean"),
                                   capture_output=True, text=True, timeout=600)  # fmt: skip
        assert reference.returncode == 0, reference.stderr[-3000:]
        assert kills >= 2, f"{flow} finished before it could be killed: make the input longer"

    for topic, id_field in ID.items():
        read, got = deduplicated(kafka_bootstrap, tortured + topic, id_field)
        _, want = deduplicated(kafka_bootstrap, clean + topic, id_field)
        assert got == want, topic
        assert len(want) > 100 and read >= len(want)
    for table in ("order_rejections", "order_view", "order_status_history"):
        assert lake_rows(tmp_path / "lake", table) == lake_rows(tmp_path / "clean", table), table
        assert len(lake_rows(tmp_path / "clean", table)) > 100, table
