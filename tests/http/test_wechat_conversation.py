"""What followers are told, over real signed HTTP: keywords, help, events, and the reply's limits."""

from __future__ import annotations

import logging

import pytest

from tests.support import ACCOUNT, FOLLOWER, reply_content, rows, text_message, wechat_event, wechat_message

pytestmark = pytest.mark.both_databases

FILES = """
[[files]]
id = "installer"
path = "InstMsiW.exe"
keywords = ["Open Sesame", "芝麻开门"]
description = "Windows Installer 3.1 (Windows XP)"

[[files]]
id = "hello"
path = "hello.txt"
keywords = ["hello"]
description = "A greeting; CDATA ends with ]]> but this survives"

[[files]]
id = "manual"
path = "说明.pdf"
keywords = []
"""


@pytest.fixture
def config_text() -> str:
    return FILES


def issued_files(settings) -> list[str]:
    return [row["file_id"] for row in rows(settings.database_url, "SELECT file_id FROM issuances ORDER BY id")]


def assert_help(content: str) -> None:
    assert "发送下列关键词" in content and "Send one of these keywords" in content
    assert "• Open Sesame / 芝麻开门 — Windows Installer 3.1 (Windows XP)" in content
    assert "• hello — A greeting; CDATA ends with ]]> but this survives" in content
    assert "manual" not in content  # no keyword: offered by menu only
    assert "/api/get_file/" not in content


# Keywords


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "typed",
    [
        "Open Sesame",
        "  open sesame\n",
        "OPEN   SESAME",
        "ＯＰＥＮ　ＳＥＳＡＭＥ",  # full-width letters and an ideographic space, as Chinese IMEs type them
        "Ｏｐｅｎ Ｓｅｓａｍｅ",
        "芝麻开门",
    ],
)
async def test_keyword_matches_after_trimming_case_folding_and_nfkc(wechat_post, settings, typed):
    response = await wechat_post(text_message(typed))

    assert response.code == 200
    content = reply_content(response.body)
    assert "「InstMsiW.exe」的下载链接" in content and "/api/get_file/" in content
    assert issued_files(settings) == ["installer"]


@pytest.mark.gen_test
@pytest.mark.parametrize("typed", ["Open", "Sesame Open", "help", "?", "installer", "manual"])
async def test_unknown_text_gets_the_bilingual_help(wechat_post, settings, typed):
    response = await wechat_post(text_message(typed))

    assert response.code == 200
    assert response.headers["Content-Type"].startswith("application/xml")
    assert_help(reply_content(response.body))
    assert issued_files(settings) == []


@pytest.mark.gen_test
async def test_cdata_end_inside_the_reply_text_survives_the_xml(wechat_post):
    response = await wechat_post(text_message("nothing"))

    assert b"]]]]><![CDATA[>" in response.body  # split across two CDATA sections
    assert "CDATA ends with ]]> but this survives" in reply_content(response.body)


@pytest.mark.gen_test
@pytest.mark.parametrize("msg_type", ["image", "voice", "video", "shortvideo", "location", "link", "file"])
async def test_non_text_messages_get_the_help(wechat_post, settings, msg_type):
    response = await wechat_post(wechat_message(msg_type))

    assert response.code == 200
    assert_help(reply_content(response.body))
    assert issued_files(settings) == []


# Events


@pytest.mark.gen_test
async def test_subscribe_gets_the_default_welcome_listing_the_keywords(wechat_post, settings):
    response = await wechat_post(wechat_event("subscribe"))

    content = reply_content(response.body)
    assert content.startswith("欢迎关注！\nWelcome")
    assert_help(content)
    assert issued_files(settings) == []


WELCOME_WITH_LIST = '[wechat]\nwelcome = "你好！Hello!\\n{keywords}\\n— tempdl"\n\n'
WELCOME_ALONE = '[wechat]\nwelcome = "Just hello."\n\n'


@pytest.mark.gen_test
@pytest.mark.parametrize("config_text", [WELCOME_WITH_LIST + FILES])
async def test_configured_welcome_gets_the_keyword_list_in_place_of_the_placeholder(wechat_post):
    content = reply_content((await wechat_post(wechat_event("subscribe"))).body)

    assert content.startswith("你好！Hello!\n发送下列关键词之一")
    assert content.endswith("\n— tempdl")
    assert_help(content)


