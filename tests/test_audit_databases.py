"""The audit store and the reports, run on SQLite and on PostgreSQL: same rows in, same numbers out.

Also the counted limits with two writers at once (two `AuditLog`s on their own engines, as two
server processes have), and which open rows a starting server may close.
"""

from __future__ import annotations

import datetime
import threading
import zoneinfo
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text

from tempdl.audit import Attempt, AuditLog
from tempdl.db import make_engine
from tempdl.serving import STALE_OPEN_ATTEMPT, prepare_audit
from tempdl.stats import Period, build_report
from tests.support import rows

pytestmark = pytest.mark.both_databases

UTC = datetime.UTC
# 23:30 UTC on Nov 30 is already Dec 1 in Shanghai (UTC+8): the day buckets must say so.
LATE_EVENING = datetime.datetime(2026, 11, 30, 23, 30, tzinfo=UTC)
MORNING = datetime.datetime(2026, 11, 30, 2, 0, tzinfo=UTC)


def issue(audit: AuditLog, at: datetime.datetime, *, file_id: str = "hello.txt", recipient: str | None = "alice"):
    return audit.create_issuance(
        file_id=file_id,
        recipient=recipient,
        channel="cli",
        created_at=at,
        expires_at=at + datetime.timedelta(minutes=10),
        max_downloads=None,
    )


def attempt(audit: AuditLog, issuance_id: int | None, at: datetime.datetime, outcome: str, sent: int, **extra) -> int:
    return audit.record_attempt(
        Attempt(
            started_at=at,
            finished_at=at + datetime.timedelta(seconds=5),
            issuance_id=issuance_id,
            file_id=extra.pop("file_id", "hello.txt"),
            outcome=outcome,
            http_status=extra.pop("http_status", 200),
            bytes_sent=sent,
            **extra,
        )
    )


@pytest.fixture
def seeded(audit: AuditLog) -> AuditLog:
    morning = issue(audit, MORNING)
    evening = issue(audit, LATE_EVENING, file_id="InstMsiW.exe", recipient="bob")
    attempt(audit, morning, MORNING, "ok", 13)
    attempt(audit, morning, MORNING + datetime.timedelta(minutes=1), "partial", 5)
    attempt(audit, evening, LATE_EVENING, "ok", 300_000, file_id="InstMsiW.exe")
    attempt(audit, evening, LATE_EVENING, "expired", 0, file_id="InstMsiW.exe", http_status=410)
    attempt(audit, None, LATE_EVENING, "bad", 0, file_id=None, http_status=403)
    return audit


@pytest.mark.parametrize(
    "zone, days",
    [
        ("UTC", {"2026-11-30": (2, 5, 300_018)}),
        ("Asia/Shanghai", {"2026-11-30": (1, 2, 18), "2026-12-01": (1, 3, 300_000)}),
    ],
)
def test_day_buckets_follow_the_operators_time_zone(seeded, zone, days):
    report = build_report(seeded.engine, Period(None, None), "day", zone)
    assert {row.key: (row.links_issued, row.attempts, row.bytes_sent) for row in report.rows} == days


def test_totals_and_breakdowns(seeded):
    report = build_report(seeded.engine, Period(None, None), "outcome", "UTC")
    totals = report.totals
    assert (totals.links_issued, totals.distinct_recipients, totals.attempts) == (2, 2, 5)
    assert (totals.downloads_ok, totals.downloads_partial, totals.bytes_served) == (2, 1, 300_018)
    assert totals.refused == {"expired": 1, "bad": 1}
    assert {row.key: row.attempts for row in report.rows} == {"ok": 2, "partial": 1, "expired": 1, "bad": 1}

    by_file = build_report(seeded.engine, Period(None, None), "file", "UTC").rows
    assert [(row.key, row.links_issued, row.attempts, row.ok, row.refused, row.bytes_sent) for row in by_file] == [
        ("InstMsiW.exe", 1, 2, 1, 1, 300_000),
        ("hello.txt", 1, 2, 1, 0, 18),
        ("-", 0, 1, 0, 1, 0),
    ]
    by_recipient = build_report(seeded.engine, Period(None, None), "recipient", "UTC").rows
    assert [(row.key, row.links_issued, row.bytes_sent) for row in by_recipient] == [
        ("bob", 1, 300_000),
        ("alice", 1, 18),
        ("-", 0, 0),
    ]


