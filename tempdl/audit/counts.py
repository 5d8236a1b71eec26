"""The counts the download limits decide on: whole files sent, and downloads running.

Both read `download_attempts` inside the caller's transaction (`AuditLog.claim_download` locks
first, then counts), so they take a `Connection`, not an engine.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Integer, and_, case, func, select, type_coerce

from tempdl.audit.records import Attempt, Outcome
from tempdl.audit.tables import download_attempts as _attempts

COUNTED = (Outcome.OK, Outcome.PARTIAL)
"""Outcomes whose bytes count as downloaded."""

DOWNLOAD = func.coalesce(_attempts.c.method, "GET") != "HEAD"
"""A row of a GET: a HEAD never counts as a download (NULL is a GET, on rows older than 0003)."""


def total_of(amount: ColumnElement[Any]) -> ColumnElement[int]:
    """SUM(amount), 0 over no rows, typed as the whole number it is."""
    return type_coerce(func.coalesce(func.sum(amount), 0), Integer)


def completed_downloads(connection: Connection, issuance_id: int, file_size: int) -> int:
    """Complete downloads of a link: all the body bytes it sent, in whole files.

    A download fetched as several Range requests (download managers, resumes after a dropped
    connection) counts once, when its pieces add up to the whole file.
    """
    sent = connection.execute(
        select(total_of(_attempts.c.bytes_sent)).where(
            _attempts.c.issuance_id == issuance_id, _attempts.c.outcome.in_(COUNTED), DOWNLOAD
        )
    ).scalar_one()
    return int(sent) // file_size if file_size > 0 else 0


def downloads_claimed(connection: Connection, attempt: Attempt, file_size: int) -> int:
    """Downloads of a link that count against its cap, as the request `attempt` is about to start.

    Finished requests count the body bytes they sent, in whole files: a download fetched as
    several Range requests one after another, or resumed after a dropped connection, counts once,
    when its pieces add up to the file. Requests still running count one download each when the
    bytes they asked for overlap the bytes this one asks for: two requests for the same bytes at
    once are two downloads (five "Range: bytes=1-" at once cannot share one), while a download
    manager's parallel pieces, which do not overlap, are one.
    One statement, so one snapshot: at READ COMMITTED two statements could see a download that
    finished in between as neither running (its row closed) nor sent (its bytes read as 0), and
    let a second download past the cap (two servers on PostgreSQL did, about one race in ten).
    """
    start = attempt.range_start or 0
    end = attempt.range_end if attempt.range_end is not None else max(file_size - 1, start)
    running = _attempts.c.finished_at.is_(None)
    overlapping = and_(
        running, _attempts.c.range_start <= end, func.coalesce(_attempts.c.range_end, _attempts.c.range_start) >= start
    )
    settled, running_here = connection.execute(
        select(
            total_of(case((and_(~running, _attempts.c.outcome.in_(COUNTED)), _attempts.c.bytes_sent), else_=0)),
            total_of(case((overlapping, 1), else_=0)),
        ).where(_attempts.c.issuance_id == attempt.issuance_id, DOWNLOAD)
    ).one()
    return (int(settled) // file_size if file_size > 0 else 0) + int(running_here)


def traffic_since(
    connection: Connection,
    month_start: datetime.datetime,
    day_start: datetime.datetime,
    held_here: Sequence[int] = (),
) -> tuple[int, int]:
    """Body bytes of all downloads started since `month_start`, and since `day_start` (later).

    A download still running counts the bytes it asked for, not the bytes sent so far: what
    `limits.total_*_bytes` must reserve, so downloads starting together cannot all squeeze under
    the allowance. Its row, once closed, counts what really went out. Running rows in `held_here`
    are left out: this process holds them (`tempdl.links.reservations`) and counts them itself.
    """
    running = and_(
        _attempts.c.finished_at.is_(None), _attempts.c.range_start.is_not(None), _attempts.c.range_end.is_not(None)
    )
    amount = case((running, _attempts.c.range_end - _attempts.c.range_start + 1), else_=_attempts.c.bytes_sent)
    conditions = [_attempts.c.started_at >= month_start]
    if held_here:
        conditions.append(~and_(_attempts.c.finished_at.is_(None), _attempts.c.id.in_(held_here)))
    month, day = connection.execute(
        select(
            total_of(amount),
            total_of(case((_attempts.c.started_at >= day_start, amount), else_=0)),
        ).where(*conditions)
    ).one()
    return int(month), int(day)
