"""The schema: migrations and models agree, and the tables are what operators expect."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from tempdl.db import make_engine, upgrade
from tempdl.models import Base


def test_migrations_match_the_models(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/audit.sqlite3")
    upgrade(engine)
    upgrade(engine)  # idempotent
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []


def test_tables_have_the_columns_of_the_spec(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/audit.sqlite3")
    upgrade(engine)
    columns = {
        table: [c["name"] for c in inspect(engine).get_columns(table)] for table in ("issuances", "download_attempts")
    }
    assert columns["issuances"] == [
        "id",
        "created_at",
        "expires_at",
        "file_id",
        "recipient",
        "channel",
        "max_downloads",
        "revoked_at",
    ]
    assert columns["download_attempts"] == [
        "id",
        "issuance_id",
        "file_id",
        "started_at",
        "finished_at",
        "outcome",
        "http_status",
        "range_start",
        "range_end",
        "bytes_sent",
        "client_ip",
        "user_agent",
    ]


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/audit.sqlite3")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
