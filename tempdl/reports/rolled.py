"""The report figures from the daily rollups plus the live rows above their watermarks.

The same figures as `tempdl.reports.breakdowns` computes from the audit tables alone (a test
compares the two on random histories, on SQLite and PostgreSQL): the daily rows of the period's
days, read off tables of days × files × outcomes and days × recipients, plus the rows not
rolled up yet, summed per day in memory (`rollup_sums.block_sums` over the ids above the
watermarks: normally the last few minutes). Both are read in one snapshot, so a rollup extended
meanwhile is counted once.

Rollups serve a period only when they were cut in its time zone; an all-time report of files,
outcomes or recipients (and /metrics) needs no zone, so any rollup serves it.
"""

from __future__ import annotations

import datetime
import zoneinfo
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Connection, FromClause, Select, Table, func, select

from tempdl.audit import rollups
from tempdl.audit.rollup_sums import NONE_KEY, Block, DaySums, block_sums
from tempdl.audit.tables import RECIPIENT_FIGURES
from tempdl.audit.tables import download_attempts as _attempts
from tempdl.audit.tables import issuances as _issuances
from tempdl.reports.breakdowns import BreakdownRow, Totals, fold_cube, ranked
from tempdl.reports.period import Period

LIVE_ROWS_AT_LEAST = 100_000
"""Live ids beyond which, if they also outnumber the rolled-up ones, the plain queries are cheaper."""

_Cube = list[tuple[str, str, int, int]]
WEEK = datetime.timedelta(days=7)
_BYTES_SENT = RECIPIENT_FIGURES.index("bytes_sent")  # its place in a recipient's figures


@dataclass
class Rolled:
    """One snapshot's rollup state and its live rows, summed per day."""

    connection: Connection
    state: rollups.State
    live: DaySums
    recipients: dict[Period, dict[str, list[int]]] = field(default_factory=dict)


def open_rolled(connection: Connection, zone: zoneinfo.ZoneInfo | None) -> Rolled | None:
    """The rollups to report from, in `zone` (None: any zone will do); None when they cannot serve."""
    state = rollups.read_state(connection)
    if state is None or not state.built or (zone is not None and state.zone != zone.key):
        return None
    for table, through in ((_attempts, state.attempts_through), (_issuances, state.issuances_through)):
        live = (connection.execute(select(func.max(table.c.id))).scalar() or 0) - through
        if live > max(LIVE_ROWS_AT_LEAST, through):
            return None
    block = Block(state.attempts_through, None, state.issuances_through, None)
    return Rolled(connection, state, block_sums(connection, block, zoneinfo.ZoneInfo(state.zone)))


def _rows(rolled: Rolled, query: Select[Any]) -> list[Any]:
    return list(rolled.connection.execute(query).all())


def _days(table: Table, period: Period) -> list[ColumnElement[bool]]:
    conditions = []
    if period.since is not None:
        conditions.append(table.c.day >= period.since)
    if period.until is not None:
        conditions.append(table.c.day <= period.until)
    return conditions


def _in(period: Period, day: datetime.date) -> bool:
    return (period.since is None or period.since <= day) and (period.until is None or day <= period.until)


def _summed(table: FromClause, names: Iterable[str]) -> list[ColumnElement[Any]]:
    return [func.sum(table.c[name]) for name in names]


def cube(rolled: Rolled, period: Period) -> _Cube:
    """(file, outcome, attempts, bytes) of the period, in the order the plain query gives them."""
    traffic = rollups.traffic_table
    found: dict[tuple[str, str], list[int]] = {}
    query = (
        select(traffic.c.file_id, traffic.c.outcome, *_summed(traffic, ("attempts", "bytes_sent")))
        .where(*_days(traffic, period))
        .group_by(traffic.c.file_id, traffic.c.outcome)
    )
    for file_id, outcome, count, sent in _rows(rolled, query):
        DaySums.add(found, (file_id, outcome), (count, sent))
    for (day, file_id, outcome), (count, sent, _uncounted) in rolled.live.traffic.items():
        if _in(period, day):
            DaySums.add(found, (file_id, outcome), (count, sent))
    entries = [(key, outcome, count, sent) for (key, outcome), (count, sent) in found.items() if count > 0]
    return sorted(entries, key=lambda entry: (entry[0] != NONE_KEY, entry[0], entry[1]))


