"""A request body over 64 KiB is a 413 with a status line on every route: before a byte of it is
read when `Content-Length` says so, the moment a chunked one crosses the limit otherwise. On the
download route it also leaves its audit row. Over a raw socket, as such a client would send it."""

from __future__ import annotations

import pytest

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
