"""The server's log never holds a secret: no signing key, no token (whole or part), no openid.

Operators ship logs to places with wider access than the audit database. So this test runs a real
server at its default INFO level, drives every path it has, the odd ones included (tampered,
expired, revoked, near-miss URLs, malformed requests, a client that hangs up), stops it with
SIGTERM as an init system does, and searches everything it wrote on stdout and stderr.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import pytest

from tempdl.web.log_filter import MALFORMED_MESSAGE, MalformedRequestFilter
from tests.live_server import WECHAT_TOKEN, LiveServer, quote_token

OPENID = "oLOGsecretOpenId7Qx2wZ9kP4vT"  # the shape of a real one: 28 characters
ACCOUNT = "gh_logtest0001"


def message(content: str, *, sender: str = OPENID, msg_id: str = "9000000000000001", extra: str = "") -> bytes:
    return (
        f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{sender}]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId>{extra}</xml>"
    ).encode()


def secret_fragments(token: str) -> list[str]:
    """A token and the parts of it that would still be worth stealing: its signature and halves."""
    signature = token.rpartition(".")[2]
    return [token, signature, signature[: len(signature) // 2], signature[len(signature) // 2 :]]


class Exercise:
    """Drives one server through every path, remembering each secret it handed out or was sent."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.tokens: list[str] = []
        self.statuses: set[int] = set()

    def expect(self, status: int, method: str, path: str, **kwargs) -> bytes:
        response = self.server.request(method, path, **kwargs)
        assert response.status == status, (method, path[:60], response.status)
        self.statuses.add(status)
        return response.body

    def issue(self, file_id: str, *args: str) -> str:
        token = self.server.issue(file_id, *args)
        self.tokens.append(token)
        return token

    def wechat(self) -> str:
        """Handshakes and messages, signed and not, with the openid in the query and the XML."""
        server = self.server
        self.expect(200, "GET", f"/wechat?{server.wechat_query(echostr='8812', openid=OPENID)}")
        self.expect(403, "GET", f"/wechat?signature=0&timestamp=1&nonce=2&echostr=3&openid={OPENID}")
        reply = self.expect(200, "POST", f"/wechat?{server.wechat_query(openid=OPENID)}", body=message("small"))
        token = re.search(rb"/api/get_file/([\w.-]+)", reply).group(1).decode()
        self.tokens.append(token)
        self.expect(200, "POST", f"/wechat?{server.wechat_query(openid=OPENID)}", body=message("no such file"))
        forged = server.wechat_query(token="not-the-token", openid=OPENID)
        self.expect(403, "POST", f"/wechat?{forged}", body=message("small", msg_id="2"))
        self.expect(400, "POST", f"/wechat?{server.wechat_query(openid=OPENID)}", body=message("small")[:-9])
        doubled = message("small", msg_id="3", extra=f"<FromUserName>{OPENID}</FromUserName>")
        self.expect(400, "POST", f"/wechat?{server.wechat_query(openid=OPENID)}", body=doubled)
        self.expect(413, "POST", f"/wechat?{server.wechat_query(openid=OPENID)}", body=message("x" * 70_000))
        return token

    def downloads(self) -> None:
        """Served, ranged, conditional, previewed, refused, tampered, near-miss and hung-up downloads."""
        ok = self.issue("small", "--to", OPENID, "--ttl", "600")
        big = self.issue("big", "--to", OPENID, "--ttl", "600")
        large = self.issue("large", "--to", OPENID, "--ttl", "600")
        self.expect(200, "GET", quote_token(ok))
        self.expect(200, "HEAD", quote_token(ok))
        self.expect(200, "GET", quote_token(ok) + f"?openid={OPENID}")
        self.expect(206, "GET", quote_token(big), headers={"Range": "bytes=10-99"})
        etag = self.server.request("HEAD", quote_token(big)).headers["Etag"]
        self.expect(304, "GET", quote_token(big), headers={"If-None-Match": etag})
        self.expect(416, "GET", quote_token(big), headers={"Range": "bytes=999999999-"})
        self.expect(200, "GET", quote_token(big), headers={"User-Agent": "Mozilla/5.0 MicroMessenger/8.0"})  # landing
        tampered = ok[:-1] + ("A" if ok[-1] != "A" else "B")
        self.expect(403, "GET", quote_token(tampered), headers={"Accept": "application/json"})
        self.expect(403, "GET", quote_token(ok[:-5]))
        self.expect(403, "GET", quote_token(ok) + "%FF")
        for near_miss in (f"//api/get_file/{ok}", f"/API/GET_FILE/{ok}", f"/api/get_file/{ok}/", f"/{ok}"):
            self.expect(404, "GET", near_miss)
        self.server.download_and_hang_up(quote_token(large), headers={}, keep=100_000, reset=True)
        self.server.cli("revoke", big)
        self.expect(410, "GET", quote_token(big))

    def malformed(self, token: str) -> None:
        """Requests Tornado itself refuses, with a token and the openid where they must not echo."""
        for request in (
            f"GET /api/get_file/{token} HTTP/1.1\r\nHost: t\r\nReferer: http://x/api/get_file/{token}\x01\r\n\r\n",
            f"GET /api/get_file/{token} HTTP/1.1\r\nHost: t\r\nX-Openid: {OPENID}\r\n folded\r\n\r\n",
            f"GET /api/get_file/{token} HTTP/9.9\r\nHost: t\r\n\r\n",
            f"POST /wechat?openid={OPENID} HTTP/1.1\r\nHost: t\r\nContent-Length: x{OPENID}\r\n\r\n",
        ):
            reply = self.server.raw(request.encode("latin-1"))
            assert reply == b"" or reply.startswith(b"HTTP/1.1 400"), reply[:40]


