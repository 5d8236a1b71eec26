"""Reading WeChat's XML: the fields that tell events apart, voice, scans, and senders."""

from __future__ import annotations

import pytest

from tempdl.wechat.messages import MalformedMessage, parse_message, truncate_utf8

HEAD = (
    "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>"
    "<FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName><CreateTime>1714036504</CreateTime>"
)


def event(name: str, key: str = "", extra: str = "") -> bytes:
    return (
        HEAD + f"<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[{name}]]></Event>"
        f"<EventKey><![CDATA[{key}]]></EventKey>{extra}</xml>"
    ).encode()


def test_events_of_one_second_have_their_own_retry_keys():
    keys = {
        parse_message(event("LOCATION")).retry_key,
        parse_message(event("CLICK", "a")).retry_key,
        parse_message(event("CLICK", "b")).retry_key,
        parse_message(event("subscribe")).retry_key,
        parse_message(event("MASSSENDJOBFINISH", extra="<MsgID>1000001625</MsgID>")).retry_key,
        parse_message(event("MASSSENDJOBFINISH", extra="<MsgID>1000001626</MsgID>")).retry_key,
    }
    assert len(keys) == 6


def test_a_byte_identical_resend_has_the_same_retry_key():
    assert parse_message(event("CLICK", "a")).retry_key == parse_message(event("CLICK", "a")).retry_key


def test_a_text_message_is_keyed_by_sender_and_msg_id():
    body = HEAD + "<MsgType>text</MsgType><Content>x</Content><MsgId>42</MsgId></xml>"
    assert parse_message(body.encode()).retry_key == ("oyORnuP8q7ou2gfYjqLzSIWZf0rs", "42")


def test_voice_recognition_and_scan_results_are_read():
    voice = HEAD + "<MsgType>voice</MsgType><Recognition><![CDATA[芝麻开门。]]></Recognition><MsgId>1</MsgId></xml>"
    assert parse_message(voice.encode()).recognition == "芝麻开门。"
    scan = event(
        "scancode_waitmsg",
        "button",
        "<ScanCodeInfo><ScanType>qrcode</ScanType><ScanResult>poster</ScanResult></ScanCodeInfo>",
    )
    assert parse_message(scan).scan_result == "poster"
    assert parse_message(event("CLICK", "a")).scan_result == ""


@pytest.mark.parametrize("sender", ["o" * 65, "o p", "o<p", "ｏ" * 28, "o\u2028p"])
def test_a_sender_that_is_no_openid_is_refused(sender):
    body = (
        "<xml><ToUserName>gh</ToUserName>"
        f"<FromUserName><![CDATA[{sender}]]></FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType></xml>"
    )
    with pytest.raises(MalformedMessage, match="FromUserName is not an openid"):
        parse_message(body.encode())


def test_truncation_never_returns_more_than_the_limit():
    assert truncate_utf8("说明书", 2) == ""
    assert truncate_utf8("说明书", 7) == "说…"
    assert truncate_utf8("说明书", 9) == "说明书"
