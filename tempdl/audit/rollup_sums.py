"""Sums of a block of audit rows per local day: what the daily rollup tables hold, or add.

A block is the attempts whose id lies in (attempts_after, attempts_through] and the issuances
whose id lies in (issuances_after, issuances_through]; a `None` bound means no bound: the live
rows a report adds to the stored rollups. Days are local days in the report time zone, their
bounds computed by zoneinfo, so no database has to know about time zones: one statement reads
the rows of up to `RUN_DAYS` consecutive days and numbers each row's day with a CASE over the
days' UTC ends, then groups by that number.

Which index drives a statement depends on the block. A small one (the rows since the last
rollup) is read through the primary key, its time conditions `Unindexed`; a big one (a step of
the first build) along the time index, its id conditions `Unindexed`. Either way each row of the
block is read about once per statement, whatever the size of the table.
"""

from __future__ import annotations

import datetime
import zoneinfo
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import ColumnElement, Connection, Select, and_, case, exists, func, literal, or_, select

from tempdl.audit.counts import DOWNLOAD, total_of
from tempdl.audit.records import REFUSED_OUTCOMES, Outcome
from tempdl.audit.tables import download_attempts as _attempts
from tempdl.audit.tables import issuances as _issuances
from tempdl.audit.unindexed import Unindexed
from tempdl.timeutil import local_midnight

NONE_KEY = "-"
REPORTED = and_(DOWNLOAD, or_(_attempts.c.outcome != Outcome.OK, _attempts.c.bytes_sent > 0))
"""Attempts the reports count: GETs, but not an `ok` that sent nothing (a file of no bytes).
A HEAD, refused or not, never counts: SPEC keeps it out of the limits, stats and dashboard."""
DOWNLOADED = (_attempts.c.outcome == Outcome.OK, REPORTED)
"""An attempt that makes its link downloaded (`links_unused` counts links without one)."""

RUN_DAYS = 31
SPAN_DAYS = 35
"""A block whose rows span at most this many days is read for every one of them; a wider one
(an old row inserted late) first finds the days it has rows on."""
BIG_BLOCK = 200_000
"""Ids beyond which a block is read along the time index instead of the primary key."""

Day = datetime.date


@dataclass(frozen=True)
class Block:
    attempts_after: int
    attempts_through: int | None
    issuances_after: int
    issuances_through: int | None


@dataclass
class DaySums:
    """Per-day sums, keyed as the rollup tables are (`-` for no file or no recipient)."""

    traffic: dict[tuple[Day, str, str], list[int]] = field(default_factory=dict)
    """(day, file, outcome) -> [attempts, bytes_sent, uncounted]"""
    links: dict[tuple[Day, str], list[int]] = field(default_factory=dict)
    """(day created, file) -> [links_issued, links_downloaded]"""
    recipients: dict[tuple[str, Day], list[int]] = field(default_factory=dict)
    """(recipient, day) -> [links_issued, links_named, attempts, ok, partial, refused, bytes_sent]"""

    @staticmethod
    def add(table: dict[Any, list[int]], key: Any, values: Sequence[Any], at: int = 0, width: int = 0) -> None:
        row = table.get(key)
        if at == 0 and width in (0, len(values)):  # the common case, thousands of times a report
            if row is None:
                table[key] = [int(value or 0) for value in values]
            else:
                table[key] = [have + int(value or 0) for have, value in zip(row, values, strict=True)]
            return
        if row is None:
            row = table[key] = [0] * (width or len(values))
        for offset, value in enumerate(values):
            row[at + offset] += int(value or 0)


def _rows(connection: Connection, query: Select[Any]) -> list[Any]:
    return list(connection.execute(query).all())


def local_day(moment: Any, zone: zoneinfo.ZoneInfo) -> Day:
    """The local day of an aware timestamp the database handed back."""
    return cast(datetime.datetime, moment).astimezone(zone).date()


class _Ids:
    """The id range of one table in a block, and which index should drive statements over it."""

    def __init__(self, column: ColumnElement[int], after: int, through: int | None) -> None:
        self.column, self.after, self.through = column, after, through
        self.big = through is not None and through - after > BIG_BLOCK

    def where(self, *, by_key: bool | None = None) -> list[ColumnElement[bool]]:
        by_key = not self.big if by_key is None else by_key
        column = self.column if by_key else Unindexed(self.column)
        conditions = [column > self.after]
        if self.through is not None:
            conditions.append(column <= self.through)
        return conditions

    def time(self, column: ColumnElement) -> ColumnElement:
        return column if self.big else Unindexed(column)

    def is_empty(self) -> bool:
        return self.through is not None and self.through <= self.after


