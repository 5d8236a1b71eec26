"""The command line as operators use it: real subprocesses, one-line errors, exit codes.

Each test runs against SQLite and PostgreSQL: `workdir` holds a tempdl.toml naming the database.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import env_without_tempdl, rows, sample_files

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.both_databases


@pytest.fixture
def workdir(tmp_path: Path, database_url: str) -> Path:
    sample_files(tmp_path / "static_files")
    (tmp_path / "tempdl.toml").write_text(f'database_url = "{database_url}"\n', encoding="utf-8")
    return tmp_path


def run(workdir: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "server.py"), *args],
        cwd=workdir,
        env={**env_without_tempdl(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_issue_prints_only_the_link_and_records_the_issuance(workdir, database_url):
    result = run(workdir, "issue", "hello.txt", "--to", "alice", "--ttl", "120", "--max-downloads", "2")
    assert result.returncode == 0, result.stderr
    [link] = result.stdout.splitlines()
    assert link.startswith("http://127.0.0.1:8000/api/get_file/")
    [row] = rows(database_url, "SELECT * FROM issuances")
    assert (row["file_id"], row["recipient"], row["channel"], row["max_downloads"]) == ("hello.txt", "alice", "cli", 2)


def test_unknown_file_is_one_line_and_non_zero(workdir):
    result = run(workdir, "issue", "nope")
    assert result.returncode != 0
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "nope" in result.stderr and "Traceback" not in result.stderr


def test_bad_config_is_refused_naming_the_key(workdir):
    (workdir / "tempdl.toml").write_text("link_ttl = 'ten minutes'\n")
    for command in (["serve"], ["issue", "hello.txt"], []):
        result = run(workdir, *command)
        assert result.returncode == 2
        assert "link_ttl" in result.stderr and "Traceback" not in result.stderr
        assert result.stderr.count("\n") == 1


def test_bad_arguments_are_one_line(workdir):
    result = run(workdir, "stats", "--since", "yesterday")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1


def test_stats_on_an_empty_database_is_friendly(workdir):
    result = run(workdir, "stats")
    assert result.returncode == 0
    assert "No downloads yet" in result.stdout


def test_stats_formats_and_revoke(workdir, database_url):
    link = run(workdir, "issue", "hello.txt", "--to", "bob").stdout.strip()
    table = run(workdir, "stats", "--by", "file")
    assert "Links issued:        1" in table.stdout and "hello.txt" in table.stdout
    data = json.loads(run(workdir, "stats", "--format", "json", "--by", "recipient").stdout)
    assert data["totals"]["links_issued"] == 1 and data["rows"][0]["key"] == "bob"
    parsed = list(csv.DictReader(io.StringIO(run(workdir, "stats", "--format", "csv", "--by", "file").stdout)))
    assert parsed[0]["file"] == "hello.txt" and parsed[0]["links_issued"] == "1"

    revoked = run(workdir, "revoke", link)
    assert revoked.returncode == 0, revoked.stderr
    assert rows(database_url, "SELECT revoked_at FROM issuances")[0]["revoked_at"]
    assert run(workdir, "revoke", "999").returncode == 1
    assert run(workdir, "revoke", "http://x/api/get_file/forged.token.here").returncode == 1


def test_db_upgrade_and_version(workdir):
    assert run(workdir, "db", "upgrade").returncode == 0
    version = run(workdir, "--version")
    assert version.returncode == 0 and version.stdout.startswith("tempdl ")


def test_prune_removes_old_attempts_then_old_issuances_nothing_refers_to(workdir, database_url):
    from tempdl.audit.engine import make_engine, upgrade
    from tempdl.audit.log import AuditLog
    from tempdl.audit.records import Attempt

    engine = make_engine(database_url)
    upgrade(engine)
    audit = AuditLog(engine)
    now = datetime.datetime.now(datetime.UTC)
    old, recent = now - datetime.timedelta(days=40), now - datetime.timedelta(days=2)
    try:
        links = {}
        for name, created in (("old", old), ("old_but_used_lately", old), ("recent", recent)):
            links[name] = audit.create_issuance(
                file_id="hello.txt",
                recipient="alice",
                channel="cli",
                created_at=created,
                expires_at=created + datetime.timedelta(days=60),
                max_downloads=None,
            )
        for name, started in (("old", old), ("old_but_used_lately", recent), ("recent", recent)):
            audit.record_attempt(Attempt(started_at=started, issuance_id=links[name], outcome="ok", bytes_sent=13))
    finally:
        audit.close()

    result = run(workdir, "prune", "--older-than", "30")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("removed 1 download attempts and 1 issuances ")
    remaining = rows(database_url, "SELECT id FROM issuances ORDER BY id")
    assert [row["id"] for row in remaining] == [links["old_but_used_lately"], links["recent"]]
    assert rows(database_url, "SELECT COUNT(*) AS n FROM download_attempts")[0]["n"] == 2
