"""A running download notes when it last made progress; `/healthz` gets a row to really write.

`download_attempts.progress_at`: a server killed mid-download leaves the row open, and the next
start used to finish it at the restart's time (15 s after the kill in one test); it now takes the
last progress note's time, within about a second of the kill. NULL on older rows and on rows
that never got a note.
`health_checks`: one row the health check replaces in a real transaction, so a full disk, a
read-only file or a lock held elsewhere shows as 503 (taking the write lock alone needs no space).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("download_attempts") as batch_op:
        batch_op.add_column(sa.Column("progress_at", sa.DateTime(), nullable=True))
    op.create_table(
        "health_checks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("checked_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_health_checks")),
    )


def downgrade() -> None:
    op.drop_table("health_checks")
    with op.batch_alter_table("download_attempts") as batch_op:
        batch_op.drop_column("progress_at")