@pytest.mark.gen_test
@pytest.mark.parametrize("config_text", [WELCOME_ALONE + FILES])
async def test_configured_welcome_without_placeholder_is_sent_as_it_is(wechat_post):
    content = reply_content((await wechat_post(wechat_event("subscribe"))).body)

    assert content == "Just hello."


@pytest.mark.gen_test
@pytest.mark.parametrize(
    ("event_key", "file_id"),
    [("installer", "installer"), ("Open Sesame", "installer"), ("ＨＥＬＬＯ", "hello"), ("manual", "manual")],
)
async def test_menu_click_naming_a_file_id_or_keyword_gets_the_link(wechat_post, settings, event_key, file_id):
    response = await wechat_post(wechat_event("CLICK", event_key=event_key))

    content = reply_content(response.body)
    assert "/api/get_file/" in content
    assert issued_files(settings) == [file_id]
    recipient = rows(settings.database_url, "SELECT recipient, channel FROM issuances")[0]
    assert (recipient["recipient"], recipient["channel"]) == (FOLLOWER, "wechat")


@pytest.mark.gen_test
async def test_menu_click_with_an_unknown_key_gets_the_help(wechat_post, settings):
    response = await wechat_post(wechat_event("CLICK", event_key="V1001_TODAY_MUSIC"))

    assert_help(reply_content(response.body))
    assert issued_files(settings) == []


@pytest.mark.gen_test
@pytest.mark.parametrize(
    ("event", "event_key"),
    [
        ("unsubscribe", ""),
        ("SCAN", "123123"),
        ("VIEW", "https://example.com/"),
        ("LOCATION", ""),
        ("TEMPLATESENDJOBFINISH", ""),
        ("view_miniprogram", "pages/index"),
    ],
)
async def test_other_events_get_success(wechat_post, settings, event, event_key):
    response = await wechat_post(wechat_event(event, event_key=event_key))

    assert response.code == 200
    assert response.body == b"success"
    assert issued_files(settings) == []


# The reply's limits and malformed input


def many_files(count: int) -> str:
    tables = []
    for number in range(count):
        keyword = f"keyword number {number} " + "长" * 30
        description = f"description {number}: " + "很长的说明文字" * 20
        tables.append(f'[[files]]\nid = "f{number}"\npath = "hello.txt"\nkeywords = ["{keyword}"]\n')
        tables[-1] += f'description = "{description}"\n'
    return "\n".join(tables)


@pytest.mark.gen_test
@pytest.mark.parametrize("config_text", [many_files(60)])
async def test_help_with_many_long_keywords_stays_within_2047_bytes(wechat_post, config_text):
    for body in (text_message("no such keyword"), wechat_event("subscribe")):
        response = await wechat_post(body)

        content = reply_content(response.body)
        assert len(content.encode("utf-8")) <= 2047
        assert "• keyword number 0 " in content
        last_line = content.rsplit("\n", 1)[1]
        assert last_line.startswith("…以及另外 ") and last_line.endswith(" more")
        shown = content.count("\n• ")
        assert f"and {60 - shown} more" in last_line


@pytest.mark.gen_test
@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            f"<xml><ToUserName>{ACCOUNT}</ToUserName><FromUserName>{FOLLOWER}</FromUserName>"
            "<CreateTime>1714036504</CreateTime><Content>hello</Content></xml>",
            "missing MsgType",
        ),
        (
            f"<xml><FromUserName>{FOLLOWER}</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType></xml>",
            "missing ToUserName",
        ),
        (text_message("hello").replace(b"1714036504", b"yesterday"), "CreateTime is not a number"),
        (b"<xml><ToUserName>unclosed", "unparsable XML"),
        (b"\x00\x01", "unparsable XML"),
    ],
)
async def test_a_missing_or_bad_field_is_a_logged_400(wechat_post, settings, caplog, body, reason):
    caplog.set_level(logging.WARNING)
    response = await wechat_post(body)

    assert response.code == 400
    assert any(reason in record.getMessage() and "status=400" in record.getMessage() for record in caplog.records)
    assert FOLLOWER not in caplog.text
    assert issued_files(settings) == []


@pytest.mark.gen_test
async def test_forbidden_control_character_in_an_event_is_stripped(wechat_post, settings):
    response = await wechat_post(wechat_event("CLICK", event_key="hel\x1dlo\x08"))

    assert "/api/get_file/" in reply_content(response.body)
    assert issued_files(settings) == ["hello"]
