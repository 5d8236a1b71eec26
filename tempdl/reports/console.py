"""What the operator's console shows beside the reports: the latest links, and how full the budgets are.

Budgets are counted as the limits count them: bytes that went out in the operator's local day
(or month), whatever became of the download.
"""

from __future__ import annotations

import datetime
import zoneinfo
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, func, select

from tempdl.audit.tables import DownloadAttempt, Issuance

_attempts = DownloadAttempt.__table__
_issuances = Issuance.__table__


@dataclass(frozen=True)
class RecentIssuance:
    id: int
    created_at: datetime.datetime
    expires_at: datetime.datetime
    file_id: str
    recipient: str | None
    channel: str
    max_downloads: int | None
    revoked_at: datetime.datetime | None


@dataclass(frozen=True)
class BudgetUse:
    """Bytes sent since the start of the local day and month, and the busiest recipient today."""

    today: int
    this_month: int
    top_recipient: str | None
    top_recipient_today: int


def recent_issuances(engine: Engine, limit: int) -> list[RecentIssuance]:
    """The latest links handed out, newest first, revoked ones included."""
    query = select(*(_issuances.c[name] for name in RecentIssuance.__dataclass_fields__))
    query = query.order_by(_issuances.c.id.desc()).limit(limit)
    with engine.connect() as connection:
        return [RecentIssuance(**row._asdict()) for row in connection.execute(query)]


def local_starts(now: datetime.datetime, zone: zoneinfo.ZoneInfo) -> tuple[datetime.datetime, datetime.datetime]:
    """The start (UTC) of the local day and of the local month that hold `now`."""
    local = now.astimezone(zone)
    day = datetime.datetime.combine(local.date(), datetime.time(), zone)
    month = day.replace(day=1)
    return day.astimezone(datetime.UTC), month.astimezone(datetime.UTC)


def budget_use(engine: Engine, now: datetime.datetime, zone: zoneinfo.ZoneInfo) -> BudgetUse:
    day_start, month_start = local_starts(now, zone)
    with engine.connect() as connection:
        today, month = (_bytes_since(connection, start) for start in (day_start, month_start))
        sent = func.sum(_attempts.c.bytes_sent)
        top = connection.execute(
            select(_issuances.c.recipient, sent)
            .select_from(_attempts.join(_issuances, _attempts.c.issuance_id == _issuances.c.id))
            .where(_attempts.c.started_at >= day_start, _issuances.c.recipient.is_not(None))
            .group_by(_issuances.c.recipient)
            .order_by(sent.desc())
            .limit(1)
        ).first()
    return BudgetUse(today, month, top[0] if top else None, int(top[1]) if top else 0)


def _bytes_since(connection: Connection, start: datetime.datetime) -> int:
    query = select(func.coalesce(func.sum(_attempts.c.bytes_sent), 0)).where(_attempts.c.started_at >= start)
    return int(connection.execute(query).scalar_one())
