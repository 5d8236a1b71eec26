"""Both ways of sending a body — zero-copy sendfile and chunks through Tornado, throttled or not —
send identical bytes for whole files and ranges, and count them the same way."""

from __future__ import annotations

import asyncio
import re
import socket

import pytest

BIG = 300_000


@pytest.fixture(
    params=[
        "sendfile = true",
        "sendfile = false",
        "[limits]\nrate_per_download = 50000000\ntotal_rate = 80000000",
    ],
    ids=["zero-copy", "chunks", "throttled"],
)
def config_text(request) -> str:
    return request.param


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "header, first, last",
    [
        (None, 0, BIG - 1),
        ("bytes=70000-", 70000, BIG - 1),
        ("bytes=5-200004", 5, 200004),
        ("bytes=-65537", BIG - 65537, BIG - 1),
    ],
)
async def test_identical_bytes_on_every_path(fetch, issue_link, files_dir, audit_rows, header, first, last):
    path = await issue_link("InstMsiW.exe")
    response = await fetch(path, headers={"Range": header} if header else {})
    assert response.code == (206 if header else 200)
    assert response.body == (files_dir / "InstMsiW.exe").read_bytes()[first : last + 1]
    [row] = await audit_rows("SELECT outcome, bytes_sent FROM download_attempts")
    assert tuple(row) == ("ok", last - first + 1)


@pytest.mark.gen_test
async def test_keep_alive_connection_serves_two_downloads_in_a_row(http_server, http_port, issue_link, files_dir):
    content = (files_dir / "InstMsiW.exe").read_bytes()
    path = await issue_link("InstMsiW.exe")
    reader, writer = await asyncio.open_connection("127.0.0.1", http_port)
    for header in ("", "Range: bytes=100-\r\n"):
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n{header}\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
        body = await reader.readexactly(length)
        assert body == (content if not header else content[100:])
    writer.close()


@pytest.mark.gen_test
async def test_a_connection_is_never_left_corked(http_server, http_port, issue_link):
    """The zero-copy path corks the socket (full segments only) and must uncork it: a corked
    keep-alive connection would hold the next small answer back for 200 ms."""
    path = await issue_link("InstMsiW.exe")
    reader, writer = await asyncio.open_connection("127.0.0.1", http_port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    await reader.readexactly(int(re.search(rb"Content-Length: (\d+)", head).group(1)))
    [connection] = http_server._connections
    server_side = connection.stream.socket
    assert server_side.getsockopt(socket.IPPROTO_TCP, socket.TCP_CORK) == 0
    writer.close()
