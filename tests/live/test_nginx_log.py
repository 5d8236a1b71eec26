"""`ingest-nginx-log` on a hand-written log: outcomes, idempotence, and lines it must not trip on."""

from __future__ import annotations

import datetime
import gzip
import subprocess
import sys
from pathlib import Path

import pytest

from tempdl.audit.log import AuditLog
from tempdl.audit.nginx_log import MalformedLine, ingest, parse_line
from tempdl.audit.records import Attempt
from tests.support import env_without_tempdl, rows

pytestmark = pytest.mark.both_databases

REPO = Path(__file__).resolve().parents[2]
STARTED = datetime.datetime(2026, 11, 30, 8, 0, tzinfo=datetime.UTC)
MSEC = STARTED.timestamp() + 5.25


def line(attempt: str, status: int, sent: int, completion: str = "OK", **extra: str) -> str:
    more = "".join(f" {key}={value}" for key, value in extra.items())
    return (
        f"time=2026-11-30T08:00:05+00:00 msec={MSEC:.3f} attempt={attempt} status={status} bytes={sent} "
        f"completion={completion} request_time=0.004 upstream=127.0.0.1:8001{more}\n"
    )


@pytest.fixture
def open_rows(audit: AuditLog) -> list[int]:
    """Six downloads handed to nginx: open rows, as x-accel mode leaves them."""
    issuance = audit.create_issuance(
        file_id="InstMsiW.exe",
        recipient="alice",
        channel="cli",
        created_at=STARTED,
        expires_at=STARTED + datetime.timedelta(minutes=10),
        max_downloads=None,
    )
    ids = []
    for _ in range(6):
        attempt = Attempt(started_at=STARTED, issuance_id=issuance, file_id="InstMsiW.exe", range_start=0)
        assert audit.open_attempt(attempt)
        ids.append(attempt.id)
    return ids


@pytest.fixture
def access_log(tmp_path: Path, open_rows: list[int]) -> Path:
    whole, ranged, dropped, cached, unsatisfiable, retried = map(str, open_rows)
    path = tmp_path / "tempdl-access.log"
    path.write_text(
        line(whole, 200, 300_000)
        + line(ranged, 206, 1000)
        + line(dropped, 200, 65_536, completion="")
        + line(cached, 304, 0)
        + "\n"  # blank lines are nothing
        + line(unsatisfiable, 416, 190)
        + line("-", 410, 1234)  # a refusal: tempdl answered, nginx sent no file
        + '127.0.0.1 - - [30/Nov/2026:08:00:05 +0000] "GET /api/get_file/x HTTP/1.1" 200 13 "-" "curl"\n'
        + line("9999999", 200, 13)  # no such row: pruned, or another database's
        + line(whole, 200, 300_000)  # the same request logged twice (a log concatenated)
        + line(retried, 206, 10, user_agent='"Mozilla/5.0 (X11; Linux)"')  # more fields, quoted ones too
        + line("12abc", 200, 13),
        encoding="utf-8",
    )
    return path


def attempts(database_url: str) -> dict[int, tuple]:
    found = rows(database_url, "SELECT id, outcome, http_status, bytes_sent, finished_at FROM download_attempts")
    return {row["id"]: tuple(row)[1:] for row in found}


def test_open_rows_are_finished_with_what_nginx_sent(audit, access_log, open_rows, settings):
    result = ingest(audit, [access_log])

    finished_at = datetime.datetime.fromtimestamp(round(MSEC, 3), datetime.UTC).replace(tzinfo=None)
    whole, ranged, dropped, cached, unsatisfiable, retried = open_rows
    assert attempts(settings.database_url) == {
        whole: ("ok", 200, 300_000, finished_at),
        ranged: ("ok", 206, 1000, finished_at),
        dropped: ("partial", 200, 65_536, finished_at),
        cached: ("not_modified", 304, 0, finished_at),
        unsatisfiable: ("bad", 416, 0, finished_at),  # the 190 bytes were nginx's error page
        retried: ("ok", 206, 10, finished_at),
    }
    assert result.summary() == (
        "ingest-nginx-log: 11 lines, 6 downloads finished (1 bad, 1 not_modified, 3 ok, 1 partial), "
        "1 already done, 1 unknown attempt ids, 1 not downloads, 2 malformed "
        "(tempdl-access.log:8, tempdl-access.log:12)"
    )


def test_a_second_run_changes_nothing(audit, access_log, settings):
    ingest(audit, [access_log])
    before = attempts(settings.database_url)
    again = ingest(audit, [access_log])
    assert attempts(settings.database_url) == before
    assert (sum(again.finished.values()), again.already, again.unknown) == (0, 7, 1)


def test_a_rotated_and_compressed_log_is_read_too(audit, access_log, open_rows, settings):
    rotated = access_log.with_name("tempdl-access.log.2.gz")
    rotated.write_bytes(gzip.compress(access_log.read_bytes()))
    assert sum(ingest(audit, [rotated]).finished.values()) == 6


def test_download_caps_count_what_nginx_reported(audit, access_log, open_rows):
    ingest(audit, [access_log])
    # 300 000 + 1000 + 65 536 + 10 bytes of a 300 000-byte file: one complete download so far.
    assert audit.completed_downloads(1, 300_000) == 1


@pytest.mark.parametrize(
    "text",
    [
        "",
        "status=200",
        "status=two bytes=1 msec=1",
        "status=200 bytes=1",  # no time
        "status=200 bytes=1 msec=soon",
        "attempt=x status=200 bytes=1 msec=1",
    ],
)
def test_malformed_lines_say_what_is_wrong(text):
    with pytest.raises(MalformedLine):
        parse_line(text)


def test_time_may_come_from_time_iso8601_alone():
    logged = parse_line("time=2026-11-30T16:00:05+08:00 attempt=3 status=200 bytes=13 completion=OK")
    assert logged.finished_at == datetime.datetime(2026, 11, 30, 8, 0, 5, tzinfo=datetime.UTC)


def run_cli(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "server.py"), *args],
        cwd=workdir,
        env=env_without_tempdl(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_command_prints_one_line_and_fails_only_when_nothing_fits(tmp_path, access_log, settings):
    (tmp_path / "tempdl.toml").write_text(f'database_url = "{settings.database_url}"\n', encoding="utf-8")
    done = run_cli(tmp_path, "ingest-nginx-log", str(access_log))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ingest-nginx-log: 11 lines, 6 downloads finished")
    assert done.stdout.count("\n") == 1

    combined = tmp_path / "access.log"
    combined.write_text('127.0.0.1 - - [30/Nov/2026:08:00:05 +0000] "GET / HTTP/1.1" 200 13 "-" "curl"\n')
    wrong_format = run_cli(tmp_path, "ingest-nginx-log", str(combined))
    assert wrong_format.returncode == 1
    assert "log_format tempdl" in wrong_format.stderr and "Traceback" not in wrong_format.stderr

    missing = run_cli(tmp_path, "ingest-nginx-log", str(tmp_path / "nope.log"))
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1 and "nope.log" in missing.stderr
