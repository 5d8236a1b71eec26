"""The console's actions over real HTTP: issue and revoke behind Basic auth and `_xsrf`, live downloads."""

from __future__ import annotations

import asyncio
import datetime
import html
import json
import logging
import re
import urllib.parse

import pytest
import segno

from tempdl.web.handlers import basic_auth
from tempdl.web.handlers.admin_actions import QR_OPTIONS
from tests.support import rows

PASSWORD = "correct horse 电池"


@pytest.fixture
def config_text() -> str:
    return (
        f'timezone = "Asia/Shanghai"\nlink_ttl = 600\n[admin]\npassword = "{PASSWORD}"\n'
        "[limits]\nrecipient_daily_bytes = 1000000\nrate_per_download = 100000\n"
    )


@pytest.fixture
def admin(fetch):
    async def _admin(path: str, **kwargs):
        return await fetch(path, auth_username="admin", auth_password=PASSWORD, **kwargs)

    return _admin


@pytest.fixture
def xsrf(admin):
    """`await xsrf()` -> (cookie header, form token), read from the dashboard as a browser would."""

    async def _xsrf() -> tuple[str, str]:
        page = await admin("/admin/")
        assert page.code == 200
        cookie = page.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/admin/" in cookie
        value = re.match(r"_xsrf=([^;]+)", cookie).group(1)
        field = re.search(r'name="_xsrf" value="([^"]+)"', page.body.decode()).group(1)
        return f"_xsrf={value}", field

    return _xsrf


@pytest.fixture
def post(admin, xsrf):
    """`await post(path, **form)`: a form POST carrying the dashboard's `_xsrf` cookie and field."""

    async def _post(path: str, *, with_xsrf: bool = True, **form: str):
        cookie, token = await xsrf()
        if with_xsrf:
            form = {"_xsrf": token, **form}
        return await admin(
            path,
            method="POST",
            body=urllib.parse.urlencode(form),
            headers={"Cookie": cookie},
            follow_redirects=False,
        )

    return _post


def link_on(page: str) -> str:
    return html.unescape(re.search(r'<input id="link" readonly value="([^"]+)"', page).group(1))


@pytest.mark.gen_test
async def test_issuing_from_the_dashboard_records_an_admin_issuance_and_shows_link_and_qr(
    post, fetch, settings, clock, caplog
):
    caplog.set_level(logging.INFO, logger="tempdl.admin")
    response = await post("/admin/links", file_id="hello.txt", recipient="friend-alice", ttl="120", max_downloads="2")
    assert response.code == 200
    page = response.body.decode()
    url = link_on(page)
    assert url.startswith(settings.public_url + "/api/get_file/")
    # the QR code is segno's own drawing of exactly that link
    qr = re.search(r'<div class="qr" id="qr">(.*?)</div>', page, re.S).group(1)
    assert qr == segno.make(url, error="m").svg_inline(**QR_OPTIONS)
    [row] = rows(
        settings.database_url,
        "SELECT id, file_id, recipient, channel, max_downloads, created_at, expires_at FROM issuances",
    )
    assert (row["file_id"], row["recipient"], row["channel"], row["max_downloads"]) == (
        "hello.txt",
        "friend-alice",
        "admin",
        2,
    )
    assert row["expires_at"] - row["created_at"] == datetime.timedelta(seconds=120)
    assert f"#{row['id']}" in page
    issued = [r.getMessage() for r in caplog.records if "event=admin_issued" in r.getMessage()]
    assert issued == [
        f"event=admin_issued issuance={row['id']} file=hello.txt channel=admin ttl=120 max_downloads=2 ip=127.0.0.1"
    ]
    assert "friend-alice" not in issued[0]  # recipients stay out of the log
    download = await fetch(url)
    assert download.code == 200 and download.body == "Hello 你好\n".encode()


@pytest.mark.gen_test
async def test_defaults_apply_when_ttl_and_max_downloads_are_left_blank(post, settings):
    response = await post("/admin/links", file_id="hello.txt", recipient="", ttl="", max_downloads="")
    assert response.code == 200
    [row] = rows(settings.database_url, "SELECT recipient, max_downloads, created_at, expires_at FROM issuances")
    assert (row["recipient"], row["max_downloads"]) == (None, None)
    assert row["expires_at"] - row["created_at"] == datetime.timedelta(seconds=600)  # link_ttl


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "form",
    [
        {"file_id": "nope"},
        {"file_id": "../secret"},
        {"file_id": "hello.txt", "ttl": "0"},
        {"file_id": "hello.txt", "ttl": "-5"},
        {"file_id": "hello.txt", "max_downloads": "two"},
        {"file_id": "hello.txt", "ttl": "１２"},  # full-width digits
        {"file_id": "hello.txt", "recipient": "x" * 129},
    ],
)
async def test_a_bad_form_is_400_and_issues_nothing(post, settings, form):
    response = await post("/admin/links", **form)
    assert response.code == 400
    assert rows(settings.database_url, "SELECT id FROM issuances") == []


