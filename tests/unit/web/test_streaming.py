"""Sending a file's bytes over a real socket pair: the bytes that arrive, and the count returned.

The handler here is the part of a `RequestHandler` the senders use (`write`, `flush`, the
connection's stream), writing to a real Tornado `IOStream`; the first flush carries a header
block, as a response's does, so the count must leave it out.
"""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest
from tornado.iostream import IOStream, PipeIOStream

from tempdl.web.streaming import ReadFailed, send_chunks, send_zero_copy, zero_copy_possible
from tempdl.web.throttle import RateLimiter
from tests.support import sample_bytes

HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n"
CONTENT = sample_bytes(40_000, seed=21)  # well under a socket pair's buffer: no reader needed


class Handler:
    """`write` queues, `flush` sends the queue (the head first, once) to the stream."""

    def __init__(self, stream: IOStream) -> None:
        self.request = SimpleNamespace(connection=SimpleNamespace(stream=stream, _expected_content_remaining=5000))
        self._queued = [HEAD]

    def write(self, chunk: bytes) -> None:
        self._queued.append(chunk)

    def flush(self):
        data, self._queued = b"".join(self._queued), []
        return self.request.connection.stream.write(data)


@pytest.fixture
def source(tmp_path) -> Path:
    path = tmp_path / "file.bin"
    path.write_bytes(CONTENT)
    return path


def received(peer: socket.socket, size: int) -> bytes:
    peer.settimeout(5)
    data = b""
    while len(data) < size and (chunk := peer.recv(65536)):
        data += chunk
    return data


def run_sender(send) -> tuple[int, Handler, socket.socket]:
    """Run `send(handler)` with a handler on one end of a socket pair; return the count and the other end."""
    ours, peer = socket.socketpair()

    async def scenario() -> tuple[int, Handler]:
        handler = Handler(IOStream(ours))
        return await send(handler), handler

    sent, handler = asyncio.run(scenario())
    return sent, handler, peer


def test_chunks_send_exactly_the_span_and_count_only_the_body(source):
    progress: list[int] = []
    sent, _, peer = run_sender(
        lambda handler: send_chunks(handler, source, 1000, 5000, chunk_size=1024, progress=progress.append)
    )
    assert sent == 5000
    assert received(peer, len(HEAD) + 5000) == HEAD + CONTENT[1000:6000]
    assert progress == [1024, 2048, 3072, 4096, 5000]


def test_chunks_book_every_byte_with_each_limiter(source):
    still = RateLimiter(2**30, clock=lambda: 0.0)  # a clock that never moves: the bookings add up
    sent, _, peer = run_sender(lambda handler: send_chunks(handler, source, 0, 4096, chunk_size=1024, limiters=[still]))
    assert sent == 4096 and received(peer, len(HEAD) + 4096) == HEAD + CONTENT[:4096]
    assert still.reserve(0) == 4096 / 2**30


def test_a_file_shorter_than_asked_sends_what_there_is_then_fails_with_the_count(source):
    with pytest.raises(ReadFailed) as failed:
        run_sender(lambda handler: send_chunks(handler, source, 39_000, 5000, chunk_size=4096))
    assert (failed.value.sent, failed.value.headers_sent) == (1000, True)


def test_a_file_that_fails_its_first_read_leaves_the_headers_unsent(tmp_path):
    directory = os.open(tmp_path, os.O_RDONLY)  # opens, but every read fails (EISDIR)
    ours, peer = socket.socketpair()

    async def scenario() -> int:
        return await send_chunks(Handler(IOStream(ours)), directory, 0, 5000)

    with pytest.raises(ReadFailed) as failed:
        asyncio.run(scenario())
    assert (failed.value.sent, failed.value.headers_sent) == (0, False)
    peer.setblocking(False)
    with pytest.raises(BlockingIOError):
        peer.recv(1)  # not even the head went out
    os.close(directory)


def test_a_client_gone_before_the_first_byte_counts_zero(source):
    ours, peer = socket.socketpair()
    peer.close()

    async def scenario() -> int:
        return await send_chunks(Handler(IOStream(ours)), source, 0, 5000)

    assert asyncio.run(scenario()) == 0


def test_zero_copy_sends_the_span_and_tells_the_connection_the_body_is_done(source):
    progress: list[int] = []
    sent, handler, peer = run_sender(lambda handler: send_zero_copy(handler, source, 2000, 30_000, progress.append))
    assert sent == 30_000
    assert received(peer, len(HEAD) + 30_000) == HEAD + CONTENT[2000:32_000]
    assert progress == [30_000]
    assert handler.request.connection._expected_content_remaining == 0
    assert not handler.request.connection.stream.closed()  # whole: the connection may be kept


def test_zero_copy_of_a_file_shorter_than_asked_closes_the_connection(source):
    ours, peer = socket.socketpair()
    handler = Handler(IOStream(ours))
    with pytest.raises(ReadFailed) as failed:
        asyncio.run(send_zero_copy(handler, source, 35_000, 10_000))
    assert (failed.value.sent, failed.value.headers_sent) == (5000, True)
    assert received(peer, len(HEAD) + 10_000) == HEAD + CONTENT[35_000:]  # then the end of the stream
    assert handler.request.connection.stream.closed()  # Content-Length cannot be met


def test_zero_copy_of_a_file_that_cannot_be_read_fails_before_the_headers(tmp_path):
    directory = os.open(tmp_path, os.O_RDONLY)
    ours, _peer = socket.socketpair()
    handler = Handler(IOStream(ours))
    with pytest.raises(ReadFailed) as failed:
        asyncio.run(send_zero_copy(handler, directory, 0, 10_000))
    assert (failed.value.sent, failed.value.headers_sent) == (0, False)
    assert not handler.request.connection.stream.closed()  # free to carry an error page
    os.close(directory)


def test_zero_copy_needs_a_plain_socket_stream():
    ours, peer = socket.socketpair()
    reading, writing = os.pipe()

    async def check() -> tuple[bool, bool]:
        on_socket = Handler(IOStream(ours))
        on_pipe = Handler(PipeIOStream(writing))
        return zero_copy_possible(on_socket), zero_copy_possible(on_pipe)

    try:
        assert asyncio.run(check()) == (True, False)
    finally:
        peer.close()
        os.close(reading)
