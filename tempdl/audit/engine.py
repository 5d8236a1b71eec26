"""The audit database: engine set-up and schema migrations.

SQLite is tuned for many small writes from one process (WAL, a busy timeout, synchronous=NORMAL,
which in WAL mode stays consistent after a crash). PostgreSQL, shared by several tempdl processes,
runs every transaction at READ COMMITTED whatever the server's default: the counted limits lock
first and count second (`AuditLog.claim_download`, `create_issuance_within_cap`), which is only
right when each statement sees what other transactions committed before it started. Under
REPEATABLE READ the count would read the snapshot taken before the lock was granted, and two
servers could both take the last download. The schema only ever changes through Alembic
revisions in `migrations/`.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    from alembic.config import Config

SQLITE_BUSY_TIMEOUT_MS = 5000
"""How long a command (`issue`, `prune`...) waits for SQLite's lock; the server waits `AUDIT_WAIT_SECONDS`."""
AUDIT_WAIT_SECONDS = 2.0
"""How long one request of the server may wait for the audit database, its turn on the audit
thread included: past it, the request is answered 503 (or WeChat's "busy" text)."""
JOURNAL_SIZE_LIMIT_BYTES = 8 * 1024 * 1024
"""The WAL file is cut back to this once a checkpoint lets SQLite start it over."""
MIGRATION_LOCK_KEY = 0x7E3D1_0001
"""PostgreSQL advisory lock held while migrating (any fixed number no other code uses)."""


def _migrations_dir() -> Path:
    """Where the Alembic scripts are: beside the package in a checkout, inside it in a zipapp."""
    package_dir = Path(__file__).resolve().parents[1]  # tempdl/, this file being tempdl/audit/engine.py
    for candidate in (package_dir.parent / "migrations", package_dir / "_migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise RuntimeError("the migrations folder is missing from this installation")


def make_engine(database_url: str) -> Engine:
    """Create the engine for `database_url`, creating the SQLite file's folder if needed."""
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        return create_engine(url, pool_pre_ping=True, isolation_level="READ COMMITTED")
    if url.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _tune_sqlite(dbapi_connection, _record) -> None:
        tune_sqlite(dbapi_connection)

    @event.listens_for(engine, "checkout")
    def _wait_no_longer_than_allowed(dbapi_connection, record, _proxy) -> None:
        wanted = busy_timeout_ms()
        if record.info.get("busy_timeout_ms") != wanted:
            dbapi_connection.execute(f"PRAGMA busy_timeout={wanted}")
            record.info["busy_timeout_ms"] = wanted

    return engine


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


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config  # Alembic is only loaded where migrations run

    config = Config()
    config.set_main_option("script_location", str(_migrations_dir()))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest revision (what `db upgrade` and `serve` do).

    Several processes sharing a database start at the same moment (a deploy, a reboot, `serve`
    and an `issue` on a fresh machine) and all migrate: a lock taken first (a transaction-scoped
    advisory lock on PostgreSQL, SQLite's write lock) lets one at a time in, and the next ones
    find the schema at the newest revision. Without it they all read "empty" and create the same
    tables: SQLite then fails with "table already exists", PostgreSQL can hang.
    """
    from alembic import command

    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        elif connection.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock before Alembic reads the revision
        config = alembic_config(engine)
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def upgrade_in_child_process(database_url: str) -> None:
    """`upgrade` in a forked child, so the long-running server never loads Alembic (~11 MiB).

    Raises RuntimeError with the child's error message when the migration fails. Where fork is
    not available, the migration simply runs in this process.
    """
    if not hasattr(os, "fork"):
        upgrade(make_engine(database_url))
        return
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_upgrade_and_report, args=(database_url, sender), name="tempdl-migrate")
    child.start()
    sender.close()
    message = receiver.recv() if receiver.poll(300) else "the migration did not finish within 300 s"
    child.join()
    if message:
        raise RuntimeError(message)


def _upgrade_and_report(database_url: str, sender) -> None:
    try:
        engine = make_engine(database_url)
        upgrade(engine)
        engine.dispose()
        sender.send("")
    except Exception as error:  # reported to the parent as one line
        sender.send(f"{type(error).__name__}: {getattr(error, 'orig', None) or error}")


def integrity_problem(engine: Engine) -> str | None:
    """SQLite's own consistency check after a crash; None when the file is sound (or not SQLite)."""
    if engine.dialect.name != "sqlite":
        return None
    with engine.connect() as connection:
        verdict = [row[0] for row in connection.exec_driver_sql("PRAGMA quick_check")]
    return None if verdict == ["ok"] else "; ".join(verdict[:3])
