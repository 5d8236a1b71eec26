"""`GET`/`HEAD /api/get_file/{token}`: check the link, then serve the file as StaticFileHandler does.

We extend `tornado.web.StaticFileHandler` and keep its parts: path confinement and symlink checks
(`validate_absolute_path`), `set_headers`, `should_return_304`, content types. What we add: the
token and audit around it, an ETag from size/mtime/inode instead of hashing the whole file on the
event loop, If-Range, no multipart ranges, and a body loop that counts the bytes that really went
out. Every request, served or refused, ends as one `download_attempts` row.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import email.utils
import functools
import logging
import mimetypes
import re
import time
import unicodedata
import urllib.parse
from typing import Any

from tornado import httputil
from tornado.web import StaticFileHandler

from tempdl.audit.log import AuditLog
from tempdl.audit.records import Attempt
from tempdl.errors import AuditUnavailable
from tempdl.links import refusals
from tempdl.links.access import Gate, Grant, Refused
from tempdl.reports.formats import human_bytes
from tempdl.timeutil import Clock, duration_text
from tempdl.web.access_log import quoted
from tempdl.web.handlers.base import RefusalMixin, write_error_page
from tempdl.web.inflight import InFlight
from tempdl.web.streaming import CHUNK_SIZE, send_chunks, send_zero_copy, zero_copy_possible
from tempdl.web.throttle import RateLimiter, chunk_size_for

log = logging.getLogger("tempdl.download")
PROGRESS_INTERVAL = 5.0  # seconds between bytes-so-far notes in a long download's row

PREVIEW_AGENTS = re.compile(
    r"MicroMessenger|facebookexternalhit|Facebot|Twitterbot|Slackbot|Discordbot|TelegramBot|WhatsApp|"
    r"LinkedInBot|SkypeUriPreview|Embedly|Iframely|redditbot|Applebot|Pinterest|vkShare|Googlebot|"
    r"bingbot|Bytespider|Mattermost|Synapse",
    re.IGNORECASE,
)


def is_preview(headers: httputil.HTTPHeaders) -> bool:
    """WeChat's in-app browser, link-preview bots and prefetches: they get a page, never bytes."""
    purpose = (headers.get("Sec-Purpose", "") + headers.get("Purpose", "") + headers.get("X-Moz", "")).lower()
    if "prefetch" in purpose or "preview" in purpose:
        return True
    user_agent = headers.get("User-Agent", "")
    if len(user_agent) > 512:  # not worth remembering, and 1,024 of them would hold megabytes
        return bool(PREVIEW_AGENTS.search(user_agent))
    return _is_preview_agent(user_agent)


@functools.lru_cache(maxsize=1024)
def _is_preview_agent(user_agent: str) -> bool:
    """Remembered per User-Agent: the search costs ~15 µs on a browser's long one, and a server
    sees the same few agents over and over."""
    return bool(PREVIEW_AGENTS.search(user_agent))


