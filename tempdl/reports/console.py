"""What the operator's console shows beside the reports: the latest links, and the busiest recipient.

The traffic allowances are counted by `tempdl.links.budget`, the code that enforces them, so a
gauge and the limit can never disagree.
"""

from __future__ import annotations

import datetime
import zoneinfo

from sqlalchemy import Engine, func, select

from tempdl.audit.records import IssuanceRecord
from tempdl.audit.tables import download_attempts as _attempts
from tempdl.audit.tables import issuances as _issuances
from tempdl.reports import rolled
from tempdl.reports.stats import reading
from tempdl.timeutil import local_midnight


def recent_issuances(engine: Engine, limit: int) -> list[IssuanceRecord]:
    """The latest links handed out, newest first, revoked ones included."""
    query = select(*(_issuances.c[name] for name in IssuanceRecord.__dataclass_fields__))
    query = query.order_by(_issuances.c.id.desc()).limit(limit)
    with engine.connect() as connection:
        return [IssuanceRecord(**row._asdict()) for row in connection.execute(query)]


def busiest_recipient(
    engine: Engine,
    since: datetime.datetime,
    zone: zoneinfo.ZoneInfo | None = None,
    *,
    use_rollups: bool = True,
    now: datetime.datetime | None = None,
) -> tuple[str | None, int]:
    """The recipient who received the most bytes since `since`, and how many (None, 0: nobody).

    With `zone`, when `since` is a local midnight there, from the report rollups (today's rows
    would otherwise be summed on every page view); else, or when nobody got a byte, from the
    audit rows.
    """
    if use_rollups and zone is not None:
        day = since.astimezone(zone).date()
        if local_midnight(day, zone) == since:
            with reading(engine, zone, True, now) as figures:
                found = rolled.busiest_since(figures.rolled, day, since) if figures.rolled else None
            if found and found[1] > 0:
                return found
    sent = func.sum(_attempts.c.bytes_sent)
    with engine.connect() as connection:
        top = connection.execute(
            select(_issuances.c.recipient, sent)
            .select_from(_attempts.join(_issuances, _attempts.c.issuance_id == _issuances.c.id))
            .where(_attempts.c.started_at >= since, _issuances.c.recipient.is_not(None))
            .group_by(_issuances.c.recipient)
            .order_by(sent.desc())
            .limit(1)
        ).first()
    return (top[0], int(top[1])) if top else (None, 0)
