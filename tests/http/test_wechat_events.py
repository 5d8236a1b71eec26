"""Events, voice, poster scenes and folded keywords over real signed HTTP: who gets which link, once."""

from __future__ import annotations

import io
import re

import pytest
import untangle

from tests.support import ACCOUNT, FOLLOWER, link_path, reply_content, rows, text_message, wechat_event

pytestmark = pytest.mark.both_databases

LONG_NAME = "说明" * 41 + "书_v.pdf"
assert len(LONG_NAME.encode("utf-8")) == 255  # 255 bytes of UTF-8: the most `name` may have

FILES = f"""
[[files]]
id = "installer"
path = "InstMsiW.exe"
keywords = ["Open Sesame", "芝麻开门"]
scenes = ["poster-installer"]

[[files]]
id = "hello"
path = "hello.txt"
keywords = ["hello"]
scenes = ["flyer-hello"]

[[files]]
id = "manual"
path = "说明.pdf"
keywords = ["manual"]
name = "{LONG_NAME}"
"""


@pytest.fixture
def config_text() -> str:
    return FILES


def issued_files(settings) -> list[str]:
    return [row["file_id"] for row in rows(settings.database_url, "SELECT file_id FROM issuances ORDER BY id")]


def link_in(content: str) -> str:
    return re.search(r"http://\S+", content).group(0)


def location_event(create_time: int = 1714036504) -> bytes:
    """What WeChat sends whenever a follower with location reporting opens the chat."""
    return (
        f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{FOLLOWER}]]></FromUserName>"
        f"<CreateTime>{create_time}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        "<Event><![CDATA[LOCATION]]></Event><Latitude>23.137466</Latitude><Longitude>113.352425</Longitude>"
        "<Precision>119.385040</Precision></xml>"
    ).encode()


def voice_message(recognition: str | None, msg_id: str = "1234567890123456") -> bytes:
    heard = "" if recognition is None else f"<Recognition><![CDATA[{recognition}]]></Recognition>"
    return (
        f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{FOLLOWER}]]></FromUserName>"
        "<CreateTime>1714036504</CreateTime><MsgType><![CDATA[voice]]></MsgType>"
        f"<MediaId><![CDATA[media_id]]></MediaId><Format><![CDATA[amr]]></Format>{heard}<MsgId>{msg_id}</MsgId></xml>"
    ).encode()


def scancode_waitmsg(scan_result: str) -> bytes:
    return (
        f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{FOLLOWER}]]></FromUserName>"
        "<CreateTime>1714036504</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        "<Event><![CDATA[scancode_waitmsg]]></Event><EventKey><![CDATA[scan_button]]></EventKey>"
        "<ScanCodeInfo><ScanType><![CDATA[qrcode]]></ScanType>"
        f"<ScanResult><![CDATA[{scan_result}]]></ScanResult></ScanCodeInfo></xml>"
    ).encode()


# Two events of one second


@pytest.mark.gen_test
async def test_location_then_click_in_the_same_second_gets_the_link(wechat_post, settings):
    location = await wechat_post(location_event())
    click = await wechat_post(wechat_event("CLICK", event_key="installer"))

    assert (location.code, location.body) == (200, b"success")
    assert "/api/get_file/" in reply_content(click.body)
    assert issued_files(settings) == ["installer"]


@pytest.mark.gen_test
async def test_two_clicks_in_the_same_second_get_their_own_files(wechat_post, settings, fetch, files_dir):
    first = reply_content((await wechat_post(wechat_event("CLICK", event_key="installer"))).body)
    second = reply_content((await wechat_post(wechat_event("CLICK", event_key="hello"))).body)

    assert link_in(first) != link_in(second)
    assert issued_files(settings) == ["installer", "hello"]
    download = await fetch(link_path(link_in(second)))
    assert download.body == (files_dir / "hello.txt").read_bytes()


@pytest.mark.gen_test
async def test_location_then_subscribe_in_the_same_second_gets_the_welcome(wechat_post, settings):
    await wechat_post(location_event())
    welcome = reply_content((await wechat_post(wechat_event("subscribe"))).body)

    assert welcome.startswith("欢迎关注！\nWelcome, and thank you for following!\n")
    assert issued_files(settings) == []


