"""Sending a file's bytes, counting exactly the body bytes that reached the socket.

Two paths, same bytes:
- `send_chunks` reads 64 KiB at a time and writes through Tornado (`write` + `await flush()`, the
  back-pressure StaticFileHandler uses). It works everywhere: TLS, throttled downloads, any OS.
- `send_zero_copy` flushes the headers, then lets the kernel copy file → socket with
  `os.sendfile`: no bytes pass through Python, which is what makes large downloads as cheap as
  nginx's. Plain-HTTP sockets only.

`bytes_sent` in the audit must be what really went out, also for downloads cut short. Tornado's
IOStream counts the bytes it has handed to the kernel (`_total_write_done_index`, private but the
only exact figure; tornado is pinned below 7 and tests cut connections mid-file to hold us to it).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path

from tornado.iostream import IOStream, SSLIOStream, StreamClosedError
from tornado.web import RequestHandler

from tempdl.throttle import RateLimiter

CHUNK_SIZE = 64 * 1024
SENDFILE_BLOCK = 4 * 1024 * 1024
STALLED_CLIENT_TIMEOUT = 60.0  # seconds a client may read nothing before we give up on it


def _stream(handler: RequestHandler) -> IOStream:
    return handler.request.connection.stream


def zero_copy_possible(handler: RequestHandler) -> bool:
    stream = _stream(handler)
    return hasattr(os, "sendfile") and isinstance(stream, IOStream) and not isinstance(stream, SSLIOStream)


async def send_chunks(
    handler: RequestHandler,
    path: Path,
    start: int,
    length: int,
    *,
    chunk_size: int = CHUNK_SIZE,
    limiters: Sequence[RateLimiter] = (),
) -> int:
    """Write `length` bytes of `path` from `start`; return the body bytes that reached the socket.

    The headers may still be pending: the first flush sends them together with the first chunk
    (one packet for a small file). A client that goes away ends the loop quietly.
    """
    stream = _stream(handler)
    body_start: int | None = None
    queued = 0
    try:
        with path.open("rb") as source:
            source.seek(start)
            while queued < length and not stream.closed():
                size = min(chunk_size, length - queued)
                for limiter in limiters:
                    await limiter.take(size)
                chunk = source.read(size)
                if not chunk:
                    break  # the file shrank under us; Content-Length can no longer be met
                handler.write(chunk)
                flushed = handler.flush()
                if body_start is None:
                    # Whatever the flush queued (headers, maybe), this chunk was queued last.
                    body_start = stream._total_write_index - len(chunk)
                queued += len(chunk)
                await flushed
    except StreamClosedError:
        pass
    if body_start is None:
        return 0
    return min(queued, max(0, stream._total_write_done_index - body_start))


async def send_zero_copy(handler: RequestHandler, path: Path, start: int, length: int) -> int:
    """Flush the headers, then `os.sendfile` the span; return the body bytes the kernel took."""
    stream = _stream(handler)
    stream.set_nodelay(True)
    try:
        await handler.flush()
    except StreamClosedError:
        return 0
    # Our own descriptor for the socket: if Tornado closes its one meanwhile, ours can never be
    # reused for another client's connection, so no byte can go to the wrong place.
    socket_fd = os.dup(stream.socket.fileno())
    sent = 0
    try:
        with path.open("rb") as source:
            while sent < length and not stream.closed():
                try:
                    count = os.sendfile(socket_fd, source.fileno(), start + sent, min(SENDFILE_BLOCK, length - sent))
                except BlockingIOError:
                    if not await _writable(socket_fd, STALLED_CLIENT_TIMEOUT):
                        break
                    continue
                except OSError:  # EPIPE, ECONNRESET: the client went away
                    break
                if count == 0:
                    break  # the file shrank under us
                sent += count
    finally:
        os.close(socket_fd)
    _account_for_bytes_sent_outside_tornado(handler, sent, length)
    return sent


async def _writable(fd: int, timeout: float) -> bool:
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    loop.add_writer(fd, lambda: ready.done() or ready.set_result(None))
    try:
        await asyncio.wait_for(ready, timeout)
        return True
    except TimeoutError:
        return False
    finally:
        loop.remove_writer(fd)


def _account_for_bytes_sent_outside_tornado(handler: RequestHandler, sent: int, length: int) -> None:
    """Tell Tornado's HTTP/1 connection the body went out, so `finish()` keeps the connection.

    The connection checks that the body matched Content-Length; the bytes did not pass through it,
    so its private counter is adjusted. A body cut short closes the connection instead: the
    response cannot be completed, and the client will see the short read.
    """
    connection = handler.request.connection
    connection._expected_content_remaining = 0
    if sent < length:
        _stream(handler).close()
