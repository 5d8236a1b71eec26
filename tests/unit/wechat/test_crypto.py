"""Tests for WeChat safe-mode encryption: WeChat's published sample, round trips, and rejections.

The sample vector (token, key, AppID, timestamp, nonce, msg_signature, Encrypt) is the one in
WeChat's official WXBizMsgCrypt sample code; it is data, copied so we test against WeChat's
bytes and not only against ourselves.
"""

from __future__ import annotations

import base64
import io

import pytest
import untangle
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from tempdl.wechat.crypto import (
    InvalidAppId,
    InvalidMessageSignature,
    MalformedCiphertext,
    MessageCrypto,
    WeChatCryptoError,
    encrypted_part,
)
from tempdl.wechat.signature import sha1_signature

TOKEN = "spamtest"
ENCODING_AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APP_ID = "wx2c2769f8efd9abc2"
TIMESTAMP = "1409735669"
NONCE = "1320562132"
MSG_SIGNATURE = "5d197aaffba7e9b25a30732f161a50dee96bd5fa"
SAMPLE_ENCRYPT = (
    "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHF"
    "VAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVti"
    "cbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0Vxp"
    "Ae+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpC"
    "umEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE="
)
SAMPLE_BODY = (
    "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>\n"
    f"<Encrypt><![CDATA[{SAMPLE_ENCRYPT}]]></Encrypt>\n</xml>"
).encode("ascii")

PREFIX = b"0123456789abcdef"


@pytest.fixture
def crypto() -> MessageCrypto:
    return MessageCrypto(TOKEN, ENCODING_AES_KEY, APP_ID)


def _parse(document: bytes) -> untangle.Element:
    """Parse XML bytes the only safe way: as a file object, never as a str."""
    return untangle.parse(io.BytesIO(document))


def _raw_cipher() -> Cipher:
    key = base64.b64decode(ENCODING_AES_KEY + "=")
    return Cipher(algorithms.AES(key), modes.CBC(key[:16]))


def _raw_decrypt(encrypt: str) -> bytes:
    """Decrypt without unpadding or checks, to look at what the module produced."""
    decryptor = _raw_cipher().decryptor()
    return decryptor.update(base64.b64decode(encrypt)) + decryptor.finalize()


def _raw_encrypt(padded: bytes) -> str:
    """Encrypt already-padded bytes, to build ciphertexts the module would never produce."""
    encryptor = _raw_cipher().encryptor()
    return base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode("ascii")


def _signed_decrypt(crypto: MessageCrypto, encrypt: str) -> bytes:
    """Decrypt with a correct signature, so the test reaches the checks after the signature."""
    return crypto.decrypt(encrypt, sha1_signature(TOKEN, TIMESTAMP, NONCE, encrypt), TIMESTAMP, NONCE)


# WeChat's published sample


def test_sample_decrypts_to_the_published_text_message(crypto: MessageCrypto) -> None:
    plain = crypto.decrypt(SAMPLE_ENCRYPT, MSG_SIGNATURE, TIMESTAMP, NONCE)

    message = _parse(plain).xml
    assert message.ToUserName.cdata == "gh_10f6c3c3ac5a"
    assert message.FromUserName.cdata == "oyORnuP8q7ou2gfYjqLzSIWZf0rs"
    assert message.MsgType.cdata == "text"
    assert message.Content.cdata == "abcdteT"


def test_encrypt_reproduces_the_sample_byte_for_byte(crypto: MessageCrypto) -> None:
    # Same prefix WeChat used (first plaintext block) => our layout and padding must give
    # exactly WeChat's ciphertext, which checks encrypt() against WeChat rather than decrypt().
    plain = crypto.decrypt(SAMPLE_ENCRYPT, MSG_SIGNATURE, TIMESTAMP, NONCE)
    prefix = _raw_decrypt(SAMPLE_ENCRYPT)[:16]

    assert crypto.encrypt(plain, random_prefix=prefix) == SAMPLE_ENCRYPT


def test_encrypted_part_extracts_the_sample_encrypt() -> None:
    assert encrypted_part(SAMPLE_BODY) == SAMPLE_ENCRYPT


