"""`max_connections` against a real server with a low `ulimit -n`: idle connections beyond the
cap are closed at once, the event loop never spins on EMFILE, a connection within the cap is
answered as before, and each incident is one log line, not one per try."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import pytest

from tests.live_server import LiveServer
from tests.support import wait_until

OPEN_FILES = 128  # default max_connections: 128 minus a reserve of 64
FLOOD = 120
HEALTH = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"


@pytest.fixture
def server(tmp_path) -> Iterator[LiveServer]:
    live = LiveServer.with_live_files(tmp_path)
    yield live
    live.stop()


def health_on(sock: socket.socket) -> bytes:
    """A health check on a connection kept alive; the whole answer (it has a 2-byte body)."""
    sock.sendall(HEALTH)
    answer = b""
    while not answer.endswith(b"\r\n\r\nok"):
        chunk = sock.recv(4096)
        assert chunk, f"connection closed after {answer!r}"
        answer += chunk
    return answer


def closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(5)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


@contextlib.contextmanager
def idle_connections(port: int, count: int) -> Iterator[list[socket.socket]]:
    sockets = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(count)]
    try:
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def test_over_the_cap_new_connections_are_closed_at_once(server):
    server.start(open_files=OPEN_FILES)
    assert "max_connections=64 " in server.log()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as held:
        assert health_on(held).startswith(b"HTTP/1.1 200 ")
        with idle_connections(server.port, FLOOD) as flood:
            wait_until(
                lambda: server.log().count("event=connections_refused cause=full") == 1,
                timeout=10,
                what="the incident line",
                detail=server.log,
            )
            # the newest connections are the ones over the cap: closed without a byte
            assert closed_by_server(flood[-1]) and closed_by_server(flood[FLOOD - 10])
            assert health_on(held).startswith(b"HTTP/1.1 200 ")
        wait_until(lambda: "event=connections_accepted_again cause=full" in server.log(), timeout=10, what="recovery")
    assert server.request("GET", "/healthz").status == 200
    log = server.log()
    assert log.count("event=connections_refused") == 1
    assert "Traceback" not in log and "EMFILE" not in log


def test_out_of_descriptors_pauses_accepting_instead_of_spinning(server):
    server.start(open_files=OPEN_FILES, env={"TEMPDL_MAX_CONNECTIONS": "1000"})  # a cap the limit cannot hold
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as held:
        assert health_on(held).startswith(b"HTTP/1.1 200 ")
        with idle_connections(server.port, FLOOD + 30):
            wait_until(
                lambda: "event=connections_refused cause=out_of_descriptors" in server.log(),
                timeout=10,
                what="the EMFILE incident line",
                detail=server.log,
            )
            for _ in range(5):  # answered within the cap, while accepting is paused and retried
                assert health_on(held).startswith(b"HTTP/1.1 200 ")
        wait_until(
            lambda: "event=connections_accepted_again cause=out_of_descriptors" in server.log(),
            timeout=10,
            what="recovery",
        )
    log = server.log()
    assert log.count("event=connections_refused") == 1
    assert "Traceback" not in log and len(log) < 20_000