@pytest.fixture
def server(tmp_path: Path):
    live = LiveServer.with_live_files(tmp_path).start()
    yield live
    live.stop()


def test_the_log_holds_no_key_no_token_and_no_openid(server: LiveServer):
    exercise = Exercise(server)
    exercise.expect(200, "GET", "/healthz")
    exercise.expect(404, "GET", f"/nothing-here?openid={OPENID}")
    wechat_token = exercise.wechat()
    exercise.downloads()
    exercise.malformed(exercise.tokens[-1])
    server.expire(wechat_token)
    exercise.expect(410, "GET", quote_token(wechat_token))  # expired
    exercise.expect(410, "GET", quote_token(wechat_token), headers={"Range": "bytes=100-"})  # resume refused
    assert exercise.statuses >= {200, 206, 304, 400, 403, 404, 410, 413, 416}

    assert server.stop() == 0
    log = server.log()
    assert "event=stopped audit=committed" in log
    # The requests were logged, just without secrets: the oversized ones by the HTTP layer.
    assert log.count("tempdl.access") + log.count("event=request_too_large") >= 30

    keys = (server.root / "data" / "secret.key").read_text().split()
    secrets = {
        "secret key": keys,
        "WeChat token": [WECHAT_TOKEN],
        "openid": [OPENID, OPENID[:14], OPENID[14:]],
        "token": [fragment for token in exercise.tokens for fragment in secret_fragments(token)],
    }
    for kind, values in secrets.items():
        for value in values:
            assert value not in log, f"{kind} {value[:4]}… is in the server log"


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        ("Invalid header value 'http://x/api/get_file/MQ.aw2t7Q.sig\\x01'", "Invalid header value"),
        ("Only integer Content-Length is allowed: x" + OPENID, "Only integer Content-Length is allowed"),
        ('Invalid Host header: "evil"', "Invalid Host header"),
        ("header line cannot start with whitespace, folding not supported", None),
        ("", "str"),
    ],
)
def test_tornado_malformed_request_lines_keep_only_the_kind_of_error(error, kind):
    record = logging.LogRecord("tornado.general", logging.INFO, "", 0, MALFORMED_MESSAGE, ("1.2.3.4", error), None)
    assert MalformedRequestFilter().filter(record)
    assert record.getMessage() == f"Malformed HTTP message from 1.2.3.4: {kind or error}"