def _links(rolled: Rolled, period: Period) -> dict[str, list[int]]:
    """file -> [links issued, links downloaded] for the links created in the period."""
    links = rollups.links_table
    found: dict[str, list[int]] = {}
    query = (
        select(links.c.file_id, *_summed(links, ("links_issued", "links_downloaded")))
        .where(*_days(links, period))
        .group_by(links.c.file_id)
    )
    for file_id, issued, downloaded in _rows(rolled, query):
        DaySums.add(found, file_id, (issued, downloaded))
    for (day, file_id), figures in rolled.live.links.items():
        if _in(period, day):
            DaySums.add(found, file_id, figures)
    return found


def _whole_weeks(period: Period) -> tuple[datetime.date | None, datetime.date | None] | None:
    """The first and last Monday of the weeks the period holds whole (None: open), or None if none."""
    first = None if period.since is None else period.since + datetime.timedelta(days=-period.since.weekday() % 7)
    last = None if period.until is None else rollups.week_of(period.until + datetime.timedelta(days=1)) - WEEK
    if first is not None and last is not None and first > last:
        return None
    return first, last


def _recipient_spans(period: Period) -> list[tuple[Table, list[ColumnElement[bool]]]]:
    """Where a period's recipient rows are: its whole weeks in `weekly_recipients`, the days at its
    ends (or all its days, if it holds no whole week) in `daily_recipients`."""
    daily, weekly = rollups.recipients_table, rollups.weekly_table
    weeks = _whole_weeks(period)
    if weeks is None:
        return [(daily, _days(daily, period))]
    first, last = weeks
    spans = [(weekly, [*([weekly.c.week >= first] if first else []), *([weekly.c.week <= last] if last else [])])]
    if first is not None and period.since is not None and period.since < first:
        spans.append((daily, [daily.c.day >= period.since, daily.c.day < first]))
    if last is not None and period.until is not None and period.until >= last + WEEK:
        spans.append((daily, [daily.c.day >= last + WEEK, daily.c.day <= period.until]))
    return spans


def _recipient_sums(rolled: Rolled, period: Period) -> dict[str, list[int]]:
    """recipient (`-` for NULL) -> [issued, named, attempts, ok, partial, refused, bytes] in the period."""
    if period in rolled.recipients:
        return rolled.recipients[period]
    names = RECIPIENT_FIGURES
    found: dict[str, list[int]] = {}
    for table, conditions in _recipient_spans(period):
        # one query per span: each streams (weekly) or sorts a few days; a UNION ALL would sort all
        query = select(table.c.recipient, *_summed(table, names)).where(*conditions).group_by(table.c.recipient)
        for recipient, *figures in _rows(rolled, query):
            DaySums.add(found, recipient, figures)
    for (recipient, day), figures in rolled.live.recipients.items():
        if _in(period, day):
            DaySums.add(found, recipient, figures)
    rolled.recipients[period] = found
    return found


def links_issued(rolled: Rolled, period: Period) -> int:
    return sum(issued for issued, _downloaded in _links(rolled, period).values())


def _distinct_recipients(rolled: Rolled, period: Period) -> int:
    """Recipients (not NULL) of the links created in the period: counted in the recipient sums if a
    report made them, else from the names alone."""
    if period in rolled.recipients:
        return sum(1 for figures in rolled.recipients[period].values() if figures[1] > 0)
    names: set[str] = set()
    for table, conditions in _recipient_spans(period):
        query = select(table.c.recipient).where(*conditions, table.c.links_named > 0).group_by(table.c.recipient)
        names.update(name for (name,) in _rows(rolled, query))
    live = rolled.live.recipients.items()
    names.update(name for (name, day), figures in live if figures[1] > 0 and _in(period, day))
    return len(names)


def totals(rolled: Rolled, period: Period, found: _Cube) -> Totals:
    links = _links(rolled, period).values()
    issued = sum(figures[0] for figures in links)
    downloaded = sum(figures[1] for figures in links)
    result = Totals(
        links_issued=issued, links_unused=issued - downloaded, distinct_recipients=_distinct_recipients(rolled, period)
    )
    return fold_cube(result, found)


