"""Covering indexes for the operator reports (stats, /admin/, /metrics).

SQLite aggregates by sorting unless an index already delivers the rows in GROUP BY order, and
reads the table itself unless an index holds every column the query needs. These indexes do both
for the report queries in tempdl/stats.py, which keeps them well under a second at a million
attempts. The two single-column indexes they replace are prefixes of the new ones, so every query
that used them (prune, resume checks) still has an index.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ATTEMPT_INDEXES = {
    "ix_download_attempts_issuance_id_outcome_started_at_bytes_sent": [
        "issuance_id",
        "outcome",
        "started_at",
        "bytes_sent",
    ],
    "ix_download_attempts_started_at_outcome_bytes_sent": ["started_at", "outcome", "bytes_sent"],
    "ix_download_attempts_file_id_outcome_started_at_bytes_sent": ["file_id", "outcome", "started_at", "bytes_sent"],
}
REPLACED = {"ix_download_attempts_issuance_id": ["issuance_id"], "ix_download_attempts_started_at": ["started_at"]}


def upgrade() -> None:
    with op.batch_alter_table("download_attempts") as batch_op:
        for name, columns in ATTEMPT_INDEXES.items():
            batch_op.create_index(name, columns, unique=False)
        for name in REPLACED:
            batch_op.drop_index(name)
    with op.batch_alter_table("issuances") as batch_op:
        batch_op.create_index("ix_issuances_file_id_created_at", ["file_id", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("issuances") as batch_op:
        batch_op.drop_index("ix_issuances_file_id_created_at")
    with op.batch_alter_table("download_attempts") as batch_op:
        for name, columns in REPLACED.items():
            batch_op.create_index(name, columns, unique=False)
        for name in ATTEMPT_INDEXES:
            batch_op.drop_index(name)
