"""Integration on a real Apache Kafka broker: topics, the simulator's output, and a flow."""

from __future__ import annotations

import os
from collections import Counter

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource, run_main
from confluent_kafka.admin import AdminClient, ConfigResource
from helpers import captured_rows, frozen_now, java_murmur2, java_partition, read_all

from dataflows import order_stats
from dataflows.inputs import KafkaBatchSource, SimulatorSource
from dataflows.outputs import Outputs
from dataflows.windowing import Clock
from models.codec import BatchDecoder
from models.simulator import SimConfig, Simulator
from models.topics import ANOMALY_MODELS, INPUT_TOPICS, ORDER_EVENTS, all_topics
from sinks.kafka import KafkaMessage, KafkaSink, ReliableProducer
from streamhouse.simulate import to_kafka
from streamhouse.topics import create_topics

pytestmark = pytest.mark.kafka

SMALL = SimConfig(seed=5, events_per_s=150, duration_s=30)


def test_java_murmur2_matches_kafkas_own_test_vectors() -> None:
    """The oracle below must itself be right: vectors from Kafka's UtilsTest."""
    signed = lambda h: h - (1 << 32) if h >= 1 << 31 else h  # noqa: E731
    assert signed(java_murmur2(b"21")) == -973932308
    assert signed(java_murmur2(b"foobar")) == -790332482
    assert signed(java_murmur2(b"a-little-bit-longer-string")) == -1486304829


def test_topics_create_is_idempotent_and_compacts_anomaly_models(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    config = {"bootstrap.servers": kafka_bootstrap}
    first = create_topics(config, 2, 1, topic_prefix)
    assert {r.outcome for r in first} == {"created"}
    assert {r.name for r in first} == {topic_prefix + s.name for s in all_topics()}
    second = create_topics(config, 2, 1, topic_prefix)
    assert {r.outcome for r in second} == {"exists"}

    admin = AdminClient(config)
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic_prefix + ANOMALY_MODELS)
    entries = admin.describe_configs([resource])[resource].result(timeout=30)
    assert entries["cleanup.policy"].value == "compact"
    meta = admin.list_topics(timeout=30).topics
    assert len(meta[topic_prefix + ORDER_EVENTS].partitions) == 2


