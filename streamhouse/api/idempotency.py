"""Idempotency keys: a retried request gets the first one's response and produces nothing.

`once(key, fingerprint, work)` runs `work` for the first request with a key and
hands every later request with that key the same result; one that arrives
while the first is still in flight waits for it. A key seen with a different
request (method, path, body) is refused with `Reused`. A first attempt that
fails (Kafka did not take the command) is forgotten, so the retry can succeed.

Memory is bounded: the oldest keys are forgotten beyond `capacity`. A retry
after that, or to another API process, still carries the same derived
`command_id` (streamhouse/api/bodies.py), which the command handler ignores:
the cache saves a second command, the derived id makes one harmless.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Reused(Exception):
    """The key was first used for a different request."""


class IdempotencyCache(Generic[T]):
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[str, tuple[object, asyncio.Future[T]]] = OrderedDict()
        self.replayed = 0

    async def once(self, key: str, fingerprint: object, work: Callable[[], Awaitable[T]]) -> T:
        entry = self._entries.get(key)
        if entry is not None:
            first, result = entry
            if first != fingerprint:
                raise Reused(key)
            self.replayed += 1
            return await asyncio.shield(result)
        result = asyncio.get_running_loop().create_future()
        self._entries[key] = (fingerprint, result)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
        try:
            value = await work()
        except BaseException as e:
            if self._entries.get(key, (None, None))[1] is result:
                del self._entries[key]
            result.set_exception(e)
            result.exception()  # retrieved: waiters re-raise it, nobody else needs to
            raise
        result.set_result(value)
        return value
