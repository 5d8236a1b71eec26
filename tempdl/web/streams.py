"""The downloads sending bytes right now, with enough about each for the operator's "now downloading".

`Streams` is the `InFlight` that `limits.max_concurrent_downloads` and the `/metrics` gauge count;
each entry also says which file, for whom, since when, and how many bytes went out so far (read
from the download's `ProgressNotes`, which the streaming loop already calls on every chunk, so
watching costs the hot path nothing).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from tempdl.web.inflight import InFlight

RATE_WINDOW = 1.0
"""Seconds: the shortest stretch a rate is measured over."""


class SentSoFar(Protocol):
    @property
    def sent(self) -> int: ...


@dataclass
class Stream:
    file_id: str
    recipient: str | None
    started: float  # `now()` when the first byte was about to go
    counter: SentSoFar | None = None
    _marks: list[tuple[float, int]] = field(default_factory=list, repr=False)

    @property
    def sent(self) -> int:
        return self.counter.sent if self.counter is not None else 0

    def rate(self, now: float) -> float:
        """Bytes per second over the last one to two `RATE_WINDOW`s (at first: since the start).

        The marks move only once a window has passed, so however often someone looks, the
        figure covers at least one window, never a few milliseconds.
        """
        sent = self.sent
        if not self._marks:
            self._marks = [(self.started, 0), (self.started, 0)]
        if now - self._marks[1][0] >= RATE_WINDOW:
            self._marks = [self._marks[1], (now, sent)]
        since, sent_then = self._marks[0]
        return (sent - sent_then) / max(now - since, 1e-3)


@dataclass(frozen=True)
class StreamView:
    """One line of "now downloading", as the page and `/admin/live.json` show it."""

    file_id: str
    recipient: str | None
    sent: int
    seconds: float
    rate: float


class Streams(InFlight):
    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._now = now
        self._streams: dict[Any, Stream] = {}

    def enter(self, request: Any, *, file_id: str = "", recipient: str | None = None) -> None:
        super().enter(request)
        self._streams[request] = Stream(file_id, recipient, self._now())

    def follow(self, request: Any, counter: SentSoFar) -> None:
        """Read this download's bytes so far from `counter` from now on."""
        stream = self._streams.get(request)
        if stream is not None:
            stream.counter = counter

    def leave(self, request: Any) -> None:
        self._streams.pop(request, None)
        super().leave(request)

    def views(self) -> list[StreamView]:
        """Every download streaming now, the longest-running first."""
        now = self._now()
        return [
            StreamView(s.file_id, s.recipient, s.sent, now - s.started, s.rate(now))
            for s in sorted(self._streams.values(), key=lambda s: s.started)
        ]
