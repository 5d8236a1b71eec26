"""What a follower is told: the exact reply to each kind of message, on a real catalogue and issuer.

Links are issued into a real SQLite audit database in tmp_path, at the test's `NOW`.
"""

from __future__ import annotations

import asyncio
import datetime
import re

import pytest

from tempdl.config.settings import LimitSettings, OfferedFileConfig, Settings
from tempdl.links.catalog import Catalog, OfferedFile
from tempdl.links.issuing import IssuedLink, Issuer
from tempdl.links.tokens import LinkSigner
from tempdl.wechat.conversation import (
    HELP_HEADING,
    NOTHING_ON_OFFER,
    Conversation,
    help_text,
    keyword_listing,
    link_reply_text,
    too_many_links_text,
    welcome_text,
)
from tempdl.wechat.messages import MAX_REPLY_BYTES, IncomingMessage
from tests.support import rows, sqlite_audit

NOW = datetime.datetime(2026, 11, 30, 8, 0, tzinfo=datetime.UTC)
FOLLOWER = "oFollowerOpenId0000000000000"
SIGNER = LinkSigner(["conversation-test-key"])
FILES = (
    OfferedFileConfig("manual", "说明.pdf", ("说明书", "Manual"), description="the user manual"),
    OfferedFileConfig("setup", "setup.exe", ("setup",)),
    OfferedFileConfig("menu-only", "menu.zip", ()),
)
LISTING = "• 说明书 / Manual — the user manual\n• setup"
HELP = "发送下列关键词之一，即可获取下载链接：\nSend one of these keywords to get a download link:\n" + LISTING
LINK_REPLY = re.compile(
    "「(?P<name>[^」]+)」的下载链接，10 分钟内有效：\n"
    'Your download link for "(?P=name)", valid for 10 minutes:\n'
    r"(?P<url>https://dl\.example\.com/api/get_file/\S+)\n"
    "请在浏览器中打开（点右上角 ··· 选择“在浏览器打开”）。\n"
    'Open it in your browser \\(tap ··· then "Open in Browser"\\).'
)


@pytest.fixture(autouse=True)
def files_on_disk(tmp_path, monkeypatch):
    """FILES exist, in ./static_files (the default files_dir) and in ".": only servable files are offered."""
    monkeypatch.chdir(tmp_path)
    for folder in (tmp_path / "static_files", tmp_path):
        folder.mkdir(exist_ok=True)
        for entry in FILES:
            (folder / entry.path).write_bytes(b"x")


@pytest.fixture
def database(tmp_path):
    return tmp_path / "audit.sqlite3"


def conversation_on(audit, *, hourly: int = 0, welcome: str | None = None) -> Conversation:
    settings = Settings(
        public_url="https://dl.example.com",
        link_ttl=600,
        limits=LimitSettings(issues_per_recipient_per_hour=hourly),
    )
    return Conversation(Catalog(settings.files_dir, FILES), Issuer(settings, audit, SIGNER), welcome=welcome)


@pytest.fixture
def conversation(database):
    with sqlite_audit(database) as audit:
        yield conversation_on(audit)


def text(content: str) -> IncomingMessage:
    return IncomingMessage("gh_account", FOLLOWER, 1764489600, "text", content=content, msg_id="1")


def event(name: str, key: str = "") -> IncomingMessage:
    return IncomingMessage("gh_account", FOLLOWER, 1764489600, "event", event=name, event_key=key)


def reply(conversation: Conversation, message: IncomingMessage, now: datetime.datetime = NOW) -> str | None:
    return asyncio.run(conversation.reply_to(message, now))


def issued_files(database) -> list[tuple]:
    return [tuple(row) for row in rows(database, "SELECT id, file_id, recipient, channel FROM issuances ORDER BY id")]


@pytest.mark.parametrize("typed", ["说明书", "  MANUAL ", "ｍａｎｕａｌ"])
def test_a_keyword_gets_a_link_issued_to_the_follower(conversation, database, typed):
    answer = LINK_REPLY.fullmatch(reply(conversation, text(typed)))

    assert answer is not None and answer["name"] == "说明.pdf"
    assert SIGNER.read(answer["url"].rpartition("/")[2]).issuance_id == 1
    assert issued_files(database) == [(1, "manual", FOLLOWER, "wechat")]


@pytest.mark.parametrize(
    "message",
    [
        text("nothing on offer by this name"),
        text("menu-only"),  # offered by menu only: no keyword asks for it
        IncomingMessage("gh_account", FOLLOWER, 1764489600, "image", msg_id="2"),
    ],
)
def test_anything_else_gets_the_keyword_list_and_no_link(conversation, database, message):
    assert reply(conversation, message) == HELP
    assert issued_files(database) == []


