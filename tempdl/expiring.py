"""A dict that forgets: bounded in time and in entries, for what a server remembers per client."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ExpiringMemory(Generic[K, V]):
    """A dict that forgets: each entry lives `ttl` seconds, and beyond `max_entries` the oldest go.

    Entries keep their insertion order, and since every entry lives equally long, the oldest is
    also the first to expire; forgetting expired entries is therefore cheap, and done on each
    write, so an idle memory does not keep stale entries for longer than the next write.
    Times are plain seconds (e.g. ``datetime.timestamp()``) from whatever clock the caller uses.
    """

    def __init__(self, *, ttl: float, max_entries: int) -> None:
        if ttl <= 0 or max_entries <= 0:
            raise ValueError("ttl and max_entries must be positive")
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self.evicted = 0
        """Entries dropped for room before they expired (a sign the bound is too small)."""

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K, now: float) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires_at, value = entry
        if now >= expires_at:
            del self._entries[key]
            return None
        return value

    def put(self, key: K, value: V, now: float) -> None:
        self._entries.pop(key, None)
        self._entries[key] = (now + self.ttl, value)
        self._forget_expired(now)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
            self.evicted += 1

    def replace(self, key: K, old: V, new: V) -> None:
        """Put `new` in the place of `old` (same expiry), if `key` still holds `old`."""
        entry = self._entries.get(key)
        if entry is not None and entry[1] is old:
            self._entries[key] = (entry[0], new)

    def discard(self, key: K, value: V) -> None:
        """Forget `key`, but only while it still holds `value` (not a newer entry under that key)."""
        entry = self._entries.get(key)
        if entry is not None and entry[1] is value:
            del self._entries[key]

    def _forget_expired(self, now: float) -> None:
        while self._entries:
            expires_at, _ = next(iter(self._entries.values()))
            if now < expires_at:
                return
            self._entries.popitem(last=False)
