"""SQLite as every tempdl connection sets it up, and the waits it allows, without SQLAlchemy.

SQLite is tuned for many small writes from one process (WAL, a busy timeout, synchronous=NORMAL,
which in WAL mode stays consistent after a crash). Both SQLAlchemy's connections
(`tempdl.audit.engine.make_engine`) and the serving process's plain sqlite3 ones
(`tempdl.audit.sqlite`) go through `tune_sqlite`, so the two cannot differ.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

SQLITE_BUSY_TIMEOUT_MS = 5000
"""How long a command (`issue`, `prune`...) waits for SQLite's lock; the server waits `AUDIT_WAIT_SECONDS`."""
AUDIT_WAIT_SECONDS = 2.0
"""How long one request of the server may wait for the audit database, its turn on the audit
thread included: past it, the request is answered 503 (or WeChat's "busy" text)."""
JOURNAL_SIZE_LIMIT_BYTES = 8 * 1024 * 1024
"""The WAL file is cut back to this once a checkpoint lets SQLite start it over."""
_waiting = threading.local()


@contextlib.contextmanager
def waiting_until(deadline: float) -> Iterator[None]:
    """Within this block, this thread's SQLite statements wait for a lock only until `deadline`.

    `deadline` is a `time.monotonic()` moment shared by everything one request asks of the
    database, so a request queued behind another's wait has only what is left of its own.
    """
    _waiting.deadline = deadline
    try:
        yield
    finally:
        _waiting.deadline = None


def busy_timeout_ms() -> int:
    """The busy timeout for a statement this thread starts now (0 once its deadline has passed)."""
    deadline = getattr(_waiting, "deadline", None)
    if deadline is None:
        return SQLITE_BUSY_TIMEOUT_MS
    return max(0, int((deadline - time.monotonic()) * 1000))


def tune_sqlite(
    connection: sqlite3.Connection, *, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS, autocheckpoint: bool = True
) -> None:
    """Every PRAGMA a tempdl connection to SQLite runs: SQLAlchemy's and the hot path's alike.

    `busy_timeout_ms=0` makes a connection that never waits for a lock (the hot path's impatient
    one); `autocheckpoint=False` leaves checkpoints (an fsync each) to whoever calls them.
    """
    cursor = connection.cursor()
    try:
        _switch_to_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT_BYTES}")
        if not autocheckpoint:
            cursor.execute("PRAGMA wal_autocheckpoint=0")
    finally:
        cursor.close()


def _switch_to_wal(cursor: sqlite3.Cursor) -> None:
    """`PRAGMA journal_mode=WAL`, waiting out another process that is writing a brand-new file.

    Switching a file to WAL needs it to itself, and SQLite answers "database is locked" at once
    instead of waiting the busy timeout; once the file is in WAL mode (it stays so) this is a no-op.
    """
    deadline = time.monotonic() + busy_timeout_ms() / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def quick_check(path: str) -> str | None:
    """SQLite's own consistency check after a crash; None when the file is sound (or new)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, timeout=busy_timeout_ms() / 1000)
    try:
        return quick_check_problem(row[0] for row in connection.execute("PRAGMA quick_check"))
    finally:
        connection.close()


def quick_check_problem(verdict: Iterable[str]) -> str | None:
    """`PRAGMA quick_check`'s rows as one line: None for "ok", else its first three findings."""
    lines = list(verdict)
    return None if lines == ["ok"] else "; ".join(lines[:3])
