"""The audit tables: issuances and download_attempts.

Revision ID: 0001
Revises:
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

import tempdl.audit.tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "issuances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", tempdl.audit.tables.UTCDateTime(), nullable=False),
        sa.Column("expires_at", tempdl.audit.tables.UTCDateTime(), nullable=False),
        sa.Column("file_id", sa.String(length=128), nullable=False),
        sa.Column("recipient", sa.String(length=128), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("max_downloads", sa.Integer(), nullable=True),
        sa.Column("revoked_at", tempdl.audit.tables.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_issuances")),
    )
    with op.batch_alter_table("issuances") as batch_op:
        batch_op.create_index(batch_op.f("ix_issuances_created_at"), ["created_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_issuances_recipient_created_at"), ["recipient", "created_at"], unique=False
        )

    op.create_table(
        "download_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("issuance_id", sa.Integer(), nullable=True),
        sa.Column("file_id", sa.String(length=128), nullable=True),
        sa.Column("started_at", tempdl.audit.tables.UTCDateTime(), nullable=False),
        sa.Column("finished_at", tempdl.audit.tables.UTCDateTime(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=False),
        sa.Column("range_start", sa.BigInteger(), nullable=True),
        sa.Column("range_end", sa.BigInteger(), nullable=True),
        sa.Column("bytes_sent", sa.BigInteger(), nullable=False),
        sa.Column("client_ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=512), nullable=True),
        sa.ForeignKeyConstraint(
            ["issuance_id"], ["issuances.id"], name=op.f("fk_download_attempts_issuance_id_issuances")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_download_attempts")),
    )
    with op.batch_alter_table("download_attempts") as batch_op:
        batch_op.create_index(batch_op.f("ix_download_attempts_finished_at"), ["finished_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_download_attempts_issuance_id"), ["issuance_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_download_attempts_started_at"), ["started_at"], unique=False)


def downgrade() -> None:
    op.drop_table("download_attempts")
    op.drop_table("issuances")
