"""Limits under a burst: requests that arrive together must not all slip past a cap.

A live server with slow (rate-limited) downloads, so they overlap; requests are written on
several connections back to back, so the server starts them all in the same turn of its event
loop, as a download manager or a link shared in a group chat makes it do.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from tests.live_server import LiveServer, quote_token

SLOW = "[limits]\nrate_per_download = 1000000\nmax_concurrent_downloads = {cap}\n"


@contextmanager
def burst(server: LiveServer, path: str, count: int, headers: str = "") -> Iterator[list[int]]:
    """Send `count` GETs at once; yield their statuses while the downloads are still running."""
    with ExitStack() as stack:
        sockets = [
            stack.enter_context(socket.create_connection(("127.0.0.1", server.port), timeout=10)) for _ in range(count)
        ]
        request = f"GET {path} HTTP/1.1\r\nHost: t\r\n{headers}\r\n".encode()
        for sock in sockets:
            sock.sendall(request)
        server.download_requests += count
        yield [status_of(sock) for sock in sockets]


def status_of(sock: socket.socket) -> int:
    head = b""
    while b"\r\n" not in head:
        chunk = sock.recv(1024)
        if not chunk:
            break
        head += chunk
    return int(head.split(b" ", 2)[1])


@pytest.fixture
def server(tmp_path: Path, request: pytest.FixtureRequest):
    live = LiveServer.with_live_files(tmp_path, extra_config=SLOW.format(cap=getattr(request, "param", 0))).start()
    yield live
    live.stop()


@pytest.mark.parametrize("server", [1], indirect=True)
def test_a_second_download_while_one_streams_is_503(server):
    """The cap works when requests come one after another."""
    token = server.issue("large")
    with burst(server, quote_token(token), 1) as first:
        assert first == [200]
        response = server.request("GET", quote_token(token))
        assert response.status == 503 and response.headers["Retry-After"]


@pytest.mark.parametrize("server", [1], indirect=True)
def test_a_burst_of_downloads_respects_max_concurrent_downloads(server):
    token = server.issue("large")
    with burst(server, quote_token(token), 6) as statuses:
        assert sorted(statuses) == [200, 503, 503, 503, 503, 503]


def test_a_burst_of_ranged_downloads_respects_max_downloads(server):
    """A running request counts the span it asked for, so five 'Range: bytes=1-' at once are one download."""
    token = server.issue("large", "--max-downloads", "1")
    with burst(server, quote_token(token), 5, headers="Range: bytes=1-\r\n") as statuses:
        assert sorted(statuses) == [206, 410, 410, 410, 410]
