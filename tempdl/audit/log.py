"""The audit store: the only code that writes `issuances` and `download_attempts` rows.

Every write is one short transaction, each statement one of `tempdl.audit.statements` by
name: on SQLite through plain sqlite3 (`tempdl.audit.sqlite`), elsewhere through SQLAlchemy Core
(no ORM anywhere). Only what the server never does itself (revoking from the command line,
pruning) builds its statements here, with SQLAlchemy imported when it runs.
How the methods run (the audit thread, inline, group commit) is `AuditRunner`'s job.
Here are the issuances and the maintenance writes; the attempt rows are `AuditAttempts`'s
(`tempdl.audit.attempts`) and the limits' reads `AuditReads`'s (`tempdl.audit.reads`), both
inherited, so `AuditLog` stays the one class the rest of tempdl holds.
"""

from __future__ import annotations

import datetime
from typing import Any

from tempdl.audit.attempts import AuditAttempts
from tempdl.audit.reads import AuditReads
from tempdl.audit.records import ISSUANCE_COLUMNS, IssuanceRecord
from tempdl.audit.runner import hot, writes
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
        return self._insert_alone("insert_issuance", _issuance_values(locals()))

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
        with self.transaction() as run:
            if run.dialect == "postgresql":
                run.one("lock_recipient", {"recipient": recipient})
            issuance_id = run.insert("insert_issuance", _issuance_values(locals()))
            values = {"recipient": recipient, "after": created_at - window, "issuance_id": issuance_id, "skip": cap - 1}
            blocking = run.first("cap_blocking", values)
            if blocking is not None:
                raise IssuanceCapReached(cap, blocking[0] + window)
        return issuance_id

    @hot
    def load_issuance(self, issuance_id: int) -> IssuanceRecord | None:
        with self.reading() as run:
            row = run.first("select_issuance", {"issuance_id": issuance_id})
        return None if row is None else IssuanceRecord(*row)  # the statement selects the record's fields

    @writes
    def revoke(self, issuance_id: int, at: datetime.datetime) -> bool:
        """Mark an issuance revoked; False when there is no such issuance."""
        from sqlalchemy import func, update  # revoked by an operator: the admin page or a command

        from tempdl.audit.tables import issuances as _issuances

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
        from sqlalchemy import delete, exists, select  # a command prunes; a serving process never does

        from tempdl.audit import rollup_prune
        from tempdl.audit.tables import download_attempts as _attempts
        from tempdl.audit.tables import issuances as _issuances

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
        with self.transaction() as run:
            run.change("clear_health_checks", {})
            run.insert("insert_health_check", {"checked_at": utc_now()})


def _issuance_values(named: dict[str, Any]) -> dict[str, Any]:
    """The new issuance's columns from a method's arguments (extra names, like `self`, are ignored)."""
    return {name: named[name] for name in ISSUANCE_COLUMNS}
