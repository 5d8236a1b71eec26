"""Which bytes of a file a download request gets: Range and If-Range, decided without I/O.

A malformed or multi-range header is ignored (the whole file), so no request can make us send
more bytes than the file has, and never a multipart body; a Range whose If-Range no longer
matches the file is ignored too, so a resumed download never splices two versions together.

The header is parsed strictly by RFC 9110's grammar (section 14.1.1: `bytes=`, then digits only),
not by Tornado's `httputil._parse_request_range`, which reads numbers with `int()` and so takes
`bytes=--5`, `bytes=1_0-2_0` or `bytes=+5-+9` as ranges. Anything outside the grammar is ignored
like any other malformed Range: the whole file, as RFC 9110 section 14.2 allows. A range whose last
byte comes before its first stays a 416, as it always was here.
"""

from __future__ import annotations

import datetime
import email.utils
import re
from typing import NamedTuple

_BYTE_RANGE = re.compile(r"bytes=(?:([0-9]+)-([0-9]*)|-([0-9]+))", re.ASCII | re.IGNORECASE)
"""One `int-range` or `suffix-range` of RFC 9110 (the unit is case-insensitive; the header's
surrounding white space is already gone, HTTP strips it from field values). Several ranges are
not served (no multipart answers), so a list never matches."""


_BEYOND_ANY_FILE = 10**19
"""What a position of more than 19 digits stands for: past the end of any file (and `int()` of
thousands of digits would raise, as Python limits how long a number it reads)."""


def _position(digits: str) -> int:
    return int(digits) if len(digits) <= 19 else _BEYOND_ANY_FILE


def parse_range(header: str | None) -> tuple[int | None, int | None] | None:
    """`(start, end)` as Tornado's parser gives them, or None for no valid single byte range.

    `start` is negative for a suffix (the last `-start` bytes, `end` None); `end` is exclusive,
    None for "to the end".
    """
    matched = _BYTE_RANGE.fullmatch((header or "").strip(" \t"))
    if matched is None:
        return None
    first, last, suffix = matched.groups()
    if suffix is not None:
        length = _position(suffix)
        return (-length, None) if length else (None, 0)  # `-0`: no bytes at all, a 416
    return _position(first), (_position(last) + 1 if last else None)


class Span(NamedTuple):
    """Bytes `start` up to, not including, `end`."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start

    def is_whole(self, size: int) -> bool:
        return (self.start, self.end) == (0, size)

    def content_range(self, size: int) -> str:
        """The `Content-Range` of a 206 answer: inclusive first and last byte, then the size."""
        return f"bytes {self.start}-{self.end - 1}/{size}"


def unsatisfiable_range(size: int) -> str:
    """The `Content-Range` of a 416 answer."""
    return f"bytes */{size}"


def requested_span(
    range_header: str | None,
    size: int,
    *,
    if_range: str | None = None,
    etag: str | None = None,
    modified: datetime.datetime | None = None,
) -> Span | None:
    """The span to send of a file of `size` bytes, or None when the range is unsatisfiable (416).

    `etag` and `modified` describe the file as it is now, for checking `if_range` against.
    """
    if not range_header or not if_range_matches(if_range, etag=etag, modified=modified):
        return Span(0, size)
    parsed = parse_range(range_header)
    if parsed is None:
        return Span(0, size)
    start, end = parsed
    if start is not None and start < 0:  # suffix range: the last -start bytes
        start = max(0, start + size)
    if (start is not None and (start >= size or (end is not None and start >= end))) or end == 0:
        return None
    start = start or 0
    end = size if end is None else min(end, size)
    return Span(start, end)


def if_range_matches(validator: str | None, *, etag: str | None, modified: datetime.datetime | None) -> bool:
    """True when there is no If-Range, or it names the file as it is now (ETag or exact date)."""
    if not validator:
        return True
    validator = validator.strip()
    if validator.startswith('"'):
        return validator == etag
    try:
        since = email.utils.parsedate_to_datetime(validator)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an absurd zone offset
        return False
    return modified is not None and since == modified
