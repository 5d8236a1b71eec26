"""HTTP Basic authentication (RFC 7617) for operator pages: one user name, one password.

Pages behind it do not exist until a password is configured: they answer 404, so a default install
exposes nothing. Credentials are compared with `hmac.compare_digest`, user name and password both,
so the time an answer takes says nothing about how much of a guess was right.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from tempdl.handlers.base import RefusalMixin
from tempdl.refusals import Refusal

REALM = "tempdl admin"

UNAUTHORIZED = Refusal(
    "unauthorized",
    401,
    "",
    "需要管理员用户名和密码。",
    "This page needs the administrator's user name and password.",
)


def parse_basic_credentials(header: str | None) -> tuple[bytes, bytes] | None:
    """(user, password) from an `Authorization: Basic ...` header; None when absent or malformed."""
    scheme, _, encoded = (header or "").strip().partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.partition(b":")
    return (user, password) if colon else None


def credentials_match(header: str | None, user: str, password: str) -> bool:
    given = parse_basic_credentials(header)
    if given is None:
        return False
    # both comparisons always run: `&`, not `and`
    user_ok = hmac.compare_digest(given[0], user.encode("utf-8"))
    password_ok = hmac.compare_digest(given[1], password.encode("utf-8"))
    return user_ok & password_ok


class BasicAuthMixin(RefusalMixin):
    """Guards every method of a handler in `prepare()`; the handler says who may enter.

    Subclasses define `basic_auth_user` and `basic_auth_password()` (None: the page is off).
    """

    basic_auth_user = "admin"

    def basic_auth_password(self) -> str | None:
        raise NotImplementedError

    def prepare(self) -> None:
        password = self.basic_auth_password()
        if not password:
            self.send_error(404)
            return
        if not credentials_match(self.request.headers.get("Authorization"), self.basic_auth_user, password):
            self.write_refusal(UNAUTHORIZED)
            self.set_header("WWW-Authenticate", f'Basic realm="{REALM}", charset="UTF-8"')
            self.finish()
