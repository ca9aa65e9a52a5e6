"""Decoding is validation: every bad message becomes a failure with a reason, never an exception."""

from __future__ import annotations

import typing
from datetime import UTC, datetime

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.codec import MAX_EVENT_BYTES, BatchDecoder, decode_batch, encode
from models.logs import LogRecord
from models.simulator import SimConfig, Simulator
from models.topics import INPUT_TOPICS, LOG_EVENTS, ORDER_EVENTS

TOPICS = sorted(INPUT_TOPICS)


def _tags(schema: object) -> set[str]:
    members = typing.get_args(schema) or (schema,)
    return {m.__struct_config__.tag for m in members}  # type: ignore[attr-defined]


ALL_TAGS = {topic: _tags(spec.schema) for topic, spec in INPUT_TOPICS.items()}


@pytest.fixture(scope="module")
def simulated() -> dict[str, list[bytes]]:
    """Well-formed examples of every event type, from a clean simulation."""
    sim = Simulator(SimConfig(duration_s=300, events_per_s=300, malformed_fraction=0.0))
    by_topic: dict[str, list[bytes]] = {}
    for record in sim.records():
        by_topic.setdefault(record.topic, []).append(record.value)
    return by_topic


def test_simulator_covers_every_event_type(simulated: dict[str, list[bytes]]) -> None:
    for topic in TOPICS:
        decoded = decode_batch(topic, simulated[topic])
        assert decoded.failures == []
        assert {type(e).__struct_config__.tag for e in decoded.events} == ALL_TAGS[topic]


def test_every_event_encodes_and_decodes_back_to_itself(simulated: dict[str, list[bytes]]) -> None:
    for topic in TOPICS:
        decoder = BatchDecoder(topic)
        for raw in simulated[topic][:500]:
            event = decoder.decode(raw)
            assert decoder.decode(encode(event)) == event
            if topic != LOG_EVENTS:  # plain-text log lines re-encode as JSON
                assert encode(event) == raw


def test_plain_and_json_log_lines_decode_to_the_same_record() -> None:
    line = b"2026-01-05T10:00:00.123Z ERROR [payment-service] PaymentTimeout: gateway did not answer in 3000 ms"
    record = BatchDecoder(LOG_EVENTS).decode(line)
    assert isinstance(record, LogRecord)
    assert (record.service, record.level, record.error_type) == (
        "payment-service",
        "ERROR",
        "PaymentTimeout",
    )
    assert record.message == "gateway did not answer in 3000 ms"
    assert record.ts == datetime(2026, 1, 5, 10, 0, 0, 123000, tzinfo=UTC)
    assert BatchDecoder(LOG_EVENTS).decode(encode(record)) == record
    # A re-delivered plain line has the same id, so it is counted once.
    assert BatchDecoder(LOG_EVENTS).decode(line).event_id == record.event_id
    info = BatchDecoder(LOG_EVENTS).decode(
        b"2026-01-05T10:00:01Z INFO [api-gateway] request served"
    )
    assert info.error_type is None and info.message == "request served"


GOOD_PAID = {
    "type": "order_paid",
    "event_id": "e-1",
    "ts": "2026-01-05T10:00:00Z",
    "schema_version": 1,
    "order_id": "o-1",
    "version": 2,
    "amount": 10.5,
    "currency": "EUR",
}


def _with(**changes: object) -> bytes:
    obj = {**GOOD_PAID, **changes}
    return msgspec.json.encode({k: v for k, v in obj.items() if v is not _DROP})


_DROP = object()

HOSTILE: list[tuple[bytes | None, str]] = [
    (None, "empty message"),
    (b"", "malformed JSON"),
    (b"\xef\xbb\xbf" + _with(), "malformed JSON"),  # a UTF-8 byte-order mark
    (b"\xff\xfe\x00garbage", "not UTF-8"),
    (_with()[:-1], "malformed JSON"),
    (b"[" * 100_000, "invalid event"),
    (b'{"type":"order_paid","x":' + b"[" * 100_000, "nested too deeply"),
    (_with(amount=1e308), "invalid event"),
    (_with(amount=-1), "invalid event"),
    (
        b'{"type":"order_paid","event_id":"e","ts":"2026-01-05T10:00:00Z","order_id":"o","version":1,"amount":NaN,"currency":"EUR"}',
        "malformed JSON",
    ),
    (
        b'{"type":"order_paid","event_id":"e","ts":"2026-01-05T10:00:00Z","order_id":"o","version":1,"amount":1e999,"currency":"EUR"}',
        "invalid event",
    ),
    (_with(version=2**70), "invalid event"),
    (_with(amount="ten"), "invalid event"),
    (_with(ts="0001-01-01T00:00:00Z"), "outside the accepted range"),
    (_with(ts="9999-12-31T23:59:59Z"), "outside the accepted range"),
    (_with(ts="2026-01-05T10:00:00"), "timezone"),
    (_with(ts=1767607200), "invalid event"),
    (_with(ts=_DROP), "missing required field `ts`"),
    (_with(type="mystery_event"), "mystery_event"),
    (_with(type=_DROP), "type"),
    (_with(schema_version=2), "unsupported schema_version 2"),
    (_with(currency="euro"), "invalid event"),
    (_with(order_id="x" * 10_000), "invalid event"),
    (b" " * (MAX_EVENT_BYTES + 1), "exceeds"),
    (_with(order_id="o" * (MAX_EVENT_BYTES + 10)), "exceeds"),
]


@pytest.mark.parametrize(("raw", "reason"), HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_input_is_a_failure_with_its_reason(raw: bytes | None, reason: str) -> None:
    batch = decode_batch(ORDER_EVENTS, [_with(), raw, _with(event_id="e-2")])
    assert [e.event_id for e in batch.events] == ["e-1", "e-2"]  # neighbours unharmed
    assert batch.indices == [0, 2]
    [failure] = batch.failures
    assert failure.index == 1
    assert failure.raw == (raw or b"")
    assert reason in failure.reason


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(topic=st.sampled_from(TOPICS), raws=st.lists(st.binary(max_size=600), max_size=8))
def test_arbitrary_bytes_never_raise_and_every_failure_has_a_reason(
    topic: str, raws: list[bytes]
) -> None:
    batch = decode_batch(topic, raws)
    assert len(batch.events) + len(batch.failures) == len(raws)
    for failure in batch.failures:
        assert failure.reason.strip()
        assert failure.raw == raws[failure.index]


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(sorted(GOOD_PAID)), value=JSON)
def test_any_json_in_any_field_is_decoded_or_explained(field: str, value: object) -> None:
    raw = msgspec.json.encode({**GOOD_PAID, field: value})
    batch = decode_batch(ORDER_EVENTS, [raw])
    if batch.events:
        # Whatever was accepted is a valid event that survives a round trip.
        [event] = batch.events
        assert BatchDecoder(ORDER_EVENTS).decode(encode(event)) == event
    else:
        assert batch.failures[0].reason.startswith(("invalid event", "malformed JSON"))


@settings(max_examples=300)
@given(line=st.text(max_size=200))
def test_any_text_log_line_is_parsed_or_explained(line: str) -> None:
    batch = decode_batch(LOG_EVENTS, [line.encode()])
    assert len(batch.events) + len(batch.failures) == 1
    for failure in batch.failures:
        assert failure.reason
