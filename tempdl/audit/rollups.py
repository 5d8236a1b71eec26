"""The report rollups: per-day sums of every audit row up to an id watermark (migration 0005).

`rollup_state` names two watermarks: every attempt with id <= `attempts_through` and every
issuance with id <= `issuances_through` is summed in the daily tables, in the local days of
`zone`; no other row is. So a report adds the daily rows of its period to the live rows above the
watermarks, which a primary-key range finds. Rolled-up rows must never change again:

- an attempt still running (`finished_at` NULL) still changes (progress, close, nginx's log), so
  the watermark stays below the first one; issuances never change in the columns reports read;
- on PostgreSQL ids are taken before commit, so a smaller id may show up later: the watermark
  only passes rows that started (or were created) `GUARD` ago, any transaction having committed;
- `prune` deletes rows, so in its transaction it sums the days it touched again (`after_prune`).

Writers are optimistic: they sum a block of rows outside any transaction, then in one short
transaction move the state from the `version` they read to the next (compare and set) and add
their sums; a writer that finds another version lost a race and starts over, so nothing is ever
added twice. Correctness never depends on anyone extending the rollups, only speed does: a
database nobody can write still answers from what it holds plus the live rows.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
import weakref
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, and_, delete, func, inspect, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from tempdl.audit.rollup_sums import DOWNLOADED, Block, DaySums, block_sums
from tempdl.audit.statements import attempts as _attempts
from tempdl.audit.statements import issuances as _issuances
from tempdl.audit.tables import DailyLinks, DailyRecipient, DailyTraffic, RollupState, WeeklyRecipient
from tempdl.timeutil import local_midnight

log = logging.getLogger("tempdl.rollups")

state_table = cast(Table, RollupState.__table__)
traffic_table = cast(Table, DailyTraffic.__table__)
links_table = cast(Table, DailyLinks.__table__)
recipients_table = cast(Table, DailyRecipient.__table__)
weekly_table = cast(Table, WeeklyRecipient.__table__)
DAILY_TABLES = {
    "traffic": (traffic_table, ("day", "file_id", "outcome"), ("attempts", "bytes_sent", "uncounted")),
    "links": (links_table, ("day", "file_id"), ("links_issued", "links_downloaded")),
    "recipients": (
        recipients_table,
        ("recipient", "day"),
        ("links_issued", "links_named", "attempts", "ok", "partial", "refused", "bytes_sent"),
    ),
}

GUARD = datetime.timedelta(minutes=5)
STEP_ATTEMPTS = 1_000_000
STEP_ISSUANCES = 400_000
"""A writer sums at most this many ids per transaction (the first build goes in steps)."""

_extending: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
_tables_seen: weakref.WeakSet[Engine] = weakref.WeakSet()


@dataclass(frozen=True)
class State:
    zone: str  # '' until the first build
    attempts_through: int
    issuances_through: int
    version: int

    @property
    def built(self) -> bool:
        return self.zone != ""


@dataclass
class Extension:
    """What one `extend` did (for its log line)."""

    attempts: int = 0
    issuances: int = 0
    steps: int = 0
    rebuilt: bool = False
    seconds: float = 0.0

    def __str__(self) -> str:
        return (
            f"event=rollups_extended attempts={self.attempts} issuances={self.issuances} steps={self.steps} "
            f"rebuilt={'yes' if self.rebuilt else 'no'} seconds={self.seconds:.1f}"
        )


def read_state(connection: Connection, *, for_update: bool = False) -> State | None:
    """The rollup state; None on a database without the rollup tables (before migration 0005)."""
    if connection.engine not in _tables_seen:
        if not inspect(connection).has_table(state_table.name):
            return None
        _tables_seen.add(connection.engine)
    query = select(
        state_table.c.zone, state_table.c.attempts_through, state_table.c.issuances_through, state_table.c.version
    ).where(state_table.c.id == 1)
    row = connection.execute(query.with_for_update() if for_update else query).first()
    return None if row is None else State(row[0], int(row[1]), int(row[2]), int(row[3]))


def _targets(connection: Connection, state: State, now: datetime.datetime) -> tuple[int, int]:
    """How far the watermarks may move now: to the latest row older than `GUARD`, and for
    attempts to just below the first one still running."""
    cutoff = now - GUARD
    # any row older than the cutoff will do (every smaller id was taken before it was written);
    # the largest id of the last hour's rows goes furthest, at the price of an hour's index range
    latest = select(_attempts.c.id).where(_attempts.c.started_at < cutoff).order_by(_attempts.c.started_at.desc())
    last_hour = select(func.max(_attempts.c.id)).where(
        _attempts.c.started_at >= cutoff - datetime.timedelta(hours=1), _attempts.c.started_at < cutoff
    )
    attempt = max(connection.execute(latest.limit(1)).scalar() or 0, connection.execute(last_hour).scalar() or 0)
    running = connection.execute(select(func.min(_attempts.c.id)).where(_attempts.c.finished_at.is_(None))).scalar()
    attempts_to = attempt or 0
    if running is not None:
        attempts_to = min(attempts_to, running - 1)
    issuance = connection.execute(
        select(_issuances.c.id)
        .where(_issuances.c.created_at < cutoff)
        .order_by(_issuances.c.created_at.desc())
        .limit(1)
    ).scalar()
    return max(attempts_to, state.attempts_through), max(issuance or 0, state.issuances_through)


def week_of(day: datetime.date) -> datetime.date:
    """The Monday of `day`'s week: the key of `weekly_recipients`."""
    return day - datetime.timedelta(days=day.weekday())


