"""The audit store's download attempts: every `download_attempts` row is written here.

A row is written whole (a refusal, a HEAD) or opened before the first byte and closed after the
last, with progress notes between; rows others finish (nginx's log) or a crash left open are
finished here too. `AuditLog` inherits these methods, the `hot`/`writes` marks with them.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from tempdl.audit import limit_counts
from tempdl.audit.records import Attempt
from tempdl.audit.runner import AuditRunner, hot, writes
from tempdl.timeutil import utc_now


class AuditAttempts(AuditRunner):
    """The attempt lifecycle of `AuditLog`: record, open or claim, note progress, close."""

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
        return self._insert_alone("insert_attempt", attempt.row())

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
        with self.transaction(immediate=True) as run:
            if run.dialect == "postgresql":
                run.one("lock_issuance", {"issuance_id": attempt.issuance_id})
            if limit_counts.downloads_claimed(run, attempt, file_size) >= download_cap:
                return False
            attempt.id = run.insert("insert_attempt", attempt.row())
        return True

    @hot
    @writes
    def close_attempt(self, attempt: Attempt) -> None:
        assert attempt.id is not None and attempt.finished_at is not None
        self._change_alone("close_attempt", attempt.close_values())

    @hot
    @writes
    def note_progress(self, attempt_id: int, bytes_sent: int, at: datetime.datetime | None = None) -> None:
        """Bytes so far of a download still running, and when (a finished row is never touched).

        `progress_at` is the last moment the download is known to have been alive: a crash
        recovery takes it as the row's `finished_at`.
        """
        values = {"attempt_id": attempt_id, "bytes_sent": bytes_sent, "progress_at": at or utc_now()}
        self._change_alone("note_progress", values)

    @writes
    def finish_open_attempts(self, attempts: Sequence[Attempt]) -> tuple[list[Attempt], int, int]:
        """Finish rows left open for someone else to complete (nginx's log, in x-accel mode).

        Only a row that is still open is written, each by its `id`, so a second run over the same
        log, or two runs at once, change nothing twice. Returns (the attempts written, how many
        rows were already finished, how many ids have no row).
        """
        from sqlalchemy import select, update  # nginx's log is ingested by a command, not the server

        from tempdl.audit.tables import download_attempts as _attempts

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
        values = {"started_before": started_before, "written_by": server_id if started_before is not None else None}
        with self.transaction() as run:
            return run.change("close_abandoned", values)
