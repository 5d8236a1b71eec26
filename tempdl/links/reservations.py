"""Bytes promised to downloads of this process that are still running, counted against allowances.

A byte allowance (`limits.recipient_daily_bytes`) read only from finished rows lets every request
that arrives while the others still stream pass the check: ten parallel downloads of a 64 MiB file
under a 1 MiB allowance all got through. So a download holds its requested length from the moment
it is admitted until its row is closed with the real figure; the check counts the holds of this
process here and, from the database, finished rows plus the open rows of others (which count as
the length they asked for). Check and hold happen in one step with nothing awaited in between, so
parallel requests overshoot by at most the one file that crossed the line.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

from tempdl.audit.records import Attempt


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

    @property
    def open_rows(self) -> list[int]:
        """Rows the database must not count as running: these holds count them."""
        return [hold.attempt.id for hold in self.holds if hold.attempt.id is not None]


@dataclass
class Reservations:
    _held: dict[Hashable, set[Hold]] = field(default_factory=dict)

    def snapshot(self, key: Hashable) -> Snapshot:
        return Snapshot(list(self._held.get(key, ())))

    def held_since(self, snapshot: Snapshot, key: Hashable) -> int:
        """Bytes held now, plus those of holds in `snapshot` released since.

        A hold released while the database counted may have had its row left out as running and
        missed as finished; counting it again can only overstate, never let a request slip by.
        """
        now = sum(hold.length for hold in self._held.get(key, ()))
        return now + sum(hold.length for hold in snapshot.holds if hold.released)

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
