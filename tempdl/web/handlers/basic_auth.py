"""HTTP Basic authentication (RFC 7617) for operator pages: one user name, one password.

Pages behind it do not exist until a password is configured: they answer 404, so a default install
exposes nothing. Credentials are compared with `hmac.compare_digest`, user name and password both,
so the time an answer takes says nothing about how much of a guess was right. And guessing is
slow: after `FAILED_LOGINS_ALLOWED` wrong tries within `FAILED_LOGINS_WINDOW` seconds, a client
address gets 429 for the rest of the window, whatever it sends.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from dataclasses import replace

from tempdl.expiring import ExpiringMemory
from tempdl.links.refusals import Refusal
from tempdl.web.handlers.base import RefusalMixin

log = logging.getLogger("tempdl.admin")

REALM = "tempdl admin"
FAILED_LOGINS_ALLOWED = 10
FAILED_LOGINS_WINDOW = 600  # seconds
FAILED_LOGINS_ADDRESSES = 10_000  # addresses remembered at most (the oldest go first)

UNAUTHORIZED = Refusal(
    "unauthorized",
    401,
    None,
    "需要管理员用户名和密码。",
    "This page needs the administrator's user name and password.",
)


TOO_MANY_TRIES = Refusal(
    "too_many_tries",
    429,
    None,
    "密码错误次数过多，请稍后再试。",
    "Too many wrong passwords from your address; please try again later.",
)


class FailedLogins:
    """Wrong tries per client address, forgotten `FAILED_LOGINS_WINDOW` seconds after the first."""

    def __init__(self) -> None:
        self._tries: ExpiringMemory[str, list[float]] = ExpiringMemory(
            ttl=FAILED_LOGINS_WINDOW, max_entries=FAILED_LOGINS_ADDRESSES
        )

    def retry_after(self, address: str, now: float) -> int | None:
        """Seconds until `address` may try again, or None when it may try now."""
        tries = self._tries.get(address, now)
        if tries is None or len(tries) < FAILED_LOGINS_ALLOWED:
            return None
        return max(1, int(tries[0] + FAILED_LOGINS_WINDOW - now))

    def failed(self, address: str, now: float) -> bool:
        """Count a wrong try; True when it was the one that used up the allowance."""
        tries = self._tries.get(address, now)
        if tries is None:
            self._tries.put(address, tries := [], now)
        tries.append(now)
        return len(tries) == FAILED_LOGINS_ALLOWED


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

    Subclasses define `basic_auth_user`, `basic_auth_password()` (None: the page is off) and
    `failed_logins` with the time `now()` (seconds) it counts in.
    """

    basic_auth_user = "admin"
    failed_logins: FailedLogins

    def basic_auth_password(self) -> str | None:
        raise NotImplementedError

    def now(self) -> float:
        raise NotImplementedError

    def prepare(self) -> None:
        password = self.basic_auth_password()
        if not password:
            self.send_error(404)
            return
        address, now = self.request.remote_ip, self.now()
        retry_after = self.failed_logins.retry_after(address, now)
        if retry_after is not None:
            self.write_refusal(replace(TOO_MANY_TRIES, retry_after=retry_after))
            self.finish()
            return
        header = self.request.headers.get("Authorization")
        if not credentials_match(header, self.basic_auth_user, password):
            # A request without credentials is a browser asking for the prompt, not a guess.
            if header is not None and self.failed_logins.failed(address, now):
                log.warning(
                    "event=admin_login_blocked ip=%s tries=%d seconds=%d",
                    address,
                    FAILED_LOGINS_ALLOWED,
                    FAILED_LOGINS_WINDOW,
                )
            self.write_refusal(UNAUTHORIZED)
            self.set_header("WWW-Authenticate", f'Basic realm="{REALM}", charset="UTF-8"')
            self.finish()
