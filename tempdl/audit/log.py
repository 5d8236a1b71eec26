"""The audit store: the only code that writes `issuances` and `download_attempts` rows.

Every write is one short transaction through SQLAlchemy Core (no ORM anywhere); the hot
statements are those of `tempdl.audit.statements`, which on SQLite run through the sqlite3 fast
path instead. How the methods run (the audit thread, inline, group commit) is `AuditRunner`'s job.
Here are the issuances and the maintenance writes; the attempt rows are `AuditAttempts`'s
(`tempdl.audit.attempts`) and the limits' reads `AuditReads`'s (`tempdl.audit.reads`), both
inherited, so `AuditLog` stays the one class the rest of tempdl holds.
"""

from __future__ import annotations

import datetime
from typing import Any

from sqlalchemy import Connection, delete, exists, func, insert, select, text, update

from tempdl.audit import statements
from tempdl.audit.attempts import AuditAttempts
from tempdl.audit.reads import AuditReads
from tempdl.audit.records import IssuanceRecord
from tempdl.audit.runner import hot, writes
from tempdl.audit.statements import new_id
from tempdl.audit.tables import download_attempts as _attempts
from tempdl.audit.tables import health_checks as _health_checks
from tempdl.audit.tables import issuances as _issuances
from tempdl.errors import IssuanceCapReached
from tempdl.timeutil import utc_now


class AuditLog(AuditAttempts, AuditReads):
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

    # --- maintenance ------------------------------------------------------------------------

    @writes
    def prune(self, cutoff: datetime.datetime) -> tuple[int, int]:
        """Delete attempts started before `cutoff`, then issuances that old no attempt refers to.

        One transaction: an interrupted prune removes nothing. An issuance some kept attempt still
        names stays, so every attempt row keeps its link, recipient and file. The report rollups
        of the days it touched are summed again in the same transaction (`rollup_prune.after_prune`).
        Returns (attempts, issuances) removed.
        """
        from tempdl.audit import rollup_prune  # the rollups are the reports': a serving process never prunes

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


def _issuance_values(named: dict[str, Any]) -> dict[str, Any]:
    """The new issuance's columns from a method's arguments (extra names, like `self`, are ignored)."""
    return {name: named[name] for name in statements.ISSUANCE_COLUMNS}


def _insert_issuance(connection: Connection, values: dict[str, Any]) -> int:
    return new_id(connection.execute(statements.INSERT_ISSUANCE, values))
