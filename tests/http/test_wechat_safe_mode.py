"""Safe and compatible mode (`encrypt_type=aes`) over real HTTP: decrypt, answer encrypted, refuse forgeries."""

from __future__ import annotations

import datetime
import io
import logging
import re
import urllib.parse

import pytest
import untangle

from tempdl.config.load import load_settings
from tempdl.config.secret import ensure_secret_keys
from tempdl.wechat.crypto import MessageCrypto
from tempdl.wechat.signature import sha1_signature
from tests.support import ACCOUNT, FOLLOWER, FakeClock, fresh_nonce, link_path, rows, text_message
from tests.unit.wechat.test_crypto import APP_ID, ENCODING_AES_KEY, MSG_SIGNATURE, NONCE, SAMPLE_BODY, TIMESTAMP

TOKEN = "AAAAA"  # what the conftest settings use


@pytest.fixture
def config_text() -> str:
    return f'[wechat]\napp_id = "{APP_ID}"\nencoding_aes_key = "{ENCODING_AES_KEY}"\n'


@pytest.fixture
def crypto() -> MessageCrypto:
    return MessageCrypto(TOKEN, ENCODING_AES_KEY, APP_ID)


def envelope(encrypt: str, plaintext_fields: str = "") -> bytes:
    """A safe-mode body; with `plaintext_fields` it is what compatible mode sends."""
    return (
        f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>{plaintext_fields}"
        f"<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    ).encode()


@pytest.fixture
def post_encrypted(fetch, clock, crypto):
    """`await post_encrypted(message_xml)`: encrypt and sign it as WeChat does, POST it with encrypt_type=aes."""

    async def _post(message: bytes, *, plaintext_fields: str = "", msg_signature: str | None = None, **query):
        timestamp = query.pop("timestamp", str(int(clock().timestamp())))
        nonce = query.pop("nonce", fresh_nonce())
        encrypt = crypto.encrypt(message)
        params = {
            "signature": sha1_signature(TOKEN, timestamp, nonce),
            "timestamp": timestamp,
            "nonce": nonce,
            "openid": FOLLOWER,
            "encrypt_type": "aes",
            "msg_signature": msg_signature or sha1_signature(TOKEN, timestamp, nonce, encrypt),
            **query,
        }
        body = envelope(encrypt, plaintext_fields)
        return await fetch(f"/wechat?{urllib.parse.urlencode(params)}", method="POST", body=body)

    return _post


def decrypt_reply(crypto: MessageCrypto, body: bytes, token: str = TOKEN) -> untangle.Element:
    """Check the reply envelope as WeChat would, and return the inner reply document."""
    outer = untangle.parse(io.BytesIO(body)).xml
    encrypt, timestamp, nonce = outer.Encrypt.cdata, outer.TimeStamp.cdata, outer.Nonce.cdata
    assert outer.MsgSignature.cdata == sha1_signature(token, timestamp, nonce, encrypt)
    inner = crypto.decrypt(encrypt, outer.MsgSignature.cdata, timestamp, nonce)
    return untangle.parse(io.BytesIO(inner)).xml


def issuance_count(settings) -> int:
    return rows(settings.database_url, "SELECT COUNT(*) AS n FROM issuances")[0]["n"]


@pytest.mark.gen_test
async def test_encrypted_round_trip_issues_a_working_link(post_encrypted, crypto, fetch, files_dir, settings, clock):
    response = await post_encrypted(text_message("InstMsiW.exe"))

    assert response.code == 200
    assert response.headers["Content-Type"].startswith("application/xml")
    assert b"/api/get_file/" not in response.body  # the link travels encrypted
    reply = decrypt_reply(crypto, response.body)
    assert (reply.ToUserName.cdata, reply.FromUserName.cdata, reply.MsgType.cdata) == (FOLLOWER, ACCOUNT, "text")
    assert reply.CreateTime.cdata == str(int(clock().timestamp()))
    url = re.search(r"http://\S+", reply.Content.cdata).group(0)

    download = await fetch(link_path(url))
    assert download.code == 200
    assert download.body == (files_dir / "InstMsiW.exe").read_bytes()
    assert issuance_count(settings) == 1


@pytest.mark.gen_test
async def test_compatible_mode_reads_only_the_encrypted_part(post_encrypted, crypto, settings):
    # The plaintext fields are covered by no signature: whatever they say, Encrypt decides.
    plaintext = "<FromUserName>oSomeoneElse</FromUserName><MsgType>text</MsgType><Content>hello.txt</Content>"
    response = await post_encrypted(text_message("InstMsiW.exe"), plaintext_fields=plaintext)

    reply = decrypt_reply(crypto, response.body)
    assert "「InstMsiW.exe」" in reply.Content.cdata
    issued = rows(settings.database_url, "SELECT file_id, recipient FROM issuances")
    assert [(r["file_id"], r["recipient"]) for r in issued] == [("InstMsiW.exe", FOLLOWER)]


@pytest.mark.gen_test
async def test_nothing_to_say_is_a_plain_success(post_encrypted):
    event = (
        f"<xml><ToUserName>{ACCOUNT}</ToUserName><FromUserName>{FOLLOWER}</FromUserName><CreateTime>1</CreateTime>"
        "<MsgType>event</MsgType><Event>unsubscribe</Event></xml>"
    ).encode()
    response = await post_encrypted(event)
    assert (response.code, response.body) == (200, b"success")


@pytest.mark.gen_test
async def test_encrypted_resends_get_the_same_link(post_encrypted, crypto, settings):
    message = text_message("hello.txt", msg_id="42")
    replies = [decrypt_reply(crypto, (await post_encrypted(message)).body).Content.cdata for _ in range(3)]

    assert replies[0] == replies[1] == replies[2]
    assert issuance_count(settings) == 1


@pytest.mark.gen_test
async def test_wrong_msg_signature_is_a_403_and_issues_nothing(post_encrypted, settings, caplog):
    caplog.set_level(logging.WARNING)
    response = await post_encrypted(text_message("hello.txt"), msg_signature="0" * 40)

    assert response.code == 403
    assert "msg_signature mismatch" in caplog.text
    assert issuance_count(settings) == 0


@pytest.mark.gen_test
async def test_a_valid_plain_signature_does_not_make_up_for_a_missing_msg_signature(fetch, clock, settings):
    timestamp, nonce = str(int(clock().timestamp())), fresh_nonce()
    query = urllib.parse.urlencode(
        {
            "signature": sha1_signature(TOKEN, timestamp, nonce),
            "timestamp": timestamp,
            "nonce": nonce,
            "encrypt_type": "aes",
        }
    )
    response = await fetch(f"/wechat?{query}", method="POST", body=envelope("aGVsbG8="))

    assert response.code == 403
    assert issuance_count(settings) == 0


@pytest.mark.gen_test
async def test_message_for_another_app_id_is_refused_with_a_hint_for_the_operator(fetch, clock, settings, caplog):
    caplog.set_level(logging.WARNING)
    other = MessageCrypto(TOKEN, ENCODING_AES_KEY, "wx0000000000000000")
    timestamp, nonce = str(int(clock().timestamp())), fresh_nonce()
    encrypt = other.encrypt(text_message("hello.txt"))
    query = urllib.parse.urlencode(
        {
            "timestamp": timestamp,
            "nonce": nonce,
            "encrypt_type": "aes",
            "msg_signature": sha1_signature(TOKEN, timestamp, nonce, encrypt),
        }
    )
    response = await fetch(f"/wechat?{query}", method="POST", body=envelope(encrypt))

    assert response.code == 403
    assert "wechat.app_id" in caplog.text
    assert issuance_count(settings) == 0


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "body", [b"<xml><ToUserName>gh</ToUserName></xml>", b"not xml", b"<xml><Encrypt></Encrypt></xml>"]
)
async def test_a_body_without_a_usable_encrypt_is_a_400(fetch, clock, body):
    timestamp, nonce = str(int(clock().timestamp())), fresh_nonce()
    query = urllib.parse.urlencode(
        {"timestamp": timestamp, "nonce": nonce, "encrypt_type": "aes", "msg_signature": "x"}
    )
    response = await fetch(f"/wechat?{query}", method="POST", body=body)
    assert response.code == 400


