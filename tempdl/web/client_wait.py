"""Waiting for a client to take more bytes, and giving up on one that stalls or crawls.

Both ways of sending (`tempdl.web.streaming`) wait here: for a Tornado flush, or for the socket
to become writable again after `os.sendfile` filled it. While waiting, the client is looked at
every LOOK_INTERVAL: one that reads nothing for STALLED_CLIENT_TIMEOUT, or less than the floor of
`tempdl.web.pace`, is dropped, so it cannot hold a download slot for ever.
"""

from __future__ import annotations

import asyncio
import fcntl
import struct
import termios
from collections.abc import Awaitable, Callable

from tornado.iostream import IOStream, StreamClosedError

from tempdl.web.pace import ReadingPace

STALLED_CLIENT_TIMEOUT = 60.0  # seconds a client may read nothing before we give up on it
LOOK_INTERVAL = 1.0  # seconds between looks at the client while we wait for it


async def flushed_or_stalled(flushed: Awaitable[None], stream: IOStream, pace: ReadingPace) -> None:
    """Wait for a flush; a client that reads nothing for STALLED_CLIENT_TIMEOUT, or too little
    (`tempdl.web.pace`), is disconnected.

    Without this, a client that never reads would hold its connection (and a download slot)
    forever; memory stays bounded either way, since we write one chunk at a time.
    """
    if isinstance(flushed, asyncio.Future) and flushed.done():
        return flushed.result()  # the kernel took it all at once (small files): nothing to watch
    # Tornado keeps handing bytes to the kernel while we wait: its count is read at each look.
    if not await _wait_unless_stalled(
        asyncio.ensure_future(flushed), stream, pace, lambda: stream._total_write_done_index
    ):
        stream.close()
        raise StreamClosedError()


def constant(value: int) -> Callable[[], int]:
    """The bytes handed to the kernel so far, frozen: they do not change while a write waits."""
    return lambda: value


async def writable(fd: int, stream: IOStream, pace: ReadingPace, handed: Callable[[], int]) -> bool:
    """Wait until the socket takes more bytes; False when the client stalls or the stream closed."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    loop.add_writer(fd, _resolve, ready)
    try:
        return await _wait_unless_stalled(ready, stream, pace, handed)
    finally:
        loop.remove_writer(fd)


async def _wait_unless_stalled(
    future: asyncio.Future, stream: IOStream, pace: ReadingPace, handed: Callable[[], int]
) -> bool:
    """Wait for `future`; False once the stream closed or the client stopped reading, or reads
    below the floor of `pace`.

    "Stopped reading" means the kernel's send queue did not shrink for STALLED_CLIENT_TIMEOUT
    seconds. What the client took is what was `handed` to the kernel less what still waits in
    its queue. Looked at every LOOK_INTERVAL, which also notices a stream Tornado closed
    (shutdown, idle timeout) while our duplicated descriptor kept the socket open.
    """
    still_for = 0.0
    queued = _unsent_bytes(stream)
    while True:
        try:
            await asyncio.wait_for(asyncio.shield(future), LOOK_INTERVAL)
            return True
        except TimeoutError:
            if stream.closed():
                return False
            now_queued = _unsent_bytes(stream)
            shrank = now_queued is not None and queued is not None and now_queued < queued
            still_for = 0.0 if shrank else still_for + LOOK_INTERVAL
            queued = now_queued
            if still_for >= STALLED_CLIENT_TIMEOUT or pace.too_slow(handed() - (now_queued or 0)):
                return False


def _unsent_bytes(stream: IOStream) -> int | None:
    """Bytes still in the kernel's send queue (Linux SIOCOUTQ); None where that is unknown."""
    try:
        answer = fcntl.ioctl(stream.socket.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    except (OSError, AttributeError, ValueError):
        return None
    return struct.unpack("i", answer)[0]


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)
