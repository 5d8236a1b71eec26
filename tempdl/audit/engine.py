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

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url

from tempdl.audit import sqlite_setup
from tempdl.audit.sqlite_setup import busy_timeout_ms, quick_check_problem, tune_sqlite

if TYPE_CHECKING:
    from alembic.config import Config

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
    engine = create_engine(url, connect_args={"timeout": sqlite_setup.SQLITE_BUSY_TIMEOUT_MS / 1000})

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


def integrity_problem(engine: Engine) -> str | None:
    """SQLite's own consistency check after a crash; None when the file is sound (or not SQLite)."""
    if engine.dialect.name != "sqlite":
        return None
    with engine.connect() as connection:
        return quick_check_problem(row[0] for row in connection.exec_driver_sql("PRAGMA quick_check"))
