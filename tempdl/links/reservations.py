"""Bytes promised to downloads of this process that are still running, counted against allowances.

A byte allowance (`limits.recipient_daily_bytes`) read only from finished rows lets every request
that arrives while the others still stream pass the check: ten parallel downloads of a 64 MiB file
under a 1 MiB allowance all got through. So a download holds its requested length from the moment
it is admitted until its row is closed with the real figure; the check counts the holds of this
process here and, from the database, finished rows plus the open rows of others (which count as
the length they asked for). Check and hold happen in one step with nothing awaited in between, so
parallel requests overshoot by at most the one file that crossed the line.

A count is settled against the holds as they were when it started (`settled_count`): a row this
process wrote while the database counted (another download of the same follower opening its
row, or closing it) may have been counted there and by its hold too. Counting it twice refused
a download that fitted (a CI run refused the fourth 300 KB download under 1 MiB), so such a
count is taken again; only after `COUNT_TRIES` unsettled counts is the double count kept, which
can only overstate, never let a request slip by.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from tempdl.audit.records import Attempt

T = TypeVar("T")
COUNT_TRIES = 3


@dataclass(eq=False)
class Hold:
    """`length` bytes held for one download; its row, once written, is `attempt.id`."""

    key: Hashable
    length: int
    attempt: Attempt
    released: bool = False


@dataclass
class Snapshot:
    """What the holds of one key were when a database count started, to settle it against."""

    holds: list[Hold]
    ids: list[int | None] = field(init=False)

    def __post_init__(self) -> None:
        self.ids = [hold.attempt.id for hold in self.holds]

    @property
    def open_rows(self) -> list[int]:
        """Rows the database must not count as running: these holds count them."""
        return [row_id for row_id in self.ids if row_id is not None]


@dataclass
class Reservations:
    _held: dict[Hashable, set[Hold]] = field(default_factory=dict)

    def _snapshot(self, key: Hashable) -> Snapshot:
        return Snapshot(list(self._held.get(key, ())))

    async def settled_count(self, key: Hashable, count: Callable[[Sequence[int]], Awaitable[T]]) -> tuple[T, int]:
        """`count` from the database, leaving out the open rows this process holds, and the bytes
        its holds of `key` add to it: (what `count` gave, held bytes)."""
        for _ in range(COUNT_TRIES):
            before = self._snapshot(key)
            counted = await count(before.open_rows)
            if self._unchanged_since(before, key):
                return counted, self._held_now(key)
        return counted, self._held_since(before, key)

    def _unchanged_since(self, snapshot: Snapshot, key: Hashable) -> bool:
        """No row of a hold of `key` was written or closed since `snapshot`: the database cannot
        have counted one of them that the holds count too."""
        for hold, row_id in zip(snapshot.holds, snapshot.ids, strict=True):
            if hold.released or hold.attempt.id != row_id:
                return False
        known = set(snapshot.holds)
        return all(hold.attempt.id is None for hold in self._held.get(key, ()) if hold not in known)

    def _held_since(self, snapshot: Snapshot, key: Hashable) -> int:
        """Bytes held now, plus those of holds in `snapshot` released since.

        A hold released while the database counted may have had its row left out as running and
        missed as finished, and a row written meanwhile may be counted there too; counting them
        again can only overstate, never let a request slip by (`settled_count`'s last resort).
        """
        return self._held_now(key) + sum(hold.length for hold in snapshot.holds if hold.released)

    def _held_now(self, key: Hashable) -> int:
        return sum(hold.length for hold in self._held.get(key, ()))

    def hold(self, key: Hashable, attempt: Attempt, length: int) -> Hold:
        hold = Hold(key, length, attempt)
        self._held.setdefault(key, set()).add(hold)
        return hold

    def release(self, hold: Hold) -> None:
        """The download ended and its row has its real bytes (or it never sent any)."""
        hold.released = True
        holds = self._held.get(hold.key)
        if holds is not None:
            holds.discard(hold)
            if not holds:
                del self._held[hold.key]
