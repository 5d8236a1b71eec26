"""Sending a file's bytes, counting exactly the body bytes that reached the socket.

Two paths, same bytes:
- `send_chunks` reads 64 KiB at a time and writes through Tornado (`write` + `await flush()`, the
  back-pressure StaticFileHandler uses). It works everywhere: TLS, throttled downloads, any OS.
- `send_zero_copy` flushes the headers, then lets the kernel copy file → socket with
  `os.sendfile`: no bytes pass through Python, which is what makes large downloads as cheap as
  nginx's. Plain-HTTP sockets only.

A file that cannot be read to the end (an I/O error, or it shrank since it was stat'ed) raises
`ReadFailed` with the body bytes that went out, so the download is recorded as `error`, never `ok`.

`bytes_sent` in the audit must be what really went out, also for downloads cut short. Tornado's
IOStream counts the bytes it has handed to the kernel (`_total_write_done_index`, private but the
only exact figure; tornado is pinned below 7 and tests cut connections mid-file to hold us to it).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import cast

from tornado.http1connection import HTTP1Connection
from tornado.iostream import IOStream, SSLIOStream, StreamClosedError
from tornado.web import RequestHandler

from tempdl.web import client_wait
from tempdl.web.pace import ReadingPace
from tempdl.web.throttle import RateLimiter

CHUNK_SIZE = 64 * 1024
SENDFILE_BLOCK = 1024 * 1024  # asked of one os.sendfile call (the socket's free space decides what it takes)
YIELD_EVERY = 4 * 1024 * 1024
"""Bytes a zero-copy download sends between two turns for the other requests (about 2 ms on
loopback). A call takes only what the socket has room for, ~350 KB: a turn after each call made
a 256 MiB download ~750 event-loop iterations, their cost a third of its server CPU over nginx's."""


CLIENT_GONE = frozenset({errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, errno.ESHUTDOWN, errno.ECONNABORTED})
"""`os.sendfile` errors that are the socket's, not the file's: the client went away."""


class ReadFailed(Exception):
    """The file could not be read as far as asked: `sent` body bytes reached the socket first.

    `headers_sent` says whether the response head already went out: if not, the request can still
    be answered with an error page; if so, only cutting the connection tells the client.
    """

    def __init__(self, sent: int, *, headers_sent: bool, cause: str) -> None:
        super().__init__(cause)
        self.sent = sent
        self.headers_sent = headers_sent


def _connection(handler: RequestHandler) -> HTTP1Connection:
    """The request's connection: `HTTPServer` only makes HTTP/1 ones (Tornado types it as the base)."""
    return cast(HTTP1Connection, handler.request.connection)


def _stream(handler: RequestHandler) -> IOStream:
    return _connection(handler).stream


def zero_copy_possible(handler: RequestHandler) -> bool:
    stream = _stream(handler)
    return hasattr(os, "sendfile") and isinstance(stream, IOStream) and not isinstance(stream, SSLIOStream)


async def send_chunks(
    handler: RequestHandler,
    source: Path | int,
    start: int,
    length: int,
    *,
    chunk_size: int = CHUNK_SIZE,
    limiters: Sequence[RateLimiter] = (),
    progress: Callable[[int], None] = lambda sent: None,
) -> int:
    """Write `length` bytes of `source` (a path or an open descriptor) from `start`; return the
    body bytes that reached the socket, or raise `ReadFailed`.

    The headers may still be pending: the first flush sends them together with the first chunk
    (one packet for a small file), so a file that fails on its first read leaves them unsent. A
    client that goes away ends the loop quietly.
    """
    stream = _stream(handler)
    body_start: int | None = None
    queued = 0
    failure = ""
    pace = ReadingPace()
    with _opened(source) as descriptor:
        try:
            while queued < length and not stream.closed():
                size = min(chunk_size, length - queued)
                for limiter in limiters:
                    await limiter.take(size)
                try:
                    chunk = os.pread(descriptor, size, start + queued)
                except OSError as error:
                    failure = f"read failed: {error.strerror}"
                    break
                if not chunk:
                    failure = "the file shrank under us"  # Content-Length can no longer be met
                    break
                handler.write(chunk)
                flushed = handler.flush()
                if body_start is None:
                    # Whatever the flush queued (headers, maybe), this chunk was queued last.
                    body_start = stream._total_write_index - len(chunk)
                queued += len(chunk)
                await client_wait.flushed_or_stalled(flushed, stream, pace)
                progress(queued)
        except StreamClosedError:
            pass
    sent = 0 if body_start is None else min(queued, max(0, stream._total_write_done_index - body_start))
    if failure:
        raise ReadFailed(sent, headers_sent=body_start is not None, cause=failure)
    return sent


