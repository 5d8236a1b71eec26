"""Handing out links: one issuance row, one signed token, one URL, whichever channel asks."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from tempdl.audit import AuditLog
from tempdl.catalog import OfferedFile
from tempdl.config import Settings
from tempdl.tokens import LinkSigner

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
        """Record an issuance and return its link (a blocking call: run it on the audit thread).

        The TTL is the one asked for, else the file's own, else `link_ttl`; likewise the download
        cap falls back to the file's `max_downloads`, then `limits.max_downloads` (0: no cap).
        With `limit_recipient` (followers asking by WeChat; not an operator issuing by hand),
        `limits.issues_per_recipient_per_hour` applies: over it, `IssuanceCapReached` is raised
        and nothing is recorded.
        """
        ttl = next(v for v in (ttl, offered.ttl, self.settings.link_ttl) if v is not None)
        cap = next(
            v for v in (max_downloads, offered.max_downloads, self.settings.limits.max_downloads) if v is not None
        )
        expires_at = now + datetime.timedelta(seconds=ttl)
        row = {
            "file_id": offered.id,
            "channel": channel,
            "created_at": now,
            "expires_at": expires_at,
            "max_downloads": cap or None,
        }
        hourly = self.settings.limits.issues_per_recipient_per_hour if limit_recipient else 0
        if hourly and recipient is not None:
            issuance_id = self.audit.create_issuance_within_cap(
                **row, recipient=recipient, cap=hourly, window=RECIPIENT_CAP_WINDOW
            )
        else:
            issuance_id = self.audit.create_issuance(**row, recipient=recipient)
        return IssuedLink(issuance_id, self.link_for(issuance_id), ttl, expires_at)
