"""The dashboard in a real browser: Debian's headless Chromium, driven by Playwright, logs in with
Basic auth and checks that the chart and the tables render, on a desktop and on a phone screen;
then works the console: issues a link, reads it back out of the QR code, downloads, revokes.

The browser is the system's (`.ci/install-browser.sh` installs it); `playwright install` is never
needed. Without it the test skips locally and fails under CI (CI=true), where it must run.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bench.gen_audit_rows import generate
from tempdl.web.handlers.admin_actions import qr_svg
from tests.support import in_ci, rows

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "browser-test"


def _why_no_browser() -> str | None:
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -r requirements.txt)"
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is missing: run .ci/install-browser.sh (Debian package chromium)"
    return None


@pytest.fixture
def chromium() -> Path:
    reason = _why_no_browser()
    if reason:
        if in_ci():
            pytest.fail(f"the browser test must run under CI: {reason}")
        pytest.skip(reason)
    return CHROMIUM


@contextlib.asynccontextmanager
async def logged_in(chromium: Path) -> AsyncIterator[Any]:
    """A Chromium context that answers the dashboard's Basic auth, on a desktop-sized screen."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            yield await browser.new_context(
                http_credentials={"username": "admin", "password": PASSWORD}, viewport={"width": 1280, "height": 900}
            )
        finally:
            await browser.close()


@pytest.fixture
def config_text() -> str:
    limits = "[limits]\nrecipient_daily_bytes = 500000000\n"  # a gauge on the screenshot
    return f'timezone = "Asia/Shanghai"\n[admin]\npassword = "{PASSWORD}"\n' + limits


@pytest.fixture
def generated(audit, settings, clock):
    """A few hundred attempts over the 30 days the dashboard shows by default."""
    return generate(settings.database_url.removeprefix("sqlite:///"), attempts=400, end=clock(), days=29, seed=5)


@pytest.mark.gen_test(timeout=120)
async def test_dashboard_renders_in_chromium(chromium, generated, http_server, base_url, tmp_path):
    requested: list[str] = []
    problems: list[str] = []
    async with logged_in(chromium) as context:
        page = await context.new_page()
        page.on("request", lambda request: requested.append(request.url))
        page.on("console", lambda message: message.type in ("error", "warning") and problems.append(message.text))
        page.on("pageerror", lambda error: problems.append(str(error)))
        response = await page.goto(base_url + "/admin/")
        assert response is not None and response.status == 200

        # the chart: 30 day columns, each with a hover <title>, most with a visible bar
        days = page.locator("svg.chart g.day")
        assert await days.count() == 30
        titles = await page.locator("svg.chart g.day > title").all_text_contents()
        assert all(re.match(r"2026-1[01]-\d\d: [\d.]+ (B|KiB|MiB|GiB) · \d+ attempts", title) for title in titles)
        heights = await page.locator("svg.chart rect.bar").evaluate_all("bars => bars.map(bar => bar.getBBox().height)")
        assert sum(height > 0 for height in heights) >= 20
        axis_labels = await page.locator("svg.chart text.y-tick").all_text_contents()
        assert axis_labels[0] == "0" and len(axis_labels) >= 3
        chart_box = await page.locator("svg.chart").bounding_box()
        assert chart_box is not None and chart_box["width"] > 600 and chart_box["height"] > 200

        # the tables
        assert await page.locator("#files tbody tr").count() == 6  # five files and "-"
        assert await page.locator("#recipients tbody tr").count() == 20
        assert await page.locator("#recent tbody tr").count() == 50
        recipients = await page.locator("#recipients tbody td.key").all_text_contents()
        assert all(re.fullmatch(r"o[\w-]{5}…[\w-]{4}|-", name) for name in recipients)
        assert "links issued" in await page.locator("section.cards").inner_text()
        await page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)

        # a phone: nothing wider than the screen except inside the scrolling table boxes
        await page.set_viewport_size({"width": 390, "height": 844})
        overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0
        chart_box = await page.locator("svg.chart").bounding_box()
        assert chart_box is not None and chart_box["width"] <= 390
        await page.screenshot(path=str(tmp_path / "dashboard-phone.png"), full_page=True)
    assert problems == []
    assert all(url.startswith(base_url) for url in requested), requested  # works offline: no external assets
    assert (tmp_path / "dashboard.png").stat().st_size > 20_000


def qr_path(url: str) -> str:
    """The `d` of the one path segno draws for `url` with the link page's options: its modules."""
    return re.search(r'<path class="qrline"[^>]* d="([^"]+)"', qr_svg(url)).group(1)


@pytest.mark.gen_test(timeout=120)
async def test_console_issues_downloads_and_revokes_in_chromium(chromium, http_server, base_url, settings):
    problems: list[str] = []
    async with logged_in(chromium) as context:
        page = await context.new_page()
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on("console", lambda message: message.type == "error" and problems.append(message.text))
        assert (await page.goto(base_url + "/admin/")).status == 200
        async with page.expect_response(lambda r: r.url.endswith("/admin/live.json")) as polled:
            pass  # the page polls "now downloading" on its own
        assert (await polled.value).status == 200

        await page.select_option("form.issue select[name=file_id]", "hello.txt")
        await page.fill("form.issue input[name=recipient]", "friend-bob")
        await page.fill("form.issue input[name=ttl]", "300")
        await page.click("form.issue button[type=submit]")
        link = await page.input_value("#link")
        assert link.startswith(settings.public_url + "/api/get_file/")
        # read the link back out of the QR code: its modules are exactly segno's for that link
        assert await page.locator("#qr svg path.qrline").get_attribute("d") == qr_path(link)

        download = await context.request.get(link)
        assert download.status == 200 and await download.body() == "Hello 你好\n".encode()

        await page.goto(base_url + "/admin/")
        row = page.locator("#issuances tbody tr").first
        issuance = await row.get_attribute("data-issuance")
        assert "friend-bob" in await row.inner_text() and "admin" in await row.inner_text()
        await row.locator("button.revoke").click()
        await page.wait_for_url(base_url + "/admin/#links")
        revoked = page.locator(f'#issuances tr[data-issuance="{issuance}"]')
        assert "revoked" in await revoked.inner_text()
        assert await revoked.locator("button.revoke").count() == 0
        assert (await context.request.get(link)).status == 410

        # the cookie alone is not enough: a POST without the form's `_xsrf` field is 403
        forged = await context.request.post(base_url + "/admin/links", form={"file_id": "hello.txt"})
        assert forged.status == 403
    assert problems == []
    assert [tuple(r) for r in rows(settings.database_url, "SELECT channel, recipient FROM issuances")] == [
        ("admin", "friend-bob")
    ]
