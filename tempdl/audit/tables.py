"""The audit tables, exactly as operators query them (see SPEC: issuances, download_attempts).

Timestamps are stored as naive UTC in a plain DATETIME column, so `sqlite3` users can write
`WHERE started_at >= '2026-11-30'` and PostgreSQL stores the same values; `UTCDateTime` hands
them back to Python as aware UTC datetimes.
"""

from __future__ import annotations

import datetime

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    TypeDecorator,
)

from tempdl.audit.prepared import from_sqlite_text, naive_utc, to_sqlite_text
from tempdl.audit.records import USER_AGENT_MAX, Outcome

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

OUTCOMES = tuple(Outcome)
CHANNELS = ("wechat", "cli", "admin")


class UTCDateTime(TypeDecorator[datetime.datetime]):
    """Aware UTC datetimes in Python, naive UTC in the database.

    On SQLite the value goes straight to, and comes straight from, the text SQLAlchemy's
    `DateTime` stores there (`2026-11-30 08:15:00.000000`), converted by `datetime`'s own C
    code: the hot path binds a few timestamps per download, and `DateTime`'s generic
    formatting costs several times as much for the same text.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime.datetime | None, dialect) -> datetime.datetime | None:
        return None if value is None else naive_utc(value)

    def process_result_value(self, value: datetime.datetime | None, dialect) -> datetime.datetime | None:
        return None if value is None else value.replace(tzinfo=datetime.UTC)

    def bind_processor(self, dialect):
        return to_sqlite_text if dialect.name == "sqlite" else super().bind_processor(dialect)

    def result_processor(self, dialect, coltype):
        return from_sqlite_text if dialect.name == "sqlite" else super().result_processor(dialect, coltype)


metadata = MetaData(naming_convention=NAMING_CONVENTION)
"""Every audit table. SQLAlchemy Core `Table`s, not ORM classes: nothing here maps rows to
objects, and the ORM would cost every serving process 5.6 MiB of resident memory to import."""

issuances = Table(
    "issuances",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("file_id", String(128), nullable=False),
    Column("recipient", String(128)),
    Column("channel", String(16), nullable=False),
    Column("max_downloads", Integer),
    Column("revoked_at", UTCDateTime),
    Index(None, "recipient", "created_at"),
    Index(None, "created_at"),
    Index(None, "file_id", "created_at"),  # reports: links per file (migration 0002)
)
"""One link handed out: to whom, for which file, valid until when."""

download_attempts = Table(
    "download_attempts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("issuance_id", ForeignKey("issuances.id")),
    Column("file_id", String(128)),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("outcome", String(16), nullable=False),
    Column("http_status", Integer, nullable=False),
    Column("range_start", BigInteger),
    Column("range_end", BigInteger),
    Column("bytes_sent", BigInteger, nullable=False, default=0),
    Column("client_ip", String(64)),
    Column("user_agent", String(USER_AGENT_MAX)),
    # Migration 0003; NULL on rows written before it (all of them GETs, by one server).
    Column("method", String(8)),
    Column("server_id", String(64)),
    # Migration 0004: when `bytes_sent` was last noted on a row still open (NULL once never noted).
    Column("progress_at", UTCDateTime),
    # Covering indexes for the reports (migrations 0002, 0006): each holds every column a report
    # reads, in the order it groups by, so even SQLite aggregates millions of rows by streaming an
    # index; `method` is last, read only to leave HEADs out.
    Index("ix_download_attempts_report_by_issuance", "issuance_id", "outcome", "started_at", "bytes_sent", "method"),
    Index("ix_download_attempts_report_by_time", "started_at", "outcome", "bytes_sent", "method"),
    Index("ix_download_attempts_report_by_file", "file_id", "outcome", "started_at", "bytes_sent", "method"),
    Index(None, "finished_at"),
)
"""One request for a link, whatever came of it; `bytes_sent` is what really went out."""

health_checks = Table(
    "health_checks",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("checked_at", UTCDateTime, nullable=False),
)
"""The one row `/healthz` replaces to prove the database takes a real write (migration 0004)."""


# --- report rollups (migration 0005; maintained by tempdl.audit.rollups) --------------------------
# Per local day (the report time zone of `rollup_state.zone`), the sums of every row whose id is
# at most the state's watermarks. Clustered on their keys (WITHOUT ROWID on SQLite): a report
# reads a day range, or one recipient after another, straight off the table.


def _counts(*names: str) -> list[Column]:
    return [Column(name, BigInteger, nullable=False) for name in names]


rollup_state = Table(
    "rollup_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("zone", String(64), nullable=False),
    *_counts("attempts_through", "issuances_through", "version"),
    Column("updated_at", UTCDateTime, nullable=False),
)
"""The one row saying what the daily tables hold: the zone their days were cut in, and the
ids up to which attempts and issuances are in them. `version` grows with every change, so a
writer that read an older one knows someone else moved the tables in between."""

daily_traffic = Table(
    "daily_traffic",
    metadata,
    Column("day", Date, primary_key=True),
    Column("file_id", String(128), primary_key=True),  # '-' for none
    Column("outcome", String(16), primary_key=True),
    *_counts("attempts", "bytes_sent", "uncounted"),
    sqlite_with_rowid=False,
)
"""Attempts per (day, file, outcome): those the reports count, their bytes, and the uncounted
ones (an `ok` that sent nothing: a HEAD), which only make a day active."""

daily_links = Table(
    "daily_links",
    metadata,
    Column("day", Date, primary_key=True),
    Column("file_id", String(128), primary_key=True),
    *_counts("links_issued", "links_downloaded"),
    sqlite_with_rowid=False,
)
"""Issuances per (day created, file), and how many of them have a counted `ok` download."""

RECIPIENT_FIGURES = ("links_issued", "links_named", "attempts", "ok", "partial", "refused", "bytes_sent")

daily_recipients = Table(
    "daily_recipients",
    metadata,
    Column("day", Date, primary_key=True),
    Column("recipient", String(128), primary_key=True),
    *_counts(*RECIPIENT_FIGURES),
    sqlite_with_rowid=False,
)
"""Per (day, recipient): links issued that day (`links_named`: those whose recipient was not
NULL, which `-` also stands for) and the counted attempts that started that day on their links."""

weekly_recipients = Table(
    "weekly_recipients",
    metadata,
    Column("recipient", String(128), primary_key=True),  # grouped by it: read in its order
    Column("week", Date, primary_key=True),
    *_counts(*RECIPIENT_FIGURES),
    sqlite_with_rowid=False,
)
"""`daily_recipients` summed per week (Monday to Sunday, `week` its Monday): a period reads
its whole weeks here and only the days at its ends from the daily table, so a report by
recipient reads weeks × recipients rows, not days × recipients."""
