"""At most one log line per kind of refusal per minute, so unauthenticated traffic cannot flood the log.

A request nobody signed costs the sender nothing; if each one wrote a WARNING, anyone could fill
the operator's disk and bury the lines that matter. The first refusal of a kind is logged at
once; the ones after it within the interval are only counted, and the next line says how many.
"""

from __future__ import annotations

LOG_INTERVAL_SECONDS = 60.0


class LogLimiter:
    """Decides, per kind, whether a line may be written now, and counts the ones held back."""

    def __init__(self, interval: float = LOG_INTERVAL_SECONDS) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}
        self._held_back: dict[str, int] = {}

    def allow(self, kind: str, now: float) -> int | None:
        """None when a line of `kind` was written less than `interval` ago (this one is counted);
        otherwise how many were held back since, and the caller writes its line."""
        last = self._last.get(kind)
        if last is not None and 0 <= now - last < self.interval:
            self._held_back[kind] = self._held_back.get(kind, 0) + 1
            return None
        self._last[kind] = now
        return self._held_back.pop(kind, 0)
