"""WeChat's request signatures.

WeChat signs a request with sha1 over the *sorted* concatenation of its parts (token, timestamp,
nonce, and in safe mode also the Encrypt text). Comparison must take constant time, so a forger
cannot learn the right signature one character at a time from response timings.
"""

from __future__ import annotations

import hashlib
import hmac


def sha1_signature(*parts: str) -> str:
    """Return WeChat's signature of ``parts``: sha1 hex of the sorted parts joined together."""
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()


def signatures_match(expected: str, given: str | None) -> bool:
    """Compare a computed signature with the one a request carried, in constant time."""
    if not given:
        return False
    return hmac.compare_digest(expected.encode("ascii"), given.strip().lower().encode("ascii", "replace"))
