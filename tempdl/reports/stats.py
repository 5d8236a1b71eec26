"""Read-only reports on the audit tables: aggregate SQL in, plain data out (rendering is elsewhere).

The queries are shaped to stay well under a second with millions of attempt rows, on SQLite too.
SQLite has no hash aggregation: a GROUP BY that does not follow an index sorts every row it reads.
So each report reads a covering index (migration 0002) in the order it groups by:

- attempts are counted GROUP BY (file_id, outcome) over `(file_id, outcome, started_at, bytes_sent)`;
  the totals, the file table, the outcome table and the metrics all fold those few dozen rows;
- a day is the operator's local day: one range query per day over `(started_at, outcome,
  bytes_sent)`, the bounds computed by zoneinfo (a DST day has 23 or 25 hours), so no database
  has to know about time zones;
- recipients live on issuances: attempts are summed per issuance over `(issuance_id, outcome,
  started_at, bytes_sent)`, then joined to their issuance by primary key and summed per recipient.

HEAD requests are not downloads: an `ok` that sent no byte (a HEAD, or a file of no bytes, which
no download cap counts either) is left out of every figure here; it stays in the recent attempts
list, which is a log. That is judged from `outcome` and `bytes_sent`, which every covering index
holds: `method` is not in them, and reading it would make each scan visit the table.

Attempts belong to the period in which they started, issuances to the one in which they were
created. `-` stands for "none": an attempt whose link could not be read has no file or recipient.
"""

from __future__ import annotations

import datetime
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sqlalchemy import Connection, Engine, Select, bindparam, exists, func, literal, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.visitors import InternalTraversal

from tempdl.audit.records import Outcome
from tempdl.audit.tables import DownloadAttempt, Issuance

BREAKDOWNS = ("day", "file", "recipient", "outcome")
REFUSED_OUTCOMES = (Outcome.EXPIRED, Outcome.BAD, Outcome.REVOKED, Outcome.LIMITED, Outcome.NOT_FOUND)
OTHER_OUTCOMES = (Outcome.NOT_MODIFIED, Outcome.LANDING)  # answered, but no file was asked for
NONE_KEY = "-"

_issuances = Issuance.__table__
_attempts = DownloadAttempt.__table__


class _Unindexed(ColumnElement[Any]):
    """A column SQLite's planner may not use an index for: `+column` (sqlite.org/optoverview.html,
    "disqualifying WHERE clause terms"); other databases see the plain column.

    Without statistics, SQLite takes any range on started_at for selective and reads half the
    table through that index, then sorts it for the GROUP BY. With the range disqualified, it
    streams the covering index that is already in GROUP BY order (migration 0002) and checks the
    range on each entry, which is several times faster; a test pins those plans.
    """

    inherit_cache = True
    _traverse_internals: ClassVar = [("column", InternalTraversal.dp_clauseelement)]

    def __init__(self, column: ColumnElement) -> None:
        self.column = column
        self.type = column.type


@compiles(_Unindexed)
def _compile_unindexed(element: _Unindexed, compiler: SQLCompiler, **kwargs: Any) -> str:
    return compiler.process(element.column, **kwargs)


@compiles(_Unindexed, "sqlite")
def _compile_unindexed_sqlite(element: _Unindexed, compiler: SQLCompiler, **kwargs: Any) -> str:
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


@dataclass
class Totals:
    links_issued: int = 0
    links_unused: int = 0  # issued in the period and never downloaded completely: the wasted links
    distinct_recipients: int = 0
    attempts: int = 0
    downloads_ok: int = 0
    downloads_partial: int = 0
    refused: dict[str, int] = field(default_factory=dict)  # by outcome
    other: dict[str, int] = field(default_factory=dict)  # not_modified, landing
    bytes_served: int = 0

    @property
    def refused_total(self) -> int:
        return sum(self.refused.values())

    @property
    def is_empty(self) -> bool:
        return self.links_issued == 0 and self.attempts == 0


@dataclass
class BreakdownRow:
    key: str
    links_issued: int = 0
    attempts: int = 0
    ok: int = 0
    partial: int = 0
    refused: int = 0
    bytes_sent: int = 0

    def add(self, outcome: str, count: int, sent: int) -> None:
        self.attempts += count
        self.bytes_sent += sent
        if outcome == Outcome.OK:
            self.ok += count
        elif outcome == Outcome.PARTIAL:
            self.partial += count
        elif outcome in REFUSED_OUTCOMES:
            self.refused += count


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


# --- the queries -------------------------------------------------------------------------------

_Cube = list[tuple[str, str, int, int]]  # (file key, outcome, attempts, bytes)

DOWNLOAD = or_(_attempts.c.outcome != Outcome.OK, _attempts.c.bytes_sent > 0)
"""Attempts the reports count: all but an `ok` that sent nothing (a HEAD)."""


