"""The audit store: the only code that writes `issuances` and `download_attempts` rows.

Every write is one short transaction through SQLAlchemy Core (no ORM anywhere); the hot
statements are those of `tempdl.audit.statements`, which on SQLite run through the sqlite3 fast
path instead. How the methods run (the audit thread, inline, group commit) is `AuditRunner`'s job.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    CursorResult,
    and_,
    case,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    text,
    update,
)

from tempdl.audit import counts, rollup_prune, statements
from tempdl.audit.records import Attempt, IssuanceRecord, Outcome
from tempdl.audit.runner import AuditRunner, hot, writes
from tempdl.errors import IssuanceCapReached
from tempdl.timeutil import utc_now

_issuances = statements.issuances
_attempts = statements.attempts
_health_checks = statements.health_checks


class AuditLog(AuditRunner):
    """Every audit statement, run through `AuditRunner.run` by the server or called directly."""

    # --- issuances --------------------------------------------------------------------------

    @hot
    @writes
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
        values = _issuance_values(locals())
        if self._hot is not None:
            return self._hot.insert_issuance(values)
        with self.engine.begin() as connection:
            return _insert_issuance(connection, values)

    @writes
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
            issuance_id = _insert_issuance(connection, _issuance_values(locals()))
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

    @hot
    def load_issuance(self, issuance_id: int) -> IssuanceRecord | None:
        if self._hot is not None:
            return self._hot.load_issuance(issuance_id)
        with self.engine.connect() as connection:
            row = connection.execute(statements.SELECT_ISSUANCE, {"issuance_id": issuance_id}).first()
        return None if row is None else IssuanceRecord(**row._mapping)

    @writes
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

    @hot
    @writes
    def record_attempt(self, attempt: Attempt) -> int:
        """Write a finished attempt (a refusal, a 304, a HEAD, a landing page) in one go."""
        if attempt.finished_at is None:
            attempt.finished_at = attempt.started_at
        attempt.id = self._insert_attempt(attempt)
        return attempt.id

    def _insert_attempt(self, attempt: Attempt) -> int:
        attempt.server_id = attempt.server_id or self.server_id
        if self._hot is not None:
            return self._hot.insert_attempt(attempt)
        with self.engine.begin() as connection:
            return _new_id(connection.execute(statements.INSERT_ATTEMPT, attempt.row()))

    @hot
    @writes
    def open_attempt(self, attempt: Attempt) -> int:
        """Write the row of a download that is about to send bytes.

        The row starts as `partial` with no `finished_at`, so a crash mid-download still leaves an
        honest row behind; `close_attempt` fills in what really happened.
        """
        attempt.finished_at = None
        attempt.id = self._insert_attempt(attempt)
        return attempt.id

    @writes
    def claim_download(self, attempt: Attempt, *, download_cap: int, file_size: int) -> bool:
        """`open_attempt` for a link with a download cap; False when the cap is used up.

        The check and the insert are one transaction that first locks, then counts: FOR UPDATE on
        the issuance row on PostgreSQL (at READ COMMITTED, see `tempdl.audit.engine.make_engine`, the count then
        sees every claim committed before the lock was granted), SQLite's write lock taken up
        front with BEGIN IMMEDIATE (pysqlite would otherwise run the count before its implicit
        BEGIN, outside the transaction). So two servers racing for the last allowed download
        cannot both win.
        """
        attempt.finished_at = None
        attempt.server_id = attempt.server_id or self.server_id
        with self.engine.begin() as connection:
            if connection.dialect.name == "sqlite":
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            connection.execute(select(_issuances.c.id).where(_issuances.c.id == attempt.issuance_id).with_for_update())
            used = counts.downloads_claimed(connection, attempt, file_size)
            if used >= download_cap:
                return False
            result = connection.execute(statements.INSERT_ATTEMPT, attempt.row())
        attempt.id = _new_id(result)
        return True

    @hot
    @writes
    def close_attempt(self, attempt: Attempt) -> None:
        assert attempt.id is not None and attempt.finished_at is not None
        if self._hot is not None:
            return self._hot.close_attempt(attempt)
        with self.engine.begin() as connection:
            connection.execute(statements.CLOSE_ATTEMPT, statements.close_values(attempt))

    @hot
    @writes
    def note_progress(self, attempt_id: int, bytes_sent: int, at: datetime.datetime | None = None) -> None:
        """Bytes so far of a download still running, and when (a finished row is never touched).

        `progress_at` is the last moment the download is known to have been alive: a crash
        recovery takes it as the row's `finished_at`.
        """
        values = {"attempt_id": attempt_id, "bytes_sent": bytes_sent, "progress_at": at or utc_now()}
        if self._hot is not None:
            return self._hot.note_progress(values)
        with self.engine.begin() as connection:
            connection.execute(statements.NOTE_PROGRESS, values)

    @writes
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
            existing: set[int] = set()
            if not_open:
                existing = set(connection.execute(select(_attempts.c.id).where(_attempts.c.id.in_(not_open))).scalars())
        already = sum(1 for attempt_id in not_open if attempt_id in existing)
        return finished, already, len(not_open) - already

    @writes
    def close_abandoned_attempts(
        self, *, started_before: datetime.datetime | None = None, server_id: str | None = None
    ) -> int:
        """Mark attempts a crash left open (no `finished_at`) as `partial`; return how many.

        Each is finished at its last progress note (or its start): the crash came within one
        progress interval of it, while the restart may come much later. With `started_before`,
        only attempts that started earlier, plus, with `server_id`, every open attempt that
        server wrote: on a database other processes share, or whose rows nginx's log still has
        to finish, an open row may be alive, unless the server recovering now wrote it.
        """
        conditions: list[ColumnElement[bool]] = [_attempts.c.finished_at.is_(None)]
        if started_before is not None:
            older = _attempts.c.started_at < started_before
            conditions.append(or_(older, _attempts.c.server_id == server_id) if server_id else older)
        with self.engine.begin() as connection:
            result = connection.execute(
                update(_attempts)
                .where(*conditions)
                .values(
                    outcome=Outcome.PARTIAL,
                    finished_at=func.coalesce(_attempts.c.progress_at, _attempts.c.started_at),
                )
            )
            return result.rowcount

    @writes
    def prune(self, cutoff: datetime.datetime) -> tuple[int, int]:
        """Delete attempts started before `cutoff`, then issuances that old no attempt refers to.

        One transaction: an interrupted prune removes nothing. An issuance some kept attempt still
        names stays, so every attempt row keeps its link, recipient and file. The report rollups
        of the days it touched are summed again in the same transaction (`rollup_prune.after_prune`).
        Returns (attempts, issuances) removed.
        """
        referenced = exists(select(_attempts.c.id).where(_attempts.c.issuance_id == _issuances.c.id))
        with self.engine.begin() as connection:
            hold = rollup_prune.hold_for_prune(connection, cutoff)
            attempts = connection.execute(delete(_attempts).where(_attempts.c.started_at < cutoff)).rowcount
            issuances = connection.execute(
                delete(_issuances).where(_issuances.c.created_at < cutoff, ~referenced)
            ).rowcount
            rollup_prune.after_prune(connection, hold, cutoff, utc_now())
        return attempts, issuances

    @writes
    def probe_write(self) -> None:
        """Commit a real one-row write: proves the database takes a write now.

        Taking the write lock and letting go of it (what this did before) needs no disk space,
        so `/healthz` said `ok` on a full disk while every download was refused. Replacing the
        one row of `health_checks` writes a page, which a full disk, a read-only file or a lock
        held elsewhere refuse.
        """
        with self.engine.begin() as connection:
            connection.execute(delete(_health_checks))
            connection.execute(insert(_health_checks).values(checked_at=utc_now()))

    def completed_downloads(self, issuance_id: int, file_size: int) -> int:
        with self.engine.connect() as connection:
            return counts.completed_downloads(connection, issuance_id, file_size)

    def recipient_bytes_since(self, recipient: str, since: datetime.datetime, *, held_here: Sequence[int] = ()) -> int:
        """Body bytes of one recipient's downloads since a moment (the daily allowance).

        A finished row counts what it sent; a row still open counts the bytes it asked for, as
        they may all go out (see `tempdl.links.reservations`), unless its id is in `held_here`:
        the caller counts those itself.
        """
        running = _attempts.c.finished_at.is_(None)
        asked = func.coalesce(_attempts.c.range_end - _attempts.c.range_start + 1, _attempts.c.bytes_sent)
        counted = case((running, asked), else_=_attempts.c.bytes_sent)
        conditions = [_issuances.c.recipient == recipient, _attempts.c.started_at >= since, counts.DOWNLOAD]
        if held_here:
            conditions.append(~and_(running, _attempts.c.id.in_(held_here)))
        with self.engine.connect() as connection:
            total: int = connection.execute(
                select(func.coalesce(func.sum(counted), 0))
                .select_from(_attempts.join(_issuances, _attempts.c.issuance_id == _issuances.c.id))
                .where(*conditions)
            ).scalar_one()
        return int(total)

    def delivered_spans(self, issuance_id: int, moment: datetime.datetime) -> tuple[list[tuple[int, int]], bool]:
        """The byte spans a link's downloads delivered, or are delivering (as much as they asked
        for), and whether any of them started sending by `moment` (resume after expiry).

        A download that failed (`error`) still delivered its bytes.
        """
        running = _attempts.c.finished_at.is_(None)
        start = func.coalesce(_attempts.c.range_start, 0)
        end = case(
            (running, func.coalesce(_attempts.c.range_end + 1, start + _attempts.c.bytes_sent)),
            else_=start + _attempts.c.bytes_sent,
        )
        with self.engine.connect() as connection:
            found: Sequence[Any] = connection.execute(  # `end` is a CASE: typed as object, an integer here
                select(start, end, _attempts.c.started_at).where(
                    _attempts.c.issuance_id == issuance_id,
                    _attempts.c.outcome.in_((*counts.COUNTED, Outcome.ERROR)),
                    counts.DOWNLOAD,
                    or_(running, _attempts.c.bytes_sent > 0),
                )
            ).all()
        rows = [(int(first), int(last), started) for first, last, started in found]
        spans = [(first, last) for first, last, _ in rows if last > first]
        began = any(started <= moment and last > first for first, last, started in rows)
        return spans, began


def _issuance_values(named: dict[str, Any]) -> dict[str, Any]:
    """The new issuance's columns from a method's arguments (extra names, like `self`, are ignored)."""
    return {name: named[name] for name in statements.ISSUANCE_COLUMNS}


def _insert_issuance(connection: Connection, values: dict[str, Any]) -> int:
    return _new_id(connection.execute(statements.INSERT_ISSUANCE, values))


def _new_id(result: CursorResult[Any]) -> int:
    """The primary key an INSERT just created (every tempdl insert writes exactly one row)."""
    key = result.inserted_primary_key
    if key is None:
        raise TypeError("not the result of a single-row INSERT")
    return int(key[0])
