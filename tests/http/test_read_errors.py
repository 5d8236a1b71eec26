"""A served file that fails its reads, for real: the status, the bytes, and an `error` row.

Tests run as root, for whom no permission bit makes a file unreadable, so the fault here is one
root cannot read past either: the file shrinks after the catalogue stat'ed it, and `pread` or
`sendfile` comes back short of the Content-Length the answer promised.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import socket

import pytest

from tempdl.links.catalog import Catalog

pytestmark = pytest.mark.both_databases

BIG = 32 * 1024 * 1024  # more than the kernel buffers on both ends hold


@pytest.fixture
def shrink_after_stat(monkeypatch):
    """`shrink_after_stat(name)`: the stat the Gate serves `name` by is followed by truncating it.

    Only the stat the Gate admits a download by (the one whose size the answer promises), not
    the catalogue's other stats (keyword matches, listings).
    """
    locate = Catalog.locate

    def arm(name: str) -> None:
        def locate_then_truncate(self, offered):
            found = locate(self, offered)
            if (
                found is not None
                and found[0].name == name
                and "admit" in (frame.function for frame in inspect.stack()[1:4])
            ):
                os.truncate(found[0], 0)
                monkeypatch.setattr(Catalog, "locate", locate)
            return found

        monkeypatch.setattr(Catalog, "locate", locate_then_truncate)

    return arm


@pytest.mark.gen_test
async def test_a_small_file_that_fails_before_the_headers_is_500_and_error(
    fetch, issue_link, files_dir, shrink_after_stat, audit_rows
):
    (files_dir / "hello.txt").write_bytes(b"x" * 4096)
    path = await issue_link("hello.txt")
    shrink_after_stat("hello.txt")
    page = await fetch(path)
    assert page.code == 500
    assert "无法读取" in page.body.decode() and "cannot read this file" in page.body.decode()
    assert "Content-Range" not in page.headers and page.headers["Content-Type"].startswith("text/html")
    (files_dir / "hello.txt").write_bytes(b"x" * 4096)
    shrink_after_stat("hello.txt")
    answer = await fetch(path, headers={"Accept": "application/json"})
    assert answer.code == 500 and json.loads(answer.body)["reason"] == "unreadable"
    found = await audit_rows("SELECT outcome, http_status, bytes_sent, finished_at FROM download_attempts ORDER BY id")
    assert [tuple(row)[:3] for row in found] == [("error", 500, 0), ("error", 500, 0)]
    assert all(row["finished_at"] is not None for row in found)


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize("config_text", ["sendfile = true\n", "sendfile = false\n"], ids=["zero-copy", "chunks"])
async def test_a_large_file_that_fails_after_the_headers_is_cut_and_error_with_its_bytes(
    http_server, http_port, issue_link, files_dir, audit_rows, settings
):
    content = os.urandom(BIG)
    (files_dir / "InstMsiW.exe").write_bytes(content)
    path = await issue_link("InstMsiW.exe", max_downloads=1)
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: a small window
    slow.connect(("127.0.0.1", http_port))
    slow.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=slow)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and f"Content-Length: {BIG}".encode() in head
    first = await reader.readexactly(100_000)
    os.truncate(files_dir / "InstMsiW.exe", 0)  # the disk under the download fails it
    rest = await reader.read()  # up to the end of the stream: the server cut it
    body = first + rest
    writer.close()
    assert len(body) < BIG and body == content[: len(body)]
    [row] = await audit_rows("SELECT outcome, http_status, bytes_sent, finished_at FROM download_attempts")
    assert (row["outcome"], row["http_status"], row["bytes_sent"]) == ("error", 200, len(body))
    assert row["finished_at"] is not None  # closed at once, not left open until a restart
    # The failed download did not use up the link's one download.
    (files_dir / "InstMsiW.exe").write_bytes(content)
    reader, writer = await asyncio.open_connection("127.0.0.1", http_port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    again = await reader.read()
    writer.close()
    assert again.startswith(b"HTTP/1.1 200") and again.endswith(content)
