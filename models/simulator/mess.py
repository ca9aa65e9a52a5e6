"""Deliberately broken records: each kind is one way real producers get it wrong.

Every kind is built from a well-formed JSON event and is guaranteed to fail
decoding, so the share of dead letters a flow reports can be checked against
the share the simulator injected.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import msgspec

_json = msgspec.json


def _truncated(raw: bytes, rng: random.Random) -> bytes:
    return raw[: rng.randint(1, len(raw) // 2)]


def _not_utf8(raw: bytes, rng: random.Random) -> bytes:
    cut = rng.randint(1, len(raw) - 1)
    return raw[:cut] + b"\xff\xfe\xc3" + raw[cut:]


def _not_json(raw: bytes, rng: random.Random) -> bytes:
    return b"<html><body>502 Bad Gateway</body></html>"


def _mutate(change: Callable[[dict[str, object]], None]) -> Callable[[bytes, random.Random], bytes]:
    def mutate(raw: bytes, rng: random.Random) -> bytes:
        obj = _json.decode(raw)
        change(obj)
        return _json.encode(obj)

    return mutate


def _wrong_type(obj: dict[str, object]) -> None:
    obj["event_id"] = 4242


def _missing_field(obj: dict[str, object]) -> None:
    del obj["ts"]


def _unknown_type(obj: dict[str, object]) -> None:
    obj["type"] = "mystery_event"


def _bad_timestamp(obj: dict[str, object]) -> None:
    obj["ts"] = "0001-01-01T00:00:00Z"


def _wrong_schema_version(obj: dict[str, object]) -> None:
    obj["schema_version"] = 99


MALFORMERS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "truncated_json": _truncated,
    "not_utf8": _not_utf8,
    "not_json": _not_json,
    "wrong_type": _mutate(_wrong_type),
    "missing_field": _mutate(_missing_field),
    "unknown_type": _mutate(_unknown_type),
    "bad_timestamp": _mutate(_bad_timestamp),
    "wrong_schema_version": _mutate(_wrong_schema_version),
}
MALFORMED_KINDS: tuple[str, ...] = tuple(MALFORMERS)


def malform(raw: bytes, rng: random.Random) -> tuple[str, bytes]:
    """Break a valid JSON event in one of the MALFORMED_KINDS; returns (kind, bytes)."""
    kind = rng.choice(MALFORMED_KINDS)
    return kind, MALFORMERS[kind](raw, rng)
