"""Bandwidth shaping without blocking the event loop: a rate that downloads take turns on.

Each call to `take(n)` reserves the next n/rate seconds of the pipe and sleeps until its slot
starts. Reservations are handed out in call order, and a download asks for its next chunk only
after sending the previous one, so downloads sharing a limiter interleave chunk by chunk: each gets
an equal share and none starves. Idle time earns no credit, so the rate is never exceeded by more
than one chunk.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class RateLimiter:
    def __init__(self, bytes_per_second: int, clock: Callable[[], float] = time.monotonic) -> None:
        if bytes_per_second <= 0:
            raise ValueError("a rate must be positive")
        self.rate = bytes_per_second
        self._clock = clock
        self._next_free = 0.0

    def reserve(self, size: int) -> float:
        """Book `size` bytes of the pipe; return how many seconds to wait before sending them."""
        now = self._clock()
        start = max(now, self._next_free)
        self._next_free = start + size / self.rate
        return start - now

    async def take(self, size: int) -> None:
        delay = self.reserve(size)
        if delay > 0:
            await asyncio.sleep(delay)


THROTTLED_CHUNK_MAX = 16 * 1024


def chunk_size_for(rates: list[int], default: int) -> int:
    """Small chunks when throttled: pacing stays smooth (~50 slots a second at least), and a
    small download waiting behind N big ones waits for N small slots, not N big ones."""
    slowest = min((rate for rate in rates if rate > 0), default=0)
    if not slowest:
        return default
    return max(4096, min(default, THROTTLED_CHUNK_MAX, slowest // 50))
