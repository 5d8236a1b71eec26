"""Memory of recent WeChat requests: answer retries once, refuse replays.

WeChat resends a message when it has no reply within 5 seconds (three tries in all). A resend must
get the same answer and must not issue a second link, even when it arrives while the first try is
still being worked on. And because the plain-mode signature covers only token, timestamp and nonce,
never the body, a captured request could be replayed with another body: a nonce is therefore good
for one message only, within the clock-skew window.

Both memories are bounded in entries and in time (measured with the caller's clock, so tests move
time instead of sleeping). Nothing here knows about HTTP or the database; the only asynchronous
part is the shared in-progress reply, an `asyncio.Future`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from tempdl.expiring import ExpiringMemory

__all__ = ["ExpiringMemory", "NonceLedger", "RetryMemory", "retry_window", "timestamp_is_fresh"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

RETRY_MEMORY_SECONDS = 300
"""How long a reply is remembered: WeChat's three tries span about 15 s; minutes leave room for lag."""
RETRY_MEMORY_ENTRIES = 10_000


def retry_window(max_clock_skew: float) -> float:
    """How long a reply must be remembered so that no accepted copy of a request issues again.

    A request is accepted while its timestamp is within `max_clock_skew` of now, so one stamped
    `max_clock_skew` ahead stays acceptable for twice that after it first arrives; the nonce
    ledger keeps its nonce as long, and lets the very same message through again. The reply
    memory must last at least as long, and never less than `RETRY_MEMORY_SECONDS`.
    """
    return max(RETRY_MEMORY_SECONDS, 2 * max_clock_skew)


NONCE_MEMORY_ENTRIES = 100_000
"""Roughly 10 MB at most; an account getting more signed requests than this per window is unusual."""


class _Settled(Generic[V]):
    """A reply that is known: what the memory keeps instead of the finished task."""

    __slots__ = ("value",)

    def __init__(self, value: V) -> None:
        self.value = value


class RetryMemory(Generic[K, V]):
    """The reply to each recent message, shared with every resend of it.

    `share(key, now, compute)` starts `compute()` for the first try of a message and hands every
    resend the same answer, finished or not, so a message is answered (and a link issued) once.
    A computation that fails is forgotten at once, so a later resend tries again instead of
    inheriting the failure. A finished one is kept as its bare value: a finished asyncio task
    still holds its coroutine, context and callbacks, and ten thousand of them made every full
    garbage collection take 15-35 ms, several times a second under load.
    """

    def __init__(self, *, ttl: float = RETRY_MEMORY_SECONDS, max_entries: int = RETRY_MEMORY_ENTRIES) -> None:
        self._memory: ExpiringMemory[K, asyncio.Future[V] | _Settled[V]] = ExpiringMemory(
            ttl=ttl, max_entries=max_entries
        )
        self.resends = 0
        """How many requests were answered from memory (tests and operators can watch it)."""

    def __len__(self) -> int:
        return len(self._memory)

    def last_at_least(self, seconds: float) -> None:
        """Remember replies for at least `seconds` from now on."""
        self._memory.ttl = max(self._memory.ttl, seconds)

    def share(self, key: K, now: float, compute: Callable[[], Awaitable[V]]) -> asyncio.Future[V]:
        known = self._memory.get(key, now)
        if isinstance(known, _Settled):
            self.resends += 1
            settled: asyncio.Future[V] = asyncio.get_running_loop().create_future()
            settled.set_result(known.value)
            return settled
        if known is not None:
            self.resends += 1
            return known
        future = asyncio.ensure_future(compute())
        self._memory.put(key, future, now)
        future.add_done_callback(lambda done: self._settle(key, done))
        return future

    def _settle(self, key: K, future: asyncio.Future[V]) -> None:
        if future.cancelled() or future.exception() is not None:
            self._memory.discard(key, future)
        else:
            self._memory.replace(key, future, _Settled(future.result()))


class NonceLedger:
    """Which nonces were used recently, and for which message.

    A nonce is admitted when it is new, or when it comes back with the same message (a WeChat
    retry that reuses its query string); any other reuse is a replay. Nonces are remembered for
    twice the clock-skew window: a request is only accepted while its timestamp is within the
    window of now, so by the time a nonce is forgotten, a replay of it is refused as too old.
    """

    def __init__(self, *, window: float, max_entries: int = NONCE_MEMORY_ENTRIES) -> None:
        self._seen: ExpiringMemory[str, Hashable] = ExpiringMemory(ttl=2 * window, max_entries=max_entries)

    def __len__(self) -> int:
        return len(self._seen)

    @property
    def evicted(self) -> int:
        return self._seen.evicted

    def admit(self, nonce: str, message_key: Hashable, now: float) -> bool:
        earlier = self._seen.get(nonce, now)
        if earlier is None:
            self._seen.put(nonce, message_key, now)
            return True
        return earlier == message_key


def timestamp_is_fresh(timestamp: str, now: float, max_skew: float) -> bool:
    """Whether a request's `timestamp` (decimal Unix seconds) is within `max_skew` of `now`."""
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 20:
        return False
    return abs(int(timestamp) - now) <= max_skew
