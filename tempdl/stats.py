"""Read-only reports on the audit tables: aggregate SQL in, plain data out (rendering is elsewhere).

Day buckets are in the operator's time zone. Databases disagree on time zones, so the SQL groups
by 15-minute UTC buckets (every real time-zone offset is a multiple of 15 minutes) and Python folds
those few rows into local days: the database still does the heavy GROUP BY over all rows.
"""

from __future__ import annotations

import datetime
import zoneinfo
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import Engine, case, func, literal, select
from sqlalchemy.sql import ColumnElement

from tempdl.models import DownloadAttempt, Issuance

BREAKDOWNS = ("day", "file", "recipient", "outcome")
REFUSED_OUTCOMES = ("expired", "bad", "revoked", "limited", "not_found")
BUCKET_SECONDS = 900

_issuances = Issuance.__table__
_attempts = DownloadAttempt.__table__


@dataclass(frozen=True)
class Period:
    """[since, until) in UTC, from the operator's local dates (both optional, `until` inclusive)."""

    since: datetime.datetime | None
    until: datetime.datetime | None

    @classmethod
    def from_local_dates(
        cls, since: datetime.date | None, until: datetime.date | None, zone: zoneinfo.ZoneInfo
    ) -> Period:
        def start_of(day: datetime.date) -> datetime.datetime:
            return datetime.datetime.combine(day, datetime.time(), zone).astimezone(datetime.UTC)

        return cls(
            since=start_of(since) if since else None,
            until=start_of(until + datetime.timedelta(days=1)) if until else None,
        )

    def where(self, column: ColumnElement) -> list[ColumnElement[bool]]:
        conditions = []
        if self.since is not None:
            conditions.append(column >= self.since)
        if self.until is not None:
            conditions.append(column < self.until)
        return conditions


@dataclass
class Totals:
    links_issued: int = 0
    attempts: int = 0
    downloads_ok: int = 0
    downloads_partial: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    bytes_served: int = 0
    distinct_recipients: int = 0


@dataclass
class BreakdownRow:
    key: str
    links_issued: int = 0
    attempts: int = 0
    ok: int = 0
    partial: int = 0
    refused: int = 0
    bytes_sent: int = 0


@dataclass
class Report:
    period: Period
    timezone: str
    by: str
    totals: Totals
    rows: list[BreakdownRow]


def _epoch_bucket(engine: Engine, column: ColumnElement) -> ColumnElement[int]:
    if engine.dialect.name == "sqlite":
        seconds = func.cast(func.strftime("%s", column), _attempts.c.id.type)
    else:
        seconds = func.floor(func.extract("epoch", column))
    return func.floor(seconds / BUCKET_SECONDS)


def _count_where(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


_ATTEMPT_FIGURES = (
    func.count(_attempts.c.id).label("attempts"),
    _count_where(_attempts.c.outcome == "ok").label("ok"),
    _count_where(_attempts.c.outcome == "partial").label("partial"),
    _count_where(_attempts.c.outcome.in_(REFUSED_OUTCOMES)).label("refused"),
    func.coalesce(func.sum(_attempts.c.bytes_sent), 0).label("bytes_sent"),
)


def totals(engine: Engine, period: Period) -> Totals:
    with engine.connect() as connection:
        issued = connection.execute(
            select(func.count(_issuances.c.id), func.count(func.distinct(_issuances.c.recipient))).where(
                *period.where(_issuances.c.created_at)
            )
        ).one()
        by_outcome = connection.execute(
            select(_attempts.c.outcome, func.count(), func.coalesce(func.sum(_attempts.c.bytes_sent), 0))
            .where(*period.where(_attempts.c.started_at))
            .group_by(_attempts.c.outcome)
        ).all()
    result = Totals(links_issued=issued[0], distinct_recipients=issued[1])
    for outcome, count, sent in by_outcome:
        result.attempts += count
        result.bytes_served += int(sent)
        if outcome == "ok":
            result.downloads_ok = count
        elif outcome == "partial":
            result.downloads_partial = count
        elif outcome in REFUSED_OUTCOMES:
            result.refused[outcome] = count
    return result


def breakdown(engine: Engine, period: Period, by: str, zone: zoneinfo.ZoneInfo) -> list[BreakdownRow]:
    if by not in BREAKDOWNS:
        raise ValueError(f"unknown breakdown {by!r}; choose one of {', '.join(BREAKDOWNS)}")
    if by == "day":
        return _by_day(engine, period, zone)
    if by == "outcome":
        query = select(_attempts.c.outcome.label("key"), *_ATTEMPT_FIGURES).group_by(_attempts.c.outcome)
        issued_query = None
    else:
        issuance_column = _issuances.c.file_id if by == "file" else _issuances.c.recipient
        attempt_key = _attempts.c.file_id if by == "file" else _issuances.c.recipient
        query = (
            select(func.coalesce(attempt_key, literal("-")).label("key"), *_ATTEMPT_FIGURES)
            .select_from(_attempts.outerjoin(_issuances, _attempts.c.issuance_id == _issuances.c.id))
            .group_by(attempt_key)
        )
        issued_query = (
            select(func.coalesce(issuance_column, literal("-")), func.count())
            .where(*period.where(_issuances.c.created_at))
            .group_by(issuance_column)
        )
    query = query.where(*period.where(_attempts.c.started_at))
    rows: dict[str, BreakdownRow] = {}
    with engine.connect() as connection:
        for record in connection.execute(query):
            rows[record.key] = BreakdownRow(
                record.key, 0, record.attempts, record.ok, record.partial, record.refused, int(record.bytes_sent)
            )
        if issued_query is not None:
            for key, count in connection.execute(issued_query):
                rows.setdefault(key, BreakdownRow(key)).links_issued = count
    return sorted(rows.values(), key=lambda row: (-row.bytes_sent, -row.attempts, row.key))


def _local_day(bucket: int, zone: zoneinfo.ZoneInfo) -> str:
    moment = datetime.datetime.fromtimestamp(int(bucket) * BUCKET_SECONDS, datetime.UTC)
    return moment.astimezone(zone).date().isoformat()


def _by_day(engine: Engine, period: Period, zone: zoneinfo.ZoneInfo) -> list[BreakdownRow]:
    attempt_bucket = _epoch_bucket(engine, _attempts.c.started_at).label("bucket")
    issuance_bucket = _epoch_bucket(engine, _issuances.c.created_at).label("bucket")
    days: dict[str, BreakdownRow] = defaultdict(lambda: BreakdownRow(""))
    with engine.connect() as connection:
        for record in connection.execute(
            select(attempt_bucket, *_ATTEMPT_FIGURES)
            .where(*period.where(_attempts.c.started_at))
            .group_by(attempt_bucket)
        ):
            row = days[_local_day(record.bucket, zone)]
            row.attempts += record.attempts
            row.ok += record.ok
            row.partial += record.partial
            row.refused += record.refused
            row.bytes_sent += int(record.bytes_sent)
        for bucket, count in connection.execute(
            select(issuance_bucket, func.count())
            .where(*period.where(_issuances.c.created_at))
            .group_by(issuance_bucket)
        ):
            days[_local_day(bucket, zone)].links_issued += count
    for day, row in days.items():
        row.key = day
    return sorted(days.values(), key=lambda row: row.key)


def build_report(engine: Engine, period: Period, by: str, timezone: str) -> Report:
    zone = zoneinfo.ZoneInfo(timezone)
    return Report(period, timezone, by, totals(engine, period), breakdown(engine, period, by, zone))
