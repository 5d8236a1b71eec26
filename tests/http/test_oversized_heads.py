"""A request head over 16 KiB gets a status line (431, or 414 for the URL), never a dropped
connection; on the download route it also leaves its audit row. Over a raw socket, as a
client that sends such a request would."""

from __future__ import annotations

import pytest
from tornado.iostream import StreamClosedError
from tornado.tcpclient import TCPClient

KIB = 1024


async def raw_exchange(port: int, request: bytes) -> bytes:
    stream = await TCPClient().connect("127.0.0.1", port)
    await stream.write(request)
    try:
        return await stream.read_until_close()
    except StreamClosedError:
        return b""


def request(path: str, *headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: t", "User-Agent: raw-test", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.gen_test(timeout=20)
async def test_a_20_kib_header_is_a_431(http_server, http_port, audit_rows):
    answer = await raw_exchange(http_port, request("/healthz", "X-Padding: " + "a" * (20 * KIB)))
    assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert answer.endswith(b"The request's header fields are too large.\n")
    assert await audit_rows("SELECT * FROM download_attempts") == []  # not the download route


@pytest.mark.gen_test(timeout=20)
async def test_a_1_mb_download_url_is_a_414_with_its_row(http_server, http_port, audit_rows):
    answer = await raw_exchange(http_port, request("/api/get_file/" + "A" * 1_000_000, "X-Real-IP: 203.0.113.4"))
    assert answer.startswith(b"HTTP/1.1 414 URI Too Long\r\n")
    assert b"\r\nConnection: close\r\n" in answer
    [row] = await audit_rows("SELECT * FROM download_attempts")
    assert (row["outcome"], row["http_status"], row["client_ip"], row["user_agent"], row["issuance_id"]) == (
        "bad",
        414,
        "203.0.113.4",
        "raw-test",
        None,
    )


@pytest.mark.gen_test(timeout=20)
async def test_a_big_head_on_the_download_route_is_a_431_with_its_row(http_server, http_port, audit_rows):
    answer = await raw_exchange(http_port, request("/api/get_file/x", "Cookie: " + "c" * (17 * KIB)))
    assert answer.startswith(b"HTTP/1.1 431 ")
    [row] = await audit_rows("SELECT outcome, http_status FROM download_attempts")
    assert (row["outcome"], row["http_status"]) == ("bad", 431)


@pytest.mark.gen_test(timeout=20)
async def test_a_head_just_under_the_limit_is_served(http_server, http_port):
    answer = await raw_exchange(http_port, request("/healthz", "Connection: close", "X-Padding: " + "a" * (15 * KIB)))
    assert answer.startswith(b"HTTP/1.1 200 ")
