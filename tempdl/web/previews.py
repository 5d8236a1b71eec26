"""Requests that want to look at a link, not download it: they get a landing page, never bytes.

WeChat's in-app browser cannot save files, so its users are told to open the link in a real
browser; link-preview bots and prefetches would otherwise use up a download (or a whole cap)
before the person ever taps the link.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping

PREVIEW_AGENTS = re.compile(
    r"MicroMessenger|facebookexternalhit|Facebot|Twitterbot|Slackbot|Discordbot|TelegramBot|WhatsApp|"
    r"LinkedInBot|SkypeUriPreview|Embedly|Iframely|redditbot|Applebot|Pinterest|vkShare|Googlebot|"
    r"bingbot|Bytespider|Mattermost|Synapse",
    re.IGNORECASE,
)
REMEMBERED_AGENT_LENGTH = 512  # longer ones are not worth remembering: 1,024 of them would hold megabytes


def is_preview(headers: Mapping[str, str]) -> bool:
    """WeChat's in-app browser, a link-preview bot, or a prefetch (`Sec-Purpose`, `Purpose`, `X-Moz`)."""
    purpose = (headers.get("Sec-Purpose", "") + headers.get("Purpose", "") + headers.get("X-Moz", "")).lower()
    if "prefetch" in purpose or "preview" in purpose:
        return True
    user_agent = headers.get("User-Agent", "")
    if len(user_agent) > REMEMBERED_AGENT_LENGTH:
        return bool(PREVIEW_AGENTS.search(user_agent))
    return _is_preview_agent(user_agent)


@functools.lru_cache(maxsize=1024)
def _is_preview_agent(user_agent: str) -> bool:
    """Remembered per User-Agent: a server sees the same few agents over and over, and the search
    is not free on a browser's long one."""
    return bool(PREVIEW_AGENTS.search(user_agent))
