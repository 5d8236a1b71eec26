"""The report queries against a hand-built history (tests/audit_rows.py), figures worked out by hand."""

from __future__ import annotations

import dataclasses
import datetime
import re
import zoneinfo
from pathlib import Path

import pytest
from sqlalchemy import event

from tempdl.audit.engine import make_engine, upgrade
from tempdl.reports import stats
from tempdl.reports.breakdowns import BreakdownRow, Totals
from tempdl.reports.period import Period
from tempdl.reports.stats import build_dashboard, build_report, metrics_snapshot
from tests.audit_rows import ALICE, BOB, write_hand_built_history

UTC = zoneinfo.ZoneInfo("UTC")
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
ALL_TIME = Period(None, None, UTC)


@pytest.fixture
def engine(tmp_path: Path):
    engine = make_engine(f"sqlite:///{tmp_path / 'audit.sqlite3'}")
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def history(engine):
    write_hand_built_history(engine)
    return engine


def figures(rows: list[BreakdownRow]) -> list[tuple]:
    return [dataclasses.astuple(row) for row in rows]


def test_totals_all_time(history):
    totals = build_report(history, ALL_TIME, "outcome").totals
    assert totals == Totals(
        links_issued=5,
        links_unused=2,  # issuance 3 only expired and landed; issuance 5 was never tried
        distinct_recipients=2,  # alice and bob; the link without recipient is not a person
        attempts=9,
        downloads_ok=3,
        downloads_partial=1,
        refused={"expired": 2, "bad": 1},
        other={"not_modified": 1, "landing": 1},
        bytes_served=302_413,
    )
    assert totals.refused_total == 3


def test_by_day_in_utc(history):
    rows = build_report(history, ALL_TIME, "day").rows
    # key, links, attempts, ok, partial, refused, bytes
    assert figures(rows) == [
        ("2026-11-28", 2, 3, 1, 1, 0, 301_000),
        ("2026-11-29", 1, 4, 1, 0, 2, 1400),
        ("2026-11-30", 2, 2, 1, 0, 1, 13),
    ]


def test_by_day_in_shanghai_moves_late_evening_utc_to_the_next_day(history):
    rows = build_report(history, Period(None, None, SHANGHAI), "day").rows
    # issuance 2 (23:30 UTC) and attempt 3 (23:40 UTC) are 07:30 and 07:40 on the 29th in Shanghai
    assert figures(rows) == [
        ("2026-11-28", 1, 2, 1, 0, 0, 300_000),
        ("2026-11-29", 2, 5, 1, 1, 2, 2400),
        ("2026-11-30", 2, 2, 1, 0, 1, 13),
    ]


def test_a_bounded_period_lists_every_day_even_empty_ones(history):
    period = Period(datetime.date(2026, 11, 26), datetime.date(2026, 12, 1), UTC)
    rows = build_report(history, period, "day").rows
    assert [row.key for row in rows] == [f"2026-11-{day}" for day in range(26, 31)] + ["2026-12-01"]
    assert figures(rows)[0] == ("2026-11-26", 0, 0, 0, 0, 0, 0)
    assert sum(row.bytes_sent for row in rows) == 302_413


def test_by_file(history):
    assert figures(build_report(history, ALL_TIME, "file").rows) == [
        ("InstMsiW.exe", 2, 5, 1, 0, 2, 300_000),
        ("manual", 2, 2, 1, 1, 0, 2400),
        ("hello.txt", 1, 1, 1, 0, 0, 13),
        ("-", 0, 1, 0, 0, 1, 0),  # the attempt whose link could not be read
    ]


def test_by_recipient(history):
    assert figures(build_report(history, ALL_TIME, "recipient").rows) == [
        (ALICE, 2, 5, 1, 0, 2, 300_000),
        (BOB, 2, 2, 1, 1, 0, 2400),
        ("-", 1, 2, 1, 0, 1, 13),  # the link issued to nobody, and the unreadable link
    ]


