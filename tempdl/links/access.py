"""Deciding whether a download request may have the file: token, issuance, expiry, the file itself.

The decision is taken once, when the request starts: a download that began in time finishes even if
the link expires meanwhile. After expiry, for `resume_grace` seconds, a Range request may still
fetch the bytes of the file that the link's earlier attempts have not delivered, once, if one of
them began in time (`tempdl.links.resume`): phones on bad lines drop connections.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from tempdl.audit.log import AuditLog
from tempdl.audit.records import Attempt, IssuanceRecord
from tempdl.config.settings import Settings
from tempdl.errors import LinkInvalid, TrafficBudgetSpent
from tempdl.links import refusals
from tempdl.links.budget import TrafficBudget, local_day_bounds
from tempdl.links.catalog import Catalog, OfferedFile
from tempdl.links.digests import FileDigests
from tempdl.links.refusals import Refusal
from tempdl.links.reservations import Hold, Reservations
from tempdl.links.resume import GraceResumes, Span
from tempdl.links.tokens import LinkSigner


def _expired(issuance: IssuanceRecord) -> Refused:
    return Refused(refusals.EXPIRED, f"issuance {issuance.id} expired at {issuance.expires_at:%Y-%m-%dT%H:%M:%SZ}")


class Refused(Exception):
    """The request is refused; `refusal` says how to answer, `detail` is for the log only."""

    def __init__(self, refusal: Refusal, detail: str = "") -> None:
        super().__init__(detail or refusal.reason)
        self.refusal = refusal
        self.detail = detail


@dataclass(frozen=True)
class Grant:
    issuance: IssuanceRecord
    offered: OfferedFile
    path: Path
    stat: os.stat_result
    holds: list[Hold] = field(default_factory=list)  # bytes reserved until the download ends
    resumes_expired: bool = False  # served under resume_grace: one resume of this link at a time

    def settle(self, length: int) -> None:
        """The answer is known: `length` body bytes at most (0 for no body)."""
        for hold in self.holds:
            hold.length = length

    @property
    def size(self) -> int:
        return self.stat.st_size


class Gate:
    def __init__(self, settings: Settings, audit: AuditLog, signer: LinkSigner, catalog: Catalog) -> None:
        self.settings = settings
        self.audit = audit
        self.signer = signer
        self.catalog = catalog
        self.budget = TrafficBudget(settings.limits, settings.zone, audit)
        self.reservations = Reservations()  # bytes of running downloads, for the byte allowances
        self.resumes = GraceResumes(audit)
        self.digests = FileDigests()  # SHA-256 per file version, for the landing page and Repr-Digest

    async def admit(self, token: str, attempt: Attempt, *, span_of: Callable[[os.stat_result], Span | None]) -> Grant:
        """Return what may be served, or raise `Refused`; fills in the attempt's issuance and file.

        `span_of` gives the bytes the request asks for of the file as stat'ed (None: none of
        it), which decides a resume after expiry.
        """
        now = attempt.started_at
        try:
            link = self.signer.read(token)
        except LinkInvalid as error:
            raise Refused(refusals.BAD, str(error)) from None
        issuance = await self.audit.run(self.audit.load_issuance, link.issuance_id)
        if issuance is None:
            # Signed by us but gone from the database: pruned long after it expired.
            if link.signed_at + datetime.timedelta(seconds=self.settings.link_ttl) < now:
                raise Refused(refusals.EXPIRED, f"issuance {link.issuance_id} pruned")
            raise Refused(refusals.BAD, f"issuance {link.issuance_id} does not exist")
        attempt.issuance_id = issuance.id
        attempt.file_id = issuance.file_id
        if issuance.revoked_at is not None:
            raise Refused(refusals.REVOKED, f"issuance {issuance.id} revoked")
        expired = now >= issuance.expires_at
        if expired and not GraceResumes.within_grace(issuance, now, self.settings.resume_grace):
            raise _expired(issuance)
        offered = self.catalog.entry(issuance.file_id)
        located = self.catalog.servable_location(offered) if offered is not None else None
        if offered is None or located is None:
            raise Refused(refusals.NOT_FOUND, f"file {issuance.file_id!r} is not on offer or not on disk")
        path, stat = located
        if expired and not await self.resumes.begin(issuance, span_of(stat)):
            raise _expired(issuance)
        grant = Grant(issuance, offered, path, stat, resumes_expired=expired)
        try:
            await self._check_limits(grant, attempt, now)
        except BaseException:
            self.release(grant)
            raise
        return grant

    async def _check_limits(self, grant: Grant, attempt: Attempt, now: datetime.datetime) -> None:
        """The counted limits, read from the database so they hold across restarts."""
        issuance = grant.issuance
        if issuance.max_downloads:
            completed = await self.audit.run(self.audit.completed_downloads, issuance.id, grant.size)
            if completed >= issuance.max_downloads:
                raise Refused(refusals.USED_UP, f"issuance {issuance.id}: {completed} complete downloads")
        allowance = self.settings.limits.recipient_daily_bytes
        if allowance and issuance.recipient:
            key = ("recipient", issuance.recipient)
            day_start, day_end = local_day_bounds(now, self.settings.zone)
            recipient = issuance.recipient
            counted, held = await self.reservations.settled_count(
                key,
                lambda open_rows: self.audit.run(
                    self.audit.recipient_bytes_since, recipient, day_start, held_here=open_rows
                ),
            )
            # From here to the hold, nothing is awaited: the check and the hold are one step.
            used = counted + held
            if used >= allowance:
                retry_after = max(1, int((day_end - now).total_seconds()))
                raise Refused(replace(refusals.QUOTA, retry_after=retry_after), f"recipient used {used} bytes today")
            grant.holds.append(self.reservations.hold(key, attempt, grant.size))
        try:
            hold = await self.budget.reserve(now, self.reservations, attempt, grant.size)
        except TrafficBudgetSpent as spent:
            retry_after = max(1, int((spent.retry_at - now).total_seconds()))
            raise Refused(replace(refusals.BUDGET_SPENT, retry_after=retry_after), str(spent)) from None
        if hold is not None:
            grant.holds.append(hold)

    def release(self, grant: Grant) -> None:
        """The download of `grant` ended and its row holds the real bytes: its holds are spent."""
        for hold in grant.holds:
            self.reservations.release(hold)
        grant.holds.clear()
        if grant.resumes_expired:
            self.resumes.end(grant.issuance.id)
