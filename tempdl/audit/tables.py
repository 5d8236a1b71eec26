"""The audit tables, exactly as operators query them (see SPEC: issuances, download_attempts).

Timestamps are stored as naive UTC in a plain DATETIME column, so `sqlite3` users can write
`WHERE started_at >= '2026-11-30'` and PostgreSQL stores the same values; `UTCDateTime` hands
them back to Python as aware UTC datetimes.
"""

from __future__ import annotations

import datetime

from sqlalchemy import BigInteger, Date, DateTime, ForeignKey, Index, Integer, MetaData, String, TypeDecorator
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

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
        return None if value is None else _naive_utc(value)

    def process_result_value(self, value: datetime.datetime | None, dialect) -> datetime.datetime | None:
        return None if value is None else value.replace(tzinfo=datetime.UTC)

    def bind_processor(self, dialect):
        return _to_sqlite_text if dialect.name == "sqlite" else super().bind_processor(dialect)

    def result_processor(self, dialect, coltype):
        return _from_sqlite_text if dialect.name == "sqlite" else super().result_processor(dialect, coltype)


def _naive_utc(value: datetime.datetime) -> datetime.datetime:
    if value.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return value.astimezone(datetime.UTC).replace(tzinfo=None)


def _to_sqlite_text(value: datetime.datetime | None) -> str | None:
    return None if value is None else _naive_utc(value).isoformat(" ", "microseconds")


def _from_sqlite_text(text: str | None) -> datetime.datetime | None:
    return None if text is None else datetime.datetime.fromisoformat(text).replace(tzinfo=datetime.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Issuance(Base):
    """One link handed out: to whom, for which file, valid until when."""

    __tablename__ = "issuances"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
    file_id: Mapped[str] = mapped_column(String(128))
    recipient: Mapped[str | None] = mapped_column(String(128))
    channel: Mapped[str] = mapped_column(String(16))
    max_downloads: Mapped[int | None] = mapped_column(Integer)
    revoked_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index(None, "recipient", "created_at"),
        Index(None, "created_at"),
        Index(None, "file_id", "created_at"),  # reports: links per file (migration 0002)
    )


class DownloadAttempt(Base):
    """One request for a link, whatever came of it; `bytes_sent` is what really went out."""

    __tablename__ = "download_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    issuance_id: Mapped[int | None] = mapped_column(ForeignKey("issuances.id"))
    file_id: Mapped[str | None] = mapped_column(String(128))
    started_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(String(16))
    http_status: Mapped[int] = mapped_column(Integer)
    range_start: Mapped[int | None] = mapped_column(BigInteger)
    range_end: Mapped[int | None] = mapped_column(BigInteger)
    bytes_sent: Mapped[int] = mapped_column(BigInteger, default=0)
    client_ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(USER_AGENT_MAX))
    # Migration 0003; NULL on rows written before it (all of them GETs, by one server).
    method: Mapped[str | None] = mapped_column(String(8))
    server_id: Mapped[str | None] = mapped_column(String(64))
    # Migration 0004: when `bytes_sent` was last noted on a row still open (NULL once never noted).
    progress_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime)

    # Covering indexes for the reports (migration 0002): each holds every column a report reads,
    # in the order it groups by, so even SQLite aggregates millions of rows by streaming an index.
    __table_args__ = (
        Index(None, "issuance_id", "outcome", "started_at", "bytes_sent"),
        Index(None, "started_at", "outcome", "bytes_sent"),
        Index(None, "file_id", "outcome", "started_at", "bytes_sent"),
        Index(None, "finished_at"),
    )


class HealthCheck(Base):
    """The one row `/healthz` replaces to prove the database takes a real write (migration 0004)."""

    __tablename__ = "health_checks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    checked_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime)


# --- report rollups (migration 0005; maintained by tempdl.audit.rollups) --------------------------
# Per local day (the report time zone of `rollup_state.zone`), the sums of every row whose id is
# at most the state's watermarks. Clustered on their keys (WITHOUT ROWID on SQLite): a report
# reads a day range, or one recipient after another, straight off the table.

ROLLUP_TABLE_ARGS = {"sqlite_with_rowid": False}


class RollupState(Base):
    """The one row saying what the daily tables hold: the zone their days were cut in, and the
    ids up to which attempts and issuances are in them. `version` grows with every change, so a
    writer that read an older one knows someone else moved the tables in between."""

    __tablename__ = "rollup_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    zone: Mapped[str] = mapped_column(String(64))
    attempts_through: Mapped[int] = mapped_column(BigInteger)
    issuances_through: Mapped[int] = mapped_column(BigInteger)
    version: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime)


class DailyTraffic(Base):
    """Attempts per (day, file, outcome): those the reports count, their bytes, and the uncounted
    ones (an `ok` that sent nothing: a HEAD), which only make a day active."""

    __tablename__ = "daily_traffic"
    __table_args__ = ROLLUP_TABLE_ARGS

    day: Mapped[datetime.date] = mapped_column(Date, primary_key=True)
    file_id: Mapped[str] = mapped_column(String(128), primary_key=True)  # '-' for none
    outcome: Mapped[str] = mapped_column(String(16), primary_key=True)
    attempts: Mapped[int] = mapped_column(BigInteger)
    bytes_sent: Mapped[int] = mapped_column(BigInteger)
    uncounted: Mapped[int] = mapped_column(BigInteger)


class DailyLinks(Base):
    """Issuances per (day created, file), and how many of them have a counted `ok` download."""

    __tablename__ = "daily_links"
    __table_args__ = ROLLUP_TABLE_ARGS

    day: Mapped[datetime.date] = mapped_column(Date, primary_key=True)
    file_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    links_issued: Mapped[int] = mapped_column(BigInteger)
    links_downloaded: Mapped[int] = mapped_column(BigInteger)


class DailyRecipient(Base):
    """Per (day, recipient): links issued that day (`links_named`: those whose recipient was not
    NULL, which `-` also stands for) and the counted attempts that started that day on their links."""

    __tablename__ = "daily_recipients"
    __table_args__ = ROLLUP_TABLE_ARGS

    day: Mapped[datetime.date] = mapped_column(Date, primary_key=True)
    recipient: Mapped[str] = mapped_column(String(128), primary_key=True)
    links_issued: Mapped[int] = mapped_column(BigInteger)
    links_named: Mapped[int] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(BigInteger)
    ok: Mapped[int] = mapped_column(BigInteger)
    partial: Mapped[int] = mapped_column(BigInteger)
    refused: Mapped[int] = mapped_column(BigInteger)
    bytes_sent: Mapped[int] = mapped_column(BigInteger)


class WeeklyRecipient(Base):
    """`daily_recipients` summed per week (Monday to Sunday, `week` its Monday): a period reads
    its whole weeks here and only the days at its ends from the daily table, so a report by
    recipient reads weeks × recipients rows, not days × recipients."""

    __tablename__ = "weekly_recipients"
    __table_args__ = ROLLUP_TABLE_ARGS

    recipient: Mapped[str] = mapped_column(String(128), primary_key=True)  # grouped by it: read in its order
    week: Mapped[datetime.date] = mapped_column(Date, primary_key=True)
    links_issued: Mapped[int] = mapped_column(BigInteger)
    links_named: Mapped[int] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(BigInteger)
    ok: Mapped[int] = mapped_column(BigInteger)
    partial: Mapped[int] = mapped_column(BigInteger)
    refused: Mapped[int] = mapped_column(BigInteger)
    bytes_sent: Mapped[int] = mapped_column(BigInteger)
