"""The slow-reader floor, judged on an injected clock: looks once a second while waiting."""

from __future__ import annotations

from tempdl.web.pace import SLOW_READER_FLOOR, SLOW_READER_WINDOW, ReadingPace


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def looks(pace: ReadingPace, clock: Clock, *, seconds: int, per_second: int, taken: int = 0) -> tuple[bool, int]:
    """Look once a second for `seconds`, the client taking `per_second` between looks."""
    slow = False
    for _ in range(seconds):
        clock.now += 1.0
        taken += per_second
        slow = pace.too_slow(taken)
        if slow:
            break
    return slow, taken


def test_a_client_under_the_floor_for_a_whole_window_is_too_slow_and_not_before():
    clock = Clock()
    pace = ReadingPace(now=clock)
    pace.too_slow(0)
    slow, _ = looks(pace, clock, seconds=int(SLOW_READER_WINDOW) - 1, per_second=2000)
    assert not slow  # a window is not over yet
    slow, _ = looks(pace, clock, seconds=1, per_second=2000, taken=2000 * int(SLOW_READER_WINDOW - 1))
    assert slow and clock.now == SLOW_READER_WINDOW


def test_a_client_at_the_floor_keeps_its_slot_for_ever():
    clock = Clock()
    pace = ReadingPace(now=clock)
    pace.too_slow(0)
    assert looks(pace, clock, seconds=600, per_second=SLOW_READER_FLOOR) == (False, 600 * SLOW_READER_FLOOR)


def test_the_window_slides_a_client_that_slows_down_later_is_cut():
    clock = Clock()
    pace = ReadingPace(now=clock)
    pace.too_slow(0)
    slow, taken = looks(pace, clock, seconds=120, per_second=50_000)
    assert not slow
    slow, _ = looks(pace, clock, seconds=60, per_second=100, taken=taken)
    assert slow and clock.now <= 120 + SLOW_READER_WINDOW + 1  # judged on the last window, not the average


def test_time_not_spent_waiting_for_the_client_starts_the_window_again():
    clock = Clock()
    pace = ReadingPace(now=clock)
    pace.too_slow(0)
    slow, taken = looks(pace, clock, seconds=int(SLOW_READER_WINDOW) - 5, per_second=10)
    clock.now += 10  # the server throttled itself, or the client kept up: no looks meanwhile
    slow, _ = looks(pace, clock, seconds=int(SLOW_READER_WINDOW) - 1, per_second=10, taken=taken)
    assert not slow
