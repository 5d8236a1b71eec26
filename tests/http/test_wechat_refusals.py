"""What the WeChat endpoint refuses before any reply, over real HTTP: spent handshakes, unsigned
safe-mode posts (one log line per incident), and senders that are no openid."""

from __future__ import annotations

import logging
import urllib.parse

import pytest
import tornado.tcpclient

from tests.support import FOLLOWER, fresh_nonce, rows, signed_query, text_message

pytestmark = pytest.mark.both_databases


def issuance_count(settings) -> int:
    return rows(settings.database_url, "SELECT COUNT(*) AS n FROM issuances")[0]["n"]


def warning_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("tempdl")]


# The handshake


@pytest.mark.gen_test
async def test_the_handshake_is_plain_text_with_nosniff(fetch, clock):
    query = signed_query(timestamp=str(int(clock().timestamp())), nonce=fresh_nonce(), echostr="4375120948345356249")
    response = await fetch(f"/wechat?{query}")

    assert (response.code, response.body) == (200, b"4375120948345356249")
    assert response.headers["Content-Type"] == "text/plain; charset=UTF-8"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.gen_test
async def test_a_post_replaying_the_handshake_query_is_refused(fetch, clock, settings, caplog):
    caplog.set_level(logging.WARNING)
    query = signed_query(timestamp=str(int(clock().timestamp())), nonce=fresh_nonce(), echostr="4375120948345356249")
    assert (await fetch(f"/wechat?{query}")).code == 200

    replay = await fetch(f"/wechat?{query}", method="POST", body=text_message("hello.txt"))

    assert replay.code == 403
    assert "nonce already used" in caplog.text
    assert issuance_count(settings) == 0


@pytest.mark.gen_test
async def test_the_same_handshake_twice_is_answered_twice(fetch, clock):
    query = signed_query(timestamp=str(int(clock().timestamp())), nonce=fresh_nonce(), echostr="12345")
    assert [(await fetch(f"/wechat?{query}")).code for _ in range(2)] == [200, 200]


@pytest.mark.gen_test
@pytest.mark.parametrize("echostr", ["", "x" * 129, "a b", " 123", "abc\x01", "abc\x7f", "芝麻"])
async def test_an_echostr_that_is_not_short_printable_ascii_is_a_400(fetch, clock, echostr):
    query = signed_query(timestamp=str(int(clock().timestamp())), nonce=fresh_nonce(), echostr=echostr)
    response = await fetch(f"/wechat?{query}")
    assert response.code == 400
    assert response.headers["Content-Type"] != "text/plain; charset=UTF-8"  # a refusal page, no echo


@pytest.mark.gen_test
async def test_an_echostr_of_128_characters_is_echoed(fetch, clock):
    echostr = "9" * 128
    response = await fetch(f"/wechat?{signed_query(nonce=fresh_nonce(), echostr=echostr)}")
    assert (response.code, response.body) == (200, echostr.encode())


# Unsigned safe-mode posts


@pytest.mark.gen_test
@pytest.mark.parametrize("query", ["encrypt_type=aes", "encrypt_type=aes&msg_signature=0&signature=0&nonce=1"])
async def test_an_unsigned_aes_post_is_a_403_even_when_aes_is_not_configured(fetch, settings, query):
    body = b"<xml><Encrypt><![CDATA[aGVsbG8=]]></Encrypt></xml>"
    response = await fetch(f"/wechat?{query}", method="POST", body=body)
    assert response.code == 403
    assert issuance_count(settings) == 0


