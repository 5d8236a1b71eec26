"""The `download_attempts` row of one download request, written the way its answer needs."""

from __future__ import annotations

from tempdl.audit.log import AuditLog
from tempdl.audit.records import Attempt
from tempdl.timeutil import Clock


class AttemptRow:
    """Written whole (`record`) when nothing, or nothing more, will be sent; otherwise opened before
    the first byte (`open`) and closed after the last (`close`), so a crash mid-download still
    leaves its row. Every write goes through `AuditLog.run`, off the event loop when it must wait."""

    def __init__(self, audit: AuditLog, clock: Clock, attempt: Attempt) -> None:
        self.audit = audit
        self.clock = clock
        self.attempt = attempt

    async def record(self, outcome: str, http_status: int) -> None:
        self.attempt.outcome = outcome
        self.attempt.http_status = http_status
        self.attempt.finished_at = self.clock()
        await self.audit.run(self.audit.record_attempt, self.attempt)

    async def open(self, http_status: int, *, download_cap: int | None, file_size: int) -> int | None:
        """The row's id, or None when the link's `download_cap` is used up (then nothing is written)."""
        attempt = self.attempt
        attempt.http_status = http_status
        if download_cap:
            claimed = await self.audit.run(
                self.audit.claim_download, attempt, download_cap=download_cap, file_size=file_size
            )
            return attempt.id if claimed else None
        return await self.audit.run(self.audit.open_attempt, attempt)

    async def close(self) -> None:
        self.attempt.finished_at = self.clock()
        await self.audit.run(self.audit.close_attempt, self.attempt)
