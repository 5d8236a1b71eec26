"""The serving statements compiled for sqlite3 answer exactly as SQLAlchemy's own execution.

A SQLite server runs `tempdl.audit.plan`'s compiled text with values `tempdl.audit.prepared`
converts, never SQLAlchemy; the same statement objects run through SQLAlchemy everywhere else.
Here both run over one file of random rows, and every answer must be the same.
"""

from __future__ import annotations

import contextlib
import datetime
import pickle
import random
import sqlite3

import pytest
from sqlalchemy import Date, bindparam, insert, select
from sqlalchemy.engine import make_url

from tempdl.audit.engine import make_engine, upgrade
from tempdl.audit.plan import compile_for_sqlite, serving_plan
from tempdl.audit.prepared import prepare_all
from tempdl.audit.records import Outcome
from tempdl.audit.runs import CoreRun, SQLiteRun
from tempdl.audit.tables import download_attempts, issuances
from tempdl.config.parsers import sqlite_file

UTC = datetime.UTC
START = datetime.datetime(2026, 11, 1, tzinfo=UTC)
RECIPIENTS = ["alice", "bob", None]


def random_rows(seed: int) -> tuple[list[dict], list[dict]]:
    rng = random.Random(seed)
    links = [
        {
            "id": number,
            "created_at": START + datetime.timedelta(hours=rng.randrange(24 * 30)),
            "expires_at": START + datetime.timedelta(days=40),
            "file_id": rng.choice(["a.bin", "b.bin"]),
            "recipient": rng.choice(RECIPIENTS),
            "channel": "cli",
            "max_downloads": rng.choice([None, 1, 3]),
        }
        for number in range(1, 21)
    ]
    attempts = []
    for number in range(1, 301):
        started = START + datetime.timedelta(minutes=rng.randrange(60 * 24 * 30))
        running = rng.random() < 0.2
        first = rng.choice([None, 0, rng.randrange(1000)])
        attempts.append(
            {
                "id": number,
                "issuance_id": rng.randrange(1, 21),
                "file_id": "a.bin",
                "started_at": started,
                "finished_at": None if running else started + datetime.timedelta(seconds=rng.randrange(90)),
                "outcome": Outcome.PARTIAL if running else rng.choice(list(Outcome)),
                "http_status": rng.choice([200, 206, 410]),
                "range_start": first,
                "range_end": None if first is None else rng.choice([None, first + rng.randrange(5000)]),
                "bytes_sent": rng.randrange(10_000),
                "method": rng.choice(["GET", "GET", "HEAD", None]),
                "server_id": rng.choice(["one", "two"]),
            }
        )
    return links, attempts


def queries(rng: random.Random) -> list[tuple[str, dict]]:
    moment = START + datetime.timedelta(days=rng.randrange(31), minutes=rng.randrange(1440))
    held = rng.sample(range(1, 301), rng.choice([0, 1, 5]))
    link = rng.randrange(1, 22)  # 21: no such link
    start = rng.randrange(3000)
    return [
        ("select_issuance", {"issuance_id": link}),
        ("issuances_since", {"recipient": rng.choice(RECIPIENTS[:2]), "since": moment}),
        ("cap_blocking", {"recipient": "alice", "after": moment, "issuance_id": link, "skip": rng.randrange(3)}),
        ("completed_downloads", {"issuance_id": link}),
        ("downloads_claimed", {"issuance_id": link, "start": start, "end": start + rng.randrange(5000)}),
        ("traffic_since", {"month_start": moment, "day_start": moment + datetime.timedelta(days=1), "held_here": held}),
        ("recipient_bytes_since", {"recipient": rng.choice(RECIPIENTS[:2]), "since": moment, "held_here": held}),
        ("delivered_spans", {"issuance_id": link}),
    ]


@pytest.mark.parametrize("seed", range(5))
def test_every_serving_read_answers_alike_on_sqlite3_and_through_sqlalchemy(tmp_path, seed):
    url = f"sqlite:///{tmp_path / 'audit.sqlite3'}"
    engine = make_engine(url)
    upgrade(engine)
    links, attempts = random_rows(seed)
    with engine.begin() as connection:
        connection.execute(insert(issuances), links)
        connection.execute(insert(download_attempts), attempts)
    plan = prepare_all(serving_plan())
    rng = random.Random(seed)
    compared = 0
    with engine.connect() as core, contextlib.closing(sqlite3.connect(str(sqlite_file(url)))) as raw:
        for _ in range(20):
            for name, values in queries(rng):
                theirs = CoreRun(core).all(name, values)
                ours = SQLiteRun(raw, plan).all(name, values)
                assert ours == theirs, (name, values)
                compared += bool(theirs)
    engine.dispose()
    assert compared > 100  # the queries found rows, not only empty answers


def test_the_plan_crosses_a_pipe_as_plain_data():
    plan = serving_plan()
    sent = pickle.dumps(plan)
    assert pickle.loads(sent) == plan
    assert b"sqlalchemy" not in sent and b"tempdl.audit.records" not in sent  # unpickling imports neither
    assert set(plan) >= {"insert_attempt", "close_attempt", "traffic_since", "close_abandoned"}


def test_a_value_the_fast_path_would_not_convert_stops_the_compile():
    statement = select(issuances.c.id).where(issuances.c.created_at > bindparam("day", type_=Date))
    with pytest.raises(TypeError, match="converts its values on SQLite"):
        compile_for_sqlite(statement)


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///data/tempdl.sqlite3",
        "sqlite:////var/lib/tempdl/audit.sqlite3",
        "sqlite:///relative dir/a b.db",
        "sqlite:///data/x.db?mode=ro",
        "sqlite:///data/%41.db",
        "sqlite://",
        "sqlite:///:memory:",
        "postgresql+psycopg://u:p@db/tempdl",
    ],
)
def test_a_plain_sqlite_file_url_reads_as_sqlalchemy_reads_it(url):
    """The server reads its database's file without SQLAlchemy; what it reads must be the same."""
    parsed = make_url(url)
    found = sqlite_file(url)
    if found is not None:
        assert parsed.get_backend_name() == "sqlite" and found == parsed.database
    if "?" not in url and "%" not in url and parsed.database not in (None, ":memory:") and "sqlite" in url:
        assert found is not None  # the common case takes the fast path