@pytest.mark.gen_test
async def test_encrypted_message_with_a_missing_field_is_a_400(post_encrypted):
    response = await post_encrypted(b"<xml><ToUserName>gh</ToUserName><MsgType>text</MsgType></xml>")
    assert response.code == 400


@pytest.mark.gen_test
async def test_an_encrypted_replay_is_refused(post_encrypted, clock, settings):
    timestamp, nonce = str(int(clock().timestamp())), fresh_nonce()
    assert (await post_encrypted(text_message("hello.txt"), timestamp=timestamp, nonce=nonce)).code == 200
    clock.advance(301)

    assert (await post_encrypted(text_message("hello.txt"), timestamp=timestamp, nonce=nonce)).code == 403
    assert issuance_count(settings) == 1


@pytest.mark.gen_test
async def test_plain_mode_messages_still_work_when_aes_is_configured(wechat_post):
    # The admin console's "明文模式" sends no encrypt_type: switching tempdl to AES first is safe.
    response = await wechat_post(text_message("hello.txt"))
    assert response.code == 200
    assert b"/api/get_file/" in response.body


class TestNotConfigured:
    @pytest.fixture
    def config_text(self) -> str:
        return ""

    @pytest.mark.gen_test
    async def test_aes_without_a_key_is_a_503_that_names_the_keys(self, post_encrypted, settings, caplog):
        caplog.set_level(logging.ERROR)
        response = await post_encrypted(text_message("hello.txt"))

        assert response.code == 503
        assert b"wechat.encoding_aes_key" in response.body and "未配置".encode() in response.body
        assert "encrypt_type=aes" in caplog.text
        assert issuance_count(settings) == 0


