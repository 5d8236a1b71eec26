"""The rollups give exactly the figures of the plain queries, on random histories, on both databases.

Each history has every outcome, HEADs (`ok` with no byte, and refused ones), attempts without a link or a file,
links without a recipient (and recipients named "" and "-"), rows around local midnights and
across a DST change, downloads still running, and old rows inserted late. For several periods,
every report, the dashboard and /metrics from the rollups must equal those from the audit tables
alone; again after more rows, a prune and a change of time zone.
"""

from __future__ import annotations

import datetime
import random
import zoneinfo

import pytest
from sqlalchemy import event, func, insert, select, text, update

from tempdl.audit import rollups
from tempdl.audit.engine import make_engine
from tempdl.audit.log import AuditLog
from tempdl.audit.records import REFUSED_OUTCOMES, Outcome
from tempdl.audit.tables import download_attempts as attempts_table
from tempdl.audit.tables import issuances as issuances_table
from tempdl.reports import rolled
from tempdl.reports.console import busiest_recipient
from tempdl.reports.period import Period
from tempdl.reports.stats import BREAKDOWNS, build_dashboard, build_report, metrics_snapshot
from tempdl.timeutil import local_midnight

pytestmark = pytest.mark.both_databases

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")  # summer time from 2026-03-29 02:00
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
UTC = datetime.UTC
START = datetime.datetime(2026, 3, 24, tzinfo=UTC)
NOW = datetime.datetime(2026, 4, 3, 12, tzinfo=UTC)
FILES = ("InstMsiW.exe", "manual", "hello.txt", "dataset.zip")
RECIPIENTS = ("oAlice", "oBob", "oCarol", None, "", "-")


@pytest.fixture
def engine(database_url: str):
    from tempdl.audit.engine import upgrade

    engine = make_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def _moment(rng: random.Random, low: datetime.datetime, high: datetime.datetime) -> datetime.datetime:
    if rng.random() < 0.25:  # close to a local midnight, in one zone or the other
        zone = rng.choice((BERLIN, SHANGHAI))
        day = (low + (high - low) * rng.random()).astimezone(zone).date()
        midnight = datetime.datetime.combine(day, datetime.time(), zone).astimezone(UTC)
        moment = midnight + datetime.timedelta(seconds=rng.randint(-300, 300))
        return min(max(moment, low), high)
    return low + (high - low) * rng.random()


