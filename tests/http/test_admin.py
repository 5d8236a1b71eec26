"""The operator pages over real HTTP: Basic auth, the dashboard, the report as data, /metrics."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tempdl.web.handlers import basic_auth
from tempdl.web.handlers.basic_auth import credentials_match, parse_basic_credentials
from tests.audit_rows import ALICE, write_hand_built_history

PASSWORD = "correct horse 电池"
SERVER = Path(__file__).resolve().parents[2] / "server.py"
ADMIN_PATHS = ["/admin/", "/admin/stats.json", "/admin/stats.csv", "/metrics"]


@pytest.fixture
def config_text() -> str:
    return f'timezone = "Asia/Shanghai"\n[admin]\npassword = "{PASSWORD}"\n'


@pytest.fixture
def history(audit):
    write_hand_built_history(audit.engine)


@pytest.fixture
def admin(fetch):
    """`await admin(path, **kwargs)`: a request with the right credentials."""

    async def _admin(path: str, **kwargs):
        return await fetch(path, auth_username="admin", auth_password=PASSWORD, **kwargs)

    return _admin


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# --- authentication ---------------------------------------------------------------------------


@pytest.mark.gen_test
@pytest.mark.parametrize("config_text", ['timezone = "Asia/Shanghai"\n'])
@pytest.mark.parametrize("path", ADMIN_PATHS)
async def test_without_a_password_the_pages_do_not_exist(fetch, path):
    response = await fetch(path, headers={"Authorization": basic("admin", "")})
    assert response.code == 404
    assert "WWW-Authenticate" not in response.headers


@pytest.mark.gen_test
@pytest.mark.parametrize("path", ADMIN_PATHS)
@pytest.mark.parametrize(
    "authorization",
    [
        None,
        basic("admin", "wrong"),
        basic("root", PASSWORD),
        basic("admin", PASSWORD + " "),
        "Basic !!!not-base64",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Bearer c2VjcmV0",
    ],
)
async def test_missing_or_wrong_credentials_get_a_challenge(fetch, path, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = await fetch(path, headers=headers)
    assert response.code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="tempdl admin", charset="UTF-8"'
    assert response.headers["Cache-Control"] == "no-store"
    body = response.body.decode()
    if path.endswith(".json"):
        assert json.loads(body)["reason"] == "unauthorized"
    else:
        assert "需要管理员用户名和密码" in body and "administrator" in body


@pytest.mark.gen_test
@pytest.mark.parametrize("path", ADMIN_PATHS)
async def test_right_credentials_open_every_page(admin, path):
    assert (await admin(path)).code == 200


@pytest.mark.gen_test
async def test_guessing_is_cut_short_even_the_right_password_waits(fetch, clock, caplog):
    """After 10 wrong passwords in 10 minutes an address gets 429 for the rest of the window,
    whatever it sends: a guesser cannot tell a right guess from a wrong one meanwhile."""
    wrong = {"Authorization": basic("admin", "guess")}
    for _ in range(basic_auth.FAILED_LOGINS_ALLOWED):
        assert (await fetch("/admin/", headers=wrong)).code == 401
        clock.advance(10)
    for headers in (wrong, {"Authorization": basic("admin", PASSWORD)}):
        response = await fetch("/admin/stats.json", headers=headers)
        assert response.code == 429
        assert json.loads(response.body)["reason"] == "too_many_tries"
        assert 0 < int(response.headers["Retry-After"]) <= basic_auth.FAILED_LOGINS_WINDOW - 90
        assert "WWW-Authenticate" not in response.headers
    assert "event=admin_login_blocked ip=127.0.0.1" in caplog.text
    clock.advance(basic_auth.FAILED_LOGINS_WINDOW)
    assert (await fetch("/admin/", headers={"Authorization": basic("admin", PASSWORD)})).code == 200


@pytest.mark.gen_test
async def test_a_few_wrong_passwords_do_not_lock_the_operator_out(fetch):
    for _ in range(basic_auth.FAILED_LOGINS_ALLOWED - 1):
        assert (await fetch("/admin/", headers={"Authorization": basic("admin", "typo")})).code == 401
    assert (await fetch("/admin/", headers={"Authorization": basic("admin", PASSWORD)})).code == 200


@pytest.mark.gen_test
async def test_requests_without_credentials_are_no_guesses(fetch):
    """A browser's first request carries no Authorization: it asks for the password prompt."""
    for _ in range(3 * basic_auth.FAILED_LOGINS_ALLOWED):
        response = await fetch("/admin/")
        assert response.code == 401 and "WWW-Authenticate" in response.headers
    assert (await fetch("/admin/", headers={"Authorization": basic("admin", PASSWORD)})).code == 200


@pytest.mark.gen_test
async def test_utf8_passwords_work_as_rfc_7617_says(fetch):
    response = await fetch("/admin/", headers={"Authorization": basic("admin", PASSWORD)})
    assert response.code == 200


