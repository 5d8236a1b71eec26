"""Holds settle a database count: a row written or closed while it ran is never counted twice.

Here the "database" is a function that sees exactly the rows the test says are written, so each
case is the interleaving a busy server produces by chance: another download of the same follower
opens (or closes) its row while this one's count is on the audit thread.
"""

from __future__ import annotations

import asyncio
import datetime

from tempdl.audit.records import Attempt
from tempdl.links.reservations import COUNT_TRIES, Reservations

KEY = ("recipient", "alice")
SIZE = 300_000


def attempt() -> Attempt:
    return Attempt(started_at=datetime.datetime(2026, 12, 3, tzinfo=datetime.UTC))


class Database:
    """Open rows (id -> bytes asked for) as the database would count them."""

    def __init__(self) -> None:
        self.open: dict[int, int] = {}
        self.during_count = lambda: None  # what happens on the server while the count runs
        self.counts = 0

    async def count(self, held_here) -> int:
        self.counts += 1
        self.during_count()
        self.during_count = lambda: None
        await asyncio.sleep(0)
        return sum(length for row, length in self.open.items() if row not in held_here)


def test_a_row_opened_during_the_count_is_counted_once():
    reservations, database = Reservations(), Database()
    first = reservations.hold(KEY, attempt(), SIZE)  # admitted; its row is not written yet

    def open_first_row() -> None:
        first.attempt.id = 7
        database.open[7] = SIZE

    database.during_count = open_first_row
    counted, held = asyncio.run(reservations.settled_count(KEY, database.count))
    assert counted + held == SIZE  # once, by its hold (the old code said 600,000)
    assert database.counts == 2  # the first count was taken again


def test_a_row_written_by_a_hold_made_during_the_count_is_counted_once():
    reservations, database = Reservations(), Database()

    def another_download_starts() -> None:
        other = reservations.hold(KEY, attempt(), SIZE)
        other.attempt.id = 8
        database.open[8] = SIZE

    database.during_count = another_download_starts
    counted, held = asyncio.run(reservations.settled_count(KEY, database.count))
    assert counted + held == SIZE


def test_a_count_that_never_settles_overstates_rather_than_miss_a_download():
    reservations, database = Reservations(), Database()

    async def restless(held_here) -> int:
        started = reservations.hold(KEY, attempt(), SIZE)  # a new download opens its row, every try
        started.attempt.id = 100 + database.counts
        database.open[started.attempt.id] = SIZE
        return await database.count(held_here)

    counted, held = asyncio.run(reservations.settled_count(KEY, restless))
    assert database.counts == COUNT_TRIES
    assert counted + held >= COUNT_TRIES * SIZE  # never below what may really go out


def test_a_quiet_count_is_taken_once():
    reservations, database = Reservations(), Database()
    hold = reservations.hold(KEY, attempt(), SIZE)
    hold.attempt.id = 3
    database.open[3] = SIZE
    database.open[4] = 1000  # another server's open row: the database counts it
    counted, held = asyncio.run(reservations.settled_count(KEY, database.count))
    assert (counted, held, database.counts) == (1000, SIZE, 1)
