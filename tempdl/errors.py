"""The exceptions that cross a package boundary, each carrying what its handler needs to answer.

A leaf module: it imports nothing of tempdl's, so every layer can raise and catch these without
pointing upwards. Translation to an HTTP status or a CLI exit code happens once, at the edge.
"""

from __future__ import annotations

import datetime


class ConfigError(Exception):
    """A configuration value that cannot be used; the message names the key."""


class CommandError(Exception):
    """A command cannot do what was asked; the message is the one line the operator sees."""


class AuditUnavailable(Exception):
    """The audit database cannot be written or read right now (locked, read-only, full, gone)."""


class IssuanceCapReached(Exception):
    """The recipient already had `cap` links within the window; the next may be issued at `retry_at`."""

    def __init__(self, cap: int, retry_at: datetime.datetime) -> None:
        super().__init__(f"{cap} issuances within the window; next at {retry_at.isoformat()}")
        self.cap = cap
        self.retry_at = retry_at


class TrafficBudgetSpent(Exception):
    """The server's `limits.total_daily_bytes` or `total_monthly_bytes` is spent until `retry_at`."""

    def __init__(self, period: str, retry_at: datetime.datetime) -> None:
        super().__init__(f"{period} traffic allowance spent; back at {retry_at.isoformat()}")
        self.period = period
        self.retry_at = retry_at


class LinkInvalid(Exception):
    """The token was not signed by us (tampered, truncated, or signed with a retired key)."""
