"""Read-only reports on the audit tables: plain data out, rendering is elsewhere.

`build_report` (the CLI), `build_dashboard` (the admin page) and `metrics_snapshot` (/metrics)
share the queries of `tempdl.reports.breakdowns`, so the three never disagree.
"""

from __future__ import annotations

import datetime
import zoneinfo
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, func, select

from tempdl.audit.statements import attempts as _attempts
from tempdl.audit.statements import issuances as _issuances
from tempdl.reports.breakdowns import (
    BreakdownRow,
    Totals,
    attempt_cube,
    by_day,
    by_file,
    by_outcome,
    by_recipient,
    totals_of,
)
from tempdl.reports.period import Period

BREAKDOWNS = ("day", "file", "recipient", "outcome")


@dataclass
class Report:
    period: Period
    by: str
    totals: Totals
    rows: list[BreakdownRow]

    @property
    def timezone(self) -> str:
        return self.period.zone.key


@dataclass(frozen=True)
class RecentAttempt:
    started_at: datetime.datetime
    file_id: str | None
    recipient: str | None
    outcome: str
    http_status: int
    bytes_sent: int


@dataclass
class Dashboard:
    period: Period
    totals: Totals
    days: list[BreakdownRow]
    files: list[BreakdownRow]
    recipients: list[BreakdownRow]  # the top ones, by bytes
    recipients_shown_of: int  # how many recipients there were in all
    recent: list[RecentAttempt]


@dataclass(frozen=True)
class MetricsSnapshot:
    """All-time counts for /metrics: counters only ever grow (until `prune`)."""

    links_issued: int
    attempts_by_outcome: dict[str, int]
    bytes_by_file: dict[str, int]


def recent_attempts(connection: Connection, period: Period, limit: int) -> list[RecentAttempt]:
    """The latest attempts of the period, newest first."""
    query = (
        select(
            _attempts.c.started_at,
            _attempts.c.file_id,
            _issuances.c.recipient,
            _attempts.c.outcome,
            _attempts.c.http_status,
            _attempts.c.bytes_sent,
        )
        .select_from(_attempts.outerjoin(_issuances, _attempts.c.issuance_id == _issuances.c.id))
        .where(*period.where(_attempts.c.started_at))
        .order_by(_attempts.c.started_at.desc(), _attempts.c.id.desc())
        .limit(limit)
    )
    return [RecentAttempt(*row) for row in connection.execute(query).tuples()]


# --- what callers use ----------------------------------------------------------------------------


def build_report(engine: Engine, period: Period, by: str) -> Report:
    """Totals for the period and one row per day, file, recipient or outcome (`by`)."""
    if by not in BREAKDOWNS:
        raise ValueError(f"unknown breakdown {by!r}; choose one of {', '.join(BREAKDOWNS)}")
    with engine.connect() as connection:
        cube = attempt_cube(connection, period)
        totals = totals_of(connection, period, cube)
        if by == "day":
            rows = by_day(connection, period)
        elif by == "file":
            rows = by_file(connection, period, cube)
        elif by == "recipient":
            rows = by_recipient(connection, period)
        else:
            rows = by_outcome(cube)
    return Report(period, by, totals, rows)


def build_dashboard(engine: Engine, period: Period, *, top_recipients: int = 20, recent: int = 50) -> Dashboard:
    """Everything the admin page shows, from the same queries as `build_report`."""
    with engine.connect() as connection:
        cube = attempt_cube(connection, period)
        recipients = by_recipient(connection, period)
        return Dashboard(
            period=period,
            totals=totals_of(connection, period, cube),
            days=by_day(connection, period),
            files=by_file(connection, period, cube),
            recipients=recipients[:top_recipients],
            recipients_shown_of=len(recipients),
            recent=recent_attempts(connection, period, recent),
        )


def metrics_snapshot(engine: Engine) -> MetricsSnapshot:
    with engine.connect() as connection:
        cube = attempt_cube(connection, Period(None, None, zoneinfo.ZoneInfo("UTC")))
        issued = connection.execute(select(func.count()).select_from(_issuances)).scalar_one()
    by_outcome: dict[str, int] = {}
    by_file: dict[str, int] = {}
    for key, outcome, count, sent in cube:
        by_outcome[outcome] = by_outcome.get(outcome, 0) + count
        by_file[key] = by_file.get(key, 0) + sent
    return MetricsSnapshot(issued, by_outcome, by_file)
