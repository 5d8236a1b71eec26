"""Download tokens: a signed issuance id that reads back as it was signed, and nothing else does."""

from __future__ import annotations

import base64
import datetime
import string

import pytest
from itsdangerous import URLSafeTimedSerializer
from itsdangerous.timed import TimestampSigner

from tempdl.errors import LinkInvalid
from tempdl.links.tokens import DOWNLOAD_SALT, MAX_TOKEN_LENGTH, LinkSigner, SignedLink

SIGNED_AT = datetime.datetime(2026, 11, 30, 8, 0, tzinfo=datetime.UTC)
URLSAFE_ALPHABET = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"


@pytest.fixture(autouse=True)
def signing_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """itsdangerous reads the time itself; pin it, so `signed_at` is an exact value."""
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: int(SIGNED_AT.timestamp()))


def test_a_token_reads_back_as_its_issuance_and_signing_time():
    signer = LinkSigner(["key-one"])
    token = signer.sign(42)
    assert signer.read(token) == SignedLink(issuance_id=42, signed_at=SIGNED_AT)
    assert token.startswith("NDI.")  # the payload is the id alone: "42", base64
    assert len(token) == 38 and set(token) <= set(URLSAFE_ALPHABET + ".")


def test_the_last_key_signs_and_every_key_verifies():
    old, rotated = LinkSigner(["old"]), LinkSigner(["old", "new"])
    assert rotated.read(old.sign(7)).issuance_id == 7  # links from before the rotation still work
    fresh = rotated.sign(8)
    assert LinkSigner(["new"]).read(fresh).issuance_id == 8
    with pytest.raises(LinkInvalid, match=r"^BadTimeSignature: not signed by this server$"):
        old.read(fresh)


def test_a_token_signed_with_another_key_is_refused_without_quoting_it():
    foreign = LinkSigner(["someone-else"]).sign(1)
    with pytest.raises(LinkInvalid) as refused:
        LinkSigner(["ours"]).read(foreign)
    assert str(refused.value) == "BadTimeSignature: not signed by this server"
    assert foreign.rpartition(".")[2] not in str(refused.value)


@pytest.mark.parametrize("token", ["", "A" * (MAX_TOKEN_LENGTH + 1)])
def test_empty_and_overlong_tokens_are_refused(token):
    with pytest.raises(LinkInvalid, match=r"^token has an impossible length$"):
        LinkSigner(["k"]).read(token)


def test_another_spelling_of_the_same_signature_is_refused():
    """An HMAC-SHA1 signature is 20 bytes in 27 base64 characters: the last one has 2 spare bits."""
    signer = LinkSigner(["k"])
    token = signer.sign(5)
    last = token[-1]
    respelled = token[:-1] + URLSAFE_ALPHABET[URLSAFE_ALPHABET.index(last) ^ 1]
    same = [base64.urlsafe_b64decode(t.rpartition(".")[2] + "=") for t in (token, respelled)]
    assert respelled != token and same[0] == same[1]
    with pytest.raises(LinkInvalid, match=r"^token is not in canonical form$"):
        signer.read(respelled)


@pytest.mark.parametrize("payload", ["42", True, 0, -3, 1.5, [1], None])
def test_a_signed_payload_that_is_not_an_issuance_id_is_refused(payload):
    token = URLSafeTimedSerializer(["k"], salt=DOWNLOAD_SALT).dumps(payload)
    with pytest.raises(LinkInvalid, match=r"^token payload is not an issuance id$"):
        LinkSigner(["k"]).read(token)


def test_a_signed_payload_that_does_not_decode_is_refused():
    token = URLSafeTimedSerializer(["k"], salt=DOWNLOAD_SALT).make_signer().sign(b"!!not-base64").decode()
    with pytest.raises(LinkInvalid, match=r"^unreadable token \(BadPayload\)$"):
        LinkSigner(["k"]).read(token)


def test_a_bad_token_is_refused_every_time_it_comes_back():
    """Good tokens are remembered; a refusal must not be, or the second try would pass."""
    signer = LinkSigner(["k"])
    tampered = signer.sign(3)[:-2] + "AA"
    for _ in range(3):
        with pytest.raises(LinkInvalid):
            signer.read(tampered)
    assert signer.read(signer.sign(3)).issuance_id == 3


def test_a_signer_needs_a_key():
    with pytest.raises(ValueError, match="at least one secret key"):
        LinkSigner([])


def test_tokens_are_itsdangerous_own_both_ways_across_key_rotation():
    """The signer made once per process signs and reads exactly what itsdangerous does."""
    rotated = LinkSigner(["old-key", "new-key"])
    plain_new = URLSafeTimedSerializer(["new-key"], salt=DOWNLOAD_SALT)
    plain_old = URLSafeTimedSerializer(["old-key"], salt=DOWNLOAD_SALT)
    for issuance_id in (1, 2, 99):
        token = rotated.sign(issuance_id)
        assert plain_new.loads(token) == issuance_id  # signed with the last key, every time
        assert rotated.read(plain_old.dumps(issuance_id)).issuance_id == issuance_id
        assert rotated.read(plain_new.dumps(issuance_id)).issuance_id == issuance_id
    with pytest.raises(LinkInvalid):
        rotated.read(URLSafeTimedSerializer(["other-key"], salt=DOWNLOAD_SALT).dumps(5))
