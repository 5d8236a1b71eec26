"""The audit database: engine set-up and schema migrations.

SQLite is tuned for many small writes from one process (WAL, a busy timeout, synchronous=NORMAL,
which in WAL mode stays consistent after a crash); any other SQLAlchemy URL (PostgreSQL) is used
as it is. The schema only ever changes through Alembic revisions in `migrations/`.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

SQLITE_BUSY_TIMEOUT_MS = 5000


def _migrations_dir() -> Path:
    """Where the Alembic scripts are: beside the package in a checkout, inside it in a zipapp."""
    package_dir = Path(__file__).resolve().parent
    for candidate in (package_dir.parent / "migrations", package_dir / "_migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise RuntimeError("the migrations folder is missing from this installation")


def make_engine(database_url: str) -> Engine:
    """Create the engine for `database_url`, creating the SQLite file's folder if needed."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _tune_sqlite(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_migrations_dir()))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest revision (what `db upgrade` and `serve` do)."""
    with engine.begin() as connection:
        config = alembic_config(engine)
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def integrity_problem(engine: Engine) -> str | None:
    """SQLite's own consistency check after a crash; None when the file is sound (or not SQLite)."""
    if engine.dialect.name != "sqlite":
        return None
    with engine.connect() as connection:
        verdict = [row[0] for row in connection.exec_driver_sql("PRAGMA quick_check")]
    return None if verdict == ["ok"] else "; ".join(verdict[:3])
