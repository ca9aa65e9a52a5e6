"""The columnar FrameDecoder accepts exactly what msgspec accepts, with the same reasons,
whatever the batch: simulated mess, hand-picked hostile values, and fuzzed mutations."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.codec import BatchDecoder
from models.frames import ROW, FrameDecoder
from models.projections import HttpRequestFields, OrderStatsFields, UserActionFields
from models.simulator import SimConfig, Simulator
from models.topics import METRICS_EVENTS, ORDER_EVENTS, USER_BEHAVIOR

PROJECTIONS = {
    ORDER_EVENTS: OrderStatsFields,
    USER_BEHAVIOR: UserActionFields,
    METRICS_EVENTS: HttpRequestFields,
}
GOOD_PAID = (
    b'{"type":"order_paid","event_id":"e-1","ts":"2026-01-05T10:00:00.5Z","schema_version":1,'
    b'"order_id":"o-1","version":2,"amount":12.5,"currency":"EUR"}'
)


def agree(topic: str, values: list[bytes | None]) -> None:
    """The frame's rows and failures equal a msgspec decode of the projection, one by one."""
    decoder = FrameDecoder(PROJECTIONS[topic])
    frame, failures = decoder.decode(values)
    expected_frame, expected_failures = decoder.decode_slowly(values)
    assert failures == expected_failures
    assert frame.to_dicts() == expected_frame.to_dicts()


def test_simulated_mess_agrees_with_msgspec_in_any_batch() -> None:
    config = SimConfig(seed=4, events_per_s=600, duration_s=40, malformed_fraction=0.05)
    records = list(Simulator(config).records())
    for topic in PROJECTIONS:
        values = [r.value for r in records if r.topic == topic]
        full = BatchDecoder(topic).decode_batch(values)  # the whole-event decoder
        for size in (len(values), 500, 61):
            for start in range(0, len(values), size):
                agree(topic, values[start : start + size])
        frame, failures = FrameDecoder(PROJECTIONS[topic]).decode(values)
        assert [i for i, _ in failures] == [f.index for f in full.failures]
        assert frame[ROW].to_list() == full.indices


HOSTILE = [
    None,
    b"",
    b"\xff\xfe garbage",
    GOOD_PAID[:40],
    GOOD_PAID.replace(b'"e-1"', b"17"),  # a number where an id string belongs
    GOOD_PAID.replace(b'"e-1"', b'{"nested":"e-1"}'),
    GOOD_PAID.replace(b'"event_id":"e-1"', b'"event_id" : "e-1"'),  # legal whitespace
    GOOD_PAID.replace(b"12.5", b"NaN"),
    GOOD_PAID.replace(b"12.5", b"1e999"),
    GOOD_PAID.replace(b"12.5", b"-1"),
    GOOD_PAID.replace(b"12.5", b'"12.5"'),
    GOOD_PAID.replace(b"12.5", b"12"),
    GOOD_PAID.replace(b'"EUR"', b'"eur"'),
    GOOD_PAID.replace(b"2026-01-05T10:00:00.5Z", b"0001-01-01T00:00:00Z"),
    GOOD_PAID.replace(b"2026-01-05T10:00:00.5Z", b"9999-12-31T23:59:59Z"),
    GOOD_PAID.replace(b"2026-01-05T10:00:00.5Z", b"2026-01-05T11:00:00+01:00"),
    GOOD_PAID.replace(b"2026-01-05T10:00:00.5Z", b"2026-02-30T10:00:00Z"),
    GOOD_PAID.replace(b'"schema_version":1', b'"schema_version":2'),
    GOOD_PAID.replace(b'"schema_version":1', b'"schema_version":1.0'),
    GOOD_PAID.replace(b'"schema_version":1,', b""),
    GOOD_PAID.replace(b"order_paid", b"order_teleported"),
    GOOD_PAID.replace(b',"currency":"EUR"', b""),
    GOOD_PAID.replace(b"{", b"{\n", 1),
    b"[" + GOOD_PAID + b"]",
    b'"just a string"',
    b"[" * 5000 + b"]" * 5000,
    GOOD_PAID[:-1] + b',"pad":"' + b"x" * 2_000_000 + b'"}',
    GOOD_PAID.replace(b"e-1", b"e" * 129),
    GOOD_PAID,
]


@pytest.mark.parametrize("size", [len(HOSTILE), 1, 3])
def test_hostile_values_agree_with_msgspec(size: int) -> None:
    for start in range(0, len(HOSTILE), size):
        agree(ORDER_EVENTS, HOSTILE[start : start + size])


def test_hostile_values_each_have_a_reason() -> None:
    frame, failures = FrameDecoder(OrderStatsFields).decode(HOSTILE)
    assert all(reason for _, reason in failures)
    assert len(failures) + frame.height == len(HOSTILE)
    good = set(frame[ROW].to_list())
    assert HOSTILE.index(GOOD_PAID) in good
    assert 6 in good and 11 in good and 15 in good  # whitespace, int amount, offset time


mutation = st.tuples(st.integers(0, len(GOOD_PAID) - 1), st.binary(min_size=0, max_size=4))


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.lists(mutation, max_size=3), min_size=1, max_size=12))
def test_fuzzed_mutations_agree_with_msgspec(edits: list[list[tuple[int, bytes]]]) -> None:
    values = []
    for changes in edits:
        value = bytearray(GOOD_PAID)
        for at, data in changes:
            value[at : at + len(data)] = data
        values.append(bytes(value))
    agree(ORDER_EVENTS, values)
