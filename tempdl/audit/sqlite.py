"""The hot path on SQLite: the statements every download and every link runs, without SQLAlchemy.

Profiling a 4 KiB download showed SQLAlchemy Core spending ~100-250 µs per statement where the
sqlite3 driver itself needs ~15-40 µs, several times more than Tornado's own work for the request;
and handing each statement to the audit thread cost as much again. So on SQLite the per-download
statements (read the issuance, open and close the attempt, or record it in one go) and the
insert of a new issuance run on plain sqlite3 connections, first "impatiently" right on the
event loop: with a busy timeout of 0 such a call never waits for a lock, and when another writer
holds it, `AuditLog.run` hands the call to the audit thread, which may wait. Impatient writes are
not committed one by one: the runner commits all the writes of one event-loop turn together
(group commit) and only then lets their requests go on, so no byte leaves before its row is
committed. The impatient connection never checkpoints the WAL itself (that means an fsync); the
audit thread does it every 500 writes. The other serving statements (the limits' counts, the
health probe) run on the same connections, on the audit thread (`transaction`, `run`); other
databases go through SQLAlchemy (`tempdl.audit.runs.CoreRun`).

The statements are those of `tempdl.audit.statements`, compiled for sqlite3 by
`tempdl.audit.plan` (in the migration's child process, so this module needs no SQLAlchemy).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from tempdl.audit.prepared import Prepared
from tempdl.audit.runs import SQLiteRun
from tempdl.audit.sqlite_setup import JOURNAL_SIZE_LIMIT_BYTES, busy_timeout_ms, tune_sqlite

WAL_RESTART_FRAMES = 1024  # pages: 4 MiB of WAL


class SQLiteHotPath:
    """Prepared statements on plain sqlite3 connections: one per thread, plus the impatient one."""

    def __init__(self, database: str, busy_timeout_ms: int, plan: Mapping[str, Prepared]) -> None:
        self._database = database
        self._plan = plan
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

    def _impatient(self) -> bool:
        return getattr(self._local, "impatient", False)

    def _raw(self) -> sqlite3.Connection:
        impatient = self._impatient()
        slot = _connection_slot(impatient)
        connection = getattr(self._local, slot, None)
        if connection is None:
            connection = sqlite3.connect(self._database, check_same_thread=False)
            tune_sqlite(
                connection, busy_timeout_ms=0 if impatient else self._busy_timeout_ms, autocheckpoint=not impatient
            )
            setattr(self._local, slot, connection)
            self._opened.append(connection)
        if not impatient:  # the audit thread's: it waits only what is left of its request's time
            wanted = busy_timeout_ms()
            if getattr(self._local, "busy_timeout_ms", None) != wanted:
                connection.execute(f"PRAGMA busy_timeout={wanted}")
                self._local.busy_timeout_ms = wanted
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

    def cut_wal_back(self) -> None:
        """Fold a long WAL into the database and cut the file to nothing, if no reader pins it.

        A long read query beside the server (an operator's report in sqlite3) keeps every frame
        written meanwhile: the WAL grew to 483 MB during a 25 s query, and SQLite reuses such a
        file rather than shrink it. Called every few seconds on the audit thread; with a busy
        timeout of 0 it gives up at once while a reader or writer is in the way, and tries again
        on the next call.
        """
        try:
            size = os.stat(self._database + "-wal").st_size
        except FileNotFoundError:
            return
        if size > JOURNAL_SIZE_LIMIT_BYTES:
            self._raw().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()

    def close(self) -> None:
        for connection in self._opened:
            connection.close()
        self._opened.clear()
        self._local = threading.local()

    def run(self) -> SQLiteRun:
        """This thread's connection, for statements by name (reads, or inside `transaction`)."""
        return SQLiteRun(self._raw(), self._plan)

    @contextlib.contextmanager
    def transaction(self, *, immediate: bool = False) -> Iterator[SQLiteRun]:
        """Statements in one transaction on this thread's connection, committed at the end.

        Not while impatient: the impatient connection's writes wait for their group commit.
        """
        assert not self._impatient(), "a transaction of its own cannot join a group commit"
        connection = self._raw()
        try:
            if immediate:
                connection.execute("BEGIN IMMEDIATE")
            yield SQLiteRun(connection, self._plan)
            connection.commit()
        except sqlite3.Error as error:
            self._roll_back(connection, error)
            raise
        except BaseException:
            connection.rollback()
            raise

    def write(self, name: str, values: Mapping[str, Any]) -> int:
        """Execute a write; commit it at once, unless impatient (then `commit` comes later)."""
        connection = self._raw()
        statement = self._plan[name]
        try:
            cursor = connection.execute(statement.sql, statement.parameters(values))
            if not self._impatient():
                connection.commit()
            return int(cursor.lastrowid or 0)  # the new row for an INSERT; UPDATE callers ignore it
        except sqlite3.Error as error:
            self._roll_back(connection, error)
            raise

    def commit_impatient(self) -> None:
        """Commit the writes waiting on the impatient connection (call on the event loop)."""
        with self.impatient():
            connection = self._raw()
            try:
                connection.commit()
            except sqlite3.Error as error:
                self._roll_back(connection, error)
                raise

    def _roll_back(self, connection: sqlite3.Connection, error: sqlite3.Error) -> None:
        """Undo a failed write; a connection SQLite opened read-only is closed, to be opened anew.

        SQLite opens a file it may not write (its mode or its mount changed under the server)
        read-only without a word, and such a connection stays read-only for good: downloads were
        refused with 503 long after the file could be written again, until a restart.
        """
        connection.rollback()
        if getattr(error, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_READONLY:  # extended codes add high bits
            connection.close()
            self._opened.remove(connection)
            setattr(self._local, _connection_slot(self._impatient()), None)

    def rollback_impatient(self) -> None:
        with self.impatient():
            self._raw().rollback()


def _connection_slot(impatient: bool) -> str:
    """The thread-local attribute holding this thread's connection of that kind."""
    return "impatient_connection" if impatient else "connection"
