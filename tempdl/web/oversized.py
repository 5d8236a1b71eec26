"""Requests over the size limits get a real answer: 414 for a long URL, 431 for a big head, 413
for a big body (403 first, if the body is a WeChat message without WeChat's signature).

Tornado's own limits (`max_header_size`, `max_body_size`) close the connection without a status
line, or with a bare 400, so the client cannot tell a limit from a crash and the audit log never
hears of it. Here Tornado reads heads up to `HEAD_READ_CEILING`, and `HeadLimitAdapter` answers
anything over `MAX_HEAD_BYTES` itself, before the request reaches the app: 414 when the URL alone
is over it, else 431. A body over `MAX_BODY_BYTES` is answered 413 before it is read when its
`Content-Length` says so, or the moment a chunked one crosses it, so the app never buffers more
than that and its handlers need not stream. An oversized request for the download route also
leaves a `download_attempts` row (`bad`), as every download request does. Only a head over the
ceiling is still cut off by Tornado: the ceiling is what one connection may make the server hold
in memory while its head arrives.

After an answer given at the head, the connection closes as nginx's `lingering_close` does: the
answer and a FIN go out, then whatever the client still sends is read and dropped (for at most
`LINGER_SECONDS`, or `LINGER_IDLE_SECONDS` of silence) before the socket is closed. Closing at
once, with the body unread, makes the kernel answer the client's next bytes with a reset, which
can destroy the answer before the client reads it: a client that sends its whole body before
reading (Python's http.client, requests) saw "connection reset" instead of the 413.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import urllib.parse
from collections.abc import Callable

from tornado import httputil
from tornado.http1connection import HTTP1Connection
from tornado.iostream import IOStream, StreamClosedError

from tempdl.audit.log import AuditLog
from tempdl.audit.records import Attempt, Outcome
from tempdl.errors import AuditUnavailable
from tempdl.links.issuing import DOWNLOAD_ROUTE
from tempdl.timeutil import Clock

log = logging.getLogger("tempdl.http")

MAX_HEAD_BYTES = 16 * 1024
"""The request line plus headers a request may have; its URL alone may not be longer either."""
HEAD_READ_CEILING = 2 * 1024 * 1024
"""What Tornado reads of a head before giving up on it (then the connection is cut)."""
MAX_BODY_BYTES = 64 * 1024
"""The body a request may carry: a WeChat message is ~1 KiB, an admin form less."""
USER_AGENT_KEPT = 512
LINGER_SECONDS = 30.0
"""How long a refused request's leftover body is read and dropped at most (nginx's `lingering_time`)."""
LINGER_IDLE_SECONDS = 5.0
"""How long the client may send nothing before the socket is closed (nginx's `lingering_timeout`)."""
LINGER_READ_BYTES = 64 * 1024
_LINGERING: set[asyncio.Future] = set()

_ANSWERS = {
    414: ("URI Too Long", "请求的网址过长。\nThe requested URL is too long.\n"),
    431: ("Request Header Fields Too Large", "请求头过大。\nThe request's header fields are too large.\n"),
    403: ("Forbidden", "签名无效：此请求并非来自微信。\nThe request is not signed by WeChat.\n"),
    413: (
        "Content Too Large",
        f"请求内容过大（上限 {MAX_BODY_BYTES // 1024} KiB）。\n"
        f"The request body is too large ({MAX_BODY_BYTES // 1024} KiB at most).\n",
    ),
}


def head_bytes(start_line: httputil.RequestStartLine, headers: httputil.HTTPHeaders) -> int:
    """The head's size as sent (give or take line endings): request line and every header line."""
    request_line = len(start_line.method) + len(start_line.path) + len(start_line.version) + 4
    return request_line + sum(len(name) + len(value) + 4 for name, value in headers.get_all())


def oversized_status(start_line: httputil.RequestStartLine, headers: httputil.HTTPHeaders) -> int | None:
    """414 or 431 for a head over the limit, 413 for a declared body over it; None within them.

    A `Content-Length` that is not one plain number is left to Tornado, which refuses it (400).
    """
    if len(start_line.path) > MAX_HEAD_BYTES:
        return 414
    if head_bytes(start_line, headers) > MAX_HEAD_BYTES:
        return 431
    declared = headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return 413
    return None


class HeadLimitAdapter(httputil.HTTPMessageDelegate):
    """Wraps the app's delegate for one request; answers an oversized head in its place."""

    def __init__(
        self,
        delegate: httputil.HTTPMessageDelegate,
        request_conn: httputil.HTTPConnection,
        audit: AuditLog | None,
        clock: Clock,
        unsigned: Callable[[httputil.RequestStartLine], bool] = lambda start_line: False,
    ) -> None:
        self.delegate = delegate
        self.request_conn = request_conn
        self.audit = audit
        self.clock = clock
        self.unsigned = unsigned
        """Whether a request must be signed and is not: then its body's size is not its answer."""
        self.answered = False
        self.body_bytes = 0  # of a body read so far; a declared one over the limit is never read

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ):
        assert isinstance(start_line, httputil.RequestStartLine)
        status = oversized_status(start_line, headers)
        if status is None:
            self.start_line, self.headers = start_line, headers  # for a chunked body that grows too large
            return self.delegate.headers_received(start_line, headers)
        self.answered = True
        return self._answer(self._signed_first(status, start_line), start_line, headers, at_head=True)

    def _signed_first(self, status: int, start_line: httputil.RequestStartLine) -> int:
        """403 instead of 413 for an unsigned WeChat message: SPEC checks the signature first."""
        return 403 if status == 413 and self.unsigned(start_line) else status

    async def _answer(
        self, status: int, start_line: httputil.RequestStartLine, headers: httputil.HTTPHeaders, *, at_head: bool
    ) -> None:
        client_ip = getattr(getattr(self.request_conn, "context", None), "remote_ip", None)
        download = urllib.parse.urlsplit(start_line.path).path.startswith(DOWNLOAD_ROUTE)
        log.warning(
            "event=%s status=%d ip=%s url_bytes=%d head_bytes=%d body_bytes=%s route=%s",
            "request_unsigned" if status == 403 else "request_too_large",
            status,
            client_ip,
            len(start_line.path),
            head_bytes(start_line, headers),
            self.body_bytes or headers.get("Content-Length", 0),  # counted, else as declared
            "download" if download else "other",
        )
        if download and self.audit is not None:
            await self._record(status, start_line.method, client_ip, headers)
        reason, text = _ANSWERS[status]
        body = text.encode("utf-8")
        response_headers = httputil.HTTPHeaders(
            {
                "Content-Type": "text/plain; charset=UTF-8",
                "Content-Length": str(len(body)),
                "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff",
                "Connection": "close",
                "Server": "tempdl",
            }
        )
        status_line = httputil.ResponseStartLine("HTTP/1.1", status, reason)
        await self.request_conn.write_headers(status_line, response_headers, body)
        assert isinstance(self.request_conn, HTTP1Connection)  # what HTTPServer makes
        if at_head:  # Tornado lets a delegate take the stream over only while it reads the head
            lingering = asyncio.ensure_future(lingering_close(self.request_conn.detach()))
            _LINGERING.add(lingering)  # the loop holds tasks weakly
            lingering.add_done_callback(_LINGERING.discard)
        else:
            self.request_conn.finish()
            self.request_conn.close()

    async def _record(self, status: int, method: str, client_ip: str | None, headers: httputil.HTTPHeaders) -> None:
        assert self.audit is not None
        now = self.clock()
        user_agent = headers.get("User-Agent")
        attempt = Attempt(
            started_at=now,
            client_ip=client_ip,
            user_agent=user_agent[:USER_AGENT_KEPT] if user_agent else None,
            outcome=Outcome.BAD,
            http_status=status,
            finished_at=now,
            method=method,
        )
        try:
            await self.audit.run(self.audit.record_attempt, attempt)
        except AuditUnavailable as error:
            log.warning("event=request_too_large_unrecorded status=%d error=%s", status, type(error).__name__)

    def data_received(self, chunk: bytes):
        if self.answered:
            return None
        self.body_bytes += len(chunk)
        if self.body_bytes > MAX_BODY_BYTES:  # only a chunked body gets here: a declared one was refused
            self.answered = True
            return self._answer(self._signed_first(413, self.start_line), self.start_line, self.headers, at_head=False)
        return self.delegate.data_received(chunk)

    def finish(self) -> None:
        if not self.answered:
            self.delegate.finish()

    def on_connection_close(self) -> None:
        if not self.answered:
            self.delegate.on_connection_close()


async def lingering_close(stream: IOStream) -> None:
    """Send FIN after the answer, drop what the client still sends, then close (see the module doc)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LINGER_SECONDS
    try:
        stream.socket.shutdown(socket.SHUT_WR)
        while (left := deadline - loop.time()) > 0:
            await asyncio.wait_for(stream.read_bytes(LINGER_READ_BYTES, partial=True), min(LINGER_IDLE_SECONDS, left))
    except (OSError, StreamClosedError, TimeoutError):
        pass  # the client closed, went quiet, or kept sending too long
    finally:
        stream.close()
