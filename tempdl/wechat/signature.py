"""WeChat's request signatures.

WeChat signs a request with sha1 over the *sorted* concatenation of its parts (token, timestamp,
nonce, and in safe mode also the Encrypt text). Comparison must take constant time, so a forger
cannot learn the right signature one character at a time from response timings.
"""

from __future__ import annotations

import hashlib
import hmac
import urllib.parse
from collections.abc import Callable


def sha1_signature(*parts: str) -> str:
    """Return WeChat's signature of ``parts``: sha1 hex of the sorted parts joined together."""
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()


def signatures_match(expected: str, given: str | None) -> bool:
    """Compare a computed signature with the one a request carried, in constant time."""
    if not given:
        return False
    return hmac.compare_digest(expected.encode("ascii"), given.strip().lower().encode("ascii", "replace"))


def query_signed(token: str, argument: Callable[[str], str]) -> bool:
    """Whether a request's query carries WeChat's plain `signature` of (token, timestamp, nonce);
    `argument(name)` is the query argument's value, "" when it is absent.

    WeChat sends it in every mode, safe mode too, so it can be checked before the body is read:
    the handler asks through Tornado, the size limit (`query_argument`) from the raw URL.
    """
    return signatures_match(sha1_signature(token, argument("timestamp"), argument("nonce")), argument("signature"))


def query_argument(query: str) -> Callable[[str], str]:
    """A raw query's arguments as Tornado's `get_query_argument` reads them: the last value, stripped."""
    arguments = urllib.parse.parse_qs(query, errors="replace")
    return lambda name: arguments.get(name, [""])[-1].strip()
