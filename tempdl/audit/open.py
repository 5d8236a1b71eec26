"""The one place a command opens the audit database, the way Flask's tutorial `db.py` owns it.

Writers get an `AuditLog` on a migrated schema (`open_audit`); reports read an engine that
never migrates or writes (`open_for_reports`); `check` reads the schema revision without
changing anything (`schema_revisions`). Each opens through `make_engine`, so the PRAGMAs,
the isolation level and the folder of a new SQLite file are the same everywhere. `serve` on a
SQLite file opens without SQLAlchemy at all (`migrate="child"`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from tempdl.audit.log import AuditLog
from tempdl.audit.sqlite_setup import quick_check
from tempdl.config.parsers import sqlite_file
from tempdl.errors import CommandError

if TYPE_CHECKING:
    from sqlalchemy import Engine


def open_audit(
    database_url: str,
    *,
    migrate: Literal["here", "child"] = "here",
    check_integrity: bool = False,
    server_id: str | None = None,
    rollup_zone: str | None = None,
) -> AuditLog:
    """The audit log on `database_url`, its schema brought to the newest revision.

    `migrate="child"` runs the migration in a forked child, which also compiles the serving
    statements and then, given `rollup_zone` (read only there), brings the report rollups up to date: a long-running
    server never carries Alembic, nor SQLAlchemy on SQLite, in memory. `check_integrity` first
    runs SQLite's quick check (after a crash a server should refuse a damaged file rather than
    write more into it). `server_id` goes into every attempt row the log opens.
    """
    if migrate == "child":
        return _open_migrated_by_child(database_url, check_integrity, server_id, rollup_zone)
    from tempdl.audit.engine import integrity_problem, make_engine, upgrade

    engine = make_engine(database_url)
    try:
        _refuse_damaged(integrity_problem(engine) if check_integrity else None)
        upgrade(engine)
    except BaseException:
        engine.dispose()
        raise
    return AuditLog(engine, server_id=server_id)


def _open_migrated_by_child(
    database_url: str, check_integrity: bool, server_id: str | None, rollup_zone: str | None
) -> AuditLog:
    from tempdl.audit.startup_child import migrate_in_child

    path = sqlite_file(database_url)
    if check_integrity and path is not None:
        _refuse_damaged(quick_check(path))
    try:
        plan, rolling_up = migrate_in_child(database_url, rollup_zone=rollup_zone)
    except RuntimeError as error:
        raise CommandError(f"cannot migrate the audit database: {error}") from None
    audit = AuditLog(database_url, server_id=server_id, plan=plan, background=rolling_up)
    if check_integrity and path is None:
        from tempdl.audit.engine import integrity_problem

        _refuse_damaged(integrity_problem(audit.engine))
    return audit


def _refuse_damaged(problem: str | None) -> None:
    if problem:
        raise CommandError(f"the audit database fails SQLite's integrity check ({problem}); restore a backup")


def open_for_reports(database_url: str) -> Engine | None:
    """The audit database to report on; None when there is none yet (and none is created)."""
    from sqlalchemy import inspect
    from sqlalchemy.engine import make_url

    from tempdl.audit.engine import make_engine
    from tempdl.audit.tables import download_attempts

    url = make_url(database_url)
    is_file = url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
    if is_file and not Path(str(url.database)).is_file():
        return None
    engine = make_engine(database_url)
    if not inspect(engine).has_table(download_attempts.name):
        engine.dispose()
        return None
    return engine


def schema_revisions(database_url: str) -> tuple[str | None, str | None]:
    """(revision the database is at, newest revision in migrations/), without changing anything.

    Raises ModuleNotFoundError when the database's driver is not installed.
    """
    from alembic.runtime.migration import MigrationContext  # Alembic is only loaded where it is needed
    from alembic.script import ScriptDirectory

    from tempdl.audit.engine import alembic_config, make_engine

    engine = make_engine(database_url)
    try:
        newest = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
    return current, newest