class TestWeChatsPublishedSample:
    """WeChat's own safe-mode request (token "spamtest"), accepted over HTTP at the time it was made."""

    @pytest.fixture
    def settings(self, tmp_path, files_dir, http_port):
        environ = {
            "TEMPDL_FILES_DIR": str(files_dir),
            "TEMPDL_DATA_DIR": str(tmp_path / "data"),
            "TEMPDL_PUBLIC_URL": f"http://127.0.0.1:{http_port}",
            "TEMPDL_WECHAT_TOKEN": "spamtest",
            "TEMPDL_WECHAT_APP_ID": APP_ID,
            "TEMPDL_WECHAT_ENCODING_AES_KEY": ENCODING_AES_KEY,
        }
        return ensure_secret_keys(load_settings({}, environ, tmp_path))

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock(datetime.datetime.fromtimestamp(int(TIMESTAMP) + 2, datetime.UTC))

    @pytest.mark.gen_test
    async def test_the_sample_is_decrypted_and_answered_encrypted(self, fetch):
        query = urllib.parse.urlencode(
            {"timestamp": TIMESTAMP, "nonce": NONCE, "encrypt_type": "aes", "msg_signature": MSG_SIGNATURE}
        )
        response = await fetch(f"/wechat?{query}", method="POST", body=SAMPLE_BODY)

        assert response.code == 200
        reply = decrypt_reply(MessageCrypto("spamtest", ENCODING_AES_KEY, APP_ID), response.body, "spamtest")
        assert reply.ToUserName.cdata == "oyORnuP8q7ou2gfYjqLzSIWZf0rs"
        assert reply.FromUserName.cdata == "gh_10f6c3c3ac5a"
        assert "Send one of these keywords" in reply.Content.cdata  # "abcdteT" is no keyword: help