def test_sample_body_decrypts_end_to_end(crypto: MessageCrypto) -> None:
    plain = crypto.decrypt(encrypted_part(SAMPLE_BODY), MSG_SIGNATURE, TIMESTAMP, NONCE)
    assert _parse(plain).xml.Content.cdata == "abcdteT"


# Round trips

CHINESE_REPLY = (
    "<xml><ToUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></ToUserName>"
    "<FromUserName><![CDATA[gh_10f6c3c3ac5a]]></FromUserName><CreateTime>1409735670</CreateTime>"
    "<MsgType><![CDATA[text]]></MsgType>"
    "<Content><![CDATA[下载链接：https://example.com/d/abc 十分钟内有效]]></Content></xml>"
).encode()


def _decrypt_reply(crypto: MessageCrypto, reply: bytes) -> bytes:
    document = _parse(reply).xml
    return crypto.decrypt(
        document.Encrypt.cdata,
        document.MsgSignature.cdata,
        document.TimeStamp.cdata,
        document.Nonce.cdata,
    )


def test_encrypt_reply_round_trip_with_chinese_text(crypto: MessageCrypto) -> None:
    reply = crypto.encrypt_reply(CHINESE_REPLY, "1409735670", "987654321")

    assert _decrypt_reply(crypto, reply) == CHINESE_REPLY
    content = _parse(_decrypt_reply(crypto, reply)).xml.Content.cdata
    assert content == "下载链接：https://example.com/d/abc 十分钟内有效"


def test_encrypt_reply_has_wechats_envelope(crypto: MessageCrypto) -> None:
    reply = crypto.encrypt_reply(b"<xml></xml>", "1409735670", "987654321")

    assert reply.startswith(b"<xml><Encrypt><![CDATA[")
    assert reply.endswith(
        b"]]></MsgSignature><TimeStamp>1409735670</TimeStamp><Nonce><![CDATA[987654321]]></Nonce></xml>"
    )
    document = _parse(reply).xml
    encrypt = document.Encrypt.cdata
    assert document.MsgSignature.cdata == sha1_signature(TOKEN, "1409735670", "987654321", encrypt)
    assert encrypted_part(reply) == encrypt


def test_pad_of_a_full_32_bytes_round_trips(crypto: MessageCrypto) -> None:
    # 16 prefix + 4 length + 26 message + 18 AppID = 64: already aligned, so a whole block of 32s.
    message = b"<xml>" + b"x" * 15 + b"</xml>"
    assert (16 + 4 + len(message) + len(APP_ID)) % 32 == 0

    encrypt = crypto.encrypt(message, random_prefix=PREFIX)

    padded = _raw_decrypt(encrypt)
    assert padded[-32:] == bytes([32]) * 32
    assert _signed_decrypt(crypto, encrypt) == message
    assert _decrypt_reply(crypto, crypto.encrypt_reply(message, "1", "a")) == message


@pytest.mark.parametrize("length", range(70))
def test_every_message_length_round_trips_and_pads_to_32(crypto: MessageCrypto, length: int) -> None:
    message = b"m" * length
    encrypt = crypto.encrypt(message)

    assert len(base64.b64decode(encrypt)) % 32 == 0
    assert _signed_decrypt(crypto, encrypt) == message


def test_random_prefix_makes_equal_messages_encrypt_differently(crypto: MessageCrypto) -> None:
    assert crypto.encrypt(b"<xml/>") != crypto.encrypt(b"<xml/>")


def test_random_prefix_must_be_16_bytes(crypto: MessageCrypto) -> None:
    with pytest.raises(ValueError):
        crypto.encrypt(b"<xml/>", random_prefix=b"short")


@pytest.mark.parametrize(
    ("timestamp", "nonce"),
    [("14097356x", "1"), ("", "1"), ("1", ""), ("1", "a]]><b>"), ("1", "no spaces")],
)
def test_encrypt_reply_refuses_values_it_would_write_verbatim(
    crypto: MessageCrypto, timestamp: str, nonce: str
) -> None:
    with pytest.raises(ValueError):
        crypto.encrypt_reply(b"<xml/>", timestamp, nonce)


