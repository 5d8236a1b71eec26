"""`GET`/`HEAD /api/get_file/{token}`: check the link, then serve the file as StaticFileHandler does.

Every request, served or refused, ends as one `download_attempts` row. The decisions live in
modules of their own, free of Tornado: `tempdl.links.access` (may this link have the file),
`tempdl.web.previews` (is this a person or a preview), `tempdl.web.ranges` (which bytes),
`tempdl.web.disposition` (the name and type the browser sees), and `tempdl.web.streaming` (the
bytes, counted). `tempdl.web.handlers.download_body` sends a served body under its limits, and
`tempdl.web.landing_page` writes the page a preview gets instead.
"""

from __future__ import annotations

import datetime
import logging
import os
import urllib.parse
from collections.abc import Awaitable
from typing import Any

from tornado.web import StaticFileHandler

from tempdl.audit.log import AuditLog
from tempdl.audit.records import Attempt, Outcome
from tempdl.errors import AuditUnavailable
from tempdl.links import refusals
from tempdl.links.access import Gate, Grant, Refused
from tempdl.links.digests import repr_digest
from tempdl.timeutil import Clock
from tempdl.web.access_log import quoted
from tempdl.web.attempt_row import AttemptRow
from tempdl.web.disposition import content_disposition, content_type
from tempdl.web.handlers.base import write_error_page
from tempdl.web.handlers.download_body import DownloadBody
from tempdl.web.inflight import InFlight
from tempdl.web.landing_page import write_landing_page
from tempdl.web.previews import is_preview
from tempdl.web.ranges import Span, requested_span, unsatisfiable_range
from tempdl.web.streams import Streams
from tempdl.web.throttle import RateLimiter

log = logging.getLogger("tempdl.download")


def strong_etag(stat: os.stat_result) -> str:
    return f'"{stat.st_ino:x}-{stat.st_size:x}-{stat.st_mtime_ns:x}"'


def whole_seconds_mtime(stat: os.stat_result) -> datetime.datetime:
    """Whole seconds, as Tornado's own: HTTP dates carry no fractions."""
    return datetime.datetime.fromtimestamp(int(stat.st_mtime), datetime.UTC)