def test_credentials_are_compared_in_constant_time(monkeypatch):
    """User and password are both compared with hmac.compare_digest, even when the user is wrong."""
    compared = []

    def spy(given: bytes, expected: bytes) -> bool:
        compared.append((given, expected))
        return given == expected

    monkeypatch.setattr(basic_auth.hmac, "compare_digest", spy)
    assert not credentials_match(basic("root", "pw"), "admin", "pw")
    assert compared == [(b"root", b"admin"), (b"pw", b"pw")]
    assert credentials_match(basic("admin", "pw"), "admin", "pw")


def test_basic_credentials_parsing():
    assert parse_basic_credentials(basic("admin", "a:b")) == (b"admin", b"a:b")
    assert parse_basic_credentials("basic " + base64.b64encode(b"u:").decode()) == (b"u", b"")
    for header in (
        None,
        "",
        "Basic",
        "Basic ",
        "Digest abc",
        "Basic a b c",
        "Basic " + base64.b64encode(b"u").decode(),
    ):
        assert parse_basic_credentials(header) is None


# --- the dashboard ------------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_dashboard_shows_totals_chart_and_tables(admin, history):
    response = await admin("/admin/")
    assert response.code == 200
    assert response.headers["Content-Type"] == "text/html; charset=UTF-8"
    assert response.headers["Cache-Control"] == "no-store"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    page = response.body.decode()
    assert "2026-11-01 to 2026-11-30 · Asia/Shanghai" in page  # the last 30 days, by default
    # one inline script (the "now downloading" poll), allowed by this response's nonce alone; nothing external
    nonce = re.search(r"script-src 'nonce-([^']+)'", response.headers["Content-Security-Policy"]).group(1)
    assert re.findall(r"<script[^>]*>", page) == [f'<script nonce="{nonce}">']
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    # totals
    for value, label in [("295.3 KiB", "bytes served"), ("5", "links issued"), ("2", "links never downloaded")]:
        assert re.search(
            rf'<div class="value">{re.escape(value)}</div><div class="label">[^<]*<span class="en">{label}', page
        )
    assert "expired 2, bad 1" in page
    # the chart: one column per day, each with a hover title
    days = re.findall(r'<g class="day" data-day="([\d-]+)"><title>([^<]+)</title>', page)
    assert len(days) == 30 and days[0][0] == "2026-11-01" and days[-1][0] == "2026-11-30"
    assert dict(days)["2026-11-29"].startswith("2026-11-29: 2.3 KiB · 5 attempts, 1 complete, 1 partial, 2 refused")
    assert "日期 day (Asia/Shanghai)" in page and ">11-01<" in page and ">11-29<" in page
    # tables: files, recipients shortened, the latest attempts in local time
    assert re.search(r'<td class="text key">InstMsiW.exe</td><td>2</td><td>5</td><td>1</td><td>0</td><td>2</td>', page)
    assert "oyORnu…f0rs" in page and ALICE not in page
    recent = page.split('<table id="recent">')[1].split("</table>")[0]
    assert recent.count("<tr>") == 1 + 9
    assert "2026-11-30 17:00:00" in recent  # 09:00 UTC
    assert '<span class="badge refused">expired</span>' in recent


@pytest.mark.gen_test
async def test_dashboard_date_range(admin, history):
    page = (await admin("/admin/?since=2026-11-29&until=2026-11-29")).body.decode()
    assert len(re.findall(r'<g class="day"', page)) == 1
    assert '<div class="value">2.3 KiB</div>' in page
    assert 'value="2026-11-29"' in page
    assert 'href="stats.csv?since=2026-11-29&amp;until=2026-11-29&amp;by=recipient"' in page


@pytest.mark.gen_test
async def test_dashboard_with_nothing_yet(admin):
    page = (await admin("/admin/")).body.decode()
    assert "这段时间没有下载 · no downloads in this period" in page
    assert len(re.findall(r'<g class="day"', page)) == 30


@pytest.mark.gen_test
async def test_admin_without_slash_redirects(admin):
    response = await admin("/admin", follow_redirects=False)
    assert response.code == 302 and response.headers["Location"] == "/admin/"


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "query, english",
    [
        ("since=2026-13-01", "Dates must look like 2026-11-30"),
        ("until=30.11.2026", "Dates must look like 2026-11-30"),
        ("since=2026-11-30&until=2026-11-01", "since date is after the until date"),
        ("since=2020-01-01&until=2026-11-30", "at most 366 days"),
    ],
)
async def test_dashboard_bad_dates_are_a_bilingual_400(admin, query, english):
    response = await admin(f"/admin/?{query}")
    assert response.code == 400
    body = response.body.decode()
    assert english in body and re.search(r"[\u4e00-\u9fff]", body)


@pytest.mark.gen_test
async def test_database_trouble_is_a_503(admin, settings, history):
    with sqlite3.connect(settings.database_url.removeprefix("sqlite:///")) as connection:
        connection.execute("DROP TABLE download_attempts")
    for path in ADMIN_PATHS:
        response = await admin(path)
        assert response.code == 503, path
        assert "Retry-After" in response.headers