def test_subscribing_gets_the_welcome_with_the_keyword_list(conversation, database):
    assert reply(conversation, event("subscribe")) == "欢迎关注！\nWelcome, and thank you for following!\n" + HELP
    assert issued_files(database) == []


def test_a_menu_click_gets_the_link_by_file_id_or_keyword(conversation, database):
    by_id = LINK_REPLY.fullmatch(reply(conversation, event("CLICK", "menu-only")))
    by_keyword = LINK_REPLY.fullmatch(reply(conversation, event("click", "Setup")))

    assert (by_id["name"], by_keyword["name"]) == ("menu.zip", "setup.exe")
    assert issued_files(database) == [(1, "menu-only", FOLLOWER, "wechat"), (2, "setup", FOLLOWER, "wechat")]


@pytest.mark.parametrize("key", ["", "no-such-file"])
def test_a_menu_click_for_nothing_on_offer_gets_the_keyword_list(conversation, key):
    assert reply(conversation, event("CLICK", key)) == HELP


@pytest.mark.parametrize("name", ["unsubscribe", "SCAN", "VIEW", "LOCATION"])
def test_other_events_get_no_reply(conversation, database, name):
    assert reply(conversation, event(name, "manual")) is None
    assert issued_files(database) == []


def test_a_follower_over_the_hourly_cap_is_told_when_to_come_back(database):
    with sqlite_audit(database) as audit:
        conversation = conversation_on(audit, hourly=1)
        assert LINK_REPLY.fullmatch(reply(conversation, text("setup")))
        later = NOW + datetime.timedelta(minutes=5, seconds=30)
        assert reply(conversation, text("setup"), later) == (
            "您在一小时内已获取 1 个链接，请在 55 分钟后再试。\n"
            "You have been sent 1 link in the past hour; please try again in 55 minutes."
        )
    assert issued_files(database) == [(1, "setup", FOLLOWER, "wechat")]


@pytest.mark.parametrize(
    ("cap", "wait", "expected"),
    [
        (3, 0, "您在一小时内已获取 3 个链接，请在 1 分钟后再试。\n"
         "You have been sent 3 links in the past hour; please try again in 1 minute."),
        (3, 61, "您在一小时内已获取 3 个链接，请在 2 分钟后再试。\n"
         "You have been sent 3 links in the past hour; please try again in 2 minutes."),
        (1, 7200, "您在一小时内已获取 1 个链接，请在 2 小时后再试。\n"
         "You have been sent 1 link in the past hour; please try again in 2 hours."),
    ],
)  # fmt: skip
def test_the_wait_is_said_in_whole_minutes_rounded_up(cap, wait, expected):
    assert too_many_links_text(cap, datetime.timedelta(seconds=wait)) == expected


def test_a_configured_welcome_is_said_as_it_is_or_with_the_keyword_list_in_its_place():
    files = Catalog(".", FILES).files()
    assert welcome_text("Hello!", files) == "Hello!"
    assert welcome_text("Hi.\n{keywords}\nBye.", files) == f"Hi.\n{HELP}\nBye."
    assert (
        welcome_text(None, ())
        == f"欢迎关注！\nWelcome, and thank you for following!\n{HELP_HEADING}\n{NOTHING_ON_OFFER}"
    )


def numbered(count: int) -> tuple[OfferedFile, ...]:
    return tuple(OfferedFile(f"f{n}", f"f{n}", (f"a{n}",), f"f{n}") for n in range(count))


def test_a_listing_that_does_not_fit_ends_with_how_many_more():
    """Ten six-byte lines are 69 bytes; in 50, two fit beside the 34-byte "and 8 more" line."""
    assert keyword_listing(numbered(10), 69) == "\n".join(f"• a{n}" for n in range(10))
    listing = keyword_listing(numbered(10), 50)
    assert listing == "• a0\n• a1\n…以及另外 8 项 / and 8 more"
    assert len(listing.encode()) == 48


def test_one_long_description_is_cut_rather_than_crowding_out_the_others():
    long = OfferedFile("long", "long.bin", ("long",), "long.bin", description="长" * 200)
    [line, short] = keyword_listing((long, *numbered(1)), MAX_REPLY_BYTES).split("\n")
    assert len(line.encode()) <= 300 and line.startswith("• long — 长") and line.endswith("…")
    assert short == "• a0"