def _attempt_figures(*keys: ColumnElement) -> Select:
    """SELECT keys..., attempts, ok, partial, refused, bytes_sent FROM download_attempts."""

    def count_of(*outcomes: str) -> ColumnElement[int]:
        return func.count().filter(_attempts.c.outcome.in_(outcomes))

    return select(
        *keys,
        func.count().label("attempts"),
        count_of(Outcome.OK).label("ok"),
        count_of(Outcome.PARTIAL).label("partial"),
        count_of(*REFUSED_OUTCOMES).label("refused"),
        func.coalesce(func.sum(_attempts.c.bytes_sent), 0).label("bytes_sent"),
    ).where(DOWNLOAD)


def _attempt_cube(connection: Connection, period: Period) -> _Cube:
    """Attempts and bytes per (file, outcome): a streamed scan of the file covering index."""
    query = (
        select(
            func.coalesce(_attempts.c.file_id, literal(NONE_KEY)),
            _attempts.c.outcome,
            func.count(),
            func.coalesce(func.sum(_attempts.c.bytes_sent), 0),
        )
        .where(*period.where(_Unindexed(_attempts.c.started_at)), DOWNLOAD)
        .group_by(_attempts.c.file_id, _attempts.c.outcome)
    )
    return [(key, outcome, count, int(sent)) for key, outcome, count, sent in connection.execute(query)]


def _totals(connection: Connection, period: Period, cube: _Cube) -> Totals:
    in_period = period.where(_issuances.c.created_at)
    issued = connection.execute(select(func.count()).select_from(_issuances).where(*in_period)).scalar_one()
    # COUNT(DISTINCT) would sort; grouping along the recipient index streams
    per_recipient = (
        select(_issuances.c.recipient)
        .where(*period.where(_Unindexed(_issuances.c.created_at)), _issuances.c.recipient.is_not(None))
        .group_by(_issuances.c.recipient)
    )
    recipients = connection.execute(select(func.count()).select_from(per_recipient.subquery())).scalar_one()
    downloaded = exists(
        select(_attempts.c.issuance_id).where(
            _attempts.c.issuance_id == _issuances.c.id, _attempts.c.outcome == Outcome.OK, DOWNLOAD
        )
    )
    unused = connection.execute(
        select(func.count()).select_from(_issuances).where(*in_period, ~downloaded)
    ).scalar_one()
    totals = Totals(links_issued=issued, links_unused=unused, distinct_recipients=recipients)
    for _key, outcome, count, sent in cube:
        totals.attempts += count
        totals.bytes_served += sent
        if outcome == Outcome.OK:
            totals.downloads_ok += count
        elif outcome == Outcome.PARTIAL:
            totals.downloads_partial += count
        else:
            bucket = totals.refused if outcome in REFUSED_OUTCOMES else totals.other
            bucket[outcome] = bucket.get(outcome, 0) + count
    return totals


def _ranked(rows: Iterable[BreakdownRow]) -> list[BreakdownRow]:
    return sorted(rows, key=lambda row: (-row.bytes_sent, -row.attempts, -row.links_issued, row.key))


def _by_file(connection: Connection, period: Period, cube: _Cube) -> list[BreakdownRow]:
    rows: dict[str, BreakdownRow] = {}
    for key, outcome, count, sent in cube:
        rows.setdefault(key, BreakdownRow(key)).add(outcome, count, sent)
    issued = (
        select(_issuances.c.file_id, func.count())
        .where(*period.where(_Unindexed(_issuances.c.created_at)))
        .group_by(_issuances.c.file_id)
    )
    for key, count in connection.execute(issued):
        rows.setdefault(key, BreakdownRow(key)).links_issued = count
    return _ranked(rows.values())


def _by_outcome(cube: _Cube) -> list[BreakdownRow]:
    rows: dict[str, BreakdownRow] = {}
    for _key, outcome, count, sent in cube:
        rows.setdefault(outcome, BreakdownRow(outcome)).add(outcome, count, sent)
    return _ranked(rows.values())