def test_a_period_in_local_dates(seeded):
    december_first = datetime.date(2026, 12, 1)
    period = Period.from_local_dates(december_first, december_first, zoneinfo.ZoneInfo("Asia/Shanghai"))
    report = build_report(seeded.engine, period, "day", "Asia/Shanghai")
    assert (report.totals.links_issued, report.totals.attempts, report.totals.bytes_served) == (1, 3, 300_000)


def test_rows_read_back_as_naive_utc_on_both_databases(seeded, settings):
    [first] = rows(settings.database_url, "SELECT created_at, expires_at, revoked_at FROM issuances WHERE id = ?", 1)
    assert first["created_at"] == MORNING.replace(tzinfo=None)
    assert first["expires_at"] == (MORNING + datetime.timedelta(minutes=10)).replace(tzinfo=None)
    assert first["revoked_at"] is None
    assert seeded.load_issuance(1).created_at == MORNING  # and aware UTC through the model


def test_recipient_bytes_count_every_link_of_the_day(seeded):
    assert seeded.recipient_bytes_since("alice", MORNING - datetime.timedelta(hours=1)) == 18
    assert seeded.recipient_bytes_since("bob", MORNING) == 300_000
    assert seeded.recipient_bytes_since("bob", LATE_EVENING + datetime.timedelta(seconds=1)) == 0


# --- the download claim with two writers ---------------------------------------------------------


def test_two_writers_racing_for_the_last_download_one_wins_each_time(settings, audit, database_kind):
    """Two stores (two server processes) claim the one allowed download of 100 links at once.

    On PostgreSQL the server's default isolation is made REPEATABLE READ first, as an operator's
    may be: tempdl's own READ COMMITTED must still be what the claim runs at.
    """
    if database_kind == "postgresql":
        with audit.engine.begin() as connection:
            name = connection.execute(text("SELECT current_database()")).scalar_one()
            connection.exec_driver_sql(f"ALTER DATABASE {name} SET default_transaction_isolation = 'repeatable read'")
    links = [issue(audit, MORNING) for _ in range(100)]
    stores = [AuditLog(make_engine(settings.database_url)) for _ in range(2)]
    start = threading.Barrier(2)

    def claim(store: AuditLog) -> list[bool]:
        won = []
        for issuance_id in links:
            start.wait()
            claimed = Attempt(started_at=MORNING, issuance_id=issuance_id, file_id="hello.txt", range_start=0)
            won.append(store.open_attempt(claimed, download_cap=1, file_size=13))
            if won[-1]:  # a small file: the winner is done at once, perhaps while the other counts
                claimed.outcome, claimed.bytes_sent, claimed.finished_at = "ok", 13, MORNING
                store.close_attempt(claimed)
        return won

    try:
        with ThreadPoolExecutor(2) as pool:
            first, second = pool.map(claim, stores)
    finally:
        for store in stores:
            store.engine.dispose()
    assert [a + b for a, b in zip(first, second, strict=True)] == [1] * len(links)
    counted = rows(
        settings.database_url, "SELECT issuance_id, COUNT(*) AS n FROM download_attempts GROUP BY issuance_id"
    )
    assert sorted(tuple(row) for row in counted) == [(issuance_id, 1) for issuance_id in links]


# --- which open rows a starting server closes ---------------------------------------------------


def test_a_starting_server_closes_only_rows_no_one_else_can_own(settings, audit, database_kind):
    now = datetime.datetime.now(UTC)
    link = issue(audit, now)
    fresh = Attempt(started_at=now - datetime.timedelta(minutes=5), issuance_id=link, file_id="hello.txt")
    stale = Attempt(started_at=now - STALE_OPEN_ATTEMPT - datetime.timedelta(minutes=1), issuance_id=link)
    assert audit.open_attempt(fresh) and audit.open_attempt(stale)

    prepare_audit(settings).close()  # a restart, or a second process starting

    still_open = {
        row["id"] for row in rows(settings.database_url, "SELECT id FROM download_attempts WHERE finished_at IS NULL")
    }
    if database_kind == "sqlite":
        assert still_open == set()  # alone on its file: every open row is an earlier crash's
    else:
        assert still_open == {fresh.id}  # a peer may be streaming it


def test_in_x_accel_mode_open_rows_wait_for_the_nginx_log(tmp_path, settings, audit):
    from dataclasses import replace

    now = datetime.datetime.now(UTC)
    waiting = Attempt(
        started_at=now - datetime.timedelta(minutes=5), issuance_id=issue(audit, now), file_id="hello.txt"
    )
    assert audit.open_attempt(waiting)
    prepare_audit(replace(settings, serve_mode="x-accel")).close()
    assert rows(settings.database_url, "SELECT finished_at FROM download_attempts")[0]["finished_at"] is None
