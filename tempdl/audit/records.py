"""What the audit log hands back and takes in: plain records, free of SQLAlchemy.

`Attempt` is filled in as a download request goes and written once it ends; `IssuanceRecord` is an
`issuances` row as the rest of tempdl reads it.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

USER_AGENT_MAX = 512
"""Characters of a User-Agent the audit row keeps (the `download_attempts.user_agent` column)."""


ISSUANCE_COLUMNS = ("file_id", "recipient", "channel", "created_at", "expires_at", "max_downloads")
"""The values a new issuance row is written with."""
CLOSE_COLUMNS = ("outcome", "http_status", "bytes_sent", "finished_at", "range_start", "range_end")
"""The values an attempt row is closed with: what came of it."""


class Outcome(StrEnum):
    """What came of one download attempt: the `download_attempts.outcome` column (SPEC lists them).

    A StrEnum, so a member is the very string stored, logged and reported: `Outcome.OK == "ok"`.
    """

    OK = "ok"  # everything asked for was sent
    PARTIAL = "partial"  # the client went away (also a row still open)
    EXPIRED = "expired"
    BAD = "bad"  # the token could not be read: forged, truncated, or signed with a retired key
    REVOKED = "revoked"
    LIMITED = "limited"  # a cap said no: downloads used up, concurrency, bytes per day
    NOT_FOUND = "not_found"  # the file is no longer on offer
    NOT_MODIFIED = "not_modified"  # 304
    LANDING = "landing"  # the WeChat in-app browser page, not the file
    UNSATISFIABLE = "unsatisfiable"  # 416: the Range lies past the end (e.g. resuming a finished file)
    ERROR = "error"  # the server could not read the file; `bytes_sent` says how far it got


REFUSED_OUTCOMES = (Outcome.EXPIRED, Outcome.BAD, Outcome.REVOKED, Outcome.LIMITED, Outcome.NOT_FOUND)
"""The outcomes the reports sum as `refused`."""


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
    outcome: str = Outcome.PARTIAL
    http_status: int = 200
    range_start: int | None = None
    range_end: int | None = None
    bytes_sent: int = 0
    finished_at: datetime.datetime | None = None
    method: str = "GET"  # HEAD is recorded but never counts as a download
    server_id: str | None = None  # which server wrote the row: crash recovery closes only its own
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
            "user_agent": (self.user_agent or None) and self.user_agent[:USER_AGENT_MAX],
            "method": self.method,
            "server_id": self.server_id,
            "progress_at": None,  # only progress notes write it, on a row already open
        }

    def close_values(self) -> dict[str, Any]:
        """The values `close_attempt` writes: what came of this attempt, and its row's id."""
        return {**{name: getattr(self, name) for name in CLOSE_COLUMNS}, "attempt_id": self.id}
