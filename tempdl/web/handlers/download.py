"""`GET`/`HEAD /api/get_file/{token}`: check the link, then serve the file as StaticFileHandler does.

Every request, served or refused, ends as one `download_attempts` row. The decisions live in
modules of their own, free of Tornado: `tempdl.links.access` (may this link have the file),
`tempdl.web.previews` (is this a person or a preview), `tempdl.web.ranges` (which bytes),
`tempdl.web.disposition` (the name and type the browser sees), and `tempdl.web.streaming` (the
bytes, counted).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import urllib.parse
from typing import Any

from tornado.web import StaticFileHandler

from tempdl.audit.log import AuditLog
from tempdl.audit.records import Attempt, Outcome
from tempdl.errors import AuditUnavailable
from tempdl.links import refusals
from tempdl.links.access import Gate, Grant, Refused
from tempdl.links.digests import repr_digest
from tempdl.reports.formats import human_bytes
from tempdl.timeutil import Clock, duration_text
from tempdl.web.access_log import quoted
from tempdl.web.attempt_row import AttemptRow
from tempdl.web.disposition import content_disposition, content_type
from tempdl.web.handlers.base import RefusalMixin, write_error_page
from tempdl.web.inflight import InFlight
from tempdl.web.previews import is_preview
from tempdl.web.progress import ProgressNotes
from tempdl.web.ranges import Span, requested_span, unsatisfiable_range
from tempdl.web.streaming import CHUNK_SIZE, ReadFailed, send_chunks, send_zero_copy, zero_copy_possible
from tempdl.web.streams import Streams
from tempdl.web.throttle import RateLimiter, chunk_size_for

log = logging.getLogger("tempdl.download")

LANDING_DIGEST_WAIT = 2.0  # seconds the landing page waits for a file's first SHA-256, then goes without


def strong_etag(stat: os.stat_result) -> str:
    return f'"{stat.st_ino:x}-{stat.st_size:x}-{stat.st_mtime_ns:x}"'


def whole_seconds_mtime(stat: os.stat_result) -> datetime.datetime:
    """Whole seconds, as Tornado's own: HTTP dates carry no fractions."""
    return datetime.datetime.fromtimestamp(int(stat.st_mtime), datetime.UTC)


