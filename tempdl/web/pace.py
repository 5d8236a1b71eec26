"""The slow-reader floor: a client that takes under a few KB/s for half a minute loses its slot.

`max_concurrent_downloads` is only a guard if slots come free: five readers taking ~2 KB/s each
held all five indefinitely, since the stall timeout only cuts clients that read nothing at all.
The pace is measured only while the download waits for the client (the kernel's send queue is
full), so a download the server itself throttles (`rate_per_download`, `total_rate`) is never
taken for a slow reader, however low the rate the operator set.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

SLOW_READER_FLOOR = 4096
"""Bytes per second a client must take, on average over `SLOW_READER_WINDOW`, while we wait for it."""
SLOW_READER_WINDOW = 30.0
"""Seconds of waiting for the client over which the floor is judged."""
WAITING_GAP = 2.5
"""Seconds between two looks (taken about once a second while waiting) beyond which the download
was not waiting for the client in between: the window starts afresh."""


class ReadingPace:
    """Fed the bytes the client has taken, at each look while waiting for it; says when it is too slow."""

    def __init__(self, *, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._floor = SLOW_READER_FLOOR
        self._window = SLOW_READER_WINDOW
        self._looks: deque[tuple[float, int]] = deque()

    def too_slow(self, taken: int) -> bool:
        """True once the client took under the floor over a whole window of waiting for it."""
        moment = self._now()
        looks = self._looks
        if looks and moment - looks[-1][0] > WAITING_GAP:
            looks.clear()  # the client kept up meanwhile: a new stretch of waiting begins
        looks.append((moment, taken))
        while len(looks) > 2 and moment - looks[1][0] >= self._window:
            looks.popleft()  # keep the oldest look that is still a whole window back
        since, taken_then = looks[0]
        waited = moment - since
        return waited >= self._window and taken - taken_then < self._floor * waited