# --- the report as data ---------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_stats_json_shape(admin, history):
    response = await admin("/admin/stats.json?by=file&since=2026-11-29")
    assert response.code == 200
    assert response.headers["Content-Type"] == "application/json; charset=UTF-8"
    report = json.loads(response.body)
    assert set(report) == {"since", "until", "timezone", "start_utc", "end_utc", "by", "totals", "rows"}
    assert (report["since"], report["until"], report["by"]) == ("2026-11-29", None, "file")
    assert set(report["totals"]) == {
        "links_issued",
        "links_unused",
        "distinct_recipients",
        "attempts",
        "downloads_ok",
        "downloads_partial",
        "refused",
        "other",
        "bytes_served",
    }
    assert report["rows"][0] == {
        "key": "manual",
        "links_issued": 2,
        "attempts": 2,
        "ok": 1,
        "partial": 1,
        "refused": 0,
        "bytes_sent": 2400,
    }


@pytest.mark.gen_test
async def test_stats_csv_shape(admin, history):
    response = await admin("/admin/stats.csv?by=day&since=2026-11-28&until=2026-11-30")
    assert response.code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=UTF-8"
    assert response.headers["Content-Disposition"] == 'attachment; filename="tempdl-day-2026-11-28-2026-11-30.csv"'
    assert list(csv.reader(io.StringIO(response.body.decode()))) == [
        ["day", "links_issued", "attempts", "ok", "partial", "refused", "bytes_sent"],
        ["2026-11-28", "1", "2", "1", "0", "0", "300000"],
        ["2026-11-29", "2", "5", "1", "1", "2", "2400"],
        ["2026-11-30", "2", "2", "1", "0", "1", "13"],
    ]


@pytest.mark.gen_test
async def test_stats_data_refuses_bad_parameters(admin):
    response = await admin("/admin/stats.json?by=weekday")
    assert response.code == 400
    assert json.loads(response.body)["reason"] == "bad_request"
    assert (await admin("/admin/stats.csv?since=yesterday")).code == 400


@pytest.mark.gen_test
@pytest.mark.parametrize("by", ["day", "file", "recipient", "outcome"])
async def test_stats_json_and_the_cli_give_the_same_report(admin, history, settings, tmp_path, by):
    query = "since=2026-11-28&until=2026-11-30"
    served = json.loads((await admin(f"/admin/stats.json?{query}&by={by}")).body)
    env = {
        "PATH": "/usr/bin:/bin",
        "TEMPDL_FILES_DIR": str(settings.files_dir),
        "TEMPDL_DATA_DIR": str(settings.data_dir),
    }
    argv = ["stats", "--config", str(tmp_path / "tempdl.toml"), "--format", "json", "--by", by]
    printed = subprocess.run(
        [sys.executable, str(SERVER), *argv, "--since", "2026-11-28", "--until", "2026-11-30"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert printed.returncode == 0, printed.stderr
    assert json.loads(printed.stdout) == served
    assert served["totals"]["attempts"] == 9


# --- metrics ------------------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_metrics_in_prometheus_text_format(admin, history, app_state):
    app_state.downloads_streaming.enter("a download sending bytes")
    response = await admin("/metrics")
    assert response.code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    text = response.body.decode()
    samples = dict(re.findall(r"^(tempdl_\S+) (\S+)$", text, re.MULTILINE))
    assert samples["tempdl_links_issued_total"] == "5.0"
    assert samples['tempdl_download_attempts_total{outcome="ok"}'] == "3.0"
    assert samples['tempdl_download_attempts_total{outcome="expired"}'] == "2.0"
    assert samples['tempdl_download_attempts_total{outcome="revoked"}'] == "0.0"  # every outcome, from the start
    assert samples['tempdl_bytes_sent_total{file="InstMsiW.exe"}'] == "300000.0"
    assert samples["tempdl_downloads_in_flight"] == "1.0"
    assert "# TYPE tempdl_download_attempts_total counter" in text
    assert "# TYPE tempdl_downloads_in_flight gauge" in text


def test_each_app_has_its_own_metrics_registry(settings, audit):
    """Two apps in one process (as in these tests) must not collide in prometheus_client's global registry."""
    from prometheus_client import REGISTRY

    from tempdl.app import make_app

    make_app(settings, audit)
    make_app(settings, audit)
    assert not [name for name in REGISTRY._names_to_collectors if name.startswith("tempdl")]


@pytest.mark.gen_test
@pytest.mark.parametrize("path", ["/admin/nope", "/admin/stats.xml", "/adminx", "/metrics/x", "/admin/links/x/revoke"])
async def test_paths_beside_the_operator_pages_are_plain_404s(admin, path):
    """The operator's routes are one lazily built table under `/admin` and `/metrics`: a path in
    that space it has no page for still gets the site's 404, credentials or not."""
    response = await admin(path)
    assert response.code == 404
    assert "WWW-Authenticate" not in response.headers
    assert "Not found." in response.body.decode()
