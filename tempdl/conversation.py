"""What we say to a follower: the reply text for each incoming WeChat message.

Kept apart from HTTP and XML so the wording and the rules (which message gets a link) can be read
and tested on their own.
"""

from __future__ import annotations

import datetime

from tempdl.audit import AuditLog
from tempdl.catalog import Catalog, OfferedFile
from tempdl.issuing import IssuedLink, Issuer
from tempdl.timeutil import duration_text
from tempdl.wechat.messages import IncomingMessage


def link_reply_text(offered: OfferedFile, issued: IssuedLink) -> str:
    ttl_zh, ttl_en = duration_text(issued.ttl)
    return (
        f"「{offered.name}」的下载链接，{ttl_zh}内有效：\n"
        f'Your download link for "{offered.name}", valid for {ttl_en}:\n'
        f"{issued.url}\n"
        "请在浏览器中打开（点右上角 ··· 选择“在浏览器打开”）。\n"
        'Open it in your browser (tap ··· then "Open in Browser").'
    )


class Conversation:
    def __init__(self, catalog: Catalog, issuer: Issuer, audit: AuditLog) -> None:
        self.catalog = catalog
        self.issuer = issuer
        self.audit = audit

    async def reply_to(self, message: IncomingMessage, now: datetime.datetime) -> str | None:
        """The reply text, or None when nothing is to be said (WeChat then gets `success`)."""
        if message.msg_type != "text":
            return None
        offered = self.catalog.by_keyword(message.content)
        if offered is None:
            return None
        issued = await self.audit.run(
            self.issuer.issue, offered, recipient=message.from_user, channel="wechat", now=now
        )
        return link_reply_text(offered, issued)
