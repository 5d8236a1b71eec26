"""wechatpy 1.8.18 as the platform's side: it reads the events we are sent the way SDK users' servers
do, signs and encrypts safe-mode messages, and parses and decrypts what we answer."""

from __future__ import annotations

import re
import urllib.parse

import pytest
import xmltodict
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.utils import check_signature

from tests.http.test_wechat_events import FILES, location_event, scancode_waitmsg, voice_message
from tests.support import ACCOUNT, FOLLOWER, WECHAT_TOKEN, fresh_nonce, rows, signed_query, wechat_event

pytestmark = pytest.mark.both_databases

APP_ID = "wx2c2769f8efd9abc2"
ENCODING_AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


@pytest.fixture
def config_text() -> str:
    return f'[wechat]\napp_id = "{APP_ID}"\nencoding_aes_key = "{ENCODING_AES_KEY}"\n' + FILES


@pytest.fixture
def platform() -> WeChatCrypto:
    return WeChatCrypto(WECHAT_TOKEN, ENCODING_AES_KEY, APP_ID)


def issued_files(settings) -> list[str]:
    return [row["file_id"] for row in rows(settings.database_url, "SELECT file_id FROM issuances ORDER BY id")]


def parse_message_envelope(xml: str) -> dict[str, str]:
    """The fields of a safe-mode envelope (Encrypt, MsgSignature, TimeStamp, Nonce)."""
    return dict(xmltodict.parse(xml)["xml"])


def read_reply(body: bytes | str):
    """Our plain reply as wechatpy reads it: a text message from the account to the follower."""
    reply = parse_message(body.decode("utf-8") if isinstance(body, bytes) else body)
    assert (reply.type, reply.source, reply.target) == ("text", ACCOUNT, FOLLOWER)
    assert len(reply.content.encode("utf-8")) <= 2047
    return reply


def test_our_fixtures_are_the_events_wechatpy_knows():
    assert type(parse_message(location_event())).__name__ == "LocationEvent"
    voice = parse_message(voice_message("芝麻开门。"))
    assert (voice.type, voice.recognition) == ("voice", "芝麻开门。")
    scan = parse_message(wechat_event("SCAN", event_key="poster-installer"))
    assert (type(scan).__name__, scan.scene_id) == ("ScanEvent", "poster-installer")
    follow = parse_message(wechat_event("subscribe", event_key="qrscene_flyer-hello"))
    assert (type(follow).__name__, follow.scene_id) == ("SubscribeScanEvent", "flyer-hello")
    menu = parse_message(scancode_waitmsg("flyer-hello"))
    assert (type(menu).__name__, menu.scan_result) == ("ScanCodeWaitMsgEvent", "flyer-hello")


@pytest.mark.gen_test
async def test_two_events_of_one_second_read_by_wechatpy(wechat_post, settings):
    assert (await wechat_post(location_event())).body == b"success"
    first = read_reply((await wechat_post(wechat_event("CLICK", event_key="installer"))).body)
    second = read_reply((await wechat_post(wechat_event("CLICK", event_key="hello"))).body)

    assert '"InstMsiW.exe"' in first.content and '"hello.txt"' in second.content
    assert issued_files(settings) == ["installer", "hello"]


@pytest.mark.gen_test
async def test_a_poster_follower_gets_link_and_welcome_read_by_wechatpy(wechat_post, settings):
    reply = read_reply((await wechat_post(wechat_event("subscribe", event_key="qrscene_poster-installer"))).body)
    assert re.search(r"/api/get_file/\S+\n", reply.content)
    assert "欢迎关注！" in reply.content
    assert issued_files(settings) == ["installer"]


@pytest.mark.gen_test
async def test_the_handshake_passes_wechatpys_own_check(fetch, clock):
    query = signed_query(timestamp=str(int(clock().timestamp())), nonce=fresh_nonce(), echostr="4375120948345356249")
    params = dict(urllib.parse.parse_qsl(query))
    check_signature(WECHAT_TOKEN, params["signature"], params["timestamp"], params["nonce"])  # raises if not

    response = await fetch(f"/wechat?{query}")
    assert (response.code, response.body) == (200, b"4375120948345356249")


@pytest.mark.gen_test
@pytest.mark.parametrize(
    ("message", "file_id"),
    [
        (voice_message("Open Sesame."), "installer"),
        (wechat_event("SCAN", event_key="flyer-hello"), "hello"),
        (scancode_waitmsg("poster-installer"), "installer"),
    ],
)
async def test_safe_mode_messages_encrypted_by_wechatpy(fetch, clock, platform, settings, message, file_id):
    timestamp, nonce = str(int(clock().timestamp())), fresh_nonce()
    envelope = parse_message_envelope(platform.encrypt_message(message.decode("utf-8"), nonce, timestamp))
    query = urllib.parse.urlencode(
        {
            **dict(urllib.parse.parse_qsl(signed_query(timestamp=timestamp, nonce=nonce))),
            "openid": FOLLOWER,
            "encrypt_type": "aes",
            "msg_signature": envelope["MsgSignature"],
        }
    )
    body = (
        f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><Encrypt><![CDATA[{envelope['Encrypt']}]]></Encrypt></xml>"
    )
    response = await fetch(f"/wechat?{query}", method="POST", body=body.encode())

    assert response.code == 200
    outer = parse_message_envelope(response.body.decode("utf-8"))
    plain = platform.decrypt_message(
        response.body.decode("utf-8"), outer["MsgSignature"], outer["TimeStamp"], outer["Nonce"]
    )
    reply = read_reply(plain)
    assert "/api/get_file/" in reply.content
    assert issued_files(settings) == [file_id]
