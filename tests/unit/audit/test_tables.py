"""The schema: migrations and models agree, and the tables are what operators expect, on both databases."""

from __future__ import annotations

import threading

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from tempdl.audit.engine import make_engine, upgrade
from tempdl.audit.sqlite_setup import JOURNAL_SIZE_LIMIT_BYTES
from tempdl.audit.tables import metadata

pytestmark = pytest.mark.both_databases


@pytest.fixture
def engine(empty_database: str):
    engine = make_engine(empty_database)
    yield engine
    engine.dispose()


def test_migrations_match_the_models(engine):
    upgrade(engine)
    upgrade(engine)  # idempotent
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), metadata) == []


def test_tables_have_the_columns_of_the_spec(engine):
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
        # Beyond SPEC's list, added by migration 0003 (NULL on older rows):
        "method",
        "server_id",
        "progress_at",  # migration 0004
    ]


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/audit.sqlite3")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
        assert connection.exec_driver_sql("PRAGMA journal_size_limit").scalar() == JOURNAL_SIZE_LIMIT_BYTES


def test_servers_starting_together_migrate_one_at_a_time(empty_database):
    """Three processes (here: three engines on threads) start on an empty database at once."""
    start = threading.Barrier(3)
    failures: list[BaseException] = []

    def migrate() -> None:
        engine = make_engine(empty_database)
        try:
            start.wait()
            upgrade(engine)
        except BaseException as error:
            failures.append(error)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=migrate, daemon=True) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads), "migrations hung on each other"
    assert failures == []
    engine = make_engine(empty_database)
    try:
        with engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), metadata) == []
    finally:
        engine.dispose()
