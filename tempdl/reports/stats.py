"""Reports on the audit tables: plain data out, rendering is elsewhere.

`build_report` (the CLI), `build_dashboard` (the admin page) and `metrics_snapshot` (/metrics)
share the same figures, so the three never disagree: from the daily rollups plus the rows not
rolled up yet (`tempdl.reports.rolled`) or, where the rollups cannot serve (not built yet, cut in
another time zone), from the audit tables alone (`tempdl.reports.breakdowns`). The only write a
report makes is bringing the rollups up to date first, when it can: never the audit rows.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import time
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import DBAPIError

from tempdl.audit import rollups
from tempdl.audit.sqlite_setup import waiting_until
from tempdl.audit.tables import download_attempts as _attempts
from tempdl.audit.tables import issuances as _issuances
from tempdl.reports import rolled
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
from tempdl.reports.rolled import Rolled
from tempdl.timeutil import utc_now

BREAKDOWNS = ("day", "file", "recipient", "outcome")
EXTEND_WAIT_SECONDS = 1.0
"""How long a report waits for the database's write lock to extend the rollups (then it reads)."""

log = logging.getLogger("tempdl.reports")


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


class _Figures:
    """The figures of one snapshot: from the rollups plus live rows, or from the audit tables alone."""

    def __init__(self, connection: Connection, rolled: Rolled | None) -> None:
        self.connection, self.rolled = connection, rolled

    def cube(self, period: Period) -> list[tuple[str, str, int, int]]:
        return rolled.cube(self.rolled, period) if self.rolled else attempt_cube(self.connection, period)

    def totals(self, period: Period, cube: list[tuple[str, str, int, int]]) -> Totals:
        if self.rolled:
            return rolled.totals(self.rolled, period, cube)
        return totals_of(self.connection, period, cube)

    def by_day(self, period: Period) -> list[BreakdownRow]:
        return rolled.by_day(self.rolled, period) if self.rolled else by_day(self.connection, period)

    def by_file(self, period: Period, cube: list[tuple[str, str, int, int]]) -> list[BreakdownRow]:
        return rolled.by_file(self.rolled, period, cube) if self.rolled else by_file(self.connection, period, cube)

    def by_recipient(self, period: Period) -> list[BreakdownRow]:
        return rolled.by_recipient(self.rolled, period) if self.rolled else by_recipient(self.connection, period)


@contextlib.contextmanager
def reading(
    engine: Engine, zone: zoneinfo.ZoneInfo | None, use_rollups: bool, now: datetime.datetime | None
) -> Iterator[_Figures]:
    """One snapshot of the audit database (so rollups extended meanwhile are not counted twice),
    after bringing the rollups up to date if this process can (only speed depends on it)."""
    if use_rollups:
        try:
            with waiting_until(time.monotonic() + EXTEND_WAIT_SECONDS):
                rollups.extend(engine, None, now or utc_now(), wait=False)
        except DBAPIError as error:  # read-only, locked, a replica: report from what is there
            log.debug("event=rollups_not_extended error=%s", type(getattr(error, "orig", error)).__name__)
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execution_options(isolation_level="REPEATABLE READ")
        elif connection.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN")  # pysqlite would run each SELECT on its own
        yield _Figures(connection, rolled.open_rolled(connection, zone) if use_rollups else None)


def build_report(
    engine: Engine, period: Period, by: str, *, use_rollups: bool = True, now: datetime.datetime | None = None
) -> Report:
    """Totals for the period and one row per day, file, recipient or outcome (`by`).

    `use_rollups=False` reads the audit tables alone (what the rollups must agree with)."""
    if by not in BREAKDOWNS:
        raise ValueError(f"unknown breakdown {by!r}; choose one of {', '.join(BREAKDOWNS)}")
    all_time = period.since is None and period.until is None
    with reading(engine, None if all_time and by != "day" else period.zone, use_rollups, now) as figures:
        cube = figures.cube(period)
        recipients = figures.by_recipient(period) if by == "recipient" else []  # first: totals count them then
        totals = figures.totals(period, cube)
        if by == "day":
            rows = figures.by_day(period)
        elif by == "file":
            rows = figures.by_file(period, cube)
        elif by == "recipient":
            rows = recipients
        else:
            rows = by_outcome(cube)
    return Report(period, by, totals, rows)


def build_dashboard(
    engine: Engine,
    period: Period,
    *,
    top_recipients: int = 20,
    recent: int = 50,
    use_rollups: bool = True,
    now: datetime.datetime | None = None,
) -> Dashboard:
    """Everything the admin page shows, from the same figures as `build_report`."""
    with reading(engine, period.zone, use_rollups, now) as figures:
        cube = figures.cube(period)
        recipients = figures.by_recipient(period)
        return Dashboard(
            period=period,
            totals=figures.totals(period, cube),
            days=figures.by_day(period),
            files=figures.by_file(period, cube),
            recipients=recipients[:top_recipients],
            recipients_shown_of=len(recipients),
            recent=recent_attempts(figures.connection, period, recent),
        )


def metrics_snapshot(
    engine: Engine, *, use_rollups: bool = True, now: datetime.datetime | None = None
) -> MetricsSnapshot:
    everything = Period(None, None, zoneinfo.ZoneInfo("UTC"))
    with reading(engine, None, use_rollups, now) as figures:
        cube = figures.cube(everything)
        if figures.rolled:
            issued = rolled.links_issued(figures.rolled, everything)
        else:
            issued = figures.connection.execute(select(func.count()).select_from(_issuances)).scalar_one()
    by_outcome: dict[str, int] = {}
    by_file: dict[str, int] = {}
    for key, outcome, count, sent in cube:
        by_outcome[outcome] = by_outcome.get(outcome, 0) + count
        by_file[key] = by_file.get(key, 0) + sent
    return MetricsSnapshot(issued, by_outcome, by_file)