def write_history(
    engine,
    rng: random.Random,
    *,
    issuances: int,
    attempts: int,
    low: datetime.datetime,
    high: datetime.datetime,
    disorder: bool = True,
) -> None:
    """Random rows between `low` and `high`, their ids mostly in the order of their times."""
    with engine.begin() as connection:
        known = list(connection.execute(select(issuances_table.c.id, issuances_table.c.file_id)))
        for created in sorted(_moment(rng, low, high) for _ in range(issuances)):
            values = {
                "created_at": created,
                "expires_at": created + datetime.timedelta(hours=1),
                "file_id": rng.choice(FILES),
                "recipient": rng.choice(RECIPIENTS),
                "channel": "wechat",
            }
            new_id = connection.execute(insert(issuances_table).values(values)).inserted_primary_key[0]
            known.append((new_id, values["file_id"]))
        moments = sorted(_moment(rng, low, high) for _ in range(attempts))
        for _ in range(attempts // 20 if disorder else 0):  # a few out of order
            first, second = rng.randrange(attempts), rng.randrange(attempts)
            moments[first], moments[second] = moments[second], moments[first]
        for started in moments:
            link = rng.choice(known) if rng.random() < 0.9 else None
            outcome = rng.choice(list(Outcome))
            sent = 0
            if outcome == Outcome.OK:
                sent = 0 if rng.random() < 0.25 else rng.randint(1, 10_000)  # a HEAD sends nothing
            elif outcome in (Outcome.PARTIAL, Outcome.ERROR):
                sent = rng.randint(0, 5000)
            refused_head = outcome in REFUSED_OUTCOMES and rng.random() < 0.2  # `curl -I` of a dead link
            running = started > high - datetime.timedelta(hours=2) and rng.random() < 0.3  # a download now
            connection.execute(
                insert(attempts_table).values(
                    issuance_id=link[0] if link else None,
                    file_id=(link[1] if rng.random() < 0.95 else None) if link else None,
                    started_at=started,
                    finished_at=None if running else started + datetime.timedelta(seconds=3),
                    outcome=Outcome.PARTIAL if running else outcome,
                    http_status=200,
                    bytes_sent=sent,
                    method="HEAD" if (outcome == Outcome.OK and sent == 0) or refused_head else "GET",
                )
            )


def periods(zone: zoneinfo.ZoneInfo, now: datetime.datetime) -> list[Period]:
    today = now.astimezone(zone).date()
    return [
        Period(None, None, zone),
        Period(datetime.date(2026, 3, 27), datetime.date(2026, 3, 31), zone),  # no whole week
        Period(datetime.date(2026, 3, 25), datetime.date(2026, 4, 5), zone),  # Wednesday to Sunday
        Period(datetime.date(2026, 3, 23), datetime.date(2026, 4, 1), zone),  # Monday to Wednesday
        Period(datetime.date(2026, 3, 29), datetime.date(2026, 3, 29), zone),  # 23 hours in Berlin
        Period(today, today, zone),
        Period(datetime.date(2026, 3, 30), None, zone),
        Period(None, datetime.date(2026, 3, 28), zone),
        Period.last_days(366, today, zone),
    ]


def assert_same_figures(engine, zone: zoneinfo.ZoneInfo, now: datetime.datetime) -> None:
    for period in periods(zone, now):
        for by in BREAKDOWNS:
            fast = build_report(engine, period, by, now=now)
            plain = build_report(engine, period, by, use_rollups=False)
            assert fast == plain, (period, by)
            if engine.dialect.name == "sqlite":  # the JSON's key order follows the plain query's
                assert list(fast.totals.refused) == list(plain.totals.refused)
                assert list(fast.totals.other) == list(plain.totals.other)
        assert build_dashboard(engine, period, now=now) == build_dashboard(engine, period, use_rollups=False)
    assert metrics_snapshot(engine, now=now) == metrics_snapshot(engine, use_rollups=False)
    for day in (datetime.date(2026, 3, 29), now.astimezone(zone).date()):
        since = local_midnight(day, zone)
        fast = busiest_recipient(engine, since, zone, now=now)
        plain = busiest_recipient(engine, since, use_rollups=False)
        assert fast[1] == plain[1], day
        if plain[0] is not None:  # equal sums may come in either order
            assert recipient_bytes(engine, fast[0], since) == plain[1]


def recipient_bytes(engine, recipient: str | None, since: datetime.datetime) -> int:
    with engine.connect() as connection:
        return connection.execute(
            select(func.coalesce(func.sum(attempts_table.c.bytes_sent), 0))
            .select_from(attempts_table.join(issuances_table, attempts_table.c.issuance_id == issuances_table.c.id))
            .where(issuances_table.c.recipient == recipient, attempts_table.c.started_at >= since)
        ).scalar_one()


def state_of(engine) -> rollups.State:
    with engine.connect() as connection:
        state = rollups.read_state(connection)
    assert state is not None
    return state


def rows_in(engine, table: str) -> int:
    with engine.connect() as connection:
        return connection.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()


@pytest.mark.parametrize("seed", [1, 2])
def test_rollups_give_the_figures_of_the_plain_queries(engine, seed):
    rng = random.Random(seed)
    write_history(engine, rng, issuances=120, attempts=500, low=START, high=NOW + datetime.timedelta(minutes=3))
    assert_same_figures(engine, BERLIN, NOW)  # nothing built yet: the plain queries answer
    assert state_of(engine).zone == ""

    built = rollups.extend(engine, BERLIN.key, NOW)
    state = state_of(engine)
    assert built.steps >= 1 and state.zone == "Europe/Berlin" and state.attempts_through > 300
    assert rows_in(engine, "daily_traffic") > 0 and rows_in(engine, "daily_recipients") > 0
    assert_same_figures(engine, BERLIN, NOW)

    # more rows: some running ones are closed, new ones come, old ones are inserted late
    with engine.begin() as connection:
        running = attempts_table.c.finished_at.is_(None)
        connection.execute(
            update(attempts_table)
            .where(running, attempts_table.c.id % 2 == 0)
            .values(finished_at=NOW, outcome=Outcome.OK, bytes_sent=77)
        )
        connection.execute(update(attempts_table).where(running).values(finished_at=NOW))
    later = NOW + datetime.timedelta(hours=20)
    write_history(engine, rng, issuances=30, attempts=150, low=NOW, high=later)
    write_history(engine, rng, issuances=5, attempts=30, low=START - datetime.timedelta(days=90), high=START)
    assert_same_figures(engine, BERLIN, later)  # the reads extend the rollups as they go
    assert state_of(engine).attempts_through > state.attempts_through
    assert_same_figures(engine, BERLIN, later)

    # prune in the middle of the history: its days are summed again in the same transaction
    removed = AuditLog(engine).prune(datetime.datetime(2026, 3, 28, 21, 30, tzinfo=UTC))
    assert removed[0] > 0
    assert_same_figures(engine, BERLIN, later)

    # another time zone: bounded periods fall back to the plain queries until the rollups are cut again
    assert_same_figures(engine, SHANGHAI, later)
    assert rollups.extend(engine, SHANGHAI.key, later).rebuilt
    assert state_of(engine).zone == "Asia/Shanghai"
    assert_same_figures(engine, SHANGHAI, later)
    assert_same_figures(engine, BERLIN, later)


def test_a_running_download_holds_the_watermark(engine):
    rng = random.Random(7)
    write_history(engine, rng, issuances=20, attempts=60, low=START, high=NOW - datetime.timedelta(hours=1))
    with engine.begin() as connection:
        connection.execute(update(attempts_table).values(finished_at=START, outcome=Outcome.OK))
        connection.execute(update(attempts_table).where(attempts_table.c.id == 30).values(finished_at=None))
    rollups.extend(engine, BERLIN.key, NOW)
    assert state_of(engine).attempts_through == 29
    assert_same_figures(engine, BERLIN, NOW)
    with engine.begin() as connection:
        connection.execute(update(attempts_table).where(attempts_table.c.id == 30).values(finished_at=NOW))
    rollups.extend(engine, None, NOW)
    assert state_of(engine).attempts_through == 60
    assert_same_figures(engine, BERLIN, NOW)


def test_rows_of_the_last_minutes_stay_live(engine):
    rng = random.Random(8)
    write_history(
        engine, rng, issuances=10, attempts=40, low=START, high=NOW - datetime.timedelta(hours=1), disorder=False
    )
    write_history(engine, rng, issuances=3, attempts=5, low=NOW - datetime.timedelta(minutes=4), high=NOW)
    with engine.begin() as connection:
        connection.execute(update(attempts_table).values(finished_at=NOW))
    rollups.extend(engine, BERLIN.key, NOW)
    assert (state_of(engine).attempts_through, state_of(engine).issuances_through) == (40, 10)
    assert_same_figures(engine, BERLIN, NOW)


def test_two_extenders_racing_count_each_row_once(engine, database_url, monkeypatch):
    rng = random.Random(9)
    write_history(engine, rng, issuances=40, attempts=200, low=START, high=NOW - datetime.timedelta(hours=1))
    migrated = state_of(engine).version
    rollups.extend(engine, BERLIN.key, NOW - datetime.timedelta(days=5))
    rival = make_engine(database_url)
    real_sums = rollups.block_sums
    raced = []

    def sums_then_rival_extends(*args, **kwargs):
        found = real_sums(*args, **kwargs)
        if not raced:
            raced.append(None)
            raced[0] = rollups.extend(rival, None, NOW)  # moves the state under our feet
        return found

    monkeypatch.setattr(rollups, "block_sums", sums_then_rival_extends)
    mine = rollups.extend(engine, None, NOW)
    rival.dispose()
    assert raced[0].steps == 1 and mine.steps == 0  # ours lost the compare-and-set, then found nothing to do
    monkeypatch.undo()
    assert state_of(engine).version == migrated + 3  # cut in the zone, built, the rival's step: ours added nothing
    assert_same_figures(engine, BERLIN, NOW)


def test_a_read_only_database_answers_from_what_it_holds(engine, database_url):
    rng = random.Random(10)
    write_history(engine, rng, issuances=40, attempts=200, low=START, high=NOW - datetime.timedelta(days=3))
    rollups.extend(engine, BERLIN.key, NOW)
    before = state_of(engine)
    write_history(engine, rng, issuances=20, attempts=100, low=NOW - datetime.timedelta(days=3), high=NOW)
    reader = make_engine(database_url)

    @event.listens_for(reader, "connect")
    def _read_only(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        if reader.dialect.name == "sqlite":
            cursor.execute("PRAGMA query_only = ON")
        else:
            cursor.execute("SET default_transaction_read_only = on")
        cursor.close()
        if reader.dialect.name == "postgresql":
            dbapi_connection.commit()

    try:
        assert_same_figures(reader, BERLIN, NOW)
    finally:
        reader.dispose()
    assert state_of(engine) == before


def test_reports_read_the_rollups_and_only_recent_rows(engine, monkeypatch):
    """Not vacuous: a changed rollup row changes the report, and the live part reads ids above the watermark."""
    rng = random.Random(11)
    write_history(engine, rng, issuances=40, attempts=200, low=START, high=NOW - datetime.timedelta(hours=1))
    with engine.begin() as connection:
        connection.execute(update(attempts_table).values(finished_at=NOW))
    rollups.extend(engine, BERLIN.key, NOW)
    assert state_of(engine).attempts_through == 200
    blocks = []
    real_sums = rolled.block_sums
    monkeypatch.setattr(rolled, "block_sums", lambda c, block, zone: blocks.append(block) or real_sums(c, block, zone))
    everything = Period(None, None, BERLIN)
    plain = build_report(engine, everything, "file", use_rollups=False)
    assert build_report(engine, everything, "file", now=NOW) == plain
    assert blocks == [rolled.Block(200, None, 40, None)]
    with engine.begin() as connection:
        connection.execute(text("UPDATE daily_traffic SET bytes_sent = bytes_sent + 1000"))
    assert build_report(engine, everything, "file", now=NOW).totals.bytes_served > plain.totals.bytes_served


@pytest.mark.sqlite_only
def test_the_live_part_reads_recent_rows_by_primary_key(engine):
    """With the rollups current, no report statement scans the audit tables: the live part seeks
    the ids above the watermarks; the rest are index seeks (latest rows, watermark targets)."""
    rng = random.Random(12)
    write_history(engine, rng, issuances=60, attempts=300, low=START, high=NOW)
    rollups.extend(engine, BERLIN.key, NOW)
    statements: list[tuple[str, tuple]] = []

    def remember(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", remember)
    try:
        build_report(engine, Period(None, None, BERLIN), "recipient", now=NOW)
        build_dashboard(engine, periods(BERLIN, NOW)[2], now=NOW)
    finally:
        event.remove(engine, "before_cursor_execute", remember)
    live = 0
    with engine.connect() as connection:
        for statement, parameters in statements:
            if "download_attempts" not in statement and "FROM issuances" not in statement:
                continue
            plan = " | ".join(
                row[-1] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
            )
            assert "SCAN" not in plan, (statement, plan)  # every step a seek, none a full read
            live += "INTEGER PRIMARY KEY (rowid>?)" in plan
    assert live >= 4
