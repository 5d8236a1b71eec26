"""The WeChat endpoint over real HTTP: handshake, keyword → link → download → audit rows."""

from __future__ import annotations

import io
import re

import pytest
import untangle

from tests.support import ACCOUNT, FOLLOWER, link_path, rows, signed_query, text_message


def reply_content(body: bytes) -> str:
    document = untangle.parse(io.BytesIO(body))
    assert document.xml.ToUserName.cdata == FOLLOWER
    assert document.xml.FromUserName.cdata == ACCOUNT
    assert document.xml.MsgType.cdata == "text"
    return document.xml.Content.cdata


@pytest.mark.gen_test
async def test_handshake_with_wechats_published_example(fetch):
    query = (
        "signature=f464b24fc39322e44b38aa78f5edd27bd1441696"
        "&timestamp=1714036504&nonce=1514711492&echostr=4375120948345356249"
    )
    response = await fetch(f"/wechat?{query}")
    assert response.code == 200
    assert response.body == b"4375120948345356249"
    assert response.headers["Content-Type"].startswith("text/plain")


@pytest.mark.gen_test
async def test_handshake_with_a_wrong_signature_is_forbidden(fetch):
    query = "signature=f464b24fc39322e44b38aa78f5edd27bd1441697&timestamp=1714036504&nonce=1514711492&echostr=1"
    response = await fetch(f"/wechat?{query}")
    assert response.code == 403
    assert response.body != b"1"


@pytest.mark.gen_test
async def test_keyword_gets_a_link_that_downloads_the_exact_file(fetch, settings, files_dir, inflight):
    response = await fetch(f"/wechat?{signed_query(openid=FOLLOWER)}", method="POST", body=text_message("Open Sesame"))
    assert response.code == 200
    # Without [[files]], every file is offered under its own name; this test's config has none.
    assert response.body == b"success"

    response = await fetch(f"/wechat?{signed_query()}", method="POST", body=text_message("  INSTMSIW.EXE "))
    content = reply_content(response.body)
    assert "10 分钟" in content and "10 minutes" in content
    url = re.search(r"http://\S+", content).group(0)
    assert len(link_path(url).rsplit("/", 1)[1]) < 80
    assert FOLLOWER not in url

    download = await fetch(link_path(url))
    assert download.code == 200
    assert download.body == (files_dir / "InstMsiW.exe").read_bytes()
    assert await inflight.wait_idle(5)  # the response can arrive before the attempt row is closed

    issuance = rows(settings.database_url, "SELECT * FROM issuances")
    assert [(r["file_id"], r["recipient"], r["channel"]) for r in issuance] == [("InstMsiW.exe", FOLLOWER, "wechat")]
    attempt = rows(settings.database_url, "SELECT * FROM download_attempts")
    assert [(r["issuance_id"], r["outcome"], r["http_status"], r["bytes_sent"]) for r in attempt] == [
        (issuance[0]["id"], "ok", 200, 300_000)
    ]
    assert attempt[0]["finished_at"] is not None


@pytest.mark.gen_test
async def test_bad_signature_is_refused_and_issues_nothing(fetch, settings):
    query = signed_query(token="not-the-token")
    response = await fetch(f"/wechat?{query}", method="POST", body=text_message("hello.txt"))
    assert response.code == 403
    assert rows(settings.database_url, "SELECT COUNT(*) AS n FROM issuances")[0]["n"] == 0


@pytest.mark.gen_test
@pytest.mark.parametrize("body", [b"", b"not xml", b"<xml><ToUserName>x</ToUserName></xml>", b"<other/>"])
async def test_unparsable_or_incomplete_xml_is_a_400(fetch, body):
    response = await fetch(f"/wechat?{signed_query()}", method="POST", body=body, allow_nonstandard_methods=True)
    assert response.code == 400


@pytest.mark.gen_test
async def test_body_over_64_kib_is_a_413(fetch):
    body = text_message("x" * (65 * 1024))
    response = await fetch(f"/wechat?{signed_query()}", method="POST", body=body)
    assert response.code == 413


@pytest.mark.gen_test
async def test_forbidden_control_characters_are_stripped_before_parsing(fetch):
    response = await fetch(f"/wechat?{signed_query()}", method="POST", body=text_message("hello\x1d.txt"))
    assert response.code == 200
    assert "/api/get_file/" in reply_content(response.body)
