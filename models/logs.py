"""Service log lines: JSON structured logs and one plain-text format, parsed to one record.

Plain-text lines look like

    2026-01-05T10:00:00.123Z ERROR [payment-service] PaymentTimeout: gateway did not answer

`<ts> <LEVEL> [<service>] [<ErrorType>: ]<message>`. The error type is a
CamelCase word ending in Error, Exception, Timeout or Failure followed by a
colon; without one the whole rest is the message. A plain line has no
producer-assigned id, so its `event_id` is a hash of its bytes: a re-delivered
line gets the same id and is counted once.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from enum import StrEnum
from typing import ClassVar

import msgspec

from models.base import Event, Id, Name, Text


class Level(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARN = "WARN"
    ERROR = "ERROR"
    FATAL = "FATAL"


class LogRecord(Event, frozen=True, kw_only=True, tag="log"):
    level: Level
    service: Name
    message: Text
    error_type: Id | None = None
    key_field: ClassVar[str] = "service"


_PLAIN = re.compile(
    r"(?P<ts>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2}))"
    r" +(?P<level>[A-Z]+) +\[(?P<service>[^\]\s]{1,200})\] +"
    r"(?:(?P<error_type>[A-Z][A-Za-z0-9]*(?:Error|Exception|Timeout|Failure)): +)?"
    r"(?P<message>.*)"
)
_LEVEL_ALIASES = {"WARNING": "WARN", "CRITICAL": "FATAL", "ERR": "ERROR"}


def format_plain(record: LogRecord) -> str:
    """The plain-text form of a record (what `parse_plain` reads back)."""
    ts = record.ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    prefix = f"{record.error_type}: " if record.error_type else ""
    return f"{ts} {record.level.value} [{record.service}] {prefix}{record.message}"


def plain_event_id(raw: bytes) -> str:
    return "log-" + hashlib.blake2b(raw, digest_size=12).hexdigest()


def parse_plain(raw: bytes) -> LogRecord:
    """Parse one plain-text line; ValueError says which part is wrong."""
    try:
        line = raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as e:
        raise ValueError(f"log line is not UTF-8 (byte {e.start})") from None
    match = _PLAIN.fullmatch(line)
    if match is None:
        raise ValueError("log line matches neither JSON nor `<ts> <LEVEL> [<service>] <message>`")
    level = _LEVEL_ALIASES.get(match["level"], match["level"])
    if level not in Level.__members__:
        raise ValueError(f"unknown log level {match['level']!r}")
    try:
        ts = datetime.fromisoformat(match["ts"])
    except ValueError:
        raise ValueError(f"log timestamp {match['ts']!r} is not a valid time") from None
    # msgspec.convert runs the same constraints and range checks as JSON decoding.
    return msgspec.convert(
        {
            "type": "log",
            "event_id": plain_event_id(raw),
            "ts": ts,
            "level": level,
            "service": match["service"],
            "error_type": match["error_type"],
            "message": match["message"],
        },
        LogRecord,
    )
