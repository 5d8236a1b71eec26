"""What we say to a follower: the reply text for each incoming WeChat message.

Kept apart from HTTP and XML so the wording and the rules (which message gets a link) can be read
and tested on their own:

* a text naming a keyword (folded as `tempdl.links.keywords.normalize_keyword` does), or a voice
  message whose `Recognition` names one, gets a link; any other text, and any other message
  (image, voice unheard, ...), gets the help text listing the keywords;
* the `subscribe` event gets the welcome text, and with it the link when the follower came by a
  parametric QR code of a file's scene (EventKey `qrscene_<scene>`); a `SCAN` of such a code, a
  `scancode_waitmsg` menu scan of a scene, and a menu `CLICK` whose EventKey names a file id or a
  keyword get the link; every other event (unsubscribe, LOCATION, VIEW, an unknown scene...) gets
  nothing (`None`, which WeChat receives as `success`);
* a follower over `limits.issues_per_recipient_per_hour` is told when to try again.

Every text fits WeChat's 2047-byte limit by construction: the keyword list is cut short with
"and N more" rather than mid-line, and a link reply shortens the file's display name, never the URL.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence

from tempdl.errors import IssuanceCapReached, TrafficBudgetSpent
from tempdl.links.catalog import Catalog, OfferedFile
from tempdl.links.issuing import IssuedLink, Issuer
from tempdl.timeutil import duration_text
from tempdl.wechat.messages import MAX_REPLY_BYTES, IncomingMessage, truncate_utf8

KEYWORDS_PLACEHOLDER = "{keywords}"
"""Where the keyword list goes in a configured `wechat.welcome` text."""

HELP_HEADING = "发送下列关键词之一，即可获取下载链接：\nSend one of these keywords to get a download link:"
NOTHING_ON_OFFER = "目前没有可下载的文件。\nNothing is on offer right now."
DEFAULT_WELCOME = "欢迎关注！\nWelcome, and thank you for following!\n" + KEYWORDS_PLACEHOLDER
UNAVAILABLE_TEXT = (
    "抱歉，服务暂时繁忙，请稍后再发送一次关键词。\n"
    "Sorry, the service is busy right now; please send the keyword again in a minute."
)
MAX_LINE_BYTES = 300
"""One keyword line at most, so a single long description cannot crowd out all the others."""


SCENE_PREFIX = "qrscene_"
"""How WeChat marks the scene in the EventKey of a `subscribe` that came by a parametric QR code."""
OPEN_IN_BROWSER = (
    '请在浏览器中打开（点右上角 ··· 选择“在浏览器打开”）。\nOpen it in your browser (tap ··· then "Open in Browser").'
)


def _link_text(name: str, issued: IssuedLink, hint: bool = True) -> str:
    ttl_zh, ttl_en = duration_text(issued.ttl)
    text = f'「{name}」的下载链接，{ttl_zh}内有效：\nYour download link for "{name}", valid for {ttl_en}:\n{issued.url}'
    return text + "\n" + OPEN_IN_BROWSER if hint else text


def link_reply_text(offered: OfferedFile, issued: IssuedLink, budget: int = MAX_REPLY_BYTES) -> str:
    """The link and how long it lives, within `budget` bytes: the display name (which appears
    twice) is shortened first, then the browser hint dropped; the URL is never cut."""
    text = _link_text(offered.name, issued)
    excess = len(text.encode("utf-8")) - budget
    if excess <= 0:
        return text
    name_limit = len(offered.name.encode("utf-8")) - (excess + 1) // 2
    if name_limit >= 4:  # room for at least one character and the ellipsis
        return _link_text(truncate_utf8(offered.name, name_limit), issued)
    return _link_text("…", issued, hint=False)


def too_many_links_text(cap: int, wait: datetime.timedelta) -> str:
    """Over the hourly cap: say when the next link can be had, in whole minutes, rounded up."""
    minutes = max(1, math.ceil(wait.total_seconds() / 60))
    wait_zh, wait_en = duration_text(minutes * 60)
    return (
        f"您在一小时内已获取 {cap} 个链接，请在 {wait_zh}后再试。\n"
        f"You have been sent {cap} link{'s' if cap != 1 else ''} in the past hour; please try again in {wait_en}."
    )


def budget_spent_text(wait: datetime.timedelta) -> str:
    """The server's traffic allowance is spent: say when links come back, in whole minutes (hours
    once it is that far off), rounded up."""
    unit = 3600 if wait.total_seconds() >= 2 * 3600 else 60
    wait_zh, wait_en = duration_text(max(1, math.ceil(wait.total_seconds() / unit)) * unit)
    return (
        f"本站的下载流量已用完，{wait_zh}后恢复，届时请再发送关键词。\n"
        f"This server's download allowance is used up; links come back in {wait_en}. Please send the keyword then."
    )


def keyword_lines(files: Sequence[OfferedFile]) -> list[str]:
    """One line per file a follower can ask for by keyword: its keywords, then its description."""
    lines = []
    for offered in files:
        if not offered.keywords:
            continue  # offered by menu or CLI only
        line = "• " + " / ".join(keyword.strip() for keyword in offered.keywords)
        if offered.description:
            line += " — " + offered.description
        lines.append(truncate_utf8(line, MAX_LINE_BYTES))
    return lines


def keyword_listing(files: Sequence[OfferedFile], budget: int) -> str:
    """The keyword lines that fit in `budget` bytes of UTF-8, and "and N more" for the rest."""
    lines = keyword_lines(files)
    if not lines:
        return NOTHING_ON_OFFER
    if len("\n".join(lines).encode("utf-8")) <= budget:
        return "\n".join(lines)
    shown, used = 0, 0
    for line in lines:
        more = len(lines) - shown - 1
        needed = len(line.encode("utf-8")) + 1 + len(_more_line(more).encode("utf-8")) + 1
        if used + needed > budget:
            break
        used += len(line.encode("utf-8")) + 1
        shown += 1
    return "\n".join([*lines[:shown], _more_line(len(lines) - shown)])


def _more_line(count: int) -> str:
    return f"…以及另外 {count} 项 / and {count} more"


def help_text(files: Sequence[OfferedFile]) -> str:
    budget = MAX_REPLY_BYTES - len(HELP_HEADING.encode("utf-8")) - 1
    return HELP_HEADING + "\n" + keyword_listing(files, budget)


def welcome_text(template: str | None, files: Sequence[OfferedFile], room: int = MAX_REPLY_BYTES) -> str:
    """The welcome for a new follower in `room` bytes; `{keywords}` in a configured text becomes
    the keyword list."""
    template = template or DEFAULT_WELCOME
    if KEYWORDS_PLACEHOLDER not in template:
        return truncate_utf8(template, room)
    budget = room - len(template.replace(KEYWORDS_PLACEHOLDER, "", 1).encode("utf-8"))
    listing = HELP_HEADING + "\n" + keyword_listing(files, budget - len(HELP_HEADING.encode("utf-8")) - 1)
    return template.replace(KEYWORDS_PLACEHOLDER, listing, 1)


class Conversation:
    def __init__(self, catalog: Catalog, issuer: Issuer, *, welcome: str | None = None) -> None:
        self.catalog = catalog
        self.issuer = issuer
        self.welcome = welcome

    async def reply_to(self, message: IncomingMessage, now: datetime.datetime) -> str | None:
        """The reply text, or None when nothing is to be said (WeChat then gets `success`).

        Raises `AuditUnavailable` when a link should be issued but the audit database cannot
        record it: the caller answers politely and does not remember the failure.
        """
        if message.msg_type == "event":
            return await self._reply_to_event(message, now)
        said = {"text": message.content, "voice": message.recognition}.get(message.msg_type)
        offered = self.catalog.by_keyword(said) if said else None
        if offered is not None:
            return await self._link(offered, message, now)
        return help_text(self.catalog.files())

    async def _reply_to_event(self, message: IncomingMessage, now: datetime.datetime) -> str | None:
        event = message.event.casefold()
        if event == "subscribe":
            return await self._welcome(message, now)
        if event == "scan":
            offered = self.catalog.by_scene(message.event_key)
            return None if offered is None else await self._link(offered, message, now)
        if event == "scancode_waitmsg":  # a menu button that opens the scanner and waits for our reply
            offered = self.catalog.by_scene(message.scan_result)
            return help_text(self.catalog.files()) if offered is None else await self._link(offered, message, now)
        if event == "click":
            key = message.event_key
            offered = (self.catalog.by_id(key) if key else None) or self.catalog.by_keyword(key)
            if offered is None:
                return help_text(self.catalog.files())
            return await self._link(offered, message, now)
        return None

    async def _welcome(self, message: IncomingMessage, now: datetime.datetime) -> str:
        """The welcome; the link comes first when the follower came by a scene's QR code, so
        whatever the welcome's length, the URL is never what gets cut."""
        key = message.event_key
        offered = self.catalog.by_scene(key.removeprefix(SCENE_PREFIX)) if key.startswith(SCENE_PREFIX) else None
        if offered is None:
            return welcome_text(self.welcome, self.catalog.files())
        link = await self._link(offered, message, now)
        room = MAX_REPLY_BYTES - len(link.encode("utf-8")) - 2
        return link + "\n\n" + welcome_text(self.welcome, self.catalog.files(), room)

    async def _link(self, offered: OfferedFile, message: IncomingMessage, now: datetime.datetime) -> str:
        try:
            issued = await self.issuer.issue_from_event_loop(
                offered,
                recipient=message.from_user,
                channel="wechat",
                now=now,
                limit_recipient=True,
            )
        except IssuanceCapReached as reached:
            return too_many_links_text(reached.cap, reached.retry_at - now)
        except TrafficBudgetSpent as spent:
            return budget_spent_text(spent.retry_at - now)
        return link_reply_text(offered, issued)
