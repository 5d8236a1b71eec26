"""The SQLite fast path runs SQLAlchemy's own statements and writes SQLAlchemy's own text.

Rows the fast path writes and rows SQLAlchemy writes share one table and are compared and
sorted by plain SQL, so they must be the same bytes, not merely equal as Python values.
"""

from __future__ import annotations

import contextlib
import datetime
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import DateTime
from sqlalchemy.dialects import sqlite

from tempdl.audit import statements
from tempdl.audit.log import AuditLog
from tempdl.audit.plan import compile_for_sqlite, serving_plan
from tempdl.audit.prepared import Prepared, prepare_all
from tempdl.audit.records import USER_AGENT_MAX, Attempt, Outcome
from tempdl.audit.sqlite import SQLiteHotPath
from tempdl.audit.tables import UTCDateTime
from tests.support import read_only

UTC = datetime.UTC
DIALECT = sqlite.dialect()
MOMENTS = [
    datetime.datetime(2026, 11, 30, 23, 30, 0, 0, tzinfo=UTC),
    datetime.datetime(2026, 12, 1, 7, 30, 5, 123456, tzinfo=datetime.timezone(datetime.timedelta(hours=8))),
    datetime.datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
]


@pytest.mark.parametrize("moment", MOMENTS, ids=str)
def test_a_timestamp_is_the_text_sqlalchemys_datetime_stores(moment):
    ours = UTCDateTime().dialect_impl(DIALECT).bind_processor(DIALECT)
    theirs = DateTime().dialect_impl(DIALECT).bind_processor(DIALECT)
    text = ours(moment)
    assert text == theirs(moment.astimezone(UTC).replace(tzinfo=None))
    read_back = UTCDateTime().dialect_impl(DIALECT).result_processor(DIALECT, None)(text)
    assert read_back == moment and read_back.tzinfo is UTC


def test_a_naive_timestamp_is_refused_on_the_fast_path_too():
    naive = datetime.datetime(2026, 1, 1)
    values = {**Attempt(started_at=MOMENTS[0], id=1).close_values(), "finished_at": naive}
    with pytest.raises(ValueError, match="timezone-aware"):
        Prepared(compile_for_sqlite(statements.CLOSE_ATTEMPT)).parameters(values)


def test_the_fast_path_sql_is_the_compiled_statement():
    compiled = statements.CLOSE_ATTEMPT.compile(dialect=DIALECT)
    prepared = Prepared(compile_for_sqlite(statements.CLOSE_ATTEMPT))
    assert prepared.sql == compiled.string
    attempt = Attempt(started_at=MOMENTS[0], id=7, outcome=Outcome.OK, bytes_sent=4096, finished_at=MOMENTS[1])
    assert prepared.parameters(attempt.close_values()) == [
        "2026-11-30 23:30:05.123456",
        "ok",
        200,
        None,
        None,
        4096,
        7,
    ]


def test_rows_from_the_fast_path_and_from_sqlalchemy_are_the_same_bytes(settings, audit: AuditLog):
    assert audit._hot is not None  # a file database: the fast path is on
    attempt = Attempt(
        started_at=MOMENTS[1],
        finished_at=MOMENTS[1] + datetime.timedelta(seconds=3),
        client_ip="203.0.113.9",
        user_agent="x" * (USER_AGENT_MAX + 20),
        file_id="hello.txt",
        outcome=Outcome.OK,
        http_status=206,
        range_start=0,
        range_end=4095,
        bytes_sent=4096,
    )
    fast = audit.record_attempt(attempt)
    with audit.engine.begin() as connection:
        slow = connection.execute(statements.INSERT_ATTEMPT, attempt.row()).inserted_primary_key[0]
    database = settings.database_url.removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(database)) as connection:
        fetched = {
            row[0]: row[1:]
            for row in connection.execute(
                "SELECT id, quote(started_at), quote(finished_at), outcome, http_status, range_start, range_end,"
                " bytes_sent, client_ip, length(user_agent) FROM download_attempts"
            )
        }
    assert fetched[fast] == fetched[slow]
    assert fetched[fast][:2] == ("'2026-11-30 23:30:05.123456'", "'2026-11-30 23:30:08.123456'")
    assert fetched[fast][-1] == USER_AGENT_MAX


def test_a_connection_opened_read_only_is_opened_again_once_the_file_can_be_written(settings, audit: AuditLog):
    """SQLite opens a file it may not write read-only, silently, and such a connection stays so."""
    database = settings.database_url.removeprefix("sqlite:///")
    hot = SQLiteHotPath(database, busy_timeout_ms=1000, plan=prepare_all(serving_plan()))
    values = {
        "file_id": "hello.txt",
        "recipient": None,
        "channel": "cli",
        "created_at": MOMENTS[0],
        "expires_at": MOMENTS[1],
        "max_downloads": None,
    }
    try:
        with read_only(Path(database)), pytest.raises(sqlite3.OperationalError, match="readonly"):
            hot.write("insert_issuance", values)  # the first connection of this path: opened read-only
        written = hot.write("insert_issuance", values)
    finally:
        hot.close()
    with contextlib.closing(sqlite3.connect(database)) as connection:
        assert connection.execute("SELECT id, file_id FROM issuances").fetchall() == [(written, "hello.txt")]