@pytest.mark.gen_test
@pytest.mark.parametrize("path", ["/admin/links", "/admin/links/1/revoke"])
async def test_a_post_without_a_matching_xsrf_is_403_and_changes_nothing(post, admin, xsrf, issue_link, settings, path):
    await issue_link("hello.txt")
    assert (await post(path, with_xsrf=False, file_id="hello.txt")).code == 403
    # a field that does not match the cookie (another browser's token) is refused too
    _, token = await xsrf()
    cookie, _ = await xsrf()
    forged = await admin(
        path,
        method="POST",
        body=urllib.parse.urlencode({"_xsrf": token, "file_id": "hello.txt"}),
        headers={"Cookie": cookie},
        follow_redirects=False,
    )
    assert forged.code == 403
    assert [tuple(r) for r in rows(settings.database_url, "SELECT channel, revoked_at FROM issuances")] == [
        ("cli", None)
    ]


@pytest.mark.gen_test
async def test_a_post_needs_the_password_and_the_lockout_covers_it(fetch, monkeypatch):
    monkeypatch.setattr(basic_auth, "FAILED_LOGINS_ALLOWED", 3)
    body = urllib.parse.urlencode({"file_id": "hello.txt"})
    assert (await fetch("/admin/links", method="POST", body=body)).code == 401
    for _ in range(3):
        wrong = await fetch("/admin/links", method="POST", body=body, auth_username="admin", auth_password="guess")
        assert wrong.code in (401, 429)
    right = await fetch("/admin/links", method="POST", body=body, auth_username="admin", auth_password=PASSWORD)
    assert right.code == 429 and "Retry-After" in right.headers


@pytest.mark.gen_test
async def test_revoking_from_the_dashboard_stops_the_link_and_shows_it_revoked(
    post, admin, fetch, issue_link, settings, caplog
):
    caplog.set_level(logging.INFO, logger="tempdl.admin")
    path = await issue_link("hello.txt")
    [issuance] = rows(settings.database_url, "SELECT id FROM issuances")
    page = (await admin("/admin/")).body.decode()
    assert f'action="/admin/links/{issuance["id"]}/revoke"' in page
    response = await post(f"/admin/links/{issuance['id']}/revoke")
    assert response.code == 303 and response.headers["Location"] == "/admin/#links"
    [row] = rows(settings.database_url, "SELECT revoked_at FROM issuances")
    assert row["revoked_at"] is not None
    assert [r.getMessage() for r in caplog.records if "event=admin_revoked" in r.getMessage()] == [
        f"event=admin_revoked issuance={issuance['id']} ip=127.0.0.1"
    ]
    assert (await fetch(path)).code == 410
    page = (await admin("/admin/")).body.decode()
    assert f'action="/admin/links/{issuance["id"]}/revoke"' not in page
    assert re.search(rf'<tr data-issuance="{issuance["id"]}">.*已撤销 revoked', page)


@pytest.mark.gen_test
async def test_revoking_a_link_that_does_not_exist_is_404(post):
    assert (await post("/admin/links/999/revoke")).code == 404


@pytest.mark.gen_test
async def test_live_json_lists_the_download_streaming_now(admin, fetch, issue_link, app_state, http_client, base_url):
    path = await issue_link("InstMsiW.exe", recipient="oyORnuP8q7ou2gfYjqLzSIWZf0rs")  # 300 000 bytes at 100 kB/s
    download = asyncio.ensure_future(fetch(path))
    while not app_state.downloads_streaming.views() or app_state.downloads_streaming.views()[0].sent == 0:
        await asyncio.sleep(0.05)
    live = await admin("/admin/live.json")
    assert live.code == 200 and live.headers["Content-Type"] == "application/json; charset=UTF-8"
    [entry] = live_downloads(live)
    assert (entry["file_id"], entry["recipient"]) == ("InstMsiW.exe", "oyORnu…f0rs")
    assert 0 < entry["bytes_sent"] < 300_000 and entry["rate"] > 0
    finished = await download
    assert finished.code == 200 and len(finished.body) == 300_000
    assert live_downloads(await admin("/admin/live.json")) == []


def live_downloads(response) -> list[dict]:
    return json.loads(response.body)["downloads"]


@pytest.mark.gen_test
async def test_live_json_needs_the_password(fetch):
    assert (await fetch("/admin/live.json")).code == 401


@pytest.mark.gen_test
async def test_gauge_for_the_recipient_nearest_the_daily_allowance(admin, fetch, issue_link):
    path = await issue_link("hello.txt", recipient="oyORnuP8q7ou2gfYjqLzSIWZf0rs")
    assert (await fetch(path)).code == 200
    page = (await admin("/admin/")).body.decode()
    gauge = re.search(
        r'<div class="gauge[^"]*" data-key="limits.recipient_daily_bytes">(.*?)</div>\s*</div>', page, re.S
    )
    assert gauge is not None
    assert "oyORnu…f0rs" in gauge.group(1) and 'aria-valuenow="13"' in gauge.group(1)
    assert 'aria-valuemax="1000000"' in gauge.group(1)
