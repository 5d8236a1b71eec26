"""The audit store: the only code that writes `issuances` and `download_attempts` rows.

Every write is one short transaction through SQLAlchemy Core (no ORM on the hot path). The server
runs these methods on one dedicated thread (`AuditLog.run`), so a busy or slow database never
stalls the event loop that is streaming other downloads, and SQLite sees a single writer.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.exc import DBAPIError

from tempdl.models import DownloadAttempt, Issuance

T = TypeVar("T")
_issuances = Issuance.__table__
_attempts = DownloadAttempt.__table__


@dataclass(frozen=True)
class IssuanceRecord:
    id: int
    created_at: datetime.datetime
    expires_at: datetime.datetime
    file_id: str
    recipient: str | None
    channel: str
    max_downloads: int | None
    revoked_at: datetime.datetime | None


@dataclass
class Attempt:
    """What one download request was and what came of it, filled in as the request goes."""

    started_at: datetime.datetime
    client_ip: str | None = None
    user_agent: str | None = None
    issuance_id: int | None = None
    file_id: str | None = None
    outcome: str = "partial"
    http_status: int = 200
    range_start: int | None = None
    range_end: int | None = None
    bytes_sent: int = 0
    finished_at: datetime.datetime | None = None
    id: int | None = field(default=None)

    def row(self) -> dict[str, Any]:
        return {
            "issuance_id": self.issuance_id,
            "file_id": self.file_id,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "outcome": self.outcome,
            "http_status": self.http_status,
            "range_start": self.range_start,
            "range_end": self.range_end,
            "bytes_sent": self.bytes_sent,
            "client_ip": self.client_ip,
            "user_agent": (self.user_agent or None) and self.user_agent[:512],
        }


class AuditUnavailable(Exception):
    """The audit database cannot be written or read right now (locked, read-only, full, gone)."""


class AuditLog:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tempdl-audit")

    async def run(self, method: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run one of this store's methods on the audit thread and wait for it without blocking."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, functools.partial(method, *args, **kwargs))
        except DBAPIError as error:
            raise AuditUnavailable(str(error.orig)) from error

    def close(self) -> None:
        """Wait for queued writes to finish, then release the database."""
        self._executor.shutdown(wait=True)
        self.engine.dispose()

    # --- issuances --------------------------------------------------------------------------

    def create_issuance(
        self,
        *,
        file_id: str,
        recipient: str | None,
        channel: str,
        created_at: datetime.datetime,
        expires_at: datetime.datetime,
        max_downloads: int | None,
    ) -> int:
        with self.engine.begin() as connection:
            result = connection.execute(
                insert(_issuances).values(
                    file_id=file_id,
                    recipient=recipient,
                    channel=channel,
                    created_at=created_at,
                    expires_at=expires_at,
                    max_downloads=max_downloads,
                )
            )
            return int(result.inserted_primary_key[0])

    def load_issuance(self, issuance_id: int) -> IssuanceRecord | None:
        with self.engine.connect() as connection:
            row = connection.execute(select(_issuances).where(_issuances.c.id == issuance_id)).first()
        return None if row is None else IssuanceRecord(**row._mapping)

    def revoke(self, issuance_id: int, at: datetime.datetime) -> bool:
        """Mark an issuance revoked; False when there is no such issuance."""
        with self.engine.begin() as connection:
            result = connection.execute(
                update(_issuances)
                .where(_issuances.c.id == issuance_id)
                .values(revoked_at=func.coalesce(_issuances.c.revoked_at, at))
            )
            return result.rowcount == 1

    # --- attempts ---------------------------------------------------------------------------

    def record_attempt(self, attempt: Attempt) -> int:
        """Write a finished attempt (a refusal, a 304, a HEAD, a landing page) in one go."""
        if attempt.finished_at is None:
            attempt.finished_at = attempt.started_at
        with self.engine.begin() as connection:
            result = connection.execute(insert(_attempts).values(attempt.row()))
        attempt.id = int(result.inserted_primary_key[0])
        return attempt.id

    def open_attempt(self, attempt: Attempt) -> int:
        """Write the row of a download that is about to send bytes.

        It starts as `partial` with no `finished_at`, so a crash mid-download still leaves an
        honest row behind; `close_attempt` fills in what really happened.
        """
        attempt.finished_at = None
        with self.engine.begin() as connection:
            result = connection.execute(insert(_attempts).values(attempt.row()))
        attempt.id = int(result.inserted_primary_key[0])
        return attempt.id

    def close_attempt(self, attempt: Attempt) -> None:
        assert attempt.id is not None and attempt.finished_at is not None
        with self.engine.begin() as connection:
            connection.execute(
                update(_attempts)
                .where(_attempts.c.id == attempt.id)
                .values(
                    outcome=attempt.outcome,
                    http_status=attempt.http_status,
                    bytes_sent=attempt.bytes_sent,
                    finished_at=attempt.finished_at,
                    range_start=attempt.range_start,
                    range_end=attempt.range_end,
                )
            )

    def close_abandoned_attempts(self, now: datetime.datetime) -> int:
        """Mark attempts a crash left open (no `finished_at`) as `partial`; return how many."""
        with self.engine.begin() as connection:
            result = connection.execute(
                update(_attempts).where(_attempts.c.finished_at.is_(None)).values(outcome="partial", finished_at=now)
            )
            return result.rowcount

    def started_download_before(self, issuance_id: int, moment: datetime.datetime) -> bool:
        """Whether bytes of this link started flowing before `moment` (resume after expiry)."""
        with self.engine.connect() as connection:
            found = connection.execute(
                select(_attempts.c.id)
                .where(
                    _attempts.c.issuance_id == issuance_id,
                    _attempts.c.outcome.in_(("ok", "partial")),
                    _attempts.c.started_at <= moment,
                    _attempts.c.bytes_sent > 0,
                )
                .limit(1)
            ).first()
        return found is not None
