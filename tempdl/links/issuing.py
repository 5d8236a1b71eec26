"""Handing out links: one issuance row, one signed token, one URL, whichever channel asks."""

from __future__ import annotations

import datetime
import functools
from collections.abc import Callable
from dataclasses import dataclass

from tempdl.audit.log import AuditLog
from tempdl.config.settings import Settings
from tempdl.links.budget import TrafficBudget
from tempdl.links.catalog import OfferedFile
from tempdl.links.tokens import LinkSigner

DOWNLOAD_ROUTE = "/api/get_file/"
RECIPIENT_CAP_WINDOW = datetime.timedelta(hours=1)


@dataclass(frozen=True)
class IssuedLink:
    issuance_id: int
    url: str
    ttl: int
    expires_at: datetime.datetime


class Issuer:
    def __init__(self, settings: Settings, audit: AuditLog, signer: LinkSigner) -> None:
        self.settings = settings
        self.audit = audit
        self.signer = signer
        self.budget = TrafficBudget(settings.limits, settings.zone, audit)

    def link_for(self, issuance_id: int) -> str:
        return f"{self.settings.public_url}{DOWNLOAD_ROUTE}{self.signer.sign(issuance_id)}"

    def issue(
        self,
        offered: OfferedFile,
        *,
        recipient: str | None,
        channel: str,
        now: datetime.datetime,
        ttl: int | None = None,
        max_downloads: int | None = None,
        limit_recipient: bool = False,
    ) -> IssuedLink:
        """Record an issuance and return its link (a blocking call, for the CLI and tests).

        The TTL is the one asked for, else the file's own, else `link_ttl`; likewise the download
        cap falls back to the file's `max_downloads`, then `limits.max_downloads` (0: no cap).
        With `limit_recipient` (followers asking by WeChat; not an operator issuing by hand),
        `limits.issues_per_recipient_per_hour` applies: over it, `IssuanceCapReached` is raised
        and nothing is recorded.
        """
        plan = self._plan(offered, recipient, channel, now, ttl, max_downloads, limit_recipient)
        return plan.link(self, plan.create(self.audit)())

    async def issue_from_event_loop(
        self,
        offered: OfferedFile,
        *,
        recipient: str | None,
        channel: str,
        now: datetime.datetime,
        limit_recipient: bool = False,
    ) -> IssuedLink:
        """`issue` for the server: the insert runs through `AuditLog.run`, never blocking the loop.

        With `limit_recipient` the server's traffic allowance applies too: while it is spent,
        `TrafficBudgetSpent` is raised and nothing is recorded (the link could not be used).
        """
        if limit_recipient:
            await self.budget.check(now)
        plan = self._plan(offered, recipient, channel, now, None, None, limit_recipient)
        return plan.link(self, await self.audit.run(plan.create(self.audit)))

    def _plan(
        self,
        offered: OfferedFile,
        recipient: str | None,
        channel: str,
        now: datetime.datetime,
        ttl: int | None,
        max_downloads: int | None,
        limit_recipient: bool,
    ) -> _Plan:
        ttl = next(v for v in (ttl, offered.ttl, self.settings.link_ttl) if v is not None)
        cap = next(
            v for v in (max_downloads, offered.max_downloads, self.settings.limits.max_downloads) if v is not None
        )
        hourly = self.settings.limits.issues_per_recipient_per_hour if limit_recipient and recipient else 0
        row = {
            "file_id": offered.id,
            "recipient": recipient,
            "channel": channel,
            "created_at": now,
            "expires_at": now + datetime.timedelta(seconds=ttl),
            "max_downloads": cap or None,
        }
        return _Plan(row, ttl, hourly)


@dataclass(frozen=True)
class _Plan:
    """What an issuance will be, worked out before anything is written."""

    row: dict
    ttl: int
    hourly_cap: int

    def create(self, audit: AuditLog) -> Callable[[], int]:
        """The AuditLog call that records it: capped per recipient, or a plain insert."""
        if self.hourly_cap:
            return functools.partial(
                audit.create_issuance_within_cap, **self.row, cap=self.hourly_cap, window=RECIPIENT_CAP_WINDOW
            )
        return functools.partial(audit.create_issuance, **self.row)

    def link(self, issuer: Issuer, issuance_id: int) -> IssuedLink:
        return IssuedLink(issuance_id, issuer.link_for(issuance_id), self.ttl, self.row["expires_at"])
