"""The audit store on SQLite and on PostgreSQL: the same rows in, the same rows and figures out.

Also the counted limits with two writers at once (two `AuditLog`s on their own engines, as two
server processes have), and which open rows a starting server may close. (The reports' figures
on both databases: tests/unit/reports/test_stats.py.)
"""

from __future__ import annotations

import contextlib
import datetime
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text

from tempdl.audit.engine import make_engine
from tempdl.audit.log import AuditLog
from tempdl.audit.records import Attempt
from tempdl.cli.serve import STALE_OPEN_ATTEMPT, prepare_audit
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
            claimed = Attempt(
                started_at=MORNING, issuance_id=issuance_id, file_id="hello.txt", range_start=0, range_end=12
            )
            won.append(store.claim_download(claimed, download_cap=1, file_size=13))
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


def claim(audit: AuditLog, link: int, first: int, last: int, *, cap: int = 1) -> Attempt | None:
    """Claim bytes first..last of a 100-byte file; the open attempt, or None when refused."""
    attempt = Attempt(started_at=MORNING, issuance_id=link, file_id="f", range_start=first, range_end=last)
    return attempt if audit.claim_download(attempt, download_cap=cap, file_size=100) else None


def finish(audit: AuditLog, attempt: Attempt, sent: int) -> None:
    attempt.bytes_sent, attempt.finished_at = sent, MORNING
    attempt.outcome = "ok" if sent == attempt.range_end - attempt.range_start + 1 else "partial"
    audit.close_attempt(attempt)


def test_what_counts_against_a_download_cap(audit):
    # Pieces one after another, and a resume after a dropped connection: one download.
    link = issue(audit, MORNING)
    finish(audit, claim(audit, link, 0, 99), 40)  # dropped at 40 %
    finish(audit, claim(audit, link, 40, 99), 60)  # resumed
    assert claim(audit, link, 0, 99) is None  # the one download is used

    # A download manager's parallel pieces do not overlap: one download, all admitted at once.
    link = issue(audit, MORNING)
    pieces = [claim(audit, link, first, first + 24) for first in (0, 25, 50, 75)]
    assert all(pieces)
    assert claim(audit, link, 10, 20) is None  # the same bytes again, at the same time: a second

    # A burst for the same bytes (any offset): the first gets them, the rest wait for a new link.
    link = issue(audit, MORNING)
    assert claim(audit, link, 1, 99) and claim(audit, link, 1, 99) is None
    assert claim(audit, link, 0, 99, cap=2)  # unless the link allows two

    # A restart from byte 0 after a dropped download is still the first download.
    link = issue(audit, MORNING)
    finish(audit, claim(audit, link, 0, 99), 70)
    restarted = claim(audit, link, 0, 99)
    assert restarted
    finish(audit, restarted, 100)
    assert claim(audit, link, 0, 99) is None


# --- which open rows a starting server closes ---------------------------------------------------


def test_prune_removes_old_attempts_then_the_old_issuances_no_kept_attempt_names(seeded, settings):
    cutoff = MORNING + datetime.timedelta(hours=1)
    kept = issue(seeded, MORNING - datetime.timedelta(days=1), recipient="carol")  # old, but named by a new attempt
    attempt(seeded, kept, LATE_EVENING, "ok", 7)
    assert seeded.prune(cutoff) == (2, 1)  # the morning's two attempts, then the morning's link
    left = rows(settings.database_url, "SELECT id FROM issuances ORDER BY id")
    assert [row["id"] for row in left] == [2, kept]
    assert len(rows(settings.database_url, "SELECT id FROM download_attempts")) == 4
    assert seeded.prune(cutoff) == (0, 0)


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


@pytest.mark.sqlite_only
@pytest.mark.gen_test(timeout=60)
async def test_a_wal_the_checkpoints_cannot_finish_is_started_over(settings, audit, monkeypatch):
    """Under a steady stream of writes the audit thread's checkpoints never catch up with the end
    of the WAL, and it grew without end (past 100 MiB in a minute of WeChat messages). A reader
    holding its snapshot stands in for the writes that keep arriving: the checkpoints cannot
    finish, and once it lets go the event loop finishes the job right after a commit, with no
    further help from the audit thread."""
    monkeypatch.setattr("tempdl.audit.runner.CHECKPOINT_EVERY_WRITES", 50)
    monkeypatch.setattr("tempdl.audit.sqlite.WAL_RESTART_FRAMES", 100)
    database = settings.database_url.removeprefix("sqlite:///")
    reader = sqlite3.connect(database, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM download_attempts").fetchone()  # holds its snapshot
    for _ in range(12):
        await write_attempts(audit, 50)  # writes go on meanwhile
    held = wal_frames(database)
    reader.execute("COMMIT")
    reader.close()
    monkeypatch.setattr("tempdl.audit.runner.CHECKPOINT_EVERY_WRITES", 10**9)  # no more from the audit thread
    await write_attempts(audit, 100)
    assert len(rows(settings.database_url, "SELECT id FROM download_attempts")) == 700
    # Held back to ~3,400 frames, then started over: what 100 writes add (table and four indexes
    # each). Without the restart: ~4,000 and growing.
    assert held > 2000 and wal_frames(database) < 1000


async def write_attempts(audit: AuditLog, count: int) -> None:
    """`count` inline writes, then wait for any checkpoint they queued on the audit thread."""
    for _ in range(count):
        await audit.run(audit.record_attempt, Attempt(started_at=MORNING, outcome="bad", http_status=403))
    await audit.run(audit.issuances_since, "nobody", MORNING)  # runs on the audit thread, after it


def wal_frames(database: str) -> int:
    """Frames in the WAL now (a passive checkpoint reports them and blocks nobody)."""
    with contextlib.closing(sqlite3.connect(database)) as connection:
        return connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]


@pytest.mark.gen_test
async def test_a_capped_issuance_ends_an_unwritable_incident_like_any_write(audit):
    """WeChat followers get links through the capped insert when an hourly cap is set: its
    success must end the incident (the `audit_recovered` line, health back to normal) too."""
    audit.failing = True
    await audit.run(
        audit.create_issuance_within_cap,
        file_id="hello.txt",
        recipient="alice",
        channel="wechat",
        created_at=MORNING,
        expires_at=MORNING + datetime.timedelta(minutes=10),
        max_downloads=None,
        cap=3,
        window=datetime.timedelta(hours=1),
    )
    assert audit.failing is False
