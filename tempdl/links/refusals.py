"""Every way a download can be refused: HTTP status, audit outcome, and the words, in both languages.

The JSON `reason` values are part of the outside interface (SPEC), so clients can act on them.
"""

from __future__ import annotations

from dataclasses import dataclass

from tempdl.audit.records import Outcome


@dataclass(frozen=True)
class Refusal:
    reason: str
    status: int
    outcome: Outcome | None
    chinese: str
    english: str
    retry_after: int | None = None

    @property
    def bilingual(self) -> str:
        return f"{self.chinese} {self.english}"

    def as_json(self) -> dict[str, str]:
        return {"status": "fail", "reason": self.reason, "data": self.bilingual}


BAD = Refusal(
    "bad",
    403,
    Outcome.BAD,
    "链接无效。请重新向公众号发送关键词获取新链接。",
    "This link is not valid. Send the keyword to the Official Account again for a new link.",
)
EXPIRED = Refusal(
    "expired",
    410,
    Outcome.EXPIRED,
    "链接已过期。请重新向公众号发送关键词获取新链接。",
    "This link has expired. Send the keyword to the Official Account again for a new link.",
)
REVOKED = Refusal(
    "revoked",
    410,
    Outcome.REVOKED,
    "此链接已被撤销。",
    "This link has been revoked.",
)
USED_UP = Refusal(
    "used_up",
    410,
    Outcome.LIMITED,
    "此链接的下载次数已用完。请重新发送关键词获取新链接。",
    "This link has been used as many times as it may be. Send the keyword again for a new link.",
)
BUSY = Refusal(
    "busy",
    503,
    Outcome.LIMITED,
    "服务器正忙，请稍后再试。",
    "The server is busy right now; please try again in a moment.",
    retry_after=30,
)
QUOTA = Refusal(
    "quota",
    429,
    Outcome.LIMITED,
    "您今天的下载流量已用完，请明天再试。",
    "You have used up today's download allowance; please try again tomorrow.",
)
BUDGET_SPENT = Refusal(
    "budget_spent",
    503,
    Outcome.LIMITED,
    "本站本期的下载流量已用完，请稍后再试。",
    "This server's download allowance for the period is used up; please try again later.",
)
NOT_FOUND = Refusal(
    "not_found",
    404,
    Outcome.NOT_FOUND,
    "此文件已不再提供。",
    "This file is no longer on offer.",
)
UNREADABLE = Refusal(
    "unreadable",
    500,
    Outcome.ERROR,  # the server's fault, not the link's: it never uses up a download
    "服务器暂时无法读取此文件，请稍后再试。",
    "The server cannot read this file right now; please try again later.",
)
UNAVAILABLE = Refusal(
    "unavailable",
    503,
    None,  # not recorded: the audit database is what is unavailable
    "服务暂时不可用，请稍后再试。",
    "The service is temporarily unavailable; please try again shortly.",
    retry_after=10,
)
