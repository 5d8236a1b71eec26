"""The operator's console acts: `POST /admin/links` (issue), `POST /admin/links/{id}/revoke`, and
`GET /admin/live.json` (the downloads streaming now, which the dashboard polls).

Behind the same Basic auth and failed-login lockout as every operator page; the forms also carry
Tornado's `_xsrf` token (cookie and field must match), so another site cannot make a logged-in
operator's browser issue or revoke anything. Each action is one audit change (an issuance with
channel `admin`, or its `revoked_at`) and one log line.
"""

from __future__ import annotations

import functools
import json
import logging

from tempdl.errors import AuditUnavailable
from tempdl.links import refusals
from tempdl.links.catalog import OfferedFile
from tempdl.links.issuing import IssuedLink
from tempdl.links.refusals import Refusal
from tempdl.reports import chart as dashboard_view
from tempdl.web.console import Console, live_json
from tempdl.web.handlers.admin import AdminHandler, Reports
from tempdl.web.handlers.basic_auth import FailedLogins

log = logging.getLogger("tempdl.admin")

RECIPIENT_MAX = 128  # the column's width
QR_OPTIONS = {"scale": 4, "border": 2, "dark": "#111", "light": "#fff", "title": "QR"}
"""How the link page draws its QR code (`segno`'s `svg_inline`); tests redraw it the same way."""


def qr_svg(url: str) -> str:
    """The link as an inline SVG QR code, drawn here: no outside service sees the link."""
    import segno  # on the first admin link only: a serving process need not carry it (1 MiB)

    return segno.make(url, error="m").svg_inline(**QR_OPTIONS)


def bad_form(chinese: str, english: str) -> Refusal:
    return Refusal("bad_request", 400, None, chinese, english)


NO_SUCH_FILE = bad_form("没有这个文件。", "No file with that id is on offer.")
BAD_NUMBER = bad_form("有效期和下载次数须为正整数。", "TTL and max downloads must be whole numbers of at least 1.")
RECIPIENT_TOO_LONG = bad_form(
    f"接收人最多 {RECIPIENT_MAX} 个字符。", f"The recipient label may have at most {RECIPIENT_MAX} characters."
)
NO_SUCH_LINK = Refusal("not_found", 404, None, "没有这个链接。", "No link with that id.")


class ConsoleHandler(AdminHandler):
    def initialize(self, *, reports: Reports, failed_logins: FailedLogins, console: Console) -> None:  # type: ignore[override]
        super().initialize(reports=reports, failed_logins=failed_logins)
        self.console = console

    def prepare(self) -> None:
        super().prepare()  # Basic auth and its lockout, for POST as for GET
        if not self._finished and self.request.method == "POST":
            self.check_xsrf_cookie()  # 403 unless the form's `_xsrf` matches the cookie


class IssueLinkHandler(ConsoleHandler):
    """`POST /admin/links`: issue a link on channel `admin`; answer a page with it and its QR code."""

    async def post(self) -> None:
        try:
            offered, recipient, ttl, max_downloads = self._form()
        except _BadForm as error:
            self.write_refusal(error.refusal)
            return
        issue = functools.partial(
            self.console.issuer.issue,
            offered,
            recipient=recipient,
            channel="admin",
            now=self.reports.clock(),
            ttl=ttl,
            max_downloads=max_downloads,
        )
        try:
            issued: IssuedLink = await self.console.audit.run(issue)
        except AuditUnavailable:
            self.write_refusal(refusals.UNAVAILABLE)
            return
        log.info(
            "event=admin_issued issuance=%d file=%s channel=admin ttl=%d max_downloads=%s ip=%s",
            issued.issuance_id,
            offered.id,
            issued.ttl,
            max_downloads or offered.max_downloads or self.reports.settings.limits.max_downloads or "none",
            self.request.remote_ip,
        )
        self.render(
            "admin_link.html",
            issued=issued,
            offered=offered,
            recipient=recipient,
            qr=qr_svg(issued.url),
            expires=dashboard_view.local_time(issued.expires_at, self.reports.settings.zone),
            script_nonce=self.script_nonce,
        )

    def _form(self) -> tuple[OfferedFile, str | None, int | None, int | None]:
        offered = self.console.catalog.by_id(self.get_body_argument("file_id", "").strip())
        if offered is None:
            raise _BadForm(NO_SUCH_FILE)
        recipient = self.get_body_argument("recipient", "").strip() or None
        if recipient is not None and len(recipient) > RECIPIENT_MAX:
            raise _BadForm(RECIPIENT_TOO_LONG)
        return offered, recipient, self._whole_number("ttl"), self._whole_number("max_downloads")

    def _whole_number(self, name: str) -> int | None:
        text = self.get_body_argument(name, "").strip()
        if not text:
            return None  # the file's own, else the configured default
        if not text.isascii() or not text.isdigit() or int(text) < 1:
            raise _BadForm(BAD_NUMBER)
        return int(text)


class _BadForm(Exception):
    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.english)
        self.refusal = refusal


class RevokeLinkHandler(ConsoleHandler):
    """`POST /admin/links/{issuance_id}/revoke`: the link stops working now; back to the dashboard."""

    async def post(self, issuance_id: str) -> None:
        audit = self.console.audit
        try:
            found = await audit.run(audit.revoke, int(issuance_id), self.reports.clock())
        except AuditUnavailable:
            self.write_refusal(refusals.UNAVAILABLE)
            return
        if not found:
            self.write_refusal(NO_SUCH_LINK)
            return
        log.info("event=admin_revoked issuance=%s ip=%s", issuance_id, self.request.remote_ip)
        self.redirect("/admin/#links", status=303)


class LiveDownloadsHandler(ConsoleHandler):
    """`GET /admin/live.json`: the downloads sending bytes now, for the dashboard to poll."""

    def wants_json(self) -> bool:
        return True

    def get(self) -> None:
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.write(json.dumps(live_json(self.console.streams.views())))
