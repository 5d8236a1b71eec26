"""WeChat safe-mode (``encrypt_type=aes``) message encryption.

One job: turn the ``Encrypt`` text of an incoming safe-mode message into plaintext XML, and turn
reply XML into the encrypted envelope WeChat expects. Nothing here knows about HTTP, so the
handler stays thin and every byte-level rule of the protocol is tested in isolation.

The protocol, as WeChat's own sample implementation does it:

* key = base64decode(EncodingAESKey + "="), 32 bytes, AES-256-CBC with IV = key[:16];
* plaintext = 16 random bytes + 4-byte big-endian length + message + AppID, PKCS#7-padded to
  a multiple of **32** bytes (pad value 1..32, not AES's 16);
* msg_signature = sha1 of the sorted (token, timestamp, nonce, Encrypt).

The signature is checked before anything is decrypted: without the token nobody can produce a
ciphertext we will even try to unpad, so padding errors cannot serve as a padding oracle.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import io
import os
import re
import xml.sax

import untangle

from tempdl.wechat.signature import sha1_signature, signatures_match

__all__ = [
    "InvalidAppId",
    "InvalidMessageSignature",
    "MalformedCiphertext",
    "MessageCrypto",
    "WeChatCryptoError",
    "encrypted_part",
]

ENCODING_AES_KEY_LENGTH = 43
"""WeChat's EncodingAESKey is 43 base64 characters: 32 key bytes without the trailing '='."""

RANDOM_PREFIX_LENGTH = 16
LENGTH_FIELD_SIZE = 4
PAD_BLOCK_SIZE = 32
"""WeChat pads to 32 bytes, not to the AES block size, so the cryptography padder won't do."""

_AES_BLOCK_SIZE = 16
_TIMESTAMP = re.compile(r"[0-9]{1,20}")
_NONCE = re.compile(r"[0-9A-Za-z]{1,64}")