def _by_recipient(connection: Connection, period: Period) -> list[BreakdownRow]:
    per_issuance = (
        _attempt_figures(_attempts.c.issuance_id)
        .where(*period.where(_Unindexed(_attempts.c.started_at)))
        .group_by(_attempts.c.issuance_id)
        .subquery()
    )
    figures = [func.sum(per_issuance.c[name]) for name in ("attempts", "ok", "partial", "refused", "bytes_sent")]
    query = (
        select(_issuances.c.recipient, *figures)
        .select_from(per_issuance.outerjoin(_issuances, _issuances.c.id == per_issuance.c.issuance_id))
        .group_by(_issuances.c.recipient)
    )
    rows: dict[str, BreakdownRow] = {}
    for recipient, attempts, ok, partial, refused, sent in connection.execute(query):
        key = recipient or NONE_KEY
        row = rows.setdefault(key, BreakdownRow(key))
        row.attempts += int(attempts)
        row.ok += int(ok)
        row.partial += int(partial)
        row.refused += int(refused)
        row.bytes_sent += int(sent)
    issued = (
        select(_issuances.c.recipient, func.count())
        .where(*period.where(_Unindexed(_issuances.c.created_at)))
        .group_by(_issuances.c.recipient)
    )
    for recipient, count in connection.execute(issued):
        key = recipient or NONE_KEY
        rows.setdefault(key, BreakdownRow(key)).links_issued += count
    return _ranked(rows.values())


def _active_days(connection: Connection, period: Period) -> tuple[datetime.date, datetime.date] | None:
    """The first and last local day of the period with any issuance or attempt; None if none has."""
    moments = [
        # one MIN or MAX per statement: only then does SQLite read it off the index
        connection.execute(select(extreme(column)).where(*period.where(column))).scalar_one()
        for column in (_attempts.c.started_at, _issuances.c.created_at)
        for extreme in (func.min, func.max)
    ]
    days = [moment.astimezone(period.zone).date() for moment in moments if moment is not None]
    return (min(days), max(days)) if days else None


def _by_day(connection: Connection, period: Period) -> list[BreakdownRow]:
    """Every day of the period (an open end stops at the first or last active day), zeros included."""
    active = _active_days(connection, period)
    first, last = period.since or (active and active[0]), period.until or (active and active[1])
    if not first or not last:
        return []
    # one statement each, run once per active day with its bounds; no GROUP BY, so nothing to sort
    day_start, day_end = bindparam("day_start"), bindparam("day_end")
    attempts_of_day = _attempt_figures().where(_attempts.c.started_at >= day_start, _attempts.c.started_at < day_end)
    issued_on_day = select(func.count()).where(_issuances.c.created_at >= day_start, _issuances.c.created_at < day_end)
    rows = []
    for offset in range((last - first).days + 1):
        day = first + datetime.timedelta(days=offset)
        row = BreakdownRow(day.isoformat())
        if active and active[0] <= day <= active[1]:
            bounds = {
                "day_start": local_midnight(day, period.zone),
                "day_end": local_midnight(day + datetime.timedelta(days=1), period.zone),
            }
            figures = connection.execute(attempts_of_day, bounds).one()
            issued = connection.execute(issued_on_day, bounds).scalar_one()
            row = BreakdownRow(row.key, issued, *(int(value) for value in figures))
        rows.append(row)
    return rows


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
    return [RecentAttempt(*row) for row in connection.execute(query)]


# --- what callers use ----------------------------------------------------------------------------


def build_report(engine: Engine, period: Period, by: str) -> Report:
    """Totals for the period and one row per day, file, recipient or outcome (`by`)."""
    if by not in BREAKDOWNS:
        raise ValueError(f"unknown breakdown {by!r}; choose one of {', '.join(BREAKDOWNS)}")
    with engine.connect() as connection:
        cube = _attempt_cube(connection, period)
        totals = _totals(connection, period, cube)
        if by == "day":
            rows = _by_day(connection, period)
        elif by == "file":
            rows = _by_file(connection, period, cube)
        elif by == "recipient":
            rows = _by_recipient(connection, period)
        else:
            rows = _by_outcome(cube)
    return Report(period, by, totals, rows)


def build_dashboard(engine: Engine, period: Period, *, top_recipients: int = 20, recent: int = 50) -> Dashboard:
    """Everything the admin page shows, from the same queries as `build_report`."""
    with engine.connect() as connection:
        cube = _attempt_cube(connection, period)
        recipients = _by_recipient(connection, period)
        return Dashboard(
            period=period,
            totals=_totals(connection, period, cube),
            days=_by_day(connection, period),
            files=_by_file(connection, period, cube),
            recipients=recipients[:top_recipients],
            recipients_shown_of=len(recipients),
            recent=recent_attempts(connection, period, recent),
        )


def metrics_snapshot(engine: Engine) -> MetricsSnapshot:
    with engine.connect() as connection:
        cube = _attempt_cube(connection, Period(None, None, zoneinfo.ZoneInfo("UTC")))
        issued = connection.execute(select(func.count()).select_from(_issuances)).scalar_one()
    by_outcome: dict[str, int] = {}
    by_file: dict[str, int] = {}
    for key, outcome, count, sent in cube:
        by_outcome[outcome] = by_outcome.get(outcome, 0) + count
        by_file[key] = by_file.get(key, 0) + sent
    return MetricsSnapshot(issued, by_outcome, by_file)