@pytest.mark.gen_test
async def test_a_flood_of_unsigned_posts_writes_one_warning_a_minute(fetch, clock, caplog):
    caplog.set_level(logging.INFO)
    body = b"<xml><Encrypt><![CDATA[aGVsbG8=]]></Encrypt></xml>"
    codes = [(await fetch("/wechat?encrypt_type=aes", method="POST", body=body)).code for _ in range(20)]

    assert codes == [403] * 20
    assert warning_lines(caplog) == [
        f"event=wechat_refused request_id={caplog.records[0].getMessage().split('request_id=')[1].split()[0]} "
        'status=403 detail="safe-mode message refused: bad signature" held_back=0'
    ]
    access = [r for r in caplog.records if r.name == "tempdl.access"]
    assert len(access) == 20 and all(r.levelno == logging.INFO for r in access)

    caplog.clear()
    clock.advance(61)
    assert (await fetch("/wechat?encrypt_type=aes", method="POST", body=body)).code == 403
    [line] = warning_lines(caplog)
    assert line.endswith('status=403 detail="safe-mode message refused: bad signature" held_back=19')


@pytest.mark.gen_test
async def test_a_signed_aes_post_without_the_key_is_the_503_that_names_the_keys(fetch, clock, caplog):
    caplog.set_level(logging.ERROR)
    timestamp, nonce = str(int(clock().timestamp())), fresh_nonce()
    query = signed_query(timestamp=timestamp, nonce=nonce, encrypt_type="aes", msg_signature="0" * 40)
    body = b"<xml><Encrypt><![CDATA[aGVsbG8=]]></Encrypt></xml>"
    responses = [await fetch(f"/wechat?{query}", method="POST", body=body) for _ in range(3)]

    assert [r.code for r in responses] == [503, 503, 503]
    assert b"wechat.encoding_aes_key" in responses[0].body
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [
        "safe-mode message refused: encrypt_type=aes but wechat.encoding_aes_key/app_id are not set "
        "(0 more like it in the last minute)"
    ]


# Senders


@pytest.mark.gen_test
@pytest.mark.parametrize("sender", ["o" * 65, "o" * 60_000, "oyORnuP8q7ou2gfYjqLz SIWZf0rs", "oyORnuP8<q7ou", "о" * 28])
async def test_a_sender_that_is_no_openid_is_a_400(wechat_post, settings, caplog, sender):
    caplog.set_level(logging.WARNING)
    response = await wechat_post(text_message("hello.txt", sender=sender))

    assert response.code == 400
    assert "FromUserName is not an openid" in caplog.text
    assert sender not in caplog.text
    assert issuance_count(settings) == 0


@pytest.mark.gen_test
async def test_an_openid_of_64_characters_is_served(wechat_post, settings):
    response = await wechat_post(text_message("hello.txt", sender="o_-" + "A1" * 30 + "z"))
    assert response.code == 200
    assert issuance_count(settings) == 1


@pytest.mark.gen_test
@pytest.mark.parametrize("openid", ["x" * 65, "a\u2028b", "a b"])
async def test_an_openid_query_argument_that_is_no_openid_is_a_400(wechat_post, settings, openid):
    response = await wechat_post(text_message("hello.txt"), openid=openid)
    assert response.code == 400
    assert issuance_count(settings) == 0


@pytest.mark.gen_test
async def test_the_openid_query_argument_wechat_sends_is_accepted(wechat_post, settings):
    response = await wechat_post(text_message("hello.txt"), openid=FOLLOWER)
    assert response.code == 200
    assert urllib.parse.quote(FOLLOWER) not in str(response.headers)


# Log lines


@pytest.mark.gen_test
async def test_line_breaking_characters_sent_raw_stay_inside_one_log_line(http_server, http_port, caplog):
    caplog.set_level(logging.INFO)
    stream = await tornado.tcpclient.TCPClient().connect("127.0.0.1", http_port)
    await stream.write(b"GET /wechat\xc2\x85event=forged\xe2\x80\xa8x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    head = await stream.read_until(b"\r\n")
    stream.close()

    assert head.startswith(b"HTTP/1.1 404")
    [line] = [r.getMessage() for r in caplog.records if r.name == "tempdl.access"]
    assert not any(c in line for c in "\x85\u2028\n\r")
    # Tornado reads the request line as Latin-1: the bytes become Â, U+0085, â, U+0080, ¨.
    assert line.startswith('event=request method=GET path="/wechatÂ\\u0085event=forgedâ\\u0080¨x" status=404 ')
