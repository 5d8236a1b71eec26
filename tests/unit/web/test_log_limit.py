"""One line per kind of refusal per minute, with the count of those held back."""

from __future__ import annotations

from tempdl.web.log_limit import LogLimiter


def test_the_first_of_a_kind_is_logged_and_the_rest_of_the_minute_counted():
    limiter = LogLimiter(interval=60)
    assert limiter.allow("bad signature", 1000.0) == 0
    assert [limiter.allow("bad signature", 1000.0 + s) for s in range(1, 60)] == [None] * 59
    assert limiter.allow("bad signature", 1060.0) == 59
    assert limiter.allow("bad signature", 1061.0) is None
    assert limiter.allow("bad signature", 1200.0) == 1


def test_kinds_are_counted_apart():
    limiter = LogLimiter(interval=60)
    assert limiter.allow("bad signature", 0.0) == 0
    assert limiter.allow("stale timestamp", 1.0) == 0
    assert limiter.allow("bad signature", 2.0) is None
    assert limiter.allow("stale timestamp", 61.0) == 0


def test_a_clock_that_went_back_does_not_silence_the_log():
    limiter = LogLimiter(interval=60)
    assert limiter.allow("x", 1000.0) == 0
    assert limiter.allow("x", 10.0) == 0
