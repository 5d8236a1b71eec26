"""Which bytes of a file a download request gets: Range, If-Range and resumes, decided without I/O.

A malformed or multi-range header is ignored (the whole file), so no request can make us send
more bytes than the file has, and never a multipart body; a Range whose If-Range no longer
matches the file is ignored too, so a resumed download never splices two versions together.

The header is parsed by Tornado's own `httputil._parse_request_range` (private, but the parser
`StaticFileHandler` uses, so both read a Range header alike; tornado is pinned below 7).
"""

from __future__ import annotations

import datetime
import email.utils
from typing import NamedTuple

from tornado import httputil


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
    parsed = httputil._parse_request_range(range_header)
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


def resumes(range_header: str | None) -> bool:
    """A Range that starts past byte 0: the rest of a download begun before (see `resume_grace`)."""
    parsed = httputil._parse_request_range(range_header or "")
    return bool(parsed and parsed[0] is not None and parsed[0] > 0)