def _weekly(recipients: dict[tuple[str, datetime.date], list[int]]) -> dict[tuple[str, datetime.date], list[int]]:
    weeks: dict[tuple[str, datetime.date], list[int]] = {}
    for (recipient, day), figures in recipients.items():
        DaySums.add(weeks, (recipient, week_of(day)), figures)
    return weeks


def _upsert(connection: Connection, table: Table, keys: tuple[str, ...], values: tuple[str, ...], found) -> None:
    """Add `found` (key tuple -> figures) to `table`: INSERT ... ON CONFLICT DO UPDATE SET n = n + excluded.n."""
    rows = [dict(zip((*keys, *values), (*key, *figures), strict=True)) for key, figures in found.items()]
    if not rows:
        return
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table)
    added = {name: table.c[name] + statement.excluded[name] for name in values}
    connection.execute(statement.on_conflict_do_update(index_elements=list(keys), set_=added), rows)


def add_sums(connection: Connection, sums: DaySums, *, weekly: bool = True) -> None:
    """Add `sums` to the daily tables (and, with `weekly`, their recipients to the weekly one)."""
    for name, (table, keys, values) in DAILY_TABLES.items():
        _upsert(connection, table, keys, values, getattr(sums, name))
    if weekly:
        _upsert(
            connection, weekly_table, ("recipient", "week"), DAILY_TABLES["recipients"][2], _weekly(sums.recipients)
        )


def _rebuild_weeks(connection: Connection, weeks: set[datetime.date], through: datetime.date) -> None:
    """Sum the weekly rows of the weeks up to `through`'s, and of `weeks`, again from the daily rows."""
    through = week_of(through)
    figures = DAILY_TABLES["recipients"][2]
    connection.execute(delete(weekly_table).where(or_(weekly_table.c.week <= through, weekly_table.c.week.in_(weeks))))
    days = recipients_table.c.day
    spans = [days <= through + datetime.timedelta(days=6)]
    spans += [and_(days >= week, days <= week + datetime.timedelta(days=6)) for week in weeks]
    daily = select(recipients_table.c.recipient, days, *(recipients_table.c[name] for name in figures))
    found: dict[tuple[str, datetime.date], list[int]] = {}
    rows: list[Any] = list(connection.execute(daily.where(or_(*spans))))
    for recipient, day, *counts in rows:
        DaySums.add(found, (recipient, week_of(day)), counts)
    _upsert(connection, weekly_table, ("recipient", "week"), figures, found)


