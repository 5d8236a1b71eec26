"""The WeChat endpoint over real HTTP: handshake, keyword → link → download → audit rows."""

from __future__ import annotations

import re

import pytest

from tests.support import FOLLOWER, link_path, reply_content, rows, text_message

pytestmark = pytest.mark.both_databases


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
async def test_keyword_gets_a_link_that_downloads_the_exact_file(fetch, wechat_post, audit_rows, files_dir):
    response = await wechat_post(text_message("Open Sesame"), openid=FOLLOWER)
    assert response.code == 200
    # Without [[files]], every file is offered under its own name; this test's config has none,
    # so "Open Sesame" is an unknown keyword and gets the help text.
    assert "InstMsiW.exe" in reply_content(response.body)

    response = await wechat_post(text_message("  INSTMSIW.EXE ", msg_id="2"))
    content = reply_content(response.body)
    assert "10 分钟" in content and "10 minutes" in content
    url = re.search(r"http://\S+", content).group(0)
    assert len(link_path(url).rsplit("/", 1)[1]) < 80
    assert FOLLOWER not in url

    download = await fetch(link_path(url))
    assert download.code == 200
    assert download.body == (files_dir / "InstMsiW.exe").read_bytes()

    issuance = await audit_rows("SELECT * FROM issuances")
    assert [(r["file_id"], r["recipient"], r["channel"]) for r in issuance] == [("InstMsiW.exe", FOLLOWER, "wechat")]
    attempt = await audit_rows("SELECT * FROM download_attempts")
    assert [(r["issuance_id"], r["outcome"], r["http_status"], r["bytes_sent"]) for r in attempt] == [
        (issuance[0]["id"], "ok", 200, 300_000)
    ]
    assert attempt[0]["finished_at"] is not None


@pytest.mark.gen_test
async def test_bad_signature_is_refused_and_issues_nothing(wechat_post, settings):
    response = await wechat_post(text_message("hello.txt"), token="not-the-token")
    assert response.code == 403
    assert rows(settings.database_url, "SELECT COUNT(*) AS n FROM issuances")[0]["n"] == 0


@pytest.mark.gen_test
@pytest.mark.parametrize("body", [b"", b"not xml", b"<xml><ToUserName>x</ToUserName></xml>", b"<other/>"])
async def test_unparsable_or_incomplete_xml_is_a_400(wechat_post, body):
    response = await wechat_post(body)
    assert response.code == 400


@pytest.mark.gen_test
async def test_body_over_64_kib_is_a_413(wechat_post):
    response = await wechat_post(text_message("x" * (65 * 1024)))
    assert response.code == 413


@pytest.mark.gen_test
async def test_forbidden_control_characters_are_stripped_before_parsing(wechat_post):
    response = await wechat_post(text_message("hello\x1d.txt"))
    assert response.code == 200
    assert "/api/get_file/" in reply_content(response.body)
