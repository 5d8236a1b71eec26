"""The audit store: the only code that writes `issuances` and `download_attempts` rows.

Every write is one short transaction through SQLAlchemy Core (no ORM on the hot path). The server
runs these methods on one dedicated thread (`AuditLog.run`), so a busy or slow database never
stalls the event loop that is streaming other downloads, and SQLite sees a single writer.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import logging
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, and_, case, func, insert, select, text, update
from sqlalchemy.exc import DBAPIError

from tempdl.audit import engine as db
from tempdl.audit.records import Attempt, IssuanceRecord
from tempdl.audit.sqlite import SQLiteHotPath
from tempdl.audit.tables import DownloadAttempt, Issuance
from tempdl.errors import AuditUnavailable, IssuanceCapReached

T = TypeVar("T")
CHECKPOINT_EVERY_WRITES = 500  # inline writes between two WAL checkpoints on the audit thread
log = logging.getLogger("tempdl.audit")
_issuances = Issuance.__table__
_attempts = DownloadAttempt.__table__


def _marked(method: Callable[..., Any], mark: str) -> bool:
    """Whether a method (or a functools.partial of one) carries a `_hot`/`_writes` mark."""
    target = method.func if isinstance(method, functools.partial) else method
    return getattr(target, mark, False)


def _hot(method: Callable[..., T]) -> Callable[..., T]:
    """Mark a method that runs on every download: on SQLite it may run inline (see `run`)."""
    method.hot = True  # type: ignore[attr-defined]
    return method


def _hot_path_for(engine: Engine) -> SQLiteHotPath | None:
    if engine.dialect.name != "sqlite" or not engine.url.database or engine.url.database == ":memory:":
        return None
    return SQLiteHotPath(engine.url.database, db.SQLITE_BUSY_TIMEOUT_MS)


def _writes(method: Callable[..., T]) -> Callable[..., T]:
    """Mark a method that writes: its success ends an incident of an unwritable database."""
    method.writes = True  # type: ignore[attr-defined]
    return method


class AuditLog:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tempdl-audit")
        self.failing = False  # True from a failed write until the next successful one
        self._hot = _hot_path_for(engine)
        self._inline_writes = 0
        self._pending_commit: asyncio.Future[None] | None = None

    async def run(self, method: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run one of this store's methods without blocking the event loop, and wait for it.

        Hot-path methods on SQLite first run right here, impatiently (see `tempdl.audit.sqlite`);
        everything else, and a hot call that met a lock, runs on the audit thread. A database
        error becomes `AuditUnavailable`, logged once when an incident starts and once when a
        write succeeds again, not on every request in between.
        """
        try:
            if self._hot is not None and _marked(method, "hot"):
                try:
                    return self._succeeded(method, await self._run_inline(method, args, kwargs))
                except sqlite3.OperationalError as error:
                    if "locked" not in str(error) and "busy" not in str(error):
                        raise
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(self._executor, functools.partial(method, *args, **kwargs))
        except (DBAPIError, sqlite3.Error, AuditUnavailable) as error:
            reason = str(getattr(error, "orig", error))
            if not self.failing:
                self.failing = True
                log.error("event=audit_unavailable error=%r: answering 503 until it can be written", reason)
            raise AuditUnavailable(reason) from error
        return self._succeeded(method, result)

    def _succeeded(self, method: Callable[..., T], result: T) -> T:
        if self.failing and _marked(method, "writes"):
            self.failing = False
            log.warning("event=audit_recovered: the audit database takes writes again")
        return result

    async def _run_inline(self, method: Callable[..., T], args: tuple, kwargs: dict) -> T:
        """Run a hot method on the event loop; a write returns once its group commit is done."""
        assert self._hot is not None
        try:
            with self._hot.impatient():
                result = method(*args, **kwargs)
        except sqlite3.Error as error:
            self._abandon_group(error)
            raise
        if _marked(method, "writes"):
            await self._group_commit()
            self._inline_writes += 1
            if self._inline_writes >= CHECKPOINT_EVERY_WRITES:  # the impatient connection leaves them to us
                self._inline_writes = 0
                self._executor.submit(self._hot.checkpoint)
        return result

    async def _group_commit(self) -> None:
        """Wait for the one commit that covers every inline write of this event-loop turn."""
        if self._pending_commit is None:
            loop = asyncio.get_running_loop()
            self._pending_commit = loop.create_future()
            loop.call_soon(self._commit_group)
        await asyncio.shield(self._pending_commit)

    def _commit_group(self) -> None:
        group, self._pending_commit = self._pending_commit, None
        assert group is not None and self._hot is not None
        try:
            self._hot.commit_impatient()
        except sqlite3.Error as error:
            group.set_exception(error)
        else:
            group.set_result(None)
            self._hot.start_wal_over_if_due()

    def _abandon_group(self, error: Exception) -> None:
        """A write failed mid-group: roll back, and every write of the group fails with it."""
        assert self._hot is not None
        self._hot.rollback_impatient()
        group, self._pending_commit = self._pending_commit, None
        if group is not None:
            group.set_exception(error)

    def close(self) -> None:
        """Wait for queued writes to finish, then release the database."""
        self._executor.shutdown(wait=True)
        if self._hot is not None:
            self._hot.close()
        self.engine.dispose()

    # --- issuances --------------------------------------------------------------------------

    @_hot
    @_writes
    def create_issuance(
        self,
        *,
        file_id: str,
        recipient: str | None,
        channel: str,
        created_at: datetime.datetime,
        expires_at: datetime.datetime,
        max_downloads: int | None,
    ) -> int:
        if self._hot is not None:
            return self._hot.insert_issuance(file_id, recipient, channel, created_at, expires_at, max_downloads)
        with self.engine.begin() as connection:
            return _insert_issuance(connection, locals())

    @_writes
    def create_issuance_within_cap(
        self,
        *,
        file_id: str,
        recipient: str,
        channel: str,
        created_at: datetime.datetime,
        expires_at: datetime.datetime,
        max_downloads: int | None,
        cap: int,
        window: datetime.timedelta,
    ) -> int:
        """Like `create_issuance`, unless `recipient` already had `cap` issuances within `window`.

        Count and insert share one transaction, so two requests at once cannot both slip under
        the cap, even from two processes. The insert comes first: SQLite takes its write lock
        there (a count first would run outside the transaction, before pysqlite's implicit
        BEGIN), so a second writer waits and then counts this row too. PostgreSQL's READ
        COMMITTED would let two transactions miss each other's rows, so there a transaction-scoped
        advisory lock on the recipient serializes them. Over the cap, the transaction rolls back
        and `IssuanceCapReached` says when the oldest counted issuance leaves the window.
        """
        if cap < 1:
            raise ValueError("cap must be at least 1")
        with self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:recipient))"), {"recipient": recipient})
            issuance_id = _insert_issuance(connection, locals())
            # The cap-th most recent earlier issuance in the window: if there is one, we are over.
            blocking = connection.execute(
                select(_issuances.c.created_at)
                .where(
                    _issuances.c.recipient == recipient,
                    _issuances.c.created_at > created_at - window,
                    _issuances.c.id != issuance_id,
                )
                .order_by(_issuances.c.created_at.desc())
                .limit(1)
                .offset(cap - 1)
            ).scalar()
            if blocking is not None:
                raise IssuanceCapReached(cap, blocking + window)
        return issuance_id

    def issuances_since(self, recipient: str, since: datetime.datetime) -> int:
        """How many links `recipient` was sent after `since` (any channel)."""
        with self.engine.connect() as connection:
            return connection.execute(
                select(func.count())
                .select_from(_issuances)
                .where(_issuances.c.recipient == recipient, _issuances.c.created_at > since)
            ).scalar_one()

    @_hot
    def load_issuance(self, issuance_id: int) -> IssuanceRecord | None:
        if self._hot is not None:
            return self._hot.load_issuance(issuance_id)
        with self.engine.connect() as connection:
            row = connection.execute(select(_issuances).where(_issuances.c.id == issuance_id)).first()
        return None if row is None else IssuanceRecord(**row._mapping)

    @_writes
    def revoke(self, issuance_id: int, at: datetime.datetime) -> bool:
        """Mark an issuance revoked; False when there is no such issuance."""
        with self.engine.begin() as connection:
            result = connection.execute(
                update(_issuances)
                .where(_issuances.c.id == issuance_id)
                .values(revoked_at=func.coalesce(_issuances.c.revoked_at, at))
            )
            return result.rowcount == 1

    # --- attempts ---------------------------------------------------------------------------

    @_hot
    @_writes
    def record_attempt(self, attempt: Attempt) -> int:
        """Write a finished attempt (a refusal, a 304, a HEAD, a landing page) in one go."""
        if attempt.finished_at is None:
            attempt.finished_at = attempt.started_at
        attempt.id = self._insert_attempt(attempt)
        return attempt.id

    def _insert_attempt(self, attempt: Attempt) -> int:
        if self._hot is not None:
            return self._hot.insert_attempt(attempt)
        with self.engine.begin() as connection:
            return int(connection.execute(insert(_attempts).values(attempt.row())).inserted_primary_key[0])

    @_hot
    @_writes
    def open_attempt(self, attempt: Attempt) -> int:
        """Write the row of a download that is about to send bytes.

        The row starts as `partial` with no `finished_at`, so a crash mid-download still leaves an
        honest row behind; `close_attempt` fills in what really happened.
        """
        attempt.finished_at = None
        attempt.id = self._insert_attempt(attempt)
        return attempt.id

    @_writes
    def claim_download(self, attempt: Attempt, *, download_cap: int, file_size: int) -> bool:
        """`open_attempt` for a link with a download cap; False when the cap is used up.

        The check and the insert are one transaction that first locks, then counts: FOR UPDATE on
        the issuance row on PostgreSQL (at READ COMMITTED, see `db.make_engine`, the count then
        sees every claim committed before the lock was granted), SQLite's write lock taken up
        front with BEGIN IMMEDIATE (pysqlite would otherwise run the count before its implicit
        BEGIN, outside the transaction). So two servers racing for the last allowed download
        cannot both win.
        """
        attempt.finished_at = None
        with self.engine.begin() as connection:
            if connection.dialect.name == "sqlite":
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            connection.execute(select(_issuances.c.id).where(_issuances.c.id == attempt.issuance_id).with_for_update())
            used = _downloads_claimed(connection, attempt, file_size)
            if used >= download_cap:
                return False
            result = connection.execute(insert(_attempts).values(attempt.row()))
        attempt.id = int(result.inserted_primary_key[0])
        return True

    @_hot
    @_writes
    def close_attempt(self, attempt: Attempt) -> None:
        assert attempt.id is not None and attempt.finished_at is not None
        if self._hot is not None:
            return self._hot.close_attempt(attempt)
        with self.engine.begin() as connection:
            connection.execute(
                update(_attempts)
                .where(_attempts.c.id == attempt.id)
                .values(
                    outcome=attempt.outcome,
                    http_status=attempt.http_status,
                    bytes_sent=attempt.bytes_sent,
                    finished_at=attempt.finished_at,
                    range_start=attempt.range_start,
                    range_end=attempt.range_end,
                )
            )

    @_hot
    @_writes
    def note_progress(self, attempt_id: int, bytes_sent: int) -> None:
        """Bytes so far of a download still running (a finished row is never touched)."""
        if self._hot is not None:
            return self._hot.note_progress(attempt_id, bytes_sent)
        with self.engine.begin() as connection:
            connection.execute(
                update(_attempts)
                .where(_attempts.c.id == attempt_id, _attempts.c.finished_at.is_(None))
                .values(bytes_sent=bytes_sent)
            )

    @_writes
    def finish_open_attempts(self, attempts: Sequence[Attempt]) -> tuple[list[Attempt], int, int]:
        """Finish rows left open for someone else to complete (nginx's log, in x-accel mode).

        Only a row that is still open is written, each by its `id`, so a second run over the same
        log, or two runs at once, change nothing twice. Returns (the attempts written, how many
        rows were already finished, how many ids have no row).
        """
        finished: list[Attempt] = []
        not_open: list[int] = []
        with self.engine.begin() as connection:
            for attempt in attempts:
                assert attempt.id is not None and attempt.finished_at is not None
                written = connection.execute(
                    update(_attempts)
                    .where(_attempts.c.id == attempt.id, _attempts.c.finished_at.is_(None))
                    .values(
                        outcome=attempt.outcome,
                        http_status=attempt.http_status,
                        bytes_sent=attempt.bytes_sent,
                        finished_at=attempt.finished_at,
                    )
                ).rowcount
                if written:
                    finished.append(attempt)
                else:
                    not_open.append(attempt.id)
            existing = set()
            if not_open:
                existing = set(connection.execute(select(_attempts.c.id).where(_attempts.c.id.in_(not_open))).scalars())
        already = sum(1 for attempt_id in not_open if attempt_id in existing)
        return finished, already, len(not_open) - already

    @_writes
    def close_abandoned_attempts(
        self, now: datetime.datetime, *, started_before: datetime.datetime | None = None
    ) -> int:
        """Mark attempts a crash left open (no `finished_at`) as `partial`; return how many.

        With `started_before`, only attempts that started earlier: on a database other processes
        share, or whose rows nginx's log still has to finish, an open row may be alive.
        """
        conditions = [_attempts.c.finished_at.is_(None)]
        if started_before is not None:
            conditions.append(_attempts.c.started_at < started_before)
        with self.engine.begin() as connection:
            result = connection.execute(update(_attempts).where(*conditions).values(outcome="partial", finished_at=now))
            return result.rowcount

    @_writes
    def probe_write(self) -> None:
        """Take the write lock and let go of it: proves the database would accept a write now."""
        with self.engine.connect() as connection:
            if connection.dialect.name == "sqlite":
                connection.exec_driver_sql("BEGIN IMMEDIATE")
                connection.exec_driver_sql("ROLLBACK")
            else:
                connection.execute(text("SELECT 1"))
                if connection.execute(text("SHOW transaction_read_only")).scalar() == "on":
                    raise AuditUnavailable("the database is read-only")

    def completed_downloads(self, issuance_id: int, file_size: int) -> int:
        with self.engine.connect() as connection:
            return _completed_downloads(connection, issuance_id, file_size)

    def recipient_bytes_since(self, recipient: str, since: datetime.datetime) -> int:
        """Body bytes sent on all links of one recipient since a moment (the daily allowance)."""
        with self.engine.connect() as connection:
            total = connection.execute(
                select(func.coalesce(func.sum(_attempts.c.bytes_sent), 0))
                .select_from(_attempts.join(_issuances, _attempts.c.issuance_id == _issuances.c.id))
                .where(_issuances.c.recipient == recipient, _attempts.c.started_at >= since)
            ).scalar_one()
        return int(total)

    def started_download_before(self, issuance_id: int, moment: datetime.datetime) -> bool:
        """Whether bytes of this link started flowing before `moment` (resume after expiry)."""
        with self.engine.connect() as connection:
            found = connection.execute(
                select(_attempts.c.id)
                .where(
                    _attempts.c.issuance_id == issuance_id,
                    _attempts.c.outcome.in_(("ok", "partial")),
                    _attempts.c.started_at <= moment,
                    _attempts.c.bytes_sent > 0,
                )
                .limit(1)
            ).first()
        return found is not None