def by_file(rolled: Rolled, period: Period, found: _Cube) -> list[BreakdownRow]:
    rows: dict[str, BreakdownRow] = {}
    for key, outcome, count, sent in found:
        rows.setdefault(key, BreakdownRow(key)).add(outcome, count, sent)
    for key, (issued, _downloaded) in _links(rolled, period).items():
        if issued:
            rows.setdefault(key, BreakdownRow(key)).links_issued = issued
    return ranked(rows.values())


def by_recipient(rolled: Rolled, period: Period) -> list[BreakdownRow]:
    merged: dict[str, list[int]] = {}
    for recipient, (issued, _named, *figures) in _recipient_sums(rolled, period).items():
        if issued or figures[0]:
            DaySums.add(merged, recipient or NONE_KEY, (issued, *figures))  # '' and NULL are both shown as '-'
    return ranked(BreakdownRow(key, *figures) for key, figures in merged.items())


def by_day(rolled: Rolled, period: Period) -> list[BreakdownRow]:
    """Every day of the period (an open end stops at the first or last active day), zeros included."""
    traffic, links = rollups.traffic_table, rollups.links_table
    per_day: dict[datetime.date, dict[str, list[int]]] = {}
    issued: dict[datetime.date, int] = {}
    query = (
        select(traffic.c.day, traffic.c.outcome, *_summed(traffic, ("attempts", "bytes_sent", "uncounted")))
        .where(*_days(traffic, period))
        .group_by(traffic.c.day, traffic.c.outcome)
    )
    entries: list[tuple[datetime.date, str, Sequence[int]]] = [
        (day, outcome, figures) for day, outcome, *figures in _rows(rolled, query)
    ]
    entries += [(day, outcome, figures) for (day, _file, outcome), figures in rolled.live.traffic.items()]
    for day, outcome, figures in entries:
        if _in(period, day):
            DaySums.add(per_day.setdefault(day, {}), outcome, figures)
    query = select(links.c.day, func.sum(links.c.links_issued)).where(*_days(links, period)).group_by(links.c.day)
    counts: list[tuple[datetime.date, int]] = [(day, int(count)) for day, count in _rows(rolled, query)]
    counts += [(day, figures[0]) for (day, _), figures in rolled.live.links.items()]
    for day, count in counts:
        if _in(period, day):
            issued[day] = issued.get(day, 0) + count
    active = {day for day, outcomes in per_day.items() if any(sum(figures) for figures in outcomes.values())}
    active |= {day for day, count in issued.items() if count}
    first = period.since or (min(active) if active else None)
    last = period.until or (max(active) if active else None)
    if not first or not last:
        return []
    rows = []
    for offset in range((last - first).days + 1):
        day = first + datetime.timedelta(days=offset)
        row = BreakdownRow(day.isoformat(), issued.get(day, 0))
        for outcome, (count, sent, _uncounted) in per_day.get(day, {}).items():
            row.add(outcome, count, sent)
        rows.append(row)
    return rows


def busiest_since(rolled: Rolled, day: datetime.date, since: datetime.datetime) -> tuple[str | None, int]:
    """The recipient with the most bytes in attempts started from local midnight `since` (of
    `day`) on, and how many; (None, 0) when nobody got a byte (the caller asks the audit rows then).

    `-` in the rollups stands for links without a recipient too: a recipient really named `-` is
    summed from the audit rows (an index seek finding nothing, in practice)."""
    table = rollups.recipients_table
    query = (
        select(table.c.recipient, func.sum(table.c.bytes_sent))
        .where(table.c.day >= day, table.c.recipient != NONE_KEY)
        .group_by(table.c.recipient)
    )
    found = {recipient: int(sent) for recipient, sent in _rows(rolled, query)}
    for (recipient, live_day), figures in rolled.live.recipients.items():
        if live_day >= day and recipient != NONE_KEY:
            found[recipient] = found.get(recipient, 0) + figures[_BYTES_SENT]
    dashed = (
        select(func.coalesce(func.sum(_attempts.c.bytes_sent), 0))
        .select_from(_attempts.join(_issuances, _attempts.c.issuance_id == _issuances.c.id))
        .where(_issuances.c.recipient == NONE_KEY, _attempts.c.started_at >= since)
    )
    found[NONE_KEY] = int(rolled.connection.execute(dashed).scalar_one())
    best = max(found.items(), key=lambda item: (item[1], item[0]))
    return best if best[1] > 0 else (None, 0)
