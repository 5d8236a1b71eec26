"""Who gets the landing page instead of the file."""

from __future__ import annotations

import pytest

from tempdl.web.previews import REMEMBERED_AGENT_LENGTH, is_preview

WECHAT = "Mozilla/5.0 (iPhone) AppleWebKit/605.1.15 MicroMessenger/8.0.47 NetType/WIFI Language/zh_CN"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


@pytest.mark.parametrize(
    "headers",
    [
        {"User-Agent": WECHAT},
        {"User-Agent": "facebookexternalhit/1.1"},
        {"User-Agent": "TelegramBot (like TwitterBot)"},
        {"User-Agent": "whatsapp/2.23"},  # any case
        {"User-Agent": FIREFOX, "Sec-Purpose": "prefetch;prerender"},
        {"User-Agent": FIREFOX, "Purpose": "prefetch"},
        {"User-Agent": FIREFOX, "X-Moz": "prefetch"},
        {"User-Agent": FIREFOX + " " * REMEMBERED_AGENT_LENGTH + "Slackbot"},  # too long to remember
    ],
)
def test_previews(headers):
    assert is_preview(headers)


@pytest.mark.parametrize(
    "headers",
    [
        {"User-Agent": FIREFOX},
        {"User-Agent": "curl/8.5.0"},
        {"User-Agent": FIREFOX + " " * REMEMBERED_AGENT_LENGTH},
        {},
    ],
)
def test_people(headers):
    assert not is_preview(headers)
