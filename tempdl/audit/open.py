"""The one place a command opens the audit database, the way Flask's tutorial `db.py` owns it.

Writers get an `AuditLog` on a migrated schema (`open_audit`); reports read an engine that
never migrates or writes (`open_for_reports`); `check` reads the schema revision without
changing anything (`schema_revisions`). Each opens through `make_engine`, so the PRAGMAs,
the isolation level and the folder of a new SQLite file are the same everywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from sqlalchemy import Engine, inspect
from sqlalchemy.engine import make_url

from tempdl.audit.engine import alembic_config, integrity_problem, make_engine, upgrade, upgrade_in_child_process
from tempdl.audit.log import AuditLog
from tempdl.audit.tables import download_attempts
from tempdl.errors import CommandError


def open_audit(
    database_url: str,
    *,
    migrate: Literal["here", "child"] = "here",
    check_integrity: bool = False,
    server_id: str | None = None,
) -> AuditLog:
    """The audit log on `database_url`, its schema brought to the newest revision.

    `migrate="child"` runs the migration in a forked child, so a long-running server never
    carries Alembic in memory. `check_integrity` first runs SQLite's quick check (after a crash
    a server should refuse a damaged file rather than write more into it). `server_id` goes
    into every attempt row the log opens.
    """
    engine = make_engine(database_url)
    try:
        problem = integrity_problem(engine) if check_integrity else None
        if problem:
            raise CommandError(f"the audit database fails SQLite's integrity check ({problem}); restore a backup")
        if migrate == "child":
            try:
                upgrade_in_child_process(database_url)
            except RuntimeError as error:
                raise CommandError(f"cannot migrate the audit database: {error}") from None
        else:
            upgrade(engine)
    except BaseException:
        engine.dispose()
        raise
    return AuditLog(engine, server_id=server_id)


def open_for_reports(database_url: str) -> Engine | None:
    """The audit database to report on; None when there is none yet (and none is created)."""
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

    engine = make_engine(database_url)
    try:
        newest = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
    return current, newest