def test_the_help_text_fits_a_wechat_reply_whatever_is_on_offer():
    """108 bytes of heading, then 223 of the 500 lines (1897 bytes) and the 38-byte "and 277 more"."""
    many = help_text(numbered(500))
    assert many.endswith("\n• a221\n• a222\n…以及另外 277 项 / and 277 more")
    assert len(many.encode()) == 2044 <= MAX_REPLY_BYTES
    assert help_text(()) == f"{HELP_HEADING}\n{NOTHING_ON_OFFER}"


# Voice, scenes, long names


def voice(recognition: str) -> IncomingMessage:
    return IncomingMessage("gh_account", FOLLOWER, 1764489600, "voice", msg_id="3", recognition=recognition)


def test_a_voice_message_is_matched_by_what_was_heard(conversation, database):
    answer = LINK_REPLY.fullmatch(reply(conversation, voice("说明书。")))
    assert answer is not None and answer["name"] == "说明.pdf"
    assert reply(conversation, voice("")) == HELP
    assert issued_files(database) == [(1, "manual", FOLLOWER, "wechat")]


def scenes_conversation(audit, welcome: str | None = None) -> Conversation:
    settings = Settings(public_url="https://dl.example.com", link_ttl=600)
    files = (*FILES[:2], OfferedFileConfig("menu-only", "menu.zip", (), scenes=("poster",)))
    return Conversation(Catalog(settings.files_dir, files), Issuer(settings, audit, SIGNER), welcome=welcome)


def test_a_scene_is_asked_for_by_scan_and_by_following(database):
    with sqlite_audit(database) as audit:
        conversation = scenes_conversation(audit)
        assert LINK_REPLY.fullmatch(reply(conversation, event("SCAN", "poster")))["name"] == "menu.zip"
        link, welcome = reply(conversation, event("subscribe", "qrscene_poster")).split("\n\n", 1)
        assert LINK_REPLY.fullmatch(link)["name"] == "menu.zip"
        assert welcome == "欢迎关注！\nWelcome, and thank you for following!\n" + HELP
        assert reply(conversation, event("SCAN", "qrscene_poster")) is None  # SCAN carries the bare scene
    assert [row[1] for row in issued_files(database)] == ["menu-only", "menu-only"]


def test_a_long_welcome_after_a_scene_link_is_cut_and_the_link_kept(database):
    with sqlite_audit(database) as audit:
        conversation = scenes_conversation(audit, welcome="欢迎" * 1000)
        answer = reply(conversation, event("subscribe", "qrscene_poster"))
    link, welcome = answer.split("\n\n", 1)
    assert LINK_REPLY.fullmatch(link)
    assert welcome.startswith("欢迎欢迎") and welcome.endswith("…")
    assert len(answer.encode("utf-8")) <= MAX_REPLY_BYTES


def issued(url_length: int, ttl: int = 600) -> IssuedLink:
    url = "https://dl.example.com/api/get_file/" + "t" * (url_length - 36)
    return IssuedLink(issuance_id=1, url=url, ttl=ttl, expires_at=NOW)


def offered(name: str) -> OfferedFile:
    return OfferedFile(id="f", path="f.bin", keywords=(), name=name)


def test_the_longest_configurable_name_and_a_long_link_fit_whole():
    # 255 bytes of name twice and the longest wording of a TTL under a day leave 1,288 bytes for
    # the link: a public_url of up to 1,194 bytes with the route (14) and a token (under 80).
    name = "说明" * 41 + "书_v.pdf"
    text = link_reply_text(offered(name), issued(1288, ttl=86399))
    assert f"「{name}」" in text and issued(1288).url + "\n" in text
    assert len(text.encode("utf-8")) == MAX_REPLY_BYTES


@pytest.mark.parametrize("name", ["说" * 700, "x" * 2000, "😀" * 400])
def test_a_name_too_long_for_the_reply_is_shortened_and_the_url_kept(name):
    link = issued(200)
    text = link_reply_text(offered(name), link)
    assert link.url + "\n" in text
    assert "…」的下载链接" in text and "Open it in your browser" in text
    assert MAX_REPLY_BYTES - 8 <= len(text.encode("utf-8")) <= MAX_REPLY_BYTES  # cut by whole characters


def test_a_url_that_leaves_no_room_for_the_name_drops_the_name_and_the_hint():
    link = issued(1900)
    text = link_reply_text(offered("说明.pdf"), link)
    assert text.endswith("\n" + link.url)
    assert "「…」" in text and "Open it in your browser" not in text
    assert len(text.encode("utf-8")) <= MAX_REPLY_BYTES
