"""The page a preview gets instead of the file: its name, size, SHA-256 and the time left.

Who counts as a preview is `tempdl.web.previews`'s call; WeChat's in-app browser is the one that
matters, and its users are told to open the link in a real browser.
"""

from __future__ import annotations

import asyncio
import datetime

from tornado.web import RequestHandler

from tempdl.links.access import Grant
from tempdl.links.digests import FileDigests
from tempdl.reports.formats import human_bytes
from tempdl.timeutil import duration_text

LANDING_DIGEST_WAIT = 2.0  # seconds the landing page waits for a file's first SHA-256, then goes without


async def write_landing_page(
    handler: RequestHandler, grant: Grant, digests: FileDigests, now: datetime.datetime
) -> None:
    """The page's headers and, but for HEAD, its body; the caller records the attempt."""
    remaining = int((grant.issuance.expires_at - now).total_seconds())
    remaining_zh, remaining_en = duration_text(remaining)
    handler.set_header("Cache-Control", "no-store")
    handler.set_header("X-Content-Type-Options", "nosniff")
    handler.set_header("Content-Type", "text/html; charset=UTF-8")
    if handler.request.method == "HEAD":
        return
    digest = await _digest_for_landing_page(grant, digests)
    handler.write(
        handler.render_string(
            "landing.html",
            name=grant.offered.name,
            size=human_bytes(grant.size),
            size_bytes=f"{grant.size:,}",
            sha256=digest.hex() if digest else None,
            remaining_zh=remaining_zh,
            remaining_en=remaining_en,
        )
    )


async def _digest_for_landing_page(grant: Grant, digests: FileDigests) -> bytes | None:
    """The file's SHA-256, waited for a moment the first time; a huge file's page goes without
    it rather than keep a follower waiting (it is there on the next visit)."""
    computing = digests.compute(grant.path, grant.stat)
    try:
        return await asyncio.wait_for(asyncio.shield(computing), LANDING_DIGEST_WAIT)
    except TimeoutError:
        return None
