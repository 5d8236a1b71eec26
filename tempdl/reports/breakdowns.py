"""The figures of a report: totals and breakdown rows, folded from aggregate SQL on the audit tables.

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

HEAD requests are not downloads: a HEAD, refused or not, is left out of every figure here, and so
is an `ok` that sent no byte (a file of no bytes, which no download cap counts either); both stay
in the recent attempts list, which is a log. Every covering index ends with `method` (migration
0006) so that this costs no visit to the table.

Attempts belong to the period in which they started, issuances to the one in which they were
created. `-` stands for "none": an attempt whose link could not be read has no file or recipient.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import (
    BindParameter,
    Connection,
    Integer,
    Select,
    String,
    bindparam,
    exists,
    func,
    literal,
    select,
    type_coerce,
)
from sqlalchemy.sql import ColumnElement

from tempdl.audit.counts import total_of
from tempdl.audit.records import REFUSED_OUTCOMES, Outcome
from tempdl.audit.rollup_sums import NONE_KEY, REPORTED
from tempdl.audit.tables import download_attempts as _attempts
from tempdl.audit.tables import issuances as _issuances
from tempdl.reports.period import Period, Unindexed, local_midnight

OTHER_OUTCOMES = (Outcome.NOT_MODIFIED, Outcome.LANDING)  # answered, but no file was asked for


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


_Cube = list[tuple[str, str, int, int]]  # (file key, outcome, attempts, bytes)

DOWNLOAD = REPORTED
"""Attempts the reports count: GETs, but not an `ok` that sent nothing."""


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
        total_of(_attempts.c.bytes_sent).label("bytes_sent"),
    ).where(DOWNLOAD)


def attempt_cube(connection: Connection, period: Period) -> _Cube:
    """Attempts and bytes per (file, outcome): a streamed scan of the file covering index."""
    query = (
        select(
            type_coerce(func.coalesce(_attempts.c.file_id, literal(NONE_KEY)), String),
            type_coerce(_attempts.c.outcome, String),
            func.count(),
            total_of(_attempts.c.bytes_sent),
        )
        .where(*period.where(Unindexed(_attempts.c.started_at)), DOWNLOAD)
        .group_by(_attempts.c.file_id, _attempts.c.outcome)
    )
    return [(key, outcome, count, int(sent)) for key, outcome, count, sent in connection.execute(query)]


def totals_of(connection: Connection, period: Period, cube: _Cube) -> Totals:
    in_period = period.where(_issuances.c.created_at)
    issued = connection.execute(select(func.count()).select_from(_issuances).where(*in_period)).scalar_one()
    # COUNT(DISTINCT) would sort; grouping along the recipient index streams
    per_recipient = (
        select(_issuances.c.recipient)
        .where(*period.where(Unindexed(_issuances.c.created_at)), _issuances.c.recipient.is_not(None))
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
    return fold_cube(Totals(links_issued=issued, links_unused=unused, distinct_recipients=recipients), cube)


def fold_cube(totals: Totals, cube: _Cube) -> Totals:
    """`totals` with the attempts and bytes of `cube` added (the links figures come from elsewhere)."""
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


def ranked(rows: Iterable[BreakdownRow]) -> list[BreakdownRow]:
    return sorted(rows, key=lambda row: (-row.bytes_sent, -row.attempts, -row.links_issued, row.key))


def by_file(connection: Connection, period: Period, cube: _Cube) -> list[BreakdownRow]:
    rows: dict[str, BreakdownRow] = {}
    for key, outcome, count, sent in cube:
        rows.setdefault(key, BreakdownRow(key)).add(outcome, count, sent)
    issued = (
        select(_issuances.c.file_id, func.count())
        .where(*period.where(Unindexed(_issuances.c.created_at)))
        .group_by(_issuances.c.file_id)
    )
    for key, count in connection.execute(issued).tuples():
        rows.setdefault(key, BreakdownRow(key)).links_issued = count
    return ranked(rows.values())


def by_outcome(cube: _Cube) -> list[BreakdownRow]:
    rows: dict[str, BreakdownRow] = {}
    for _key, outcome, count, sent in cube:
        rows.setdefault(outcome, BreakdownRow(outcome)).add(outcome, count, sent)
    return ranked(rows.values())


def by_recipient(connection: Connection, period: Period) -> list[BreakdownRow]:
    per_issuance = (
        _attempt_figures(_attempts.c.issuance_id)
        .where(*period.where(Unindexed(_attempts.c.started_at)))
        .group_by(_attempts.c.issuance_id)
        .subquery()
    )
    figures = [
        type_coerce(func.sum(per_issuance.c[name]), Integer)
        for name in ("attempts", "ok", "partial", "refused", "bytes_sent")
    ]
    query = (
        select(_issuances.c.recipient, *figures)
        .select_from(per_issuance.outerjoin(_issuances, _issuances.c.id == per_issuance.c.issuance_id))
        .group_by(_issuances.c.recipient)
    )
    rows: dict[str, BreakdownRow] = {}
    for recipient, attempts, ok, partial, refused, sent in connection.execute(query).tuples():
        key = recipient or NONE_KEY
        row = rows.setdefault(key, BreakdownRow(key))
        row.attempts += int(attempts)
        row.ok += int(ok)
        row.partial += int(partial)
        row.refused += int(refused)
        row.bytes_sent += int(sent)
    issued = (
        select(_issuances.c.recipient, func.count())
        .where(*period.where(Unindexed(_issuances.c.created_at)))
        .group_by(_issuances.c.recipient)
    )
    for recipient, count in connection.execute(issued).tuples():
        key = recipient or NONE_KEY
        rows.setdefault(key, BreakdownRow(key)).links_issued += count
    return ranked(rows.values())


def _active_days(connection: Connection, period: Period) -> tuple[datetime.date, datetime.date] | None:
    """The first and last local day of the period with any issuance or attempt; None if none has."""
    moments: list[datetime.datetime | None] = [
        # one MIN or MAX per statement: only then does SQLite read it off the index
        connection.execute(select(extreme(column)).where(*period.where(column))).scalar_one()
        for column in (_attempts.c.started_at, _issuances.c.created_at)
        for extreme in (func.min, func.max)
    ]
    days = [moment.astimezone(period.zone).date() for moment in moments if moment is not None]
    return (min(days), max(days)) if days else None


def by_day(connection: Connection, period: Period) -> list[BreakdownRow]:
    """Every day of the period (an open end stops at the first or last active day), zeros included."""
    active = _active_days(connection, period)
    first, last = period.since or (active and active[0]), period.until or (active and active[1])
    if not first or not last:
        return []
    # one statement each, run once per active day with its bounds; no GROUP BY, so nothing to sort
    day_start: BindParameter[datetime.datetime] = bindparam("day_start")
    day_end: BindParameter[datetime.datetime] = bindparam("day_end")
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