# Rejections


@pytest.mark.parametrize(
    "signature",
    [
        "0" * 40,
        MSG_SIGNATURE[:-1] + "0",
        "",
        "not hex at all",
        "签名",
    ],
)
def test_wrong_msg_signature(crypto: MessageCrypto, signature: str) -> None:
    with pytest.raises(InvalidMessageSignature):
        crypto.decrypt(SAMPLE_ENCRYPT, signature, TIMESTAMP, NONCE)


def test_signature_covers_timestamp_and_nonce(crypto: MessageCrypto) -> None:
    with pytest.raises(InvalidMessageSignature):
        crypto.decrypt(SAMPLE_ENCRYPT, MSG_SIGNATURE, "1409735670", NONCE)
    with pytest.raises(InvalidMessageSignature):
        crypto.decrypt(SAMPLE_ENCRYPT, MSG_SIGNATURE, TIMESTAMP, "1320562133")


def test_signature_is_checked_before_decrypting(crypto: MessageCrypto) -> None:
    # A forger without the token learns nothing from padding: they only ever see this error.
    with pytest.raises(InvalidMessageSignature):
        crypto.decrypt("not base64!", MSG_SIGNATURE, TIMESTAMP, NONCE)


def test_tampered_ciphertext_has_bad_padding(crypto: MessageCrypto) -> None:
    raw = bytearray(base64.b64decode(SAMPLE_ENCRYPT))
    raw[-17] ^= 0x80  # CBC: flips the high bit of the last plaintext byte, the pad value
    tampered = base64.b64encode(bytes(raw)).decode("ascii")

    with pytest.raises(MalformedCiphertext, match="padding"):
        _signed_decrypt(crypto, tampered)
    with pytest.raises(InvalidMessageSignature):
        crypto.decrypt(tampered, MSG_SIGNATURE, TIMESTAMP, NONCE)


@pytest.mark.parametrize("pad", [0, 33, 255])
def test_pad_value_outside_1_to_32(crypto: MessageCrypto, pad: int) -> None:
    padded = PREFIX + (3).to_bytes(4, "big") + b"<a>" + APP_ID.encode() + b"\0" * 22 + bytes([pad])
    assert len(padded) % 32 == 0

    with pytest.raises(MalformedCiphertext, match="padding"):
        _signed_decrypt(crypto, _raw_encrypt(padded))


def test_pad_bytes_must_all_match(crypto: MessageCrypto) -> None:
    padded = PREFIX + (3).to_bytes(4, "big") + b"<a>" + APP_ID.encode() + bytes([22]) + bytes([23]) * 22
    assert len(padded) % 32 == 0

    with pytest.raises(MalformedCiphertext, match="padding"):
        _signed_decrypt(crypto, _raw_encrypt(padded))


def test_wrong_app_id(crypto: MessageCrypto) -> None:
    other = MessageCrypto(TOKEN, ENCODING_AES_KEY, "wx0000000000000000")
    encrypt = other.encrypt(b"<xml/>")

    with pytest.raises(InvalidAppId):
        _signed_decrypt(crypto, encrypt)


def test_app_id_must_match_exactly_not_as_prefix(crypto: MessageCrypto) -> None:
    longer = MessageCrypto(TOKEN, ENCODING_AES_KEY, APP_ID + "0")
    with pytest.raises(InvalidAppId):
        _signed_decrypt(crypto, longer.encrypt(b"<xml/>"))


def test_wrong_key_is_rejected(crypto: MessageCrypto) -> None:
    other = MessageCrypto(TOKEN, "A" * 42 + "E", APP_ID)
    with pytest.raises((MalformedCiphertext, InvalidAppId)):
        _signed_decrypt(crypto, other.encrypt(b"<xml/>", random_prefix=PREFIX))


