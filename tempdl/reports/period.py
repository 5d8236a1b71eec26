"""A report's period: local days, turned into UTC bounds on the audit timestamps.

A day is the operator's local day, its bounds computed by zoneinfo (a DST day has 23 or 25 hours),
so no database has to know about time zones.
"""

from __future__ import annotations

import datetime
import zoneinfo
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.visitors import InternalTraversal


class Unindexed(ColumnElement[Any]):
    """A column SQLite's planner may not use an index for: `+column` (sqlite.org/optoverview.html,
    "disqualifying WHERE clause terms"); other databases see the plain column.

    Without statistics, SQLite takes any range on started_at for selective and reads half the
    table through that index, then sorts it for the GROUP BY. With the range disqualified, it
    streams the covering index that is already in GROUP BY order (migration 0002) and checks the
    range on each entry, which is several times faster; a test pins those plans.
    """

    inherit_cache = True
    # SQLAlchemy declares it an instance attribute, so a ClassVar would not type; it is never mutated
    _traverse_internals = [("column", InternalTraversal.dp_clauseelement)]  # noqa: RUF012

    def __init__(self, column: ColumnElement) -> None:
        self.column = column
        self.type = column.type


@compiles(Unindexed)
def _compile_unindexed(element: Unindexed, compiler: SQLCompiler, **kwargs: Any) -> str:
    return compiler.process(element.column, **kwargs)


@compiles(Unindexed, "sqlite")
def _compile_unindexed_sqlite(element: Unindexed, compiler: SQLCompiler, **kwargs: Any) -> str:
    return "+" + compiler.process(element.column, **kwargs)


def local_midnight(day: datetime.date, zone: zoneinfo.ZoneInfo) -> datetime.datetime:
    """The UTC instant at which `day` starts in `zone`."""
    return datetime.datetime.combine(day, datetime.time(), zone).astimezone(datetime.UTC)


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