def test_by_outcome(history):
    assert figures(build_report(history, ALL_TIME, "outcome").rows) == [
        ("ok", 0, 3, 3, 0, 0, 301_413),
        ("partial", 0, 1, 0, 1, 0, 1000),
        ("expired", 0, 2, 0, 0, 2, 0),
        ("bad", 0, 1, 0, 0, 1, 0),
        ("landing", 0, 1, 0, 0, 0, 0),
        ("not_modified", 0, 1, 0, 0, 0, 0),
    ]


@pytest.mark.parametrize(
    "zone, expected",
    [
        (UTC, (1, 1, 1, 4, 1400)),
        (SHANGHAI, (2, 1, 2, 5, 2400)),  # from 16:00 UTC on the 28th to 16:00 UTC on the 29th
    ],
)
def test_one_day_period_follows_the_time_zone(history, zone, expected):
    period = Period(datetime.date(2026, 11, 29), datetime.date(2026, 11, 29), zone)
    totals = build_report(history, period, "file").totals
    assert (
        totals.links_issued,
        totals.links_unused,
        totals.distinct_recipients,
        totals.attempts,
        totals.bytes_served,
    ) == expected


def test_breakdowns_add_up_to_the_totals(history):
    period = Period(datetime.date(2026, 11, 29), None, SHANGHAI)
    for by in stats.BREAKDOWNS:
        report = build_report(history, period, by)
        assert sum(row.attempts for row in report.rows) == report.totals.attempts, by
        assert sum(row.bytes_sent for row in report.rows) == report.totals.bytes_served, by
        assert sum(row.ok for row in report.rows) == report.totals.downloads_ok, by
        assert sum(row.refused for row in report.rows) == report.totals.refused_total, by
        if by != "outcome":
            assert sum(row.links_issued for row in report.rows) == report.totals.links_issued, by


def test_empty_database(engine):
    report = build_report(engine, ALL_TIME, "day")
    assert report.totals.is_empty and report.rows == []
    assert build_report(engine, Period(datetime.date(2026, 11, 1), None, UTC), "recipient").rows == []


def test_period_rejects_since_after_until():
    with pytest.raises(ValueError, match="after"):
        Period(datetime.date(2026, 11, 30), datetime.date(2026, 11, 1), UTC)


def test_period_bounds_are_local_midnights():
    period = Period(datetime.date(2026, 11, 29), datetime.date(2026, 11, 30), SHANGHAI)
    assert period.start == datetime.datetime(2026, 11, 28, 16, tzinfo=datetime.UTC)
    assert period.end == datetime.datetime(2026, 11, 30, 16, tzinfo=datetime.UTC)


def test_a_daylight_saving_day_has_its_real_length(engine):
    new_york = zoneinfo.ZoneInfo("America/New_York")
    spring = Period(datetime.date(2026, 3, 8), datetime.date(2026, 3, 8), new_york)
    assert spring.end - spring.start == datetime.timedelta(hours=23)


def test_unknown_breakdown_is_refused(engine):
    with pytest.raises(ValueError, match="unknown breakdown"):
        build_report(engine, ALL_TIME, "weekday")


def test_dashboard_uses_the_same_figures(history):
    period = Period(datetime.date(2026, 11, 1), datetime.date(2026, 11, 30), SHANGHAI)
    dashboard = build_dashboard(history, period, top_recipients=1, recent=4)
    assert dashboard.totals == build_report(history, period, "day").totals
    assert dashboard.days == build_report(history, period, "day").rows
    assert dashboard.files == build_report(history, period, "file").rows
    assert dashboard.recipients == build_report(history, period, "recipient").rows[:1]
    assert dashboard.recipients_shown_of == 3
    assert [(a.started_at.day, a.started_at.hour, a.outcome, a.recipient) for a in dashboard.recent] == [
        (30, 9, "expired", ALICE),
        (30, 8, "ok", None),
        (29, 12, "bad", None),
        (29, 9, "expired", ALICE),
    ]