_ISSUANCE_FIELDS = ("file_id", "recipient", "channel", "created_at", "expires_at", "max_downloads")


def _insert_issuance(connection: Connection, values: dict[str, Any]) -> int:
    """Insert an issuance from the named values (extra names, like `self`, are ignored)."""
    row = {name: values[name] for name in _ISSUANCE_FIELDS}
    return int(connection.execute(insert(_issuances).values(row)).inserted_primary_key[0])


def _completed_downloads(connection: Connection, issuance_id: int, file_size: int) -> int:
    """Complete downloads of a link: all the body bytes it sent, in whole files.

    A download fetched as several Range requests (download managers, resumes after a dropped
    connection) counts once, when its pieces add up to the whole file.
    """
    sent = connection.execute(
        select(func.coalesce(func.sum(_attempts.c.bytes_sent), 0)).where(
            _attempts.c.issuance_id == issuance_id, _attempts.c.outcome.in_(("ok", "partial"))
        )
    ).scalar_one()
    return int(sent) // file_size if file_size > 0 else 0


def _downloads_claimed(connection: Connection, attempt: Attempt, file_size: int) -> int:
    """Downloads of a link that count against its cap, as the request `attempt` is about to start.

    Finished requests count the body bytes they sent, in whole files: a download fetched as
    several Range requests one after another, or resumed after a dropped connection, counts once,
    when its pieces add up to the file. Requests still running count one download each when the
    bytes they asked for overlap the bytes this one asks for: two requests for the same bytes at
    once are two downloads (five "Range: bytes=1-" at once cannot share one), while a download
    manager's parallel pieces, which do not overlap, are one.
    One statement, so one snapshot: at READ COMMITTED two statements could see a download that
    finished in between as neither running (its row closed) nor sent (its bytes read as 0), and
    let a second download past the cap (two servers on PostgreSQL did, about one race in ten).
    """
    start = attempt.range_start or 0
    end = attempt.range_end if attempt.range_end is not None else max(file_size - 1, start)
    running = _attempts.c.finished_at.is_(None)
    overlapping = and_(
        running, _attempts.c.range_start <= end, func.coalesce(_attempts.c.range_end, _attempts.c.range_start) >= start
    )
    settled, running_here = connection.execute(
        select(
            func.coalesce(
                func.sum(
                    case((and_(~running, _attempts.c.outcome.in_(("ok", "partial"))), _attempts.c.bytes_sent), else_=0)
                ),
                0,
            ),
            func.coalesce(func.sum(case((overlapping, 1), else_=0)), 0),
        ).where(_attempts.c.issuance_id == attempt.issuance_id)
    ).one()
    return (int(settled) // file_size if file_size > 0 else 0) + int(running_here)
