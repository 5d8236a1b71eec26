"""Each download attempt says its HTTP method and which server wrote it.

`method`: a HEAD request is recorded like any attempt, but it never counts as a download (limits,
reports), so the row must say it was one. `server_id`: on a shared database (PostgreSQL) several
servers write attempts, and one recovering from a crash must close only the rows it left open.
Both are NULL on older rows: those were GETs (HEAD was not told apart) written by a lone server.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("download_attempts") as batch_op:
        batch_op.add_column(sa.Column("method", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("server_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("download_attempts") as batch_op:
        batch_op.drop_column("server_id")
        batch_op.drop_column("method")
