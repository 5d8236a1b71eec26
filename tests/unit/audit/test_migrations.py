"""Migrations: the models and the migrated schema agree; 0002 goes up and down on a database with rows."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from tempdl.audit.engine import alembic_config, make_engine, upgrade
from tempdl.audit.tables import metadata
from tests.audit_rows import write_hand_built_history
from tests.support import rows

pytestmark = pytest.mark.both_databases


def _indexes(engine, table: str) -> dict[str, list[str]]:
    return {index["name"]: index["column_names"] for index in inspect(engine).get_indexes(table)}


def test_models_and_migrations_describe_the_same_schema(empty_database: str):
    engine = make_engine(empty_database)
    upgrade(engine)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    engine.dispose()
    assert differences == []


def _migrator(engine):
    """`migrate(command.upgrade, "0002")`: run one Alembic step on `engine`, in one transaction."""

    def migrate(direction, revision: str) -> None:
        with engine.begin() as connection:
            config = alembic_config(engine)
            config.attributes["connection"] = connection
            direction(config, revision)

    return migrate


def test_report_indexes_go_up_and_down_and_keep_the_rows(empty_database: str):
    database = empty_database
    engine = make_engine(database)

    migrate = _migrator(engine)

    migrate(command.upgrade, "0001")
    write_hand_built_history(engine)
    migrate(command.upgrade, "0002")
    attempts = _indexes(engine, "download_attempts")
    assert attempts["ix_download_attempts_file_id_outcome_started_at_bytes_sent"] == [
        "file_id",
        "outcome",
        "started_at",
        "bytes_sent",
    ]
    assert "ix_download_attempts_started_at" not in attempts  # a prefix of the new time index
    assert "ix_issuances_file_id_created_at" in _indexes(engine, "issuances")
    migrate(command.downgrade, "0001")
    assert set(_indexes(engine, "download_attempts")) == {
        "ix_download_attempts_finished_at",
        "ix_download_attempts_issuance_id",
        "ix_download_attempts_started_at",
    }
    engine.dispose()
    assert rows(database, "SELECT COUNT(*) AS n FROM download_attempts")[0]["n"] == 9


def test_method_and_server_columns_go_up_and_down_and_keep_the_rows(empty_database: str):
    engine = make_engine(empty_database)

    migrate = _migrator(engine)

    migrate(command.upgrade, "0002")
    write_hand_built_history(engine)
    migrate(command.upgrade, "0003")
    columns = {column["name"] for column in inspect(engine).get_columns("download_attempts")}
    assert {"method", "server_id"} <= columns
    assert rows(empty_database, "SELECT COUNT(*) AS n FROM download_attempts WHERE method IS NULL")[0]["n"] == 9
    migrate(command.downgrade, "0002")
    columns = {column["name"] for column in inspect(engine).get_columns("download_attempts")}
    assert not {"method", "server_id"} & columns
    engine.dispose()
    assert rows(empty_database, "SELECT COUNT(*) AS n FROM download_attempts")[0]["n"] == 9


def test_0006_puts_method_in_the_report_indexes_and_sums_the_rollups_again(empty_database: str):
    engine = make_engine(empty_database)
    migrate = _migrator(engine)
    migrate(command.upgrade, "0005")
    write_hand_built_history(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "UPDATE rollup_state SET zone = 'Asia/Shanghai', attempts_through = 9, issuances_through = 4"
        )
        connection.exec_driver_sql(
            "INSERT INTO daily_traffic (day, file_id, outcome, attempts, bytes_sent, uncounted)"
            " VALUES ('2026-11-29', 'a', 'ok', 1, 2, 0)"
        )
    migrate(command.upgrade, "0006")
    attempts = _indexes(engine, "download_attempts")
    assert attempts["ix_download_attempts_report_by_time"] == ["started_at", "outcome", "bytes_sent", "method"]
    assert "ix_download_attempts_started_at_outcome_bytes_sent" not in attempts
    state = rows(empty_database, "SELECT zone, attempts_through, issuances_through, version FROM rollup_state")
    assert [tuple(row) for row in state] == [("", 0, 0, 1)]
    assert rows(empty_database, "SELECT COUNT(*) AS n FROM daily_traffic")[0]["n"] == 0
    migrate(command.downgrade, "0005")
    assert "ix_download_attempts_started_at_outcome_bytes_sent" in _indexes(engine, "download_attempts")
    engine.dispose()
    assert rows(empty_database, "SELECT COUNT(*) AS n FROM download_attempts")[0]["n"] == 9
