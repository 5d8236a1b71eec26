"""The hot path on SQLite: the statements every download and every link runs, without SQLAlchemy.

Profiling a 4 KiB download showed SQLAlchemy Core spending ~100-250 µs per statement where the
sqlite3 driver itself needs ~15-40 µs, several times more than Tornado's own work for the request;
and handing each statement to the audit thread cost as much again. So on SQLite the per-download
statements (read the issuance, open and close the attempt, or record it in one go) and the
insert of a new issuance run as plain
prepared SQL, first "impatiently" right on the event loop: with a busy timeout of 0 such a call
never waits for a lock, and when another writer holds it, `AuditLog.run` hands the call to the
audit thread, which may wait. Impatient writes are not committed one by one: `AuditLog` commits
all the writes of one event-loop turn together (group commit) and only then lets their requests
go on, so no byte leaves before its row is committed. The impatient connection never
checkpoints the WAL itself (that means an fsync); the audit thread does it every 500 writes.
Everything else, and every other database, goes through SQLAlchemy in `tempdl.audit.log`.

The timestamp text is exactly what SQLAlchemy's SQLite DateTime stores, so rows written here and
there compare and sort alike.
"""

from __future__ import annotations

import contextlib
import datetime
import sqlite3
import threading
from collections.abc import Iterator

from tempdl.audit.records import Attempt, IssuanceRecord

WAL_RESTART_FRAMES = 1024  # pages: 4 MiB of WAL

_INSERT_ISSUANCE = (
    "INSERT INTO issuances (file_id, recipient, channel, created_at, expires_at, max_downloads) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_SELECT_ISSUANCE = (
    "SELECT id, created_at, expires_at, file_id, recipient, channel, max_downloads, revoked_at "
    "FROM issuances WHERE id = ?"
)
_INSERT_ATTEMPT = (
    "INSERT INTO download_attempts (issuance_id, file_id, started_at, finished_at, outcome, http_status, "
    "range_start, range_end, bytes_sent, client_ip, user_agent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_NOTE_PROGRESS = "UPDATE download_attempts SET bytes_sent = ? WHERE id = ? AND finished_at IS NULL"
_CLOSE_ATTEMPT = (
    "UPDATE download_attempts SET outcome = ?, http_status = ?, bytes_sent = ?, finished_at = ?, "
    "range_start = ?, range_end = ? WHERE id = ?"
)


def to_text(moment: datetime.datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(datetime.UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def from_text(text: str | None) -> datetime.datetime | None:
    return None if text is None else datetime.datetime.fromisoformat(text).replace(tzinfo=datetime.UTC)


class SQLiteHotPath:
    """Prepared statements on plain sqlite3 connections: one per thread, plus the impatient one."""

    def __init__(self, database: str, busy_timeout_ms: int) -> None:
        self._database = database
        self._busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._wal_restart_due = False

    @contextlib.contextmanager
    def impatient(self) -> Iterator[None]:
        """Within this block, this thread's statements fail at once rather than wait for a lock."""
        self._local.impatient = True
        try:
            yield
        finally:
            self._local.impatient = False

    def _raw(self) -> sqlite3.Connection:
        impatient = getattr(self._local, "impatient", False)
        slot = "impatient_connection" if impatient else "connection"
        connection = getattr(self._local, slot, None)
        if connection is None:
            connection = sqlite3.connect(self._database, check_same_thread=False)
            connection.execute(f"PRAGMA busy_timeout = {0 if impatient else self._busy_timeout_ms}")
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.execute("PRAGMA foreign_keys = ON")
            if impatient:
                connection.execute("PRAGMA wal_autocheckpoint = 0")
            setattr(self._local, slot, connection)
            self._opened.append(connection)
        return connection

    def checkpoint(self) -> None:
        """Fold the WAL back into the database file (on the audit thread: it copies and fsyncs)."""
        _busy, wal_frames, _copied = self._raw().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if wal_frames > WAL_RESTART_FRAMES:
            self._wal_restart_due = True

    def start_wal_over_if_due(self) -> None:
        """Finish a checkpoint on the event loop, right after a group commit, when the WAL is long.

        Under a steady stream of writes, a checkpoint on the audit thread never catches up with
        the end of the WAL (new commits keep arriving while it copies), so the WAL was never
        started over: it grew past 100 MiB in a minute of WeChat messages, and writes got slower
        as it grew. Here, between two commits, no write of ours is open: copying the few pages
        the audit thread left takes a millisecond or so, and the next write starts the WAL over.
        Never waits: if another process holds a lock, it is tried again after the next commit.
        """
        if not self._wal_restart_due:
            return
        try:
            with self.impatient():
                busy, _wal_frames, _copied = self._raw().execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
        except sqlite3.Error:
            return  # locked or failing: the next commit tries again, and a real failure shows there
        self._wal_restart_due = bool(busy)

    def close(self) -> None:
        for connection in self._opened:
            connection.close()
        self._opened.clear()
        self._local = threading.local()

    def _write(self, sql: str, params: tuple) -> int:
        """Execute a write; commit it at once, unless impatient (then `commit` comes later)."""
        connection = self._raw()
        try:
            cursor = connection.execute(sql, params)
            if not getattr(self._local, "impatient", False):
                connection.commit()
            return cursor.lastrowid
        except sqlite3.Error:
            connection.rollback()
            raise

    def commit_impatient(self) -> None:
        """Commit the writes waiting on the impatient connection (call on the event loop)."""
        with self.impatient():
            connection = self._raw()
            try:
                connection.commit()
            except sqlite3.Error:
                connection.rollback()
                raise

    def rollback_impatient(self) -> None:
        with self.impatient():
            self._raw().rollback()

    def load_issuance(self, issuance_id: int) -> IssuanceRecord | None:
        row = self._raw().execute(_SELECT_ISSUANCE, (issuance_id,)).fetchone()
        if row is None:
            return None
        return IssuanceRecord(
            id=row[0],
            created_at=from_text(row[1]),
            expires_at=from_text(row[2]),
            file_id=row[3],
            recipient=row[4],
            channel=row[5],
            max_downloads=row[6],
            revoked_at=from_text(row[7]),
        )

    def insert_issuance(
        self,
        file_id: str,
        recipient: str | None,
        channel: str,
        created_at: datetime.datetime,
        expires_at: datetime.datetime,
        max_downloads: int | None,
    ) -> int:
        return self._write(
            _INSERT_ISSUANCE,
            (file_id, recipient, channel, to_text(created_at), to_text(expires_at), max_downloads),
        )

    def insert_attempt(self, attempt: Attempt) -> int:
        return self._write(
            _INSERT_ATTEMPT,
            (
                attempt.issuance_id,
                attempt.file_id,
                to_text(attempt.started_at),
                to_text(attempt.finished_at),
                attempt.outcome,
                attempt.http_status,
                attempt.range_start,
                attempt.range_end,
                attempt.bytes_sent,
                attempt.client_ip,
                attempt.user_agent[:512] if attempt.user_agent else None,
            ),
        )

    def close_attempt(self, attempt: Attempt) -> None:
        self._write(
            _CLOSE_ATTEMPT,
            (
                attempt.outcome,
                attempt.http_status,
                attempt.bytes_sent,
                to_text(attempt.finished_at),
                attempt.range_start,
                attempt.range_end,
                attempt.id,
            ),
        )

    def note_progress(self, attempt_id: int, bytes_sent: int) -> None:
        self._write(_NOTE_PROGRESS, (bytes_sent, attempt_id))