class DownloadHandler(RefusalMixin, StaticFileHandler):
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

    def head(self, token: str):  # type: ignore[override]
        return self.get(token, include_body=False)

    async def get(self, token: str, include_body: bool = True) -> None:  # type: ignore[override]
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

    async def _send_download(self, span: Span) -> None:
        """The body: limits that apply only to bytes, the row before the first byte, the bytes.

        The concurrency slot is taken in the same step as the check (nothing awaits in between),
        so downloads arriving together cannot all squeeze under the cap. The file is opened
        before the row is written, so one the server cannot open is refused (500, `error`) and
        never recorded as served.
        """
        cap = self.limits.max_concurrent_downloads
        if cap and len(self.downloads_streaming) >= cap:
            raise Refused(refusals.BUSY, f"{len(self.downloads_streaming)} downloads already streaming")
        try:
            source = os.open(self.grant.path, os.O_RDONLY)  # not inherited by child processes (PEP 446)
        except OSError as error:
            raise Refused(refusals.UNREADABLE, f"file {self.grant.offered.id!r}: {error.strerror}") from None
        self.downloads_streaming.enter(self, file_id=self.grant.offered.id, recipient=self.grant.issuance.recipient)
        try:
            if self._fits_one_write(span.length):
                await self._send_small_body(span, source)
            else:
                await self._send_large_body(span, source)
        except ReadFailed as failed:
            await self._end_failed_read(failed)
        finally:
            os.close(source)
            self.downloads_streaming.leave(self)

    def _fits_one_write(self, length: int) -> bool:
        """A body the kernel takes in one write: no cap to claim, no throttle, one chunk."""
        throttled = self.limits.rate_per_download or self.shared_limiter is not None
        return length <= CHUNK_SIZE and not throttled and not self.grant.issuance.max_downloads

    async def _send_small_body(self, span: Span, source: int) -> None:
        """One audit write instead of two for a small file.

        The row is committed before the first byte, as always, but already as what will almost
        surely happen (`ok`, every byte, finished): the whole body goes to the kernel in one
        write. Only when that write fails is the row corrected to `partial` with what went out.
        """
        self.attempt.bytes_sent = span.length
        await self.row.record(Outcome.OK, self.get_status())
        sent = await send_chunks(self, source, span.start, span.length)
        if sent != span.length:
            self.attempt.outcome, self.attempt.bytes_sent = Outcome.PARTIAL, sent
            await self.row.close()

    async def _send_large_body(self, span: Span, source: int) -> None:
        attempt_id = await self._open_row()
        if attempt_id is None:
            raise Refused(refusals.USED_UP, f"issuance {self.grant.issuance.id}: last download already taken")
        progress = ProgressNotes(self.audit, attempt_id)
        self.downloads_streaming.follow(self, progress)
        try:
            self.attempt.bytes_sent = await self._send_body(span, source, progress)
        finally:
            progress.stop()
        self.attempt.outcome = Outcome.OK if self.attempt.bytes_sent == span.length else Outcome.PARTIAL
        await self.row.close()

    async def _send_body(self, span: Span, source: int, progress: ProgressNotes) -> int:
        """Zero-copy when the socket allows and nothing throttles; else chunks through Tornado."""
        start, length = span.start, span.length
        own = RateLimiter(self.limits.rate_per_download) if self.limits.rate_per_download else None
        limiters = [limiter for limiter in (own, self.shared_limiter) if limiter is not None]
        if not limiters and self.use_sendfile and length > CHUNK_SIZE and zero_copy_possible(self):
            return await send_zero_copy(self, source, start, length, progress=progress)
        chunk_size = chunk_size_for([limiter.rate for limiter in limiters], CHUNK_SIZE)
        return await send_chunks(
            self, source, start, length, chunk_size=chunk_size, limiters=limiters, progress=progress
        )

    async def _end_failed_read(self, failed: ReadFailed) -> None:
        """The file failed us mid-way: the row says `error` with the bytes that went out, at once.

        Before the headers, the client gets the bilingual 500 page; after them, only a cut
        connection tells it the body is short (its Content-Length is not met).
        """
        log.warning(
            "event=download_read_failed issuance=%s file=%s bytes_sent=%d detail=%s",
            self.attempt.issuance_id,
            self.attempt.file_id,
            failed.sent,
            quoted(str(failed)),
        )
        if failed.headers_sent:
            self.request.connection.stream.close()
        else:
            self.write_refusal(refusals.UNREADABLE)
        self.attempt.outcome, self.attempt.bytes_sent = Outcome.ERROR, failed.sent
        self.attempt.http_status = self.get_status()
        await self.row.close()

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

    async def _open_row(self) -> int | None:
        cap = self.grant.issuance.max_downloads
        return await self.row.open(self.get_status(), download_cap=cap, file_size=self.grant.size)

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
        grant = self.grant
        grant.settle(0)
        remaining = int((grant.issuance.expires_at - self.attempt.started_at).total_seconds())
        remaining_zh, remaining_en = duration_text(remaining)
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        if self.request.method != "HEAD":
            digest = await self._digest_for_landing_page()
            self.write(
                self.render_string(
                    "landing.html",
                    name=grant.offered.name,
                    size=human_bytes(grant.size),
                    size_bytes=f"{grant.size:,}",
                    sha256=digest.hex() if digest else None,
                    remaining_zh=remaining_zh,
                    remaining_en=remaining_en,
                )
            )
        await self.row.record(Outcome.LANDING, self.get_status())

    async def _digest_for_landing_page(self) -> bytes | None:
        """The file's SHA-256, waited for a moment the first time; a huge file's page goes without
        it rather than keep a follower waiting (it is there on the next visit)."""
        computing = self.gate.digests.compute(self.grant.path, self.grant.stat)
        try:
            return await asyncio.wait_for(asyncio.shield(computing), LANDING_DIGEST_WAIT)
        except TimeoutError:
            return None

    async def _refuse(self, refusal: refusals.Refusal) -> None:
        self.write_refusal(refusal)
        if refusal.outcome:
            await self.row.record(refusal.outcome, self.get_status())
