"""Prune and the report rollups: in the prune's transaction, the days it touched are summed again.

`AuditLog.prune` deletes attempts started before a cutoff and the issuances that old no attempt
names. Every day up to the cutoff's (in the rollups' zone) loses rows, and so may the days of
links whose counted `ok` went: those daily rows are deleted and summed again from the rows that
stay (ids up to the watermarks), and their weeks from the daily rows. One transaction with the
deletes, the state locked first: a report or an extension sees the rollups before or after.
"""

from __future__ import annotations

import datetime
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, delete, func, or_, select

from tempdl.audit.rollup_sums import DOWNLOADED, Block, DaySums, block_sums
from tempdl.audit.rollups import (
    State,
    add_sums,
    clear,
    move,
    read_state,
    recipients_table,
    upsert,
    week_of,
    weekly_table,
)
from tempdl.audit.tables import RECIPIENT_FIGURES
from tempdl.audit.tables import download_attempts as _attempts
from tempdl.audit.tables import issuances as _issuances
from tempdl.timeutil import local_midnight


def _rebuild_weeks(connection: Connection, weeks: set[datetime.date], through: datetime.date) -> None:
    """Sum the weekly rows of the weeks up to `through`'s, and of `weeks`, again from the daily rows."""
    through = week_of(through)
    figures = RECIPIENT_FIGURES
    connection.execute(delete(weekly_table).where(or_(weekly_table.c.week <= through, weekly_table.c.week.in_(weeks))))
    days = recipients_table.c.day
    spans = [days <= through + datetime.timedelta(days=6)]
    spans += [and_(days >= week, days <= week + datetime.timedelta(days=6)) for week in weeks]
    daily = select(recipients_table.c.recipient, days, *(recipients_table.c[name] for name in figures))
    found: dict[tuple[str, datetime.date], list[int]] = {}
    rows: list[Any] = list(connection.execute(daily.where(or_(*spans))))
    for recipient, day, *counts in rows:
        DaySums.add(found, (recipient, week_of(day)), counts)
    upsert(connection, weekly_table, ("recipient", "week"), figures, found)


@dataclass(frozen=True)
class PruneHold:
    """The rollup state a prune holds locked, and the days of links it may leave undownloaded."""

    state: State | None
    lost_days: frozenset[datetime.date]


def hold_for_prune(connection: Connection, cutoff: datetime.datetime) -> PruneHold:
    """Lock the state (call first in the prune's transaction) and note which later days hold
    links whose counted `ok` is about to go: their `links_downloaded` must be summed again."""
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock before reading the state
    state = read_state(connection, for_update=True)
    if state is None or not state.built:
        return PruneHold(state, frozenset())
    zone = zoneinfo.ZoneInfo(state.zone)
    after_cut = local_midnight(cutoff.astimezone(zone).date() + datetime.timedelta(days=1), zone)
    created: Iterable[datetime.datetime] = connection.execute(
        select(_issuances.c.created_at)
        .select_from(_attempts.join(_issuances, _issuances.c.id == _attempts.c.issuance_id))
        .where(
            _attempts.c.started_at < cutoff,
            *DOWNLOADED,
            _attempts.c.id <= state.attempts_through,
            _issuances.c.id <= state.issuances_through,
            _issuances.c.created_at >= after_cut,
        )
    ).scalars()
    return PruneHold(state, frozenset(moment.astimezone(zone).date() for moment in created))


def after_prune(connection: Connection, hold: PruneHold, cutoff: datetime.datetime, now: datetime.datetime) -> None:
    """In the prune's transaction, once its rows are gone: sum the touched days again from the
    rows that stay (every day up to the cutoff's, and `hold.lost_days`)."""
    state = hold.state
    if state is None or not state.built:
        return
    zone = zoneinfo.ZoneInfo(state.zone)
    last_day = cutoff.astimezone(zone).date()
    # SQLite hands out max(id) + 1: below the highest id left, no row can appear again
    attempts_to = min(state.attempts_through, connection.execute(select(func.max(_attempts.c.id))).scalar() or 0)
    issuances_to = min(state.issuances_through, connection.execute(select(func.max(_issuances.c.id))).scalar() or 0)
    clear(connection, hold.lost_days, last_day)
    firsts = [
        connection.execute(select(func.min(moment)).where(column <= through)).scalar()
        for moment, column, through in (
            (_attempts.c.started_at, _attempts.c.id, attempts_to),
            (_issuances.c.created_at, _issuances.c.id, issuances_to),
        )
    ]
    first_days = [moment.astimezone(zone).date() for moment in firsts if moment is not None]
    days = set(hold.lost_days)
    if first_days:
        first = min(first_days)
        days.update(first + datetime.timedelta(days=n) for n in range((last_day - first).days + 1))
    sums = block_sums(connection, Block(0, attempts_to, 0, issuances_to), zone, days=sorted(days))
    add_sums(connection, sums, weekly=False)
    _rebuild_weeks(connection, {week_of(day) for day in hold.lost_days}, last_day)
    if not move(connection, state, now, attempts_through=attempts_to, issuances_through=issuances_to):
        raise RuntimeError("the rollup state moved while a prune held it locked")