def test_simulated_traffic_round_trips_through_kafka(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    partitions = 3
    create_topics({"bootstrap.servers": kafka_bootstrap}, partitions, 1, topic_prefix)
    sim = Simulator(SMALL)
    report = to_kafka(
        sim, {"bootstrap.servers": kafka_bootstrap}, show_progress=False, topic_prefix=topic_prefix
    )
    sent = list(Simulator(SMALL).records())
    assert report.records == len(sent)

    for topic in INPUT_TOPICS:
        expected = [r for r in sent if r.topic == topic]
        received = read_all(kafka_bootstrap, topic_prefix + topic)
        assert Counter((m.key(), m.value(), tuple(m.headers())) for m in received) == Counter(
            (r.key, r.value, r.headers) for r in expected
        ), topic
        for m in received:
            # The Java client's murmur2: a Java service would have picked the same partition.
            assert m.partition() == java_partition(m.key(), partitions)
            assert dict(m.headers())["traceparent"].startswith(b"00-")
        # Within a partition, one key's records keep their send order.
        decoder = BatchDecoder(topic)
        for key in {r.key for r in expected[:50]}:
            assert [m.value() for m in received if m.key() == key] == [
                r.value for r in expected if r.key == key
            ]
        got = decoder.decode_batch([m.value() for m in received])
        want = decoder.decode_batch([r.value for r in expected])
        assert Counter(e.event_id for e in got.events) == Counter(e.event_id for e in want.events)
        assert len(got.failures) == len(want.failures)
    assert {r.topic for r in sent} == set(INPUT_TOPICS)


def test_order_stats_reads_kafka_like_the_in_process_simulator(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    """One partition keeps delivery order, so the two runs see the same input order."""
    config = SimConfig(seed=9, events_per_s=300, duration_s=150, late_fraction=0.02)
    create_topics({"bootstrap.servers": kafka_bootstrap}, 1, 1, topic_prefix)
    to_kafka(
        Simulator(config),
        {"bootstrap.servers": kafka_bootstrap},
        show_progress=False,
        topic_prefix=topic_prefix,
    )

    def run(source):
        captured: dict[str, list] = {}
        run_main(order_stats.build(source, Outputs(captured=captured), Clock(now=frozen_now)))
        return (
            captured_rows(captured, "order_stats_minute"),
            sorted(d["raw"] for d in captured_rows(captured, "dead_letters")),
            sorted(e["event_id"] for e in captured_rows(captured, "late_events")),
        )

    from_kafka = run(
        KafkaBatchSource(
            {"bootstrap.servers": kafka_bootstrap},
            [ORDER_EVENTS],
            until_eof=True,
            topic_prefix=topic_prefix,
        )
    )
    in_process = run(SimulatorSource(config))
    assert from_kafka[0] and from_kafka[1] and from_kafka[2]
    assert from_kafka == in_process


def test_missing_topic_is_a_clear_error(kafka_bootstrap: str, topic_prefix: str) -> None:
    source = KafkaBatchSource(
        {"bootstrap.servers": kafka_bootstrap}, ["no-such-topic"], topic_prefix=topic_prefix
    )
    with pytest.raises(Exception, match="streamhouse topics create"):
        source.list_parts()


def _flow_to_kafka(messages: list[KafkaMessage], config: dict, prefix: str) -> Dataflow:
    flow = Dataflow("to_kafka")
    stream = op.input("in", flow, TestingSource(messages, batch_size=500))
    keyed = op.key_on("key", stream, lambda m: (m.key or b"").decode())
    op.output("out", keyed, KafkaSink(config, topic_prefix=prefix))
    return flow


def test_kafka_sink_delivers_everything_with_keys_and_headers(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    messages = [
        KafkaMessage("sink-test", f"k{i % 17}".encode(), f"v{i}".encode(),
                     (("traceparent", f"00-{i:032x}-{i:016x}-01".encode()),))
        for i in range(5_000)
    ]  # fmt: skip
    run_main(_flow_to_kafka(messages, {"bootstrap.servers": kafka_bootstrap}, topic_prefix))
    received = read_all(kafka_bootstrap, topic_prefix + "sink-test")
    assert sorted((m.key(), m.value(), tuple(m.headers())) for m in received) == sorted(
        (m.key, m.value, m.headers) for m in messages
    )
    # One key's messages keep their order.
    assert [m.value() for m in received if m.key() == b"k3"] == [
        m.value for m in messages if m.key == b"k3"
    ]


def test_a_full_queue_makes_the_producer_wait_not_fail(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    producer = ReliableProducer(
        {"bootstrap.servers": kafka_bootstrap, "queue.buffering.max.messages": 10,
         "linger.ms": 5},
        topic_prefix,
    )  # fmt: skip
    for i in range(2_000):
        producer.send(KafkaMessage("tiny-queue", b"k", str(i).encode()))
    producer.flush(60)
    assert producer.waits > 0  # the back-pressure path ran
    received = read_all(kafka_bootstrap, topic_prefix + "tiny-queue")
    assert [m.value() for m in received] == [str(i).encode() for i in range(2_000)]


def test_an_undeliverable_message_stops_the_flow_with_the_reason(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    too_big = KafkaMessage("too-big", b"k", os.urandom(17 * 1024 * 1024))  # incompressible
    config = {"bootstrap.servers": kafka_bootstrap, "message.max.bytes": 32 * 1024 * 1024,
              "message.timeout.ms": 20_000}  # fmt: skip
    with pytest.raises(Exception) as failure:
        run_main(_flow_to_kafka([too_big], config, topic_prefix))
    chain, error = [], failure.value
    while error is not None:
        chain.append(str(error))
        error = error.__cause__ or error.__context__
    reason = " <- ".join(chain)
    assert "not delivered" in reason and "too large" in reason.lower(), reason