class DownloadHandler(DownloadBody, StaticFileHandler):
    """`StaticFileHandler` behind a signed link, with its audit row and limits.

    Kept from Tornado: `set_headers`, `should_return_304`, the ETag check, and the hooks its
    subclassing notes name (`compute_etag`, `get_content_size`, `get_modified_time`,
    `get_content_type`, `get_cache_time`, `set_extra_headers`). The size, date and ETag come from
    the stat the catalogue took when it confined the path to `files_dir`, so the file is looked
    at once per request and the three always agree.

    Where we leave the hooks, and why: `get` is overridden, because Tornado's `get` writes the
    chunks of `get_content` itself, and a download's body must instead go out after its audit row
    is committed, through `os.sendfile` or a throttle, counted to the byte. `_serve` keeps the
    steps of `StaticFileHandler.get` in the same order. Also ours: an ETag from inode, size and
    mtime instead of hashing the file on the event loop, If-Range, and no multipart ranges.
    """

    attempt: Attempt  # made first thing in `get`; the access log reads it
    grant: Grant  # what `Gate.admit` allowed; every hook below runs after it is set
    row: AttemptRow  # where the attempt is written

    def initialize(  # type: ignore[override]
        self,
        *,
        gate: Gate,
        audit: AuditLog,
        clock: Clock,
        requests_in_flight: InFlight,
        downloads_streaming: Streams,
        shared_limiter: RateLimiter | None,
        use_sendfile: bool,
        serve_mode: str,
        x_accel_prefix: str,
    ) -> None:
        super().initialize(path=str(gate.catalog.files_dir))
        self.gate = gate
        self.audit = audit
        self.clock = clock
        self.requests_in_flight = requests_in_flight
        self.downloads_streaming = downloads_streaming
        self.shared_limiter = shared_limiter  # limits.total_rate, shared by all downloads
        self.limits = gate.settings.limits
        self.use_sendfile = use_sendfile
        self.serve_mode = serve_mode
        self.x_accel_prefix = x_accel_prefix
        self.served_stat: os.stat_result | None = None  # set when the answer is the file itself

    def head(self, token: str) -> Awaitable[None]:
        return self.get(token, include_body=False)

    async def get(self, token: str, include_body: bool = True) -> None:
        self.attempt = Attempt(
            started_at=self.clock(),
            client_ip=self.request.remote_ip,
            user_agent=self.request.headers.get("User-Agent"),
            method=self.request.method or "GET",
        )
        self.row = AttemptRow(self.audit, self.clock, self.attempt)
        self.requests_in_flight.enter(self)
        try:
            await self._answer(token, include_body)
        except AuditUnavailable:
            # Nothing is served unrecorded: without the audit database, the answer is 503.
            if not self._headers_written:
                self.write_refusal(refusals.UNAVAILABLE)
        finally:
            if hasattr(self, "grant"):
                self.gate.release(self.grant)  # after the row has its real bytes
            self.requests_in_flight.leave(self)

    async def _answer(self, token: str, include_body: bool) -> None:
        try:
            self.grant = await self.gate.admit(token, self.attempt, span_of=self._span_of)
            self.path = self.grant.offered.path
            if is_preview(self.request.headers):
                await self._show_landing_page()
            elif self.serve_mode == "x-accel":
                await self._hand_to_nginx(include_body)
            else:
                await self._serve(include_body)
        except Refused as refused:
            log.info(
                "event=download_refused reason=%s issuance=%s detail=%s",
                refused.refusal.reason,
                self.attempt.issuance_id,
                quoted(refused.detail),
            )
            await self._refuse(refused.refusal)

    # --- the story of a served download --------------------------------------------------------

    async def _serve(self, include_body: bool) -> None:
        """`StaticFileHandler.get`'s steps: headers, 304, the range, then the body."""
        # The catalogue already confined the path to files_dir and stat'ed it: StaticFileHandler's
        # validate_absolute_path would only do the same work again.
        self.absolute_path = str(self.grant.path)
        self.served_stat = self.grant.stat
        self.modified = self.get_modified_time()
        self.set_headers()
        if self.should_return_304():
            self.set_status(304)
            self.grant.settle(0)
            return await self.row.record(Outcome.NOT_MODIFIED, self.get_status())

        size = self.get_content_size()
        span = self._requested_span(size)
        self.grant.settle(span.length if span is not None and include_body else 0)
        if span is None:
            self.set_status(416)
            self.set_header("Content-Type", "text/plain")
            self.set_header("Content-Range", unsatisfiable_range(size))
            return await self.row.record(Outcome.UNSATISFIABLE, self.get_status())
        if not span.is_whole(size):
            self.set_status(206)
            self.set_header("Content-Range", span.content_range(size))
        else:
            self._set_repr_digest()
        self.set_header("Content-Length", span.length)
        self.attempt.range_start, self.attempt.range_end = span.start, (span.end - 1 if span.length else None)
        if not include_body:
            return await self.row.record(Outcome.OK, self.get_status())
        await self._send_download(span)

    async def _hand_to_nginx(self, include_body: bool) -> None:
        """x-accel mode: we decide and record; nginx sends the bytes (Range, HEAD, 304) with sendfile.

        The attempt row stays open until `ingest-nginx-log` fills in what nginx really sent, found
        by the attempt id we put in the X-Tempdl-Attempt header. Content-Type, Content-Disposition
        and Cache-Control pass through nginx's internal redirect unchanged.
        """
        self.set_header("Content-Type", self.get_content_type())
        self.set_extra_headers(self.path)
        self.set_header("X-Accel-Redirect", self.x_accel_prefix + urllib.parse.quote(self.grant.offered.path))
        if self.limits.rate_per_download:
            self.set_header("X-Accel-Limit-Rate", str(self.limits.rate_per_download))
        self.modified = None
        span = self._requested_span(self.grant.size)
        self.grant.settle(span.length if span is not None and include_body else 0)
        if span is not None:
            self.attempt.range_start, self.attempt.range_end = span.start, span.end - 1
        if not include_body:
            return await self.row.record(Outcome.OK, self.get_status())
        attempt_id = await self._open_row()
        if attempt_id is None:
            raise Refused(refusals.USED_UP, f"issuance {self.grant.issuance.id}: last download already taken")
        self.set_header("X-Tempdl-Attempt", str(attempt_id))

    def _requested_span(self, size: int) -> Span | None:
        headers = self.request.headers
        return requested_span(
            headers.get("Range"),
            size,
            if_range=headers.get("If-Range"),
            etag=self.compute_etag(),
            modified=self.modified,
        )

    def _set_repr_digest(self) -> None:
        """RFC 9530's `Repr-Digest` on a whole-file answer, once the file's digest is known; the
        first download of a version sets it computing, for the answers after it."""
        digests, grant = self.gate.digests, self.grant
        digest = digests.known(grant.path, grant.stat)
        if digest is None:
            digests.compute(grant.path, grant.stat)
        else:
            self.set_header("Repr-Digest", repr_digest(digest))

    def _span_of(self, stat: os.stat_result) -> Span | None:
        """What `_requested_span` will say of the file as stat'ed, before the answer is begun."""
        headers = self.request.headers
        return requested_span(
            headers.get("Range"),
            stat.st_size,
            if_range=headers.get("If-Range"),
            etag=strong_etag(stat),
            modified=whole_seconds_mtime(stat),
        )

    # --- StaticFileHandler hooks ---------------------------------------------------------------

    def compute_etag(self) -> str | None:
        """A strong ETag from inode, size and mtime: cheap, and it changes when the file does.

        None unless the answer is the file itself: a landing page or a handover to nginx has none.
        """
        return None if self.served_stat is None else strong_etag(self.served_stat)

    def get_content_size(self) -> int:
        return self.grant.size

    def get_modified_time(self) -> datetime.datetime | None:
        return whole_seconds_mtime(self.grant.stat)

    def get_cache_time(self, path: str, modified: datetime.datetime | None, mime_type: str) -> int:
        return 0

    def set_extra_headers(self, path: str) -> None:
        self.set_header("Content-Disposition", content_disposition(self.grant.offered.name))
        self.set_header("Cache-Control", "private, no-store")
        self.set_header("X-Content-Type-Options", "nosniff")

    def get_content_type(self) -> str:
        return content_type(self.grant.offered.name)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        write_error_page(self, status_code)

    # --- pages and audit ---------------------------------------------------------------------------

    async def _show_landing_page(self) -> None:
        self.grant.settle(0)
        await write_landing_page(self, self.grant, self.gate.digests, self.attempt.started_at)
        await self.row.record(Outcome.LANDING, self.get_status())

    async def _refuse(self, refusal: refusals.Refusal) -> None:
        self.write_refusal(refusal)
        if refusal.outcome:
            await self.row.record(refusal.outcome, self.get_status())