def _move(connection: Connection, seen: State, now: datetime.datetime, **values: Any) -> bool:
    """Compare and set: the state goes from `seen` to the next version, unless someone moved it."""
    moved = connection.execute(
        update(state_table)
        .where(state_table.c.id == 1, state_table.c.version == seen.version)
        .values(version=seen.version + 1, updated_at=now, **values)
    ).rowcount
    return moved == 1


def _clear(connection: Connection, days: Iterable[datetime.date] | None = None, through: datetime.date | None = None):
    """Delete the daily rows of `days` and of the days up to `through`; of every day without either
    (and then the weekly rows too)."""
    if days is None and through is None:
        connection.execute(delete(weekly_table))
    for table, _keys, _values in DAILY_TABLES.values():
        conditions = []
        if through is not None:
            conditions.append(table.c.day <= through)
        if days is not None:
            conditions.append(table.c.day.in_(list(days)))
        connection.execute(delete(table).where(or_(*conditions)) if conditions else delete(table))


def extend(engine: Engine, zone: str | None, now: datetime.datetime, *, wait: bool = True) -> Extension:
    """Bring the rollups up to now, in steps; first cut them again if they are in another zone.

    `zone=None` (a report) only extends rollups already built, in their zone. `wait=False`
    returns at once if this process is extending them already (a report must not queue behind
    the first build). Raises what the database raises (read-only, locked): callers decide.
    """
    if engine.dialect.name not in ("sqlite", "postgresql"):
        return Extension()
    lock = _extending.setdefault(engine, threading.Lock())
    if not lock.acquire(blocking=wait):
        return Extension()
    done, started = Extension(), time.perf_counter()
    try:
        for _ in range(10_000):  # each turn moves the state, ours or a rival's
            with engine.connect() as connection:
                state = read_state(connection)
                if state is None:
                    break
                if zone is not None and state.zone != zone:
                    with engine.begin() as writing:
                        if _move(writing, state, now, zone=zone, attempts_through=0, issuances_through=0):
                            _clear(writing)
                            done.rebuilt = True
                    continue
                if not state.built:
                    break
                attempts_to, issuances_to = _targets(connection, state, now)
                if (attempts_to, issuances_to) == (state.attempts_through, state.issuances_through):
                    break
                block = Block(
                    state.attempts_through,
                    min(attempts_to, state.attempts_through + STEP_ATTEMPTS),
                    state.issuances_through,
                    min(issuances_to, state.issuances_through + STEP_ISSUANCES),
                )
                sums = block_sums(connection, block, zoneinfo.ZoneInfo(state.zone))
            assert block.attempts_through is not None and block.issuances_through is not None
            with engine.begin() as writing:
                if _move(
                    writing,
                    state,
                    now,
                    attempts_through=block.attempts_through,
                    issuances_through=block.issuances_through,
                ):
                    add_sums(writing, sums)
                    done.attempts += block.attempts_through - block.attempts_after
                    done.issuances += block.issuances_through - block.issuances_after
                    done.steps += 1
    finally:
        lock.release()
    done.seconds = time.perf_counter() - started
    return done


# --- prune --------------------------------------------------------------------------------------


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
    _clear(connection, hold.lost_days, last_day)
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
    if not _move(connection, state, now, attempts_through=attempts_to, issuances_through=issuances_to):
        raise RuntimeError("the rollup state moved while a prune held it locked")


def bring_up_to_date(engine: Engine, zone: str, now: datetime.datetime | None = None) -> Extension | None:
    """Build or extend the rollups in `zone` (the first build of a big history takes a while) and
    log one line saying what was done; None, with a warning, when the database refused."""
    try:
        done = extend(engine, zone, now or datetime.datetime.now(datetime.UTC))
    except DBAPIError as error:
        log.warning("event=rollups_not_extended error=%s", str(getattr(error, "orig", error)).splitlines()[0])
        return None
    log.info("%s zone=%s", done, zone)
    return done


def bring_up_to_date_in_background(engine: Engine, zone: str) -> threading.Thread:
    """`bring_up_to_date` on a thread of its own: a server starts answering at once; reports
    read the audit tables until the rollups are built."""
    thread = threading.Thread(target=bring_up_to_date, args=(engine, zone), name="tempdl-rollups", daemon=True)
    thread.start()
    return thread
