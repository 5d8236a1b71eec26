"""`python server.py stats` and `prune`, run as an operator runs them: a subprocess on a real database."""

from __future__ import annotations

import csv
import datetime
import io
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import insert

from tempdl.audit.engine import make_engine, upgrade
from tempdl.audit.tables import download_attempts, issuances
from tests.audit_rows import ALICE, write_hand_built_history
from tests.support import env_without_tempdl, rows

SERVER = Path(__file__).resolve().parents[2] / "server.py"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "files").mkdir()
    (tmp_path / "tempdl.toml").write_text(
        'files_dir = "files"\ndata_dir = "data"\ntimezone = "Asia/Shanghai"\n', encoding="utf-8"
    )
    return tmp_path


@pytest.fixture
def database(workdir: Path) -> Path:
    path = workdir / "data" / "tempdl.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


def tempdl(workdir: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SERVER), *argv],
        cwd=workdir,
        env=env_without_tempdl(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def with_history(database: Path) -> Path:
    engine = make_engine(f"sqlite:///{database}")
    write_hand_built_history(engine)
    engine.dispose()
    return database


def test_stats_table_is_readable(workdir, database):
    with_history(database)
    result = tempdl(workdir, "stats", "--by", "file")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "Period:              all time (time zone Asia/Shanghai)" in lines
    assert "Links issued:        5" in lines
    assert "  never downloaded:  2" in lines
    assert "Distinct recipients: 2" in lines
    assert "  refused:           3 (expired 2, bad 1)" in lines
    assert "Bytes served:        295.3 KiB (302413 bytes)" in lines
    header = next(line for line in lines if line.startswith("file "))
    assert header.split() == ["file", "links", "attempts", "ok", "partial", "refused", "bytes"]
    assert lines[-4].split() == ["InstMsiW.exe", "2", "5", "1", "0", "2", "293.0", "KiB"]
    assert lines[-1].split() == ["-", "0", "1", "0", "0", "1", "0", "B"]


def test_stats_json_has_exact_integers_and_local_days(workdir, database):
    with_history(database)
    result = tempdl(workdir, "stats", "--format", "json", "--since", "2026-11-29", "--until", "2026-11-30")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["since"], report["until"], report["timezone"], report["by"]) == (
        "2026-11-29",
        "2026-11-30",
        "Asia/Shanghai",
        "day",
    )
    assert report["start_utc"] == "2026-11-28T16:00:00+00:00"
    assert report["totals"]["bytes_served"] == 2413
    assert [(row["key"], row["attempts"], row["bytes_sent"]) for row in report["rows"]] == [
        ("2026-11-29", 5, 2400),
        ("2026-11-30", 2, 13),
    ]


def test_stats_csv_by_recipient(workdir, database):
    with_history(database)
    result = tempdl(workdir, "stats", "--format", "csv", "--by", "recipient")
    assert result.returncode == 0, result.stderr
    table = list(csv.reader(io.StringIO(result.stdout)))
    assert table[0] == ["recipient", "links_issued", "attempts", "ok", "partial", "refused", "bytes_sent"]
    assert table[1] == [ALICE, "2", "5", "1", "0", "2", "300000"]
    assert len(table) == 4


def test_stats_on_a_fresh_install_says_no_downloads_yet_and_creates_nothing(workdir):
    result = tempdl(workdir, "stats")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("No downloads yet")
    assert not (workdir / "data").exists()
    data = tempdl(workdir, "stats", "--format", "json")
    assert json.loads(data.stdout)["totals"]["attempts"] == 0


def test_stats_on_an_empty_database(workdir, database):
    result = tempdl(workdir, "stats", "--by", "recipient")
    assert result.returncode == 0 and result.stdout.startswith("No downloads yet")
    assert (
        tempdl(workdir, "stats", "--format", "csv").stdout
        == "day,links_issued,attempts,ok,partial,refused,bytes_sent\n"
    )


@pytest.mark.parametrize(
    "argv, code, message",
    [
        (["--since", "2026-11-30", "--until", "2026-11-01"], 1, "--since 2026-11-30 is after --until 2026-11-01"),
        (["--since", "30/11/2026"], 2, "is not a date like 2026-11-30"),
        (["--by", "weekday"], 2, "invalid choice"),
    ],
)
def test_stats_refuses_bad_arguments_in_one_line(workdir, argv, code, message):
    result = tempdl(workdir, "stats", *argv)
    assert result.returncode == code
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


# --- prune -----------------------------------------------------------------------------------


def _aged_history(database: Path) -> None:
    """Issuances 1-3 are 100 days old, 4 is 2 days old; issuance 2 was clicked 5 days ago."""
    now = datetime.datetime.now(datetime.UTC)
    old, recent = now - datetime.timedelta(days=100), now - datetime.timedelta(days=5)
    engine = make_engine(f"sqlite:///{database}")
    with engine.begin() as connection:
        connection.execute(
            insert(issuances),
            [
                {"id": 1, "created_at": old, "expires_at": old, "file_id": "a", "recipient": ALICE, "channel": "cli"},
                {"id": 2, "created_at": old, "expires_at": old, "file_id": "a", "recipient": ALICE, "channel": "cli"},
                {"id": 3, "created_at": old, "expires_at": old, "file_id": "a", "recipient": None, "channel": "cli"},
                {"id": 4, "created_at": now, "expires_at": now, "file_id": "a", "recipient": None, "channel": "cli"},
            ],
        )
        attempt = {"file_id": "a", "outcome": "ok", "http_status": 200, "bytes_sent": 1}
        connection.execute(
            insert(download_attempts),
            [
                {**attempt, "issuance_id": 1, "started_at": old},
                {**attempt, "issuance_id": None, "started_at": old, "outcome": "bad", "http_status": 403},
                {**attempt, "issuance_id": 2, "started_at": recent, "outcome": "expired", "http_status": 410},
            ],
        )
    engine.dispose()


def test_prune_removes_old_rows_but_keeps_issuances_that_kept_attempts_name(workdir, database):
    _aged_history(database)
    result = tempdl(workdir, "prune", "--older-than", "30")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("removed 2 download attempts and 2 issuances started or created before ")
    assert [r["id"] for r in rows(database, "SELECT id FROM issuances ORDER BY id")] == [2, 4]
    assert [r["issuance_id"] for r in rows(database, "SELECT issuance_id FROM download_attempts")] == [2]
    again = tempdl(workdir, "prune", "--older-than", "30")
    assert again.stdout.startswith("removed 0 download attempts and 0 issuances")


def test_prune_is_one_transaction(workdir, database):
    """When deleting issuances fails, the attempts deleted just before come back."""
    _aged_history(database)
    with sqlite3.connect(database) as connection:
        connection.execute(
            "CREATE TRIGGER keep_issuances BEFORE DELETE ON issuances BEGIN SELECT RAISE(ABORT, 'read-only'); END"
        )
    result = tempdl(workdir, "prune", "--older-than", "30")
    assert result.returncode == 1
    assert "read-only" in result.stderr and "Traceback" not in result.stderr
    assert rows(database, "SELECT COUNT(*) AS n FROM download_attempts")[0]["n"] == 3
    assert rows(database, "SELECT COUNT(*) AS n FROM issuances")[0]["n"] == 4


def test_prune_wants_at_least_one_day(workdir, database):
    result = tempdl(workdir, "prune", "--older-than", "0")
    assert result.returncode == 1 and "at least 1 day" in result.stderr
