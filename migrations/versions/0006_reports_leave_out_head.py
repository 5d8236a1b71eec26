"""The reports leave out every HEAD, refused ones too: `method` joins their covering indexes.

SPEC: a HEAD never counts as a download (limits, stats, dashboard). The reports used to tell a
HEAD by `ok` with no byte, which a refused HEAD (410 on `curl -I` of a dead link) is not, so
it was counted as a refused attempt. Judging by `method` keeps the report queries on their
indexes only if the indexes hold it, hence these three replace migration 0002's. The rollups were
summed the old way: they are emptied, and `db upgrade` (or the server's start) sums them again.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

import datetime

import sqlalchemy as sa
from alembic import op

import tempdl.audit.tables

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

OLD_INDEXES = {
    "ix_download_attempts_issuance_id_outcome_started_at_bytes_sent": [
        "issuance_id",
        "outcome",
        "started_at",
        "bytes_sent",
    ],
    "ix_download_attempts_started_at_outcome_bytes_sent": ["started_at", "outcome", "bytes_sent"],
    "ix_download_attempts_file_id_outcome_started_at_bytes_sent": ["file_id", "outcome", "started_at", "bytes_sent"],
}
NEW_INDEXES = {
    "ix_download_attempts_report_by_issuance": ["issuance_id", "outcome", "started_at", "bytes_sent", "method"],
    "ix_download_attempts_report_by_time": ["started_at", "outcome", "bytes_sent", "method"],
    "ix_download_attempts_report_by_file": ["file_id", "outcome", "started_at", "bytes_sent", "method"],
}
ROLLUP_TABLES = ("daily_traffic", "daily_links", "daily_recipients", "weekly_recipients")


def _replace_indexes(dropped: dict[str, list[str]], created: dict[str, list[str]]) -> None:
    for name, columns in created.items():
        op.create_index(name, "download_attempts", columns, unique=False)
    for name in dropped:
        op.drop_index(name, table_name="download_attempts")


def _empty_the_rollups() -> None:
    """Back to migration 0005's start (no zone, nothing summed); the version moves on, so a
    writer that read the state before this loses its compare and set."""
    for table in ROLLUP_TABLES:
        op.execute(sa.text(f"DELETE FROM {table}"))
    state = sa.table(
        "rollup_state",
        *(sa.column(name) for name in ("id", "zone", "attempts_through", "issuances_through", "version")),
        sa.column("updated_at", tempdl.audit.tables.UTCDateTime()),
    )
    op.execute(
        sa.update(state).values(
            zone="",
            attempts_through=0,
            issuances_through=0,
            version=state.c.version + 1,
            updated_at=datetime.datetime.now(datetime.UTC),
        )
    )


def upgrade() -> None:
    _replace_indexes(OLD_INDEXES, NEW_INDEXES)
    _empty_the_rollups()


def downgrade() -> None:
    _replace_indexes(NEW_INDEXES, OLD_INDEXES)
    _empty_the_rollups()
