"""The text log format: our per-second timestamp cache must print exactly what logging would."""

from __future__ import annotations

import logging

from tempdl.cli.logs import TextFormatter


def _record(created: float) -> logging.LogRecord:
    record = logging.LogRecord("tempdl.access", logging.INFO, __file__, 1, "event=request", None, None)
    record.created = created
    record.msecs = (created - int(created)) * 1000
    return record


def test_the_cached_timestamp_reads_as_logging_s_own():
    ours, theirs = TextFormatter("%(asctime)s %(message)s"), logging.Formatter("%(asctime)s %(message)s")
    # within one second, across a second, and backwards (a clock step): always logging's text
    for created in (1_790_000_000.001, 1_790_000_000.999, 1_790_000_001.5, 1_789_999_000.25, 1_790_000_001.75):
        assert ours.format(_record(created)) == theirs.format(_record(created))


def test_an_explicit_date_format_is_left_to_logging():
    ours = TextFormatter("%(message)s")
    record = _record(1_790_000_000.5)
    assert ours.formatTime(record, "%Y") == logging.Formatter().formatTime(record, "%Y")