def _active_days(connection: Connection, ids: _Ids, moment: ColumnElement, zone: zoneinfo.ZoneInfo) -> list[Day]:
    """The local days the block has rows on (every day of a narrow span; found one by one otherwise)."""
    if ids.is_empty():
        return []
    first, last = connection.execute(
        select(func.min(Unindexed(moment)), func.max(Unindexed(moment))).where(*ids.where(by_key=True))
    ).one()
    if first is None:
        return []
    # a day either side: the runs' bounds come from `local_midnight`, which for a midnight that
    # does not exist (a DST change at 00:00) may disagree with `astimezone` by a few hours
    first_day = local_day(first, zone) - datetime.timedelta(days=1)
    last_day = local_day(last, zone) + datetime.timedelta(days=1)
    if (last_day - first_day).days <= SPAN_DAYS:
        return [first_day + datetime.timedelta(days=offset) for offset in range((last_day - first_day).days + 1)]
    days, day = [], first_day
    while True:
        days.append(day)
        after_day = local_midnight(day + datetime.timedelta(days=1), zone)
        following: datetime.datetime | None = connection.execute(
            select(func.min(ids.time(moment))).where(*ids.where(), ids.time(moment) >= after_day, moment <= last)
        ).scalar_one()
        if following is None:
            return days
        day = local_day(following, zone)


def _runs(days: list[Day]) -> Iterator[list[Day]]:
    """Consecutive days, at most `RUN_DAYS` at a time."""
    run: list[Day] = []
    for day in days:
        if run and ((day - run[-1]).days != 1 or len(run) == RUN_DAYS):
            yield run
            run = []
        run.append(day)
    if run:
        yield run


def _day_number(moment: ColumnElement, run: list[Day], zone: zoneinfo.ZoneInfo) -> ColumnElement[int]:
    ends = [local_midnight(day + datetime.timedelta(days=1), zone) for day in run]
    if len(run) == 1:
        return literal(0)
    return case(*[(moment < end, number) for number, end in enumerate(ends[:-1])], else_=len(run) - 1)


def _in_run(ids: _Ids, moment: ColumnElement, run: list[Day], zone: zoneinfo.ZoneInfo) -> list[ColumnElement[bool]]:
    start, end = local_midnight(run[0], zone), local_midnight(run[-1] + datetime.timedelta(days=1), zone)
    return [*ids.where(), ids.time(moment) >= start, ids.time(moment) < end]


def _add_attempts(connection: Connection, sums: DaySums, ids: _Ids, run: list[Day], zone: zoneinfo.ZoneInfo) -> None:
    started = _attempts.c.started_at
    day = _day_number(started, run, zone).label("day")
    traffic = (
        select(
            day,
            func.coalesce(_attempts.c.file_id, literal(NONE_KEY)).label("file_id"),
            _attempts.c.outcome.label("outcome"),
            case((REPORTED, 1), else_=0).label("counted"),
            case((REPORTED, _attempts.c.bytes_sent), else_=0).label("sent"),
        )
        .where(*_in_run(ids, started, run, zone))
        .subquery()
    )
    query = select(
        traffic.c.day,
        traffic.c.file_id,
        traffic.c.outcome,
        total_of(traffic.c.counted),
        total_of(traffic.c.sent),
        func.count(),
    ).group_by(traffic.c.day, traffic.c.file_id, traffic.c.outcome)
    for number, file_id, outcome, counted, sent, every in _rows(connection, query):
        sums.add(sums.traffic, (run[int(number)], file_id, outcome), (counted, sent, every - counted))
    per_recipient = (
        select(
            day,
            func.coalesce(_issuances.c.recipient, literal(NONE_KEY)).label("recipient"),
            _attempts.c.outcome.label("outcome"),
            _attempts.c.bytes_sent.label("sent"),
        )
        .select_from(_attempts.outerjoin(_issuances, _issuances.c.id == _attempts.c.issuance_id))
        .where(*_in_run(ids, started, run, zone), REPORTED)
        .subquery()
    )

    def count_of(*outcomes: str) -> ColumnElement[int]:
        return func.count().filter(per_recipient.c.outcome.in_(outcomes))

    query = select(
        per_recipient.c.day,
        per_recipient.c.recipient,
        func.count(),
        count_of(Outcome.OK),
        count_of(Outcome.PARTIAL),
        count_of(*REFUSED_OUTCOMES),
        total_of(per_recipient.c.sent),
    ).group_by(per_recipient.c.day, per_recipient.c.recipient)
    for number, recipient, *figures in _rows(connection, query):
        sums.add(sums.recipients, (recipient, run[int(number)]), figures, at=2, width=7)