async def send_zero_copy(
    handler: RequestHandler,
    source: Path | int,
    start: int,
    length: int,
    progress: Callable[[int], None] = lambda sent: None,
) -> int:
    """Flush the headers, then `os.sendfile` the span; return the body bytes the kernel took, or
    raise `ReadFailed`.

    One byte is read first, so a file that cannot be read at all fails before the headers go out.

    The socket is corked meanwhile (nginx's `tcp_nopush`): the kernel sends only full segments,
    the headers ride with the first bytes of the body, and the tail goes out when it is uncorked.
    Without it, 256 MiB on loopback went at 0.75x nginx's speed for 1.2x its CPU; with it,
    ~1.0x and ~1.05x, alternating sample by sample with nginx.
    """
    with _opened(source) as descriptor:
        try:
            readable = length == 0 or bool(os.pread(descriptor, 1, start))
        except OSError as error:
            raise ReadFailed(0, headers_sent=False, cause=f"read failed: {error.strerror}") from None
        if not readable:
            raise ReadFailed(0, headers_sent=False, cause="the file shrank under us")
        return await _sendfile_span(handler, descriptor, start, length, progress)


async def _sendfile_span(
    handler: RequestHandler, descriptor: int, start: int, length: int, progress: Callable[[int], None]
) -> int:
    stream = _stream(handler)
    corked = _cork(stream, True)
    try:
        await handler.flush()
    except StreamClosedError:
        return 0
    # Our own descriptor for the socket: if Tornado closes its one meanwhile, ours can never be
    # reused for another client's connection, so no byte can go to the wrong place.
    socket_fd = os.dup(stream.socket.fileno())
    sent = 0
    yielded_at = 0
    failure = ""
    pace = ReadingPace()
    try:
        while sent < length and not stream.closed():
            try:
                count = os.sendfile(socket_fd, descriptor, start + sent, min(SENDFILE_BLOCK, length - sent))
            except BlockingIOError:
                if not await client_wait.writable(socket_fd, stream, pace, client_wait.constant(sent)):
                    break
                continue
            except OSError as error:
                if error.errno not in CLIENT_GONE:
                    failure = f"read failed: {error.strerror}"
                break
            if count == 0:
                failure = "the file shrank under us"
                break
            sent += count
            progress(sent)
            # On loopback or a fast LAN the socket may never push back: without a turn for
            # the others, one download had the event loop to itself until its last byte.
            if sent - yielded_at >= YIELD_EVERY:
                yielded_at = sent
                await asyncio.sleep(0)
    finally:
        os.close(socket_fd)
        if corked:
            _cork(stream, False)
    _account_for_bytes_sent_outside_tornado(handler, sent, length)
    if failure:
        raise ReadFailed(sent, headers_sent=True, cause=failure)
    return sent


def _cork(stream: IOStream, on: bool) -> bool:
    """Set TCP_CORK (Linux); False where there is none or the socket is already gone."""
    if not hasattr(socket, "TCP_CORK") or stream.closed():
        return False
    try:
        stream.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, int(on))
    except OSError:
        return False
    return True


@contextlib.contextmanager
def _opened(source: Path | int) -> Iterator[int]:
    """A descriptor for `source`: an open one as it is (its owner closes it), a path opened here."""
    if isinstance(source, int):
        yield source
        return
    descriptor = os.open(source, os.O_RDONLY)  # not inherited by child processes (PEP 446)
    try:
        yield descriptor
    finally:
        os.close(descriptor)


def _account_for_bytes_sent_outside_tornado(handler: RequestHandler, sent: int, length: int) -> None:
    """Tell Tornado's HTTP/1 connection the body went out, so `finish()` keeps the connection.

    The connection checks that the body matched Content-Length; the bytes did not pass through it,
    so its private counter is adjusted. A body cut short closes the connection instead: the
    response cannot be completed, and the client will see the short read.
    """
    connection = _connection(handler)
    connection._expected_content_remaining = 0
    if sent < length:
        _stream(handler).close()
