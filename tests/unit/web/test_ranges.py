"""Range and If-Range decisions, without a server."""

from __future__ import annotations

import datetime

import pytest

from tempdl.web.ranges import Span, if_range_matches, parse_range, requested_span, unsatisfiable_range

SIZE = 1000
ETAG = '"1a-3e8-5f"'
MODIFIED = datetime.datetime(2026, 11, 30, 8, 0, tzinfo=datetime.UTC)
MODIFIED_HTTP = "Mon, 30 Nov 2026 08:00:00 GMT"


@pytest.mark.parametrize(
    "header, span",
    [
        (None, Span(0, SIZE)),
        ("", Span(0, SIZE)),
        ("bytes=100-199", Span(100, 200)),
        ("bytes=-300", Span(700, SIZE)),
        ("bytes=-5000", Span(0, SIZE)),  # a suffix longer than the file: all of it
        ("bytes=900-", Span(900, SIZE)),
        ("bytes=0-", Span(0, SIZE)),
        ("bytes=100-999999", Span(100, SIZE)),  # the end is cut to the file
        ("bytes=999-999", Span(999, SIZE)),
        ("bytes=0-1,5-9", Span(0, SIZE)),  # multi-range: the whole file, never multipart
        ("bytes=abc", Span(0, SIZE)),
        ("items=0-10", Span(0, SIZE)),
    ],
)
def test_requested_span(header, span):
    assert requested_span(header, SIZE) == span


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=5000-6000", "bytes=-0", "bytes=200-100"])
def test_unsatisfiable_ranges_are_none(header):
    assert requested_span(header, SIZE) is None


@pytest.mark.parametrize(
    "header",
    [
        "bytes=--5",  # int("-5") would read it as a suffix
        "bytes=1_0-2_0",  # int("1_0") == 10
        "bytes=+5-+9",  # int("+5") == 5
        "bytes=٣-٤",  # int() takes Arabic-Indic digits too
        "bytes= 1-2",  # no white space inside the specifier
        "bytes =1-2",
        "bytes=1 -2",
        "bytes=0x10-",
        "bytes=1-2-3",
        "bytes=-",
        "bytes=",
        "bytes 1-2",
        "bytes=1-2,",  # a list: not served as a range either
    ],
)
def test_anything_outside_rfc_9110s_grammar_is_ignored_for_the_whole_file(header):
    assert parse_range(header) is None
    assert requested_span(header, SIZE) == Span(0, SIZE)


@pytest.mark.parametrize(
    "header, parsed",
    [
        ("bytes=1-2", (1, 3)),
        (" bytes=1-2 ", (1, 3)),  # white space around a field value is not part of it (RFC 9110 5.5)
        ("Bytes=0-", (0, None)),  # the range unit is case-insensitive
        ("bytes=007-010", (7, 11)),  # leading zeros are digits too
        ("bytes=-5", (-5, None)),
        ("bytes=-0", (None, 0)),  # a suffix of no bytes: unsatisfiable, not the whole file
    ],
)
def test_valid_ranges_parse_as_tornado_reads_them(header, parsed):
    assert parse_range(header) == parsed


def test_span_headers():
    assert Span(100, 200).length == 100
    assert Span(100, 200).content_range(SIZE) == "bytes 100-199/1000"
    assert Span(0, SIZE).is_whole(SIZE) and not Span(0, SIZE - 1).is_whole(SIZE)
    assert unsatisfiable_range(SIZE) == "bytes */1000"


@pytest.mark.parametrize(
    "if_range, span",
    [
        (ETAG, Span(500, SIZE)),
        (f"  {ETAG} ", Span(500, SIZE)),
        ('"stale"', Span(0, SIZE)),
        (MODIFIED_HTTP, Span(500, SIZE)),
        ("Mon, 30 Nov 2026 08:00:01 GMT", Span(0, SIZE)),
        ("not a date", Span(0, SIZE)),
        ("Mon, 30 Nov 2026 08:00:00 +9999999999", Span(0, SIZE)),  # an absurd zone, not a crash
    ],
)
def test_a_range_whose_if_range_no_longer_matches_gets_the_whole_file(if_range, span):
    assert requested_span("bytes=500-", SIZE, if_range=if_range, etag=ETAG, modified=MODIFIED) == span


def test_if_range_without_validators_of_the_file_never_matches():
    assert if_range_matches(None, etag=None, modified=None)
    assert not if_range_matches(ETAG, etag=None, modified=None)
    assert not if_range_matches(MODIFIED_HTTP, etag=ETAG, modified=None)


def test_positions_of_thousands_of_digits_mean_beyond_any_file():
    many = "9" * 5000  # int() refuses more than 4,300 digits
    assert parse_range(f"bytes=-{many}") == (-(10**19), None)
    assert parse_range(f"bytes={many}-") == (10**19, None)
    assert parse_range(f"bytes=0-{many}") == (0, 10**19 + 1)
