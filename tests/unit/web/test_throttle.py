"""The rate limiter on an injected clock: slots handed out in call order, idle time earns nothing."""

from __future__ import annotations

import asyncio

import pytest

from tempdl.web import throttle
from tempdl.web.throttle import THROTTLED_CHUNK_MAX, RateLimiter, chunk_size_for


class StillClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_each_reservation_waits_for_the_ones_booked_before_it():
    clock = StillClock(100.0)
    limiter = RateLimiter(1000, clock=clock)
    assert [limiter.reserve(size) for size in (500, 500, 1000, 250)] == [0.0, 0.5, 1.0, 2.0]


def test_time_that_passes_pays_off_what_was_booked():
    clock = StillClock(100.0)
    limiter = RateLimiter(1000, clock=clock)
    limiter.reserve(2000)  # the pipe is booked until 102.0
    clock.now = 101.5
    assert limiter.reserve(1000) == 0.5
    clock.now = 103.0
    assert limiter.reserve(100) == 0.0


def test_idle_time_earns_no_credit():
    """After a long pause a burst is still paced from now on: the rate is never exceeded."""
    clock = StillClock(0.0)
    limiter = RateLimiter(1000, clock=clock)
    limiter.reserve(100)
    clock.now = 3600.0
    assert [limiter.reserve(500) for _ in range(3)] == [0.0, 0.5, 1.0]


@pytest.mark.parametrize("rate", [0, -1])
def test_a_rate_must_be_positive(rate):
    with pytest.raises(ValueError, match="a rate must be positive"):
        RateLimiter(rate)


def test_take_sleeps_exactly_as_long_as_its_slot_is_away(monkeypatch):
    slept: list[float] = []

    async def record(delay: float) -> None:
        slept.append(delay)

    monkeypatch.setattr(throttle.asyncio, "sleep", record)
    limiter = RateLimiter(1024, clock=StillClock(0.0))

    async def three_chunks() -> None:
        for _ in range(3):
            await limiter.take(512)

    asyncio.run(three_chunks())
    assert slept == [0.5, 1.0]  # the first chunk goes at once: no sleep at all


@pytest.mark.parametrize(
    ("rates", "default", "expected"),
    [
        ([], 65536, 65536),  # no limit at all
        ([0, 0], 65536, 65536),  # 0 means unlimited
        ([10_000_000], 65536, THROTTLED_CHUNK_MAX),  # fast: capped at 16 KiB
        ([500_000, 0], 65536, 10_000),  # ~50 slots a second
        ([500_000, 300_000], 65536, 6_000),  # the slowest limit decides
        ([100_000], 65536, 4096),  # never below 4 KiB
        ([10_000_000], 8192, 8192),  # never above the default
    ],
)
def test_chunks_shrink_with_the_slowest_rate(rates, default, expected):
    assert chunk_size_for(rates, default) == expected