@pytest.mark.parametrize(
    "encrypt",
    [
        "not base64!!",
        SAMPLE_ENCRYPT.replace("+", "-"),  # urlsafe alphabet is not what WeChat sends
        "密文",
        SAMPLE_ENCRYPT[:-1],  # broken base64 padding
    ],
)
def test_non_base64_text(crypto: MessageCrypto, encrypt: str) -> None:
    with pytest.raises(MalformedCiphertext):
        _signed_decrypt(crypto, encrypt)


@pytest.mark.parametrize(
    "keep_bytes",
    [0, 15, 16, 32, 100, -16, -32],
    ids=["empty", "part-block", "one-block", "two-blocks", "not-block-aligned", "minus-16", "minus-32"],
)
def test_truncated_ciphertext(crypto: MessageCrypto, keep_bytes: int) -> None:
    raw = base64.b64decode(SAMPLE_ENCRYPT)
    truncated = base64.b64encode(raw[:keep_bytes]).decode("ascii")

    with pytest.raises(MalformedCiphertext):
        _signed_decrypt(crypto, truncated)


def test_length_field_beyond_plaintext(crypto: MessageCrypto) -> None:
    padded = PREFIX + (1000).to_bytes(4, "big") + b"<a>" + APP_ID.encode() + bytes([23]) * 23
    assert len(padded) % 32 == 0

    with pytest.raises(MalformedCiphertext, match="length"):
        _signed_decrypt(crypto, _raw_encrypt(padded))


def test_errors_share_a_base_with_a_reason(crypto: MessageCrypto) -> None:
    with pytest.raises(WeChatCryptoError) as caught:
        crypto.decrypt(SAMPLE_ENCRYPT, "0" * 40, TIMESTAMP, NONCE)
    assert caught.value.reason == str(caught.value)
    assert caught.value.reason


# Configuration


@pytest.mark.parametrize(
    "key",
    [
        ENCODING_AES_KEY[:-1],  # 42 characters
        ENCODING_AES_KEY + "H",  # 44 characters
        "",
        "!" * 43,  # not base64
        ENCODING_AES_KEY[:-1] + "-",  # urlsafe character
        ENCODING_AES_KEY[:-1] + "=",  # 43 characters but only 31 bytes
        ENCODING_AES_KEY[:20] + " " + ENCODING_AES_KEY[21:],
    ],
)
def test_bad_encoding_aes_key(key: str) -> None:
    with pytest.raises(ValueError, match="EncodingAESKey"):
        MessageCrypto(TOKEN, key, APP_ID)


@pytest.mark.parametrize(("token", "app_id"), [("", APP_ID), (TOKEN, "")])
def test_empty_token_or_app_id(token: str, app_id: str) -> None:
    with pytest.raises(ValueError):
        MessageCrypto(token, ENCODING_AES_KEY, app_id)


# encrypted_part


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   ",
        b"not xml",
        b"<xml><ToUserName>gh</ToUserName></xml>",  # plaintext-mode body: no Encrypt
        b"<xml><Encrypt></Encrypt></xml>",
        b"<xml><Encrypt>a</Encrypt><Encrypt>b</Encrypt></xml>",
        b"<other><Encrypt>abc</Encrypt></other>",
        b"<xml><Encrypt>abc</Encrypt>",  # truncated document
        b"/etc/passwd",  # must never be opened as a path
        b"https://example.com/x.xml",  # nor fetched as a URL
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "boom">]><xml><Encrypt>&e;</Encrypt></xml>',
    ],
)
def test_encrypted_part_rejects_bodies_without_one_encrypt(body: bytes) -> None:
    with pytest.raises(MalformedCiphertext):
        encrypted_part(body)


def test_encrypted_part_refuses_str() -> None:
    with pytest.raises(TypeError):
        encrypted_part(SAMPLE_BODY.decode("ascii"))  # type: ignore[arg-type]


def test_encrypted_part_ignores_nested_encrypt_and_whitespace() -> None:
    body = b"<xml>\n  <Encrypt>\n   abc=\n  </Encrypt>\n  <Other><Encrypt>zzz</Encrypt></Other>\n</xml>"
    assert encrypted_part(body) == "abc="
