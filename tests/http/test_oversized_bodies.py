"""A request body over 64 KiB is a 413 with a status line on every route: before a byte of it is
read when `Content-Length` says so, the moment a chunked one crosses the limit otherwise; on the
WeChat path only once the query's signature checks (else 403). On the
download route it also leaves its audit row. Over a raw socket, as such a client would send it."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import socket
import time

import pytest
from tornado.tcpclient import TCPClient

from tempdl.web import oversized
from tests.http.test_oversized_heads import raw_exchange
from tests.support import reply_content, signed_query, text_message

KIB = 1024
TOO_LARGE = b"HTTP/1.1 413 Content Too Large\r\n"


def post_head(path: str, *headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: t", "User-Agent: raw-test", "Content-Type: text/xml", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunked(body: bytes, piece: int = 16 * KIB) -> bytes:
    parts = [b"%x\r\n%s\r\n" % (len(body[i : i + piece]), body[i : i + piece]) for i in range(0, len(body), piece)]
    return b"".join(parts) + b"0\r\n\r\n"


def signed_wechat_path(clock) -> str:
    return "/wechat?" + signed_query(timestamp=str(int(clock().timestamp())), nonce="2718281828")


@pytest.mark.gen_test(timeout=20)
async def test_a_declared_body_over_64_kib_is_a_413_before_it_is_sent(http_server, http_port, clock):
    # Only the head goes out: the answer cannot have waited for the 70 KiB it announces.
    answer = await raw_exchange(http_port, post_head(signed_wechat_path(clock), f"Content-Length: {70 * KIB}"))
    assert answer.startswith(TOO_LARGE)
    assert b"\r\nConnection: close\r\n" in answer
    assert answer.endswith("请求内容过大（上限 64 KiB）。\nThe request body is too large (64 KiB at most).\n".encode())


@pytest.mark.gen_test(timeout=20)
async def test_a_chunked_body_is_a_413_once_it_crosses_64_kib(http_server, http_port, clock, audit_rows):
    message = text_message("x" * (80 * KIB))
    head = post_head(signed_wechat_path(clock), "Transfer-Encoding: chunked")
    answer = await raw_exchange(http_port, head + chunked(message))
    assert answer.startswith(TOO_LARGE)
    assert await audit_rows("SELECT * FROM issuances") == []


@pytest.mark.gen_test(timeout=20)
@pytest.mark.parametrize("query", ["", "?signature=0&timestamp=1&nonce=2", "forged"])
@pytest.mark.parametrize("framing", ["declared", "chunked"])
async def test_an_unsigned_message_over_64_kib_is_a_403_not_a_413(http_server, http_port, clock, query, framing):
    """SPEC checks the signature before anything else, the body's size included."""
    if query == "forged":  # a real signature of another token
        query = "?" + signed_query(timestamp=str(int(clock().timestamp())), nonce="1", token="not-ours")
    if framing == "declared":
        request = post_head("/wechat" + query, f"Content-Length: {70 * KIB}")
    else:
        request = post_head("/wechat" + query, "Transfer-Encoding: chunked") + chunked(b"x" * (80 * KIB))
    answer = await raw_exchange(http_port, request)
    assert answer.startswith(b"HTTP/1.1 403 Forbidden\r\n")
    assert b"\r\nConnection: close\r\n" in answer
    assert answer.endswith(b"The request is not signed by WeChat.\n")


@pytest.mark.gen_test(timeout=20)
async def test_a_chunked_message_under_the_limit_is_answered_with_a_link(http_server, http_port, clock):
    head = post_head(signed_wechat_path(clock), "Transfer-Encoding: chunked", "Connection: close")
    answer = await raw_exchange(http_port, head + chunked(text_message("hello.txt"), piece=50))
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert "/api/get_file/" in reply_content(answer.partition(b"\r\n\r\n")[2])


@pytest.mark.gen_test(timeout=20)
async def test_a_download_request_with_a_big_body_is_a_413_with_its_row(http_server, http_port, audit_rows):
    head = post_head("/api/get_file/x", f"Content-Length: {100 * KIB}").replace(b"POST ", b"GET ", 1)
    answer = await raw_exchange(http_port, head)
    assert answer.startswith(TOO_LARGE)
    [row] = await audit_rows("SELECT outcome, http_status, method FROM download_attempts")
    assert (row["outcome"], row["http_status"], row["method"]) == ("bad", 413, "GET")


