"""Daily rollups for the reports: their cost follows days, not rows.

`rollup_state` (one row) says up to which attempt and issuance id the daily tables hold their
rows, and in which time zone their days were cut; `daily_traffic`, `daily_links`,
`daily_recipients` and `weekly_recipients` hold the sums (see tempdl/audit/rollups.py). They start empty, the state
in no zone: `db upgrade` and the server's start build them in the report time zone.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

import datetime

import sqlalchemy as sa
from alembic import op

import tempdl.audit.tables

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

CLUSTERED = {"sqlite_with_rowid": False}


def _counts(*names: str) -> list[sa.Column]:
    return [sa.Column(name, sa.BigInteger(), nullable=False) for name in names]


def upgrade() -> None:
    op.create_table(
        "rollup_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("zone", sa.String(length=64), nullable=False),
        *_counts("attempts_through", "issuances_through", "version"),
        sa.Column("updated_at", tempdl.audit.tables.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollup_state")),
    )
    state = sa.table(
        "rollup_state",
        *(sa.column(name) for name in ("id", "zone", "attempts_through", "issuances_through", "version")),
        sa.column("updated_at", tempdl.audit.tables.UTCDateTime()),
    )
    start = {"zone": "", "attempts_through": 0, "issuances_through": 0, "version": 0}
    op.bulk_insert(state, [{"id": 1, **start, "updated_at": datetime.datetime.now(datetime.UTC)}])
    op.create_table(
        "daily_traffic",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("file_id", sa.String(length=128), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        *_counts("attempts", "bytes_sent", "uncounted"),
        sa.PrimaryKeyConstraint("day", "file_id", "outcome", name=op.f("pk_daily_traffic")),
        **CLUSTERED,
    )
    op.create_table(
        "daily_links",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("file_id", sa.String(length=128), nullable=False),
        *_counts("links_issued", "links_downloaded"),
        sa.PrimaryKeyConstraint("day", "file_id", name=op.f("pk_daily_links")),
        **CLUSTERED,
    )
    # daily rows are read by day ranges (the ends of a period), weekly ones recipient by recipient
    for table, period, key in (
        ("daily_recipients", "day", ("day", "recipient")),
        ("weekly_recipients", "week", ("recipient", "week")),
    ):
        op.create_table(
            table,
            *sorted(
                [sa.Column(period, sa.Date(), nullable=False), sa.Column("recipient", sa.String(128), nullable=False)],
                key=lambda column: key.index(column.name),
            ),
            *_counts("links_issued", "links_named", "attempts", "ok", "partial", "refused", "bytes_sent"),
            sa.PrimaryKeyConstraint(*key, name=op.f(f"pk_{table}")),
            **CLUSTERED,
        )


def downgrade() -> None:
    for table in ("weekly_recipients", "daily_recipients", "daily_links", "daily_traffic", "rollup_state"):
        op.drop_table(table)
