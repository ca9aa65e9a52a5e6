"""W3C trace context for what the API produces (https://www.w3.org/TR/trace-context/).

A command carries a `traceparent` header, so the trace that starts at the client
(or at the API) can be followed through the command handler and the projection.
A request that brings a valid `traceparent` continues that trace with a span id
of its own; any other request starts a trace.
"""

from __future__ import annotations

import re
import secrets

_TRACEPARENT = re.compile(r"^00-(?P<trace>[0-9a-f]{32})-[0-9a-f]{16}-(?P<flags>[0-9a-f]{2})$")
_ZERO_TRACE = "0" * 32


def child_traceparent(incoming: str | None) -> str:
    """The `traceparent` of a child of `incoming`, or of a new sampled trace."""
    m = _TRACEPARENT.match(incoming.strip().lower()) if incoming else None
    span = secrets.token_hex(8)
    if m is None or m["trace"] == _ZERO_TRACE:
        return f"00-{secrets.token_hex(16)}-{span}-01"
    return f"00-{m['trace']}-{span}-{m['flags']}"
