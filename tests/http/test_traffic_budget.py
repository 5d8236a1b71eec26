"""`limits.total_daily_bytes` / `total_monthly_bytes` over real HTTP: spent means 503 with
Retry-After at the next period (report time zone), running downloads reserve what they asked
for, WeChat says when links come back and issues none, and the dashboard and `stats` show it.

The test clock stands at 2026-11-30 08:00 UTC = 16:00 in Asia/Shanghai: the next local day, and
the next local month, start 8 hours later.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import insert

from tempdl.audit.tables import download_attempts
from tests.support import env_without_tempdl, reply_content, rows, text_message

HELLO = len("Hello 你好\n".encode())  # hello.txt: 13 bytes
PASSWORD = "budget-test-password"
SERVER = Path(__file__).resolve().parents[2] / "server.py"
UNTIL_NEXT_DAY = 8 * 3600


def config(**limits: int) -> str:
    lines = "".join(f"{key} = {value}\n" for key, value in limits.items())
    return (
        f'timezone = "Asia/Shanghai"\n[admin]\npassword = "{PASSWORD}"\n[limits]\n{lines}'
        '[[files]]\nid = "hello"\npath = "hello.txt"\nkeywords = ["hello"]\n'
    )


def write_attempt(audit, started_at: datetime.datetime, *, sent: int = 0, reserved: int | None = None) -> None:
    """A finished download of `sent` bytes, or (with `reserved`) one still running that asked for that many."""
    with audit.engine.begin() as connection:
        connection.execute(
            insert(download_attempts).values(
                file_id="hello",
                started_at=started_at,
                finished_at=None if reserved else started_at,
                outcome="partial" if reserved else "ok",
                http_status=200,
                range_start=0,
                range_end=(reserved or sent) - 1,
                bytes_sent=sent,
            )
        )


async def assert_spent(fetch, link: str, retry_after: int) -> None:
    response = await fetch(link, headers={"Accept": "application/json"})
    assert response.code == 503
    assert response.headers["Retry-After"] == str(retry_after)
    assert json.loads(response.body)["reason"] == "budget_spent"


@pytest.mark.gen_test
@pytest.mark.parametrize("config_text", [config(total_daily_bytes=2 * HELLO)])
async def test_spent_daily_allowance_is_a_503_until_the_next_local_day(fetch, issue_link, audit_rows, clock):
    link = await issue_link("hello")
    for _ in range(2):
        assert (await fetch(link)).body == "Hello 你好\n".encode()
    await assert_spent(fetch, link, UNTIL_NEXT_DAY)
    [row] = await audit_rows("SELECT outcome, http_status FROM download_attempts WHERE http_status = 503")
    assert (row["outcome"], row["http_status"]) == ("limited", 503)
    clock.advance(UNTIL_NEXT_DAY)  # midnight in Shanghai: a fresh day
    assert (await fetch(await issue_link("hello"))).code == 200


@pytest.mark.gen_test
@pytest.mark.parametrize("config_text", [config(total_daily_bytes=1000)])
async def test_running_downloads_reserve_what_they_asked_for(fetch, issue_link, audit, clock):
    link = await issue_link("hello")
    write_attempt(audit, clock(), sent=10, reserved=1000)  # 10 bytes out so far, 1000 asked for
    await assert_spent(fetch, link, UNTIL_NEXT_DAY)


@pytest.mark.gen_test
@pytest.mark.parametrize("config_text", [config(total_monthly_bytes=1000)])
async def test_spent_monthly_allowance_lasts_until_the_next_local_month(fetch, issue_link, audit, clock):
    clock.now = datetime.datetime(2026, 11, 20, 8, 0, tzinfo=datetime.UTC)
    link = await issue_link("hello")
    write_attempt(audit, datetime.datetime(2026, 11, 2, tzinfo=datetime.UTC), sent=600)
    write_attempt(audit, datetime.datetime(2026, 10, 31, 15, 0, tzinfo=datetime.UTC), sent=900)  # Oct 31 in Shanghai
    assert (await fetch(link)).code == 200  # 613 of 1000: October's bytes are not this month's
    write_attempt(audit, datetime.datetime(2026, 11, 19, tzinfo=datetime.UTC), sent=400)
    await assert_spent(fetch, link, 10 * 24 * 3600 + UNTIL_NEXT_DAY)  # to 2026-12-01 00:00 Shanghai


@pytest.mark.gen_test
@pytest.mark.parametrize("config_text", [config(total_daily_bytes=1000)])
async def test_wechat_says_when_links_come_back_and_issues_none(wechat_post, settings, audit, clock):
    write_attempt(audit, clock(), sent=1000)
    content = reply_content((await wechat_post(text_message("hello"))).body)
    assert content == (
        "本站的下载流量已用完，8 小时后恢复，届时请再发送关键词。\n"
        "This server's download allowance is used up; links come back in 8 hours. Please send the keyword then."
    )
    assert rows(settings.database_url, "SELECT COUNT(*) AS n FROM issuances")[0]["n"] == 0


@pytest.mark.gen_test
@pytest.mark.parametrize("config_text", [config(total_daily_bytes=2000, total_monthly_bytes=1_000_000)])
async def test_dashboard_shows_the_allowance_used(fetch, audit, clock):
    write_attempt(audit, clock(), sent=1500)
    page = (await fetch("/admin/", auth_username="admin", auth_password=PASSWORD)).body.decode()
    assert "1.5 KiB / 2.0 KiB" in page and "traffic allowance today" in page
    assert "1.5 KiB / 976.6 KiB" in page and "traffic allowance this month" in page


@pytest.mark.parametrize("config_text", [config(total_daily_bytes=2000, total_monthly_bytes=1_000_000)])
def test_stats_shows_the_allowance_used(settings, audit, tmp_path):
    write_attempt(audit, datetime.datetime.now(datetime.UTC), sent=700)  # the CLI reads the real clock
    result = subprocess.run(
        [sys.executable, str(SERVER), "stats", "--config", "tempdl.toml"],
        cwd=tmp_path,
        env={**env_without_tempdl(), "TEMPDL_DATABASE_URL": settings.database_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Traffic allowance:   today 700 B of 2.0 KiB (35%), renewed " in result.stdout
    assert "Traffic allowance:   this month 700 B of 976.6 KiB (0%), renewed " in result.stdout
