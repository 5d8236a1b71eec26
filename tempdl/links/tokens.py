"""Download tokens: an itsdangerous signature over the issuance's database id, nothing more.

The payload is only the issuance id, so a link never carries the follower's openid and stays
short (about 40 characters). Whether a link is still valid is decided against the issuance row
(its `expires_at`, `revoked_at`), so a per-file TTL or a revocation needs no new token format; the
signing time is still returned for the case where that row has been pruned.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from itsdangerous.encoding import base64_decode, base64_encode
from itsdangerous.signer import Signer
from itsdangerous.timed import TimestampSigner

from tempdl.errors import LinkInvalid

DOWNLOAD_SALT = "tempdl.download"
MAX_TOKEN_LENGTH = 200
VERIFIED_TOKENS_REMEMBERED = 1024


@dataclass(frozen=True)
class SignedLink:
    issuance_id: int
    signed_at: datetime.datetime


def _is_canonical(token: str) -> bool:
    """Whether the signature is the one spelling of its bytes.

    base64 leaves spare bits in the last character, so several strings decode to the same
    signature; accepting only the canonical one means a token altered anywhere is refused.
    """
    signature = token.rpartition(".")[2]
    try:
        return base64_encode(base64_decode(signature)).decode("ascii") == signature
    except Exception:
        return False


class _KeyDerivedOnce(TimestampSigner):
    """itsdangerous's TimestampSigner, deriving each secret's key once instead of per signature."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._keys: dict[bytes | None, bytes] = {}

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        wanted = secret_key.encode() if isinstance(secret_key, str) else secret_key
        key = self._keys.get(wanted)
        if key is None:
            key = self._keys[wanted] = super().derive_key(secret_key)
        return key


class _SignerMadeOnce(URLSafeTimedSerializer):
    """URLSafeTimedSerializer with one signer per salt for the process.

    itsdangerous builds a new signer for every token and derives its key from the secret with an
    HMAC each time: 2% of a WeChat reply's CPU for work whose answer never changes (the keys and
    the salt are fixed for the process). The signer holds no state between tokens.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, signer=_KeyDerivedOnce, **kwargs)
        self._signers: dict[str | bytes | None, Signer] = {}

    def make_signer(self, salt: str | bytes | None = None) -> Signer:
        signer = self._signers.get(salt)
        if signer is None:
            signer = self._signers[salt] = super().make_signer(salt)
        return signer


class LinkSigner:
    """Signs issuance ids into URL-safe tokens and reads them back.

    `secret_keys` may hold several keys: the last one signs, all of them verify, so the operator
    can rotate keys without breaking links that are still live.
    """

    def __init__(self, secret_keys: Sequence[str]) -> None:
        if not secret_keys:
            raise ValueError("at least one secret key is needed")
        self._serializer = _SignerMadeOnce(list(secret_keys), salt=DOWNLOAD_SALT)
        # A token's verdict depends only on the token and the keys, which are fixed for the
        # process: a link fetched again (resumes, 4 KiB files, retries) skips the HMAC. Only
        # good tokens are remembered (exceptions are not cached), so junk cannot fill it.
        self._remembered = functools.lru_cache(maxsize=VERIFIED_TOKENS_REMEMBERED)(self._verify)

    def sign(self, issuance_id: int) -> str:
        return self._serializer.dumps(issuance_id)

    def read(self, token: str) -> SignedLink:
        """Return the issuance a token names; raise `LinkInvalid` for anything we did not sign."""
        return self._remembered(token)

    def _verify(self, token: str) -> SignedLink:
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise LinkInvalid("token has an impossible length")
        if not _is_canonical(token):
            raise LinkInvalid("token is not in canonical form")
        try:
            issuance_id, signed_at = self._serializer.loads(token, return_timestamp=True)
        except BadSignature as error:
            # The exception's text quotes parts of the token: log only what kind of failure it was.
            raise LinkInvalid(f"{type(error).__name__}: not signed by this server") from None
        except Exception as error:  # itsdangerous can raise on undecodable payloads
            raise LinkInvalid(f"unreadable token ({type(error).__name__})") from None
        if not isinstance(issuance_id, int) or isinstance(issuance_id, bool) or issuance_id <= 0:
            raise LinkInvalid("token payload is not an issuance id")
        return SignedLink(issuance_id, signed_at)