class WeChatCryptoError(Exception):
    """A safe-mode message we must reject; ``reason`` is short and safe to log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidMessageSignature(WeChatCryptoError):
    """msg_signature does not match: the message did not come from WeChat (or our token)."""


class InvalidAppId(WeChatCryptoError):
    """The message decrypted fine but was encrypted for another Official Account."""


class MalformedCiphertext(WeChatCryptoError):
    """Bad base64, length, padding or layout: not something WeChat sends with our key."""


class MessageCrypto:
    """Encrypt and decrypt safe-mode messages for one Official Account."""

    def __init__(self, token: str, encoding_aes_key: str, app_id: str) -> None:
        """Check the configuration now, so a typo in the key fails at startup, not per message."""
        if not token:
            raise ValueError("WeChat token must not be empty")
        if not app_id:
            raise ValueError("WeChat AppID must not be empty")
        if not isinstance(encoding_aes_key, str) or len(encoding_aes_key) != ENCODING_AES_KEY_LENGTH:
            raise ValueError(f"WeChat EncodingAESKey must be exactly {ENCODING_AES_KEY_LENGTH} characters")
        try:
            key = base64.b64decode(encoding_aes_key + "=", validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("WeChat EncodingAESKey is not valid base64") from None
        if len(key) != 32:  # e.g. a key that already ends in "="
            raise ValueError("WeChat EncodingAESKey does not decode to 32 bytes")
        self._token = token
        self._app_id = app_id.encode("utf-8")
        # Imported here, not at the top: `cryptography` costs ~7 MiB of memory, and only servers
        # with safe mode configured ever build a MessageCrypto.
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        self._cipher = Cipher(algorithms.AES(key), modes.CBC(key[:_AES_BLOCK_SIZE]))

    def decrypt(self, encrypt: str, msg_signature: str, timestamp: str, nonce: str) -> bytes:
        """Return the plaintext XML bytes of a safe-mode message, after checking who sent it.

        ``encrypt`` must be the exact text WeChat signed (see :func:`encrypted_part`);
        ``msg_signature``, ``timestamp`` and ``nonce`` come from the query string.
        """
        expected = sha1_signature(self._token, timestamp, nonce, encrypt)
        if not signatures_match(expected, msg_signature):
            raise InvalidMessageSignature("msg_signature mismatch")

        try:
            ciphertext = base64.b64decode(encrypt, validate=True)
        except (binascii.Error, ValueError):
            raise MalformedCiphertext("Encrypt is not base64") from None
        if not ciphertext or len(ciphertext) % _AES_BLOCK_SIZE:
            raise MalformedCiphertext("ciphertext length is not a whole number of AES blocks")

        decryptor = self._cipher.decryptor()
        padded = decryptor.update(ciphertext) + decryptor.finalize()
        plain = _unpad(padded)

        if len(plain) < RANDOM_PREFIX_LENGTH + LENGTH_FIELD_SIZE:
            raise MalformedCiphertext("plaintext too short")
        body = plain[RANDOM_PREFIX_LENGTH:]
        msg_length = int.from_bytes(body[:LENGTH_FIELD_SIZE], "big")
        msg_end = LENGTH_FIELD_SIZE + msg_length
        if msg_end > len(body):
            raise MalformedCiphertext("message length field exceeds plaintext")
        if not hmac.compare_digest(body[msg_end:], self._app_id):
            raise InvalidAppId("message was encrypted for another AppID")
        return body[LENGTH_FIELD_SIZE:msg_end]

    def encrypt(self, message: bytes, random_prefix: bytes | None = None) -> str:
        """Return the base64 ``Encrypt`` text for ``message`` (UTF-8 XML bytes).

        ``random_prefix`` exists so tests can reproduce known ciphertexts; leave it out in
        production, where the fresh random prefix is what makes equal replies look different.
        """
        if random_prefix is None:
            random_prefix = os.urandom(RANDOM_PREFIX_LENGTH)
        elif len(random_prefix) != RANDOM_PREFIX_LENGTH:
            raise ValueError(f"random_prefix must be {RANDOM_PREFIX_LENGTH} bytes")
        if len(message) >= 1 << (8 * LENGTH_FIELD_SIZE):
            raise ValueError("message too long for WeChat's 4-byte length field")

        plain = bytes(random_prefix) + len(message).to_bytes(LENGTH_FIELD_SIZE, "big") + bytes(message) + self._app_id
        encryptor = self._cipher.encryptor()
        ciphertext = encryptor.update(_pad(plain)) + encryptor.finalize()
        return base64.b64encode(ciphertext).decode("ascii")

    def encrypt_reply(self, reply_xml: bytes, timestamp: str, nonce: str) -> bytes:
        """Return the complete encrypted reply document for a passive reply ``reply_xml``.

        ``timestamp`` must be decimal digits and ``nonce`` ASCII letters/digits (WeChat's own
        nonces are digits): they are written into the XML verbatim, so anything else is refused
        with ``ValueError`` rather than escaped into a document WeChat might misread.
        """
        if not _TIMESTAMP.fullmatch(timestamp):
            raise ValueError("timestamp must be decimal digits")
        if not _NONCE.fullmatch(nonce):
            raise ValueError("nonce must be 1-64 ASCII letters or digits")
        encrypt = self.encrypt(reply_xml)
        signature = sha1_signature(self._token, timestamp, nonce, encrypt)
        return (
            f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt>"
            f"<MsgSignature><![CDATA[{signature}]]></MsgSignature>"
            f"<TimeStamp>{timestamp}</TimeStamp>"
            f"<Nonce><![CDATA[{nonce}]]></Nonce></xml>"
        ).encode("ascii")


def encrypted_part(body: bytes) -> str:
    """Return the ``<Encrypt>`` text of a safe-mode POST body.

    The body goes to untangle as a file object: given a ``str``, untangle would treat it as a
    path or URL and open it, so a ``str`` is refused outright. untangle parses through
    defusedxml, so entity tricks fail as parse errors. Surrounding whitespace is stripped
    because base64 never contains any and WeChat signs the bare text.
    """
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise TypeError("encrypted_part() takes the raw body bytes, not a str")
    if not body:
        raise MalformedCiphertext("empty body")
    try:
        document = untangle.parse(io.BytesIO(bytes(body)))
    except (xml.sax.SAXException, ValueError):  # defusedxml's refusals are ValueErrors
        raise MalformedCiphertext("body is not well-formed XML") from None

    roots = document.get_elements("xml")
    if len(roots) != 1:
        raise MalformedCiphertext("body has no <xml> root")
    parts = roots[0].get_elements("Encrypt")
    if len(parts) != 1:
        raise MalformedCiphertext("body needs exactly one <Encrypt>")
    text = parts[0].cdata.strip()
    if not text:
        raise MalformedCiphertext("<Encrypt> is empty")
    return text


def _pad(data: bytes) -> bytes:
    """PKCS#7 to a multiple of 32 bytes; a full block of 32s when already aligned."""
    amount = PAD_BLOCK_SIZE - len(data) % PAD_BLOCK_SIZE
    return data + bytes([amount]) * amount


def _unpad(data: bytes) -> bytes:
    """Strip WeChat's 32-byte PKCS#7 padding, refusing anything that is not exactly that."""
    amount = data[-1]
    if not 1 <= amount <= PAD_BLOCK_SIZE or amount > len(data):
        raise MalformedCiphertext("bad padding")
    if not hmac.compare_digest(data[-amount:], bytes([amount]) * amount):
        raise MalformedCiphertext("bad padding")
    return data[:-amount]
