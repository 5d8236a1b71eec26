"""The body of a served download: the limits that apply only to bytes, the row, the bytes.

A mixin of `DownloadHandler`, which decides what is served (headers, 304, the range) and calls
`_send_download` with the span once the answer is a body; here it goes out counted to the byte,
through `os.sendfile` or a throttle, after its audit row is committed.
"""

from __future__ import annotations

import logging
import os

from tempdl.audit.log import AuditLog
from tempdl.audit.records import Attempt, Outcome
from tempdl.config.settings import LimitSettings
from tempdl.links import refusals
from tempdl.links.access import Grant, Refused
from tempdl.web.access_log import quoted
from tempdl.web.attempt_row import AttemptRow
from tempdl.web.handlers.base import RefusalMixin
from tempdl.web.progress import ProgressNotes
from tempdl.web.ranges import Span
from tempdl.web.streaming import CHUNK_SIZE, ReadFailed, send_chunks, send_zero_copy, zero_copy_possible
from tempdl.web.streams import Streams
from tempdl.web.throttle import RateLimiter, chunk_size_for

log = logging.getLogger("tempdl.download")


class DownloadBody(RefusalMixin):
    """Sends `grant`'s bytes for `attempt`; the handler sets every attribute below first."""

    attempt: Attempt
    grant: Grant
    row: AttemptRow
    audit: AuditLog
    limits: LimitSettings
    shared_limiter: RateLimiter | None
    downloads_streaming: Streams
    use_sendfile: bool

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

    async def _open_row(self) -> int | None:
        cap = self.grant.issuance.max_downloads
        return await self.row.open(self.get_status(), download_cap=cap, file_size=self.grant.size)
