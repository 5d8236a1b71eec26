"""Sending a file's bytes after the headers, counting exactly what reached the socket.

`bytes_sent` in the audit must be what really went out, including downloads cut short. Tornado's
IOStream counts the bytes it has handed to the kernel (`_total_write_done_index`); we read that
counter once the headers are flushed and again at the end, so the difference is exactly the body
bytes written, whether the client read everything or went away mid-chunk.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from tornado.iostream import IOStream, StreamClosedError
from tornado.web import RequestHandler

CHUNK_SIZE = 64 * 1024


def _bytes_written(stream: IOStream) -> int:
    # Private, but the only exact figure Tornado has; pinned by requirements (tornado<7) and by
    # tests that cut connections mid-file and compare with what the client received.
    return stream._total_write_done_index


async def send_chunks(
    handler: RequestHandler,
    path: Path,
    start: int,
    length: int,
    throttle: Callable[[int], Awaitable[None]] | None = None,
) -> int:
    """Write `length` bytes of `path` from `start`, flushing each chunk (back-pressure).

    Headers must already be flushed. Returns the body bytes that reached the socket; a client
    that goes away ends the loop quietly, as StaticFileHandler does.
    """
    stream = handler.request.connection.stream
    before = _bytes_written(stream)
    remaining = length
    try:
        with path.open("rb") as source:
            source.seek(start)
            while remaining > 0:
                size = min(CHUNK_SIZE, remaining)
                if throttle is not None:
                    await throttle(size)
                chunk = source.read(size)
                if not chunk:
                    break  # the file shrank under us; Content-Length can no longer be met
                remaining -= len(chunk)
                handler.write(chunk)
                await handler.flush()
    except StreamClosedError:
        pass
    return _bytes_written(stream) - before