def _add_issuances(
    connection: Connection, sums: DaySums, ids: _Ids, block: Block, run: list[Day], zone: zoneinfo.ZoneInfo
) -> None:
    created = _issuances.c.created_at
    day = _day_number(created, run, zone).label("day")
    ok_attempt = select(_attempts.c.id).where(_attempts.c.issuance_id == _issuances.c.id, *DOWNLOADED)
    if block.attempts_through is not None:
        ok_attempt = ok_attempt.where(_attempts.c.id <= block.attempts_through)
    links = (
        select(day, _issuances.c.file_id.label("file_id"), case((exists(ok_attempt), 1), else_=0).label("downloaded"))
        .where(*_in_run(ids, created, run, zone))
        .subquery()
    )
    query = select(links.c.day, links.c.file_id, func.count(), total_of(links.c.downloaded)).group_by(
        links.c.day, links.c.file_id
    )
    for number, file_id, issued, downloaded in _rows(connection, query):
        sums.add(sums.links, (run[int(number)], file_id), (issued, downloaded))
    named = (
        select(
            day,
            func.coalesce(_issuances.c.recipient, literal(NONE_KEY)).label("recipient"),
            case((_issuances.c.recipient.is_not(None), 1), else_=0).label("named"),
        )
        .where(*_in_run(ids, created, run, zone))
        .subquery()
    )
    query = select(named.c.day, named.c.recipient, func.count(), total_of(named.c.named)).group_by(
        named.c.day, named.c.recipient
    )
    for number, recipient, issued, with_name in _rows(connection, query):
        sums.add(sums.recipients, (recipient, run[int(number)]), (issued, with_name), width=7)


def _add_first_downloads(connection: Connection, sums: DaySums, block: Block, zone: zoneinfo.ZoneInfo) -> None:
    """Links already rolled up (id <= issuances_after) whose first counted `ok` is in the block."""
    if block.issuances_after <= 0:
        return
    attempt_ids = _Ids(_attempts.c.id, block.attempts_after, block.attempts_through)
    if attempt_ids.is_empty():
        return
    newly = select(_attempts.c.issuance_id).where(
        *attempt_ids.where(by_key=True), *DOWNLOADED, Unindexed(_attempts.c.issuance_id) <= block.issuances_after
    )
    earlier = _attempts.alias("earlier")
    before = select(earlier.c.id).where(
        earlier.c.issuance_id == _issuances.c.id,
        earlier.c.outcome == Outcome.OK,
        or_(earlier.c.outcome != Outcome.OK, earlier.c.bytes_sent > 0),
        earlier.c.id <= block.attempts_after,
    )
    query = select(_issuances.c.created_at, _issuances.c.file_id).where(_issuances.c.id.in_(newly), ~exists(before))
    for created, file_id in _rows(connection, query):
        sums.add(sums.links, (local_day(created, zone), file_id), (0, 1))


def block_sums(
    connection: Connection, block: Block, zone: zoneinfo.ZoneInfo, *, days: list[Day] | None = None
) -> DaySums:
    """The block's rows summed per local day of `zone`, as the rollup tables hold them; with
    `days` (sorted), only the rows on those days."""
    sums = DaySums()
    attempt_ids = _Ids(_attempts.c.id, block.attempts_after, block.attempts_through)
    attempt_days = days if days is not None else _active_days(connection, attempt_ids, _attempts.c.started_at, zone)
    for run in _runs(attempt_days):
        _add_attempts(connection, sums, attempt_ids, run, zone)
    issuance_ids = _Ids(_issuances.c.id, block.issuances_after, block.issuances_through)
    issuance_days = days if days is not None else _active_days(connection, issuance_ids, _issuances.c.created_at, zone)
    for run in _runs(issuance_days):
        _add_issuances(connection, sums, issuance_ids, block, run, zone)
    _add_first_downloads(connection, sums, block, zone)
    return sums