def test_metrics_snapshot_counts_everything(history):
    snapshot = metrics_snapshot(history)
    assert snapshot.links_issued == 5
    assert snapshot.attempts_by_outcome == {
        "ok": 3,
        "partial": 1,
        "expired": 2,
        "bad": 1,
        "not_modified": 1,
        "landing": 1,
    }
    assert snapshot.bytes_by_file == {"InstMsiW.exe": 300_000, "manual": 2400, "hello.txt": 13, "-": 0}


# --- query plans: the reason the reports stay fast at a million rows --------------------------


def _plans(engine, run) -> dict[str, str]:
    """Every statement `run` sends, with SQLite's plan for it."""
    statements: list[tuple[str, tuple]] = []

    def remember(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", remember)
    try:
        run()
    finally:
        event.remove(engine, "before_cursor_execute", remember)
    plans = {}
    with engine.connect() as connection:
        for statement, parameters in statements:
            rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
            plans[" ".join(statement.split())] = " | ".join(row[-1] for row in rows)
    return plans


@pytest.mark.parametrize("period", [ALL_TIME, Period(datetime.date(2026, 11, 1), datetime.date(2026, 11, 30), UTC)])
def test_report_queries_stream_covering_indexes(history, period):
    """No report reads the table itself or sorts attempts: each streams an index in GROUP BY
    order, or seeks one day's range. Only the per-recipient total sorts, and only the
    per-issuance sums (a third of the attempts), since recipients live on issuances."""
    plans = _plans(history, lambda: build_dashboard(history, period) and build_report(history, period, "recipient"))
    attempt_plans = {sql: plan for sql, plan in plans.items() if "FROM download_attempts" in sql}
    assert len(attempt_plans) >= 4
    for sql, plan in attempt_plans.items():
        if "ORDER BY" in sql:  # the latest attempts: a walk down the time index, stopped by LIMIT
            assert "ix_download_attempts_report_by_time" in plan
            continue
        attempt_steps = [step for step in plan.split(" | ") if "download_attempts" in step]
        assert attempt_steps and all("COVERING INDEX" in step for step in attempt_steps), (sql, plan)
        if "GROUP BY download_attempts" in sql:
            assert "TEMP B-TREE" not in plan.split("| SCAN anon_1")[0], (sql, plan)
    grouped = [plan for sql, plan in attempt_plans.items() if "GROUP BY download_attempts.file_id" in sql]
    assert grouped and all("ix_download_attempts_report_by_file" in p for p in grouped)
    per_issuance = [plan for sql, plan in attempt_plans.items() if "GROUP BY download_attempts.issuance_id" in sql]
    assert per_issuance and all("ix_download_attempts_report_by_issuance" in p for p in per_issuance)
    issuance_groups = [plan for sql, plan in plans.items() if re.search(r"FROM issuances .*GROUP BY issuances", sql)]
    assert issuance_groups and all("TEMP B-TREE" not in plan for plan in issuance_groups), issuance_groups


# --- PostgreSQL: the same figures from the same queries -----------------------------------------


@pytest.fixture(scope="module")
def postgres_history(postgres_databases):
    """The same history in a database of the session's PostgreSQL cluster (tests/conftest.py)."""
    with postgres_databases.fresh() as url:
        engine = make_engine(url)
        upgrade(engine)
        write_hand_built_history(engine)
        yield engine
        engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("period", [ALL_TIME, Period(datetime.date(2026, 11, 29), None, SHANGHAI)])
def test_postgresql_reports_match_sqlite(postgres_history, history, period):
    for by in stats.BREAKDOWNS:
        assert build_report(postgres_history, period, by) == build_report(history, period, by), by
    assert build_dashboard(postgres_history, period) == build_dashboard(history, period)
    assert metrics_snapshot(postgres_history) == metrics_snapshot(history)