def content_disposition(name: str) -> str:
    """`attachment` with an ASCII `filename=` and, for other names, RFC 5987 `filename*=`."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    ascii_name = re.sub(r"[^A-Za-z0-9._()+ -]", "_", ascii_name).strip(" .") or "download"
    if "." in name and "." not in ascii_name:
        ascii_name += "." + name.rsplit(".", 1)[1].encode("ascii", "ignore").decode() or ""
    header = f'attachment; filename="{ascii_name}"'
    if ascii_name != name:
        header += "; filename*=UTF-8''" + urllib.parse.quote(name, safe="")
    return header


class DownloadHandler(RefusalMixin, StaticFileHandler):
    def initialize(  # type: ignore[override]
        self,
        *,
        gate: Gate,
        audit: AuditLog,
        clock: Clock,
        inflight: InFlight,
        streams: InFlight,
        shared_limiter: RateLimiter | None,
        use_sendfile: bool,
        serve_mode: str,
        x_accel_prefix: str,
    ) -> None:
        super().initialize(path=str(gate.catalog.files_dir))
        self.gate = gate
        self.audit = audit
        self.clock = clock
        self.inflight = inflight  # every download request, so shutdown can wait for its row
        self.streams = streams  # the ones sending bytes right now (max_concurrent_downloads)
        self.shared_limiter = shared_limiter  # limits.total_rate, shared by all downloads
        self.limits = gate.settings.limits
        self.use_sendfile = use_sendfile
        self.serve_mode = serve_mode
        self.x_accel_prefix = x_accel_prefix
        self.grant: Grant | None = None
        self.attempt: Attempt | None = None
        self._last_checkpoint = time.monotonic()
        self._unsaved_progress = 0
        self._progress_timer: asyncio.TimerHandle | None = None
        self._background: set[asyncio.Task] = set()

    def head(self, token: str):  # type: ignore[override]
        return self.get(token, include_body=False)

    async def get(self, token: str, include_body: bool = True) -> None:  # type: ignore[override]
        self.attempt = Attempt(
            started_at=self.clock(),
            client_ip=self.request.remote_ip,
            user_agent=self.request.headers.get("User-Agent"),
        )
        self.inflight.enter(self)
        try:
            await self._answer(token, include_body)
        except AuditUnavailable:
            # Nothing is served unrecorded: without the audit database, the answer is 503.
            if not self._headers_written:
                self.write_refusal(refusals.UNAVAILABLE)
        finally:
            self.inflight.leave(self)

    async def _answer(self, token: str, include_body: bool) -> None:
        attempt = self.attempt
        assert attempt is not None
        try:
            self.grant = await self.gate.admit(token, attempt, resumes=self._resumes())
            if is_preview(self.request.headers):
                await self._show_landing_page()
            else:
                await self._serve(include_body)
        except Refused as refused:
            log.info(
                "event=download_refused reason=%s issuance=%s detail=%s",
                refused.refusal.reason,
                attempt.issuance_id,
                quoted(refused.detail),
            )
            await self._refuse(refused.refusal)

    # --- the story of a served download --------------------------------------------------------

    async def _serve(self, include_body: bool) -> None:
        grant, attempt = self.grant, self.attempt
        assert grant is not None and attempt is not None
        self.path = grant.offered.path
        if self.serve_mode == "x-accel":
            return await self._hand_to_nginx(include_body)
        # The catalogue already confined the path to files_dir and stat'ed it: StaticFileHandler's
        # validate_absolute_path would only do the same work again.
        self.absolute_path = str(grant.path)
        self._stat_result = grant.stat
        self.modified = self.get_modified_time()
        self.set_headers()
        if self.should_return_304():
            self.set_status(304)
            return await self._record(outcome="not_modified")

        size = self.get_content_size()
        span = self._requested_span(size)
        if span is None:
            self.set_status(416)
            self.set_header("Content-Type", "text/plain")
            self.set_header("Content-Range", f"bytes */{size}")
            return await self._record(outcome="bad")
        start, end = span  # end is exclusive
        if (start, end) != (0, size):
            self.set_status(206)
            self.set_header("Content-Range", httputil._get_content_range(start, end, size))
        self.set_header("Content-Length", end - start)
        attempt.range_start, attempt.range_end = start, (end - 1 if end > start else None)
        if not include_body:
            return await self._record(outcome="ok")
        await self._send_download(start, end - start)

    async def _send_download(self, start: int, length: int) -> None:
        """The body: limits that apply only to bytes, the row before the first byte, the bytes.

        The concurrency slot is taken in the same step as the check (nothing awaits in between),
        so downloads arriving together cannot all squeeze under the cap.
        """
        cap = self.limits.max_concurrent_downloads
        if cap and len(self.streams) >= cap:
            raise Refused(refusals.BUSY, f"{len(self.streams)} downloads already streaming")
        self.streams.enter(self)
        try:
            if self._fits_one_write(length):
                await self._send_small_body(start, length)
            else:
                await self._send_large_body(start, length)
        finally:
            self.streams.leave(self)

    async def _send_large_body(self, start: int, length: int) -> None:
        grant, attempt = self.grant, self.attempt
        assert grant is not None and attempt is not None
        if not await self._open_attempt():
            raise Refused(refusals.USED_UP, f"issuance {grant.issuance.id}: last download already taken")
        attempt.bytes_sent = await self._send_body(start, length)
        if self._progress_timer is not None:
            self._progress_timer.cancel()
        attempt.outcome = "ok" if attempt.bytes_sent == length else "partial"
        await self._close_attempt()

    def _fits_one_write(self, length: int) -> bool:
        """A body the kernel takes in one write: no cap to claim, no throttle, one chunk."""
        assert self.grant is not None
        throttled = self.limits.rate_per_download or self.shared_limiter is not None
        return length <= CHUNK_SIZE and not throttled and not self.grant.issuance.max_downloads

    async def _send_small_body(self, start: int, length: int) -> None:
        """One audit write instead of two for a small file.

        The row is committed before the first byte, as always, but already as what will almost
        surely happen (`ok`, every byte, finished): the whole body goes to the kernel in one
        write. Only when that write fails is the row corrected to `partial` with what went out.
        """
        attempt = self.attempt
        assert attempt is not None
        attempt.bytes_sent = length
        await self._record(outcome="ok")
        assert self.grant is not None
        sent = await send_chunks(self, self.grant.path, start, length)
        if sent != length:
            attempt.outcome, attempt.bytes_sent = "partial", sent
            await self._close_attempt()

    async def _hand_to_nginx(self, include_body: bool) -> None:
        """x-accel mode: we decide and record; nginx sends the bytes (Range, HEAD, 304) with sendfile.

        The attempt row stays open until `ingest-nginx-log` fills in what nginx really sent, found
        by the attempt id we put in the X-Tempdl-Attempt header. Content-Type, Content-Disposition
        and Cache-Control pass through nginx's internal redirect unchanged.
        """
        grant, attempt = self.grant, self.attempt
        assert grant is not None and attempt is not None
        self.set_header("Content-Type", self.get_content_type())
        self.set_extra_headers(self.path)
        self.set_header("X-Accel-Redirect", self.x_accel_prefix + urllib.parse.quote(grant.offered.path))
        if self.limits.rate_per_download:
            self.set_header("X-Accel-Limit-Rate", str(self.limits.rate_per_download))
        self.modified = None
        span = self._requested_span(grant.size)
        if span is not None:
            attempt.range_start, attempt.range_end = span[0], span[1] - 1
        if not include_body:
            return await self._record(outcome="ok")
        if not await self._open_attempt():
            raise Refused(refusals.USED_UP, f"issuance {grant.issuance.id}: last download already taken")
        self.set_header("X-Tempdl-Attempt", str(attempt.id))

    async def _send_body(self, start: int, length: int) -> int:
        """Zero-copy when the socket allows and nothing throttles; else chunks through Tornado."""
        assert self.grant is not None
        path = self.grant.path
        limiters = [limiter for limiter in (self._own_limiter(), self.shared_limiter) if limiter is not None]
        if not limiters and self.use_sendfile and length > CHUNK_SIZE and zero_copy_possible(self):
            return await send_zero_copy(self, path, start, length, progress=self._checkpoint)
        chunk_size = chunk_size_for([limiter.rate for limiter in limiters], CHUNK_SIZE)
        return await send_chunks(
            self, path, start, length, chunk_size=chunk_size, limiters=limiters, progress=self._checkpoint
        )

    def _checkpoint(self, sent: int) -> None:
        """Note a long download's bytes so far in its row, at most every PROGRESS_INTERVAL seconds.

        Only a crash needs this: the row then shows roughly what went out instead of 0. A figure
        that arrives too early is kept and written when the interval is up, so the bytes of a
        burst followed by a stalled client are noted too.
        """
        self._unsaved_progress = sent
        if self._progress_timer is None and self.attempt is not None and self.attempt.id is not None:
            due = max(0.0, self._last_checkpoint + PROGRESS_INTERVAL - time.monotonic())
            self._progress_timer = asyncio.get_running_loop().call_later(due, self._write_progress)

    def _write_progress(self) -> None:
        self._progress_timer = None
        self._last_checkpoint = time.monotonic()
        assert self.attempt is not None and self.attempt.id is not None
        task = asyncio.ensure_future(self._save_progress(self.attempt.id, self._unsaved_progress))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _save_progress(self, attempt_id: int, sent: int) -> None:
        with contextlib.suppress(AuditUnavailable):
            await self.audit.run(self.audit.note_progress, attempt_id, sent)

    def _own_limiter(self) -> RateLimiter | None:
        rate = self.limits.rate_per_download
        return RateLimiter(rate) if rate else None

    def _requested_span(self, size: int) -> tuple[int, int] | None:
        """The byte span to send as (start, exclusive end), or None when unsatisfiable (416).

        A malformed or multi-range header is ignored (whole file), so no request can make us send
        more bytes than the file has; so is a Range whose If-Range no longer matches the file,
        so a resumed download never splices two versions together.
        """
        header = self.request.headers.get("Range")
        if not header or not self._if_range_matches():
            return (0, size)
        parsed = httputil._parse_request_range(header)
        if parsed is None:
            return (0, size)
        start, end = parsed
        if start is not None and start < 0:  # suffix range: the last -start bytes
            start = max(0, start + size)
        if (start is not None and (start >= size or (end is not None and start >= end))) or end == 0:
            return None
        start = start or 0
        end = size if end is None else min(end, size)
        return (start, end)

    def _if_range_matches(self) -> bool:
        validator = self.request.headers.get("If-Range")
        if not validator:
            return True
        validator = validator.strip()
        if validator.startswith('"'):
            return validator == self.compute_etag()
        try:
            since = email.utils.parsedate_to_datetime(validator)
        except (TypeError, ValueError, OverflowError):  # OverflowError: an absurd zone offset
            return False
        return self.modified is not None and since == self.modified

    def _resumes(self) -> bool:
        parsed = httputil._parse_request_range(self.request.headers.get("Range", ""))
        return bool(parsed and parsed[0] is not None and parsed[0] > 0)

    # --- StaticFileHandler hooks ---------------------------------------------------------------

    def compute_etag(self) -> str | None:
        """A strong ETag from inode, size and mtime: cheap, and it changes when the file does."""
        stat = getattr(self, "_stat_result", None)
        if stat is None:
            return None
        return f'"{stat.st_ino:x}-{stat.st_size:x}-{stat.st_mtime_ns:x}"'

    def get_cache_time(self, path: str, modified: datetime.datetime | None, mime_type: str) -> int:
        return 0

    def set_extra_headers(self, path: str) -> None:
        assert self.grant is not None
        self.set_header("Content-Disposition", content_disposition(self.grant.offered.name))
        self.set_header("Cache-Control", "private, no-store")
        self.set_header("X-Content-Type-Options", "nosniff")

    def get_content_type(self) -> str:
        return super().get_content_type() if self.grant is None else self._type_for(self.grant.offered.name)

    @staticmethod
    def _type_for(name: str) -> str:
        mime_type, encoding = mimetypes.guess_type(name)
        if encoding or not mime_type:
            return "application/octet-stream"
        return mime_type

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        write_error_page(self, status_code)

    # --- pages and audit ---------------------------------------------------------------------------

    async def _show_landing_page(self) -> None:
        grant, attempt = self.grant, self.attempt
        assert grant is not None and attempt is not None
        remaining = int((grant.issuance.expires_at - attempt.started_at).total_seconds())
        remaining_zh, remaining_en = duration_text(remaining)
        size = grant.size
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        if self.request.method != "HEAD":
            self.write(
                self.render_string(
                    "landing.html",
                    name=grant.offered.name,
                    size=human_bytes(size),
                    remaining_zh=remaining_zh,
                    remaining_en=remaining_en,
                )
            )
        await self._record(outcome="landing")

    async def _refuse(self, refusal: refusals.Refusal) -> None:
        self.write_refusal(refusal)
        if refusal.outcome:
            await self._record(outcome=refusal.outcome)

    async def _record(self, *, outcome: str) -> None:
        attempt = self.attempt
        assert attempt is not None
        attempt.outcome = outcome
        attempt.http_status = self.get_status()
        attempt.finished_at = self.clock()
        await self.audit.run(self.audit.record_attempt, attempt)

    async def _open_attempt(self) -> bool:
        """Write the attempt's row before the first byte; False when the link's downloads are used up."""
        attempt, grant = self.attempt, self.grant
        assert attempt is not None and grant is not None
        attempt.http_status = self.get_status()
        cap = grant.issuance.max_downloads
        if cap:
            return await self.audit.run(self.audit.claim_download, attempt, download_cap=cap, file_size=grant.size)
        await self.audit.run(self.audit.open_attempt, attempt)
        return True

    async def _close_attempt(self) -> None:
        attempt = self.attempt
        assert attempt is not None
        attempt.finished_at = self.clock()
        await self.audit.run(self.audit.close_attempt, attempt)
