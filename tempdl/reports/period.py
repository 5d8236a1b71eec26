"""A report's period: local days, turned into UTC bounds on the audit timestamps.

A day is the operator's local day, its bounds computed by zoneinfo (a DST day has 23 or 25 hours),
so no database has to know about time zones.
"""

from __future__ import annotations

import datetime
import zoneinfo
from dataclasses import dataclass

from sqlalchemy.sql import ColumnElement

from tempdl.audit.unindexed import Unindexed
from tempdl.timeutil import local_midnight

__all__ = ["Period", "Unindexed", "local_midnight"]


@dataclass(frozen=True)
class Period:
    """The local days from `since` to `until`, both included; either may be open."""

    since: datetime.date | None
    until: datetime.date | None
    zone: zoneinfo.ZoneInfo

    def __post_init__(self) -> None:
        if self.since and self.until and self.since > self.until:
            raise ValueError(f"since ({self.since}) is after until ({self.until})")

    @classmethod
    def last_days(cls, days: int, today: datetime.date, zone: zoneinfo.ZoneInfo) -> Period:
        return cls(today - datetime.timedelta(days=days - 1), today, zone)

    @property
    def start(self) -> datetime.datetime | None:
        """First instant of the period, UTC."""
        return local_midnight(self.since, self.zone) if self.since else None

    @property
    def end(self) -> datetime.datetime | None:
        """First instant after the period, UTC."""
        return local_midnight(self.until + datetime.timedelta(days=1), self.zone) if self.until else None

    def where(self, column: ColumnElement) -> list[ColumnElement[bool]]:
        conditions = []
        if self.start is not None:
            conditions.append(column >= self.start)
        if self.end is not None:
            conditions.append(column < self.end)
        return conditions
