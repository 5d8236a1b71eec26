"""The report rollups: per-day sums of every audit row up to an id watermark (migration 0005).

`rollup_state` names two watermarks: every attempt with id <= `attempts_through` and every
issuance with id <= `issuances_through` is summed in the daily tables, in the local days of
`zone`; no other row is. So a report adds the daily rows of its period to the live rows above the
watermarks, which a primary-key range finds. Rolled-up rows must never change again:

- an attempt still running (`finished_at` NULL) still changes (progress, close, nginx's log), so
  the watermark stays below the first one; issuances never change in the columns reports read;
- on PostgreSQL ids are taken before commit, so a smaller id may show up later: the watermark
  only passes rows that started (or were created) `GUARD` ago, any transaction having committed;
- `prune` deletes rows, so in its transaction it sums the days it touched again (`rollup_prune`).

Writers are optimistic: they sum a block of rows outside any transaction, then in one short
transaction move the state from the `version` they read to the next (compare and set) and add
their sums; a writer that finds another version lost a race and starts over, so nothing is ever
added twice. Correctness never depends on anyone extending the rollups, only speed does: a
database nobody can write still answers from what it holds plus the live rows.
"""

from __future__ import annotations

import datetime
import importlib
import logging
import threading
import time
import weakref
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Table, delete, func, inspect, or_, select, update
from sqlalchemy.exc import DBAPIError

from tempdl.audit.rollup_sums import Block, DaySums, block_sums
from tempdl.audit.tables import RECIPIENT_FIGURES
from tempdl.audit.tables import daily_links as links_table
from tempdl.audit.tables import daily_recipients as recipients_table
from tempdl.audit.tables import daily_traffic as traffic_table
from tempdl.audit.tables import download_attempts as _attempts
from tempdl.audit.tables import issuances as _issuances
from tempdl.audit.tables import rollup_state as state_table
from tempdl.audit.tables import weekly_recipients as weekly_table

log = logging.getLogger("tempdl.rollups")

DAILY_TABLES = {
    "traffic": (traffic_table, ("day", "file_id", "outcome"), ("attempts", "bytes_sent", "uncounted")),
    "links": (links_table, ("day", "file_id"), ("links_issued", "links_downloaded")),
    "recipients": (recipients_table, ("recipient", "day"), RECIPIENT_FIGURES),
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


def upsert(connection: Connection, table: Table, keys: tuple[str, ...], values: tuple[str, ...], found) -> None:
    """Add `found` (key tuple -> figures) to `table`: INSERT ... ON CONFLICT DO UPDATE SET n = n + excluded.n."""
    rows = [dict(zip((*keys, *values), (*key, *figures), strict=True)) for key, figures in found.items()]
    if not rows:
        return
    # The engine's own dialect package (sqlite or postgresql), loaded with the engine: naming both
    # here loaded PostgreSQL's into every SQLite server (2.2 MiB).
    dialect = importlib.import_module(f"sqlalchemy.dialects.{connection.dialect.name}")
    statement = dialect.insert(table)
    added = {name: table.c[name] + statement.excluded[name] for name in values}
    connection.execute(statement.on_conflict_do_update(index_elements=list(keys), set_=added), rows)


def add_sums(connection: Connection, sums: DaySums, *, weekly: bool = True) -> None:
    """Add `sums` to the daily tables (and, with `weekly`, their recipients to the weekly one)."""
    for name, (table, keys, values) in DAILY_TABLES.items():
        upsert(connection, table, keys, values, getattr(sums, name))
    if weekly:
        upsert(connection, weekly_table, ("recipient", "week"), RECIPIENT_FIGURES, _weekly(sums.recipients))


def move(connection: Connection, seen: State, now: datetime.datetime, **values: Any) -> bool:
    """Compare and set: the state goes from `seen` to the next version, unless someone moved it."""
    moved = connection.execute(
        update(state_table)
        .where(state_table.c.id == 1, state_table.c.version == seen.version)
        .values(version=seen.version + 1, updated_at=now, **values)
    ).rowcount
    return moved == 1


def clear(connection: Connection, days: Iterable[datetime.date] | None = None, through: datetime.date | None = None):
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
                        if move(writing, state, now, zone=zone, attempts_through=0, issuances_through=0):
                            clear(writing)
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
                if move(
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
