"""The client's address over real HTTP: audit `client_ip` and the admin lockout believe proxy
headers from `trusted_proxies` only. The test client at 127.0.0.1 is the trusted proxy; a
connection from 127.0.0.2 (still loopback on Linux) is a client that reached tempdl directly."""

from __future__ import annotations

import base64
import json

import pytest
from tornado.iostream import StreamClosedError
from tornado.tcpclient import TCPClient

from tempdl.web.handlers import basic_auth

PASSWORD = "proxy-test-password"
ALICE_IP, BOB_IP = "203.0.113.10", "203.0.113.20"


@pytest.fixture
def config_text() -> str:
    return f'trusted_proxies = ["127.0.0.1"]\n[admin]\npassword = "{PASSWORD}"\n'


def basic(password: str) -> str:
    return "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()


async def raw_get(port: int, path: str, headers: dict[str, str], *, source_ip: str) -> bytes:
    """One request over a socket bound to `source_ip`; the whole answer as bytes."""
    stream = await TCPClient().connect("127.0.0.1", port, source_ip=source_ip)
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    await stream.write(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{head}\r\n".encode())
    try:
        return await stream.read_until_close()
    except StreamClosedError:
        return b""


@pytest.mark.gen_test
async def test_audit_client_ip_comes_from_the_trusted_proxy(fetch, issue_link, audit_rows):
    link = await issue_link("hello.txt")
    assert (await fetch(link, headers={"X-Real-IP": ALICE_IP})).code == 200
    forwarded = {"X-Forwarded-For": f"6.6.6.6, {BOB_IP}, 127.0.0.1", "X-Real-IP": "7.7.7.7"}
    assert (await fetch(link, headers=forwarded)).code == 200
    rows = await audit_rows("SELECT client_ip FROM download_attempts ORDER BY id")
    assert [row["client_ip"] for row in rows] == [ALICE_IP, BOB_IP]


@pytest.mark.gen_test
async def test_headers_from_an_untrusted_source_are_ignored(http_server, http_port, issue_link, audit_rows):
    link = await issue_link("hello.txt")
    answer = await raw_get(http_port, link, {"X-Real-IP": ALICE_IP, "X-Forwarded-For": BOB_IP}, source_ip="127.0.0.2")
    assert answer.startswith(b"HTTP/1.1 200 ")
    [row] = await audit_rows("SELECT client_ip FROM download_attempts")
    assert row["client_ip"] == "127.0.0.2"


@pytest.mark.gen_test
async def test_lockout_is_keyed_on_the_real_client(fetch, caplog):
    alice, bob = {"X-Real-IP": ALICE_IP}, {"X-Real-IP": BOB_IP}
    for _ in range(basic_auth.FAILED_LOGINS_ALLOWED):
        assert (await fetch("/admin/", headers={**alice, "Authorization": basic("guess")})).code == 401
    # the eleventh try, and the right password, are not even tested for Alice
    for password in ("another guess", PASSWORD):
        response = await fetch("/admin/stats.json", headers={**alice, "Authorization": basic(password)})
        assert response.code == 429 and json.loads(response.body)["reason"] == "too_many_tries"
        assert "WWW-Authenticate" not in response.headers
    assert (await fetch("/admin/", headers={**bob, "Authorization": basic(PASSWORD)})).code == 200
    assert f"event=admin_login_blocked ip={ALICE_IP}" in caplog.text


@pytest.mark.gen_test
async def test_an_untrusted_source_cannot_rotate_addresses_to_dodge_the_lockout(http_server, http_port):
    for number in range(basic_auth.FAILED_LOGINS_ALLOWED):
        forged = {"X-Real-IP": f"198.51.100.{number}", "Authorization": basic("guess")}
        assert (await raw_get(http_port, "/admin/", forged, source_ip="127.0.0.2")).startswith(b"HTTP/1.1 401 ")
    fresh = {"X-Real-IP": "198.51.100.99", "Authorization": basic(PASSWORD)}
    assert (await raw_get(http_port, "/admin/", fresh, source_ip="127.0.0.2")).startswith(b"HTTP/1.1 429 ")