@pytest.mark.gen_test
async def test_a_byte_identical_event_resend_shares_one_answer(wechat_post, settings):
    click = wechat_event("CLICK", event_key="hello")
    first, second = await wechat_post(click), await wechat_post(click)

    assert reply_content(first.body) == reply_content(second.body)
    assert issued_files(settings) == ["hello"]


# Voice


@pytest.mark.gen_test
@pytest.mark.parametrize("heard", ["芝麻开门。", "芝麻开门！", "Open Sesame."])
async def test_a_voice_message_matches_by_its_recognition(wechat_post, settings, heard):
    content = reply_content((await wechat_post(voice_message(heard))).body)
    assert "/api/get_file/" in content
    assert issued_files(settings) == ["installer"]


@pytest.mark.gen_test
@pytest.mark.parametrize("heard", [None, "", "今天天气怎么样"])
async def test_a_voice_message_without_a_keyword_gets_the_help(wechat_post, settings, heard):
    content = reply_content((await wechat_post(voice_message(heard))).body)
    assert "Send one of these keywords" in content
    assert issued_files(settings) == []


# Keywords as followers type them


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "typed",
    [
        "「芝麻开门」",
        "“芝麻开门”",
        "芝麻开门！",
        "芝麻开门。",
        "Open Sesame.",
        "芝\u200b麻开门",
        "\ufeff芝麻开门",
        "芝麻开门\ufe0f",
    ],
)
async def test_keywords_wrapped_as_followers_type_them_get_the_link(wechat_post, settings, typed):
    content = reply_content((await wechat_post(text_message(typed))).body)
    assert "/api/get_file/" in content
    assert issued_files(settings) == ["installer"]


# Poster QR codes


@pytest.mark.gen_test
async def test_scanning_a_poster_gets_its_file(wechat_post, settings, fetch, files_dir):
    content = reply_content((await wechat_post(wechat_event("SCAN", event_key="poster-installer"))).body)

    download = await fetch(link_path(link_in(content)))
    assert download.body == (files_dir / "InstMsiW.exe").read_bytes()
    assert issued_files(settings) == ["installer"]


@pytest.mark.gen_test
async def test_following_by_a_poster_gets_the_link_and_the_welcome_in_one_reply(wechat_post, settings):
    response = await wechat_post(wechat_event("subscribe", event_key="qrscene_flyer-hello"))
    content = reply_content(response.body)

    link_text, welcome = content.split("\n\n", 1)
    assert '"hello.txt"' in link_text and "/api/get_file/" in link_text
    assert welcome.startswith("欢迎关注！\nWelcome, and thank you for following!\n")
    assert "• hello" in welcome
    assert len(content.encode("utf-8")) <= 2047
    assert issued_files(settings) == ["hello"]


@pytest.mark.gen_test
async def test_a_scanner_menu_button_reading_a_scene_gets_its_file(wechat_post, settings):
    content = reply_content((await wechat_post(scancode_waitmsg("flyer-hello"))).body)
    assert '"hello.txt"' in content and "/api/get_file/" in content
    assert issued_files(settings) == ["hello"]


@pytest.mark.gen_test
async def test_unknown_scenes_issue_nothing(wechat_post, settings):
    scan = await wechat_post(wechat_event("SCAN", event_key="poster-gone"))
    follow = await wechat_post(wechat_event("subscribe", event_key="qrscene_poster-gone", create_time=1714036505))
    menu = await wechat_post(scancode_waitmsg("https://example.com/not-ours"))

    assert scan.body == b"success"
    assert reply_content(follow.body).startswith("欢迎关注！")
    assert "Send one of these keywords" in reply_content(menu.body)
    assert issued_files(settings) == []


# Long names


@pytest.mark.gen_test
async def test_the_longest_name_allowed_leaves_the_url_whole(wechat_post, settings, fetch, files_dir):
    response = await wechat_post(wechat_event("CLICK", event_key="manual"))
    content = untangle.parse(io.BytesIO(response.body)).xml.Content.cdata

    assert len(content.encode("utf-8")) <= 2047
    assert f"「{LONG_NAME}」" in content
    download = await fetch(link_path(link_in(content)))
    assert download.code == 200
    assert download.body == (files_dir / "说明.pdf").read_bytes()