@pytest.mark.gen_test(timeout=20)
@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "multipart/form-data; boundary=b"])
async def test_a_form_typed_body_tornado_cannot_read_is_still_a_403_unless_signed(fetch, clock, content_type):
    """Tornado parses such a body as a form before the handler runs, and refuses it with 400:
    the signature must still be checked first."""
    headers = {"Content-Type": content_type, "Content-Encoding": "gzip"}  # a form Tornado will not unzip
    unsigned = await fetch("/wechat?signature=0&timestamp=1&nonce=2", method="POST", body=b"a=1", headers=headers)
    signed = await fetch(signed_wechat_path(clock), method="POST", body=b"a=1", headers=headers)
    assert (unsigned.code, signed.code) == (403, 400)


# --- lingering close -----------------------------------------------------------------------------


def _post_whole_body_then_read(port: int, path: str, body: bytes) -> tuple[int, bytes]:
    """What Python's http.client (and requests) do: send all of the body, only then read."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        connection.request("POST", path, body=body, headers={"Content-Type": "application/octet-stream"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize("path", ["wechat", "/api/get_file/x"])
async def test_a_client_that_sends_its_whole_body_before_reading_still_gets_the_413(
    http_server, http_port, clock, path
):
    """20 MB is far more than the sockets' buffers hold: closing at once, with it unread, made the
    kernel reset the connection and the client saw ConnectionResetError instead of the answer."""
    path = signed_wechat_path(clock) if path == "wechat" else path
    body = os.urandom(20 * 1024 * KIB)
    loop = asyncio.get_running_loop()
    status, text = await loop.run_in_executor(None, _post_whole_body_then_read, http_port, path, body)
    assert status == 413
    assert text.endswith(b"The request body is too large (64 KiB at most).\n")


def _send_for(port: int, seconds: float) -> tuple[bytes, float]:
    """Announce 1 GB, then keep sending for `seconds`: (the answer read, when the server cut us off)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        client.sendall(post_head("/upload", f"Content-Length: {10**9}"))
        started = time.monotonic()
        try:
            while time.monotonic() - started < seconds:
                client.sendall(b"x" * (64 * KIB))
        except OSError:  # reset once the server closed its end
            pass
        cut_after = time.monotonic() - started
        answer = b""
        with contextlib.suppress(OSError):
            while chunk := client.recv(64 * KIB):
                answer += chunk
        return answer, cut_after


@pytest.mark.gen_test(timeout=30)
async def test_lingering_ends_after_linger_seconds_however_much_the_client_sends(http_server, http_port, monkeypatch):
    monkeypatch.setattr(oversized, "LINGER_SECONDS", 0.5)
    earlier = set(oversized._LINGERING)  # other tests' loops may have left theirs
    loop = asyncio.get_running_loop()
    answer, cut_after = await loop.run_in_executor(None, _send_for, http_port, 10.0)
    assert answer.startswith(TOO_LARGE)
    assert cut_after < 5.0  # not the 10 s the client wanted to go on for
    assert not oversized._LINGERING - earlier


@pytest.mark.gen_test(timeout=30)
async def test_a_quiet_client_is_closed_after_linger_idle_seconds(http_server, http_port, monkeypatch):
    monkeypatch.setattr(oversized, "LINGER_IDLE_SECONDS", 0.2)
    earlier = set(oversized._LINGERING)  # other tests' loops may have left theirs
    stream = await TCPClient().connect("127.0.0.1", http_port)
    await stream.write(post_head("/upload", f"Content-Length: {10**9}"))
    answer = await stream.read_until_close()  # the FIN comes right after the answer
    assert answer.startswith(TOO_LARGE)
    assert len(oversized._LINGERING - earlier) == 1  # the server's side still reads, half-open
    for _ in range(100):
        if not oversized._LINGERING - earlier:
            break
        await asyncio.sleep(0.05)
    assert not oversized._LINGERING - earlier
    stream.close()
