"""Operator pages: `GET /admin/` (dashboard), `/admin/stats.json` and `.csv` (the `stats` report as
data), and `/metrics` (Prometheus).

All sit behind HTTP Basic auth (user `admin`, password `admin.password`) and answer 404 while no
password is set. The figures come from `tempdl.reports.stats`, the same queries as `python server.py
stats`, so the page, the data and the command line always agree. The queries run on one thread of
their own: a dashboard refresh never waits behind, or delays, the audit writes of downloads, and
two refreshes at once queue up instead of both loading the database.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import logging
import re
import secrets
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from tempdl.config.settings import Settings
from tempdl.links import refusals
from tempdl.links.refusals import Refusal
from tempdl.reports import chart as dashboard_view
from tempdl.reports import formats as report_format
from tempdl.reports.period import Period
from tempdl.reports.stats import BREAKDOWNS, build_dashboard, build_report
from tempdl.timeutil import Clock
from tempdl.web.console import Console, live_json
from tempdl.web.handlers.base import BaseHandler
from tempdl.web.handlers.basic_auth import BasicAuthMixin, FailedLogins
from tempdl.web.inflight import InFlight

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry  # loaded on the first scrape only

T = TypeVar("T")
log = logging.getLogger("tempdl.admin")

DASHBOARD_DAYS = 30
MAX_DASHBOARD_DAYS = 366
TOP_RECIPIENTS = 20
RECENT_ATTEMPTS = 50
QUICK_RANGES = (7, 30, 90, 365)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

# No external anything: the page is HTML with inline CSS and SVG, and its one inline script (the
# "now downloading" poll, the copy button) runs only with the nonce of this response.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; connect-src 'self'; script-src 'nonce-{nonce}'"
)

BAD_DATE = Refusal(
    "bad_request", 400, None, "日期格式应为 YYYY-MM-DD，例如 2026-11-30。", "Dates must look like 2026-11-30."
)
SINCE_AFTER_UNTIL = Refusal(
    "bad_request", 400, None, "开始日期晚于结束日期。", "The since date is after the until date."
)
BAD_BREAKDOWN = Refusal(
    "bad_request",
    400,
    None,
    "by 只能是 day、file、recipient 或 outcome。",
    "by must be one of day, file, recipient, outcome.",
)
RANGE_TOO_LONG = Refusal(
    "bad_request",
    400,
    None,
    f"仪表板最多显示 {MAX_DASHBOARD_DAYS} 天；更长的时间段请用 stats.csv 或 python server.py stats。",
    f"The dashboard shows at most {MAX_DASHBOARD_DAYS} days; for longer periods use stats.csv or "
    "python server.py stats.",
)


class BadReportRequest(Exception):
    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.english)
        self.refusal = refusal


class ReportUnavailable(Exception):
    """The audit database did not answer a report query."""


class Reports:
    """What the operator pages share: the audit engine, settings, clock, query thread and metrics."""

    def __init__(self, settings: Settings, engine: Engine, clock: Clock, downloads_streaming: InFlight) -> None:
        self.settings = settings
        self.engine = engine
        self.clock = clock
        self._downloads_streaming = downloads_streaming  # the gauge on /metrics
        self._registry: CollectorRegistry | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tempdl-reports")

    @property
    def registry(self) -> CollectorRegistry:
        """The Prometheus registry, built on the first scrape: prometheus_client stays out of
        memory on servers nobody scrapes."""
        if self._registry is None:
            from tempdl.reports.metrics import make_registry

            self._registry = make_registry(self.engine, self._downloads_streaming)
        return self._registry

    async def run(self, function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run a blocking report function on the report thread."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, functools.partial(function, *args, **kwargs))
        except DBAPIError as error:
            raise ReportUnavailable(str(error.orig)) from error

    def today(self) -> datetime.date:
        return self.clock().astimezone(self.settings.zone).date()


class AdminHandler(BasicAuthMixin, BaseHandler):
    def initialize(self, *, reports: Reports, failed_logins: FailedLogins) -> None:
        self.reports = reports
        self.failed_logins = failed_logins

    def basic_auth_password(self) -> str | None:
        return self.reports.settings.admin_password

    def now(self) -> float:
        return self.reports.clock().timestamp()

    def set_default_headers(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("X-Frame-Options", "DENY")
        self.set_header("Referrer-Policy", "no-referrer")
        self.script_nonce = secrets.token_urlsafe(16)
        self.set_header("Content-Security-Policy", CONTENT_SECURITY_POLICY.format(nonce=self.script_nonce))

    def _date_argument(self, name: str) -> datetime.date | None:
        text = self.get_query_argument(name, "").strip()
        if not text:
            return None
        try:
            if not _DATE.fullmatch(text):
                raise ValueError(text)
            return datetime.date.fromisoformat(text)
        except ValueError:
            raise BadReportRequest(BAD_DATE) from None

    def period_argument(self, *, default_days: int | None = None) -> Period:
        """`since`/`until` (local days, both included) from the query string.

        With `default_days`, missing ends make the last that many days up to today, and the
        period may not be longer than the dashboard can draw.
        """
        since, until = self._date_argument("since"), self._date_argument("until")
        if default_days is not None:
            until = until or max(self.reports.today(), since or datetime.date.min)
            since = since or until - datetime.timedelta(days=default_days - 1)
        try:
            period = Period(since, until, self.reports.settings.zone)
        except ValueError:
            raise BadReportRequest(SINCE_AFTER_UNTIL) from None
        if default_days is not None and since and until and (until - since).days >= MAX_DASHBOARD_DAYS:
            raise BadReportRequest(RANGE_TOO_LONG)
        return period

    async def report(self, function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T | None:
        """The result of a report query, or None once a 503 page has been written."""
        try:
            return await self.reports.run(function, *args, **kwargs)
        except ReportUnavailable as error:
            log.warning("event=report_unavailable request_id=%s error=%s", self.request_id, error)
            self.write_refusal(refusals.UNAVAILABLE)
            return None


def _period_query(since: datetime.date | None, until: datetime.date | None, **extra: str) -> str:
    pairs = {"since": since.isoformat() if since else "", "until": until.isoformat() if until else "", **extra}
    return urllib.parse.urlencode({key: value for key, value in pairs.items() if value})


class DashboardHandler(AdminHandler):
    """`GET /admin/`: totals, a chart per day, files, top recipients, the latest attempts; and the
    console: a form to issue a link, the latest links (each with a revoke button), the budgets,
    and the downloads streaming now."""

    def initialize(self, *, reports: Reports, failed_logins: FailedLogins, console: Console) -> None:  # type: ignore[override]
        super().initialize(reports=reports, failed_logins=failed_logins)
        self.console = console

    async def get(self) -> None:
        if not self.request.path.endswith("/"):
            self.redirect("/admin/")
            return
        try:
            period = self.period_argument(default_days=DASHBOARD_DAYS)
        except BadReportRequest as error:
            self.write_refusal(error.refusal)
            return
        started = time.perf_counter()
        dashboard = await self.report(
            build_dashboard, self.reports.engine, period, top_recipients=TOP_RECIPIENTS, recent=RECENT_ATTEMPTS
        )
        if dashboard is None:
            return
        console = await self.report(self.console.view, self.reports.engine, self.reports.settings, self.reports.clock())
        if console is None:
            return
        today = self.reports.today()
        self.render(
            "admin.html",
            dashboard=dashboard,
            totals=dashboard.totals,
            period=period,
            timezone=period.zone.key,
            chart=dashboard_view.bytes_per_day_chart(dashboard.days),
            quick_ranges=[
                (days, "?" + _period_query(today - datetime.timedelta(days=days - 1), today)) for days in QUICK_RANGES
            ],
            exports=[
                (f"{by}.{data_format}", f"stats.{data_format}?" + _period_query(period.since, period.until, by=by))
                for data_format in ("csv", "json")
                for by in BREAKDOWNS
            ],
            generated_at=dashboard_view.local_time(self.reports.clock(), period.zone),
            elapsed=time.perf_counter() - started,
            human_bytes=report_format.human_bytes,
            period_text=report_format.period_text,
            short_recipient=dashboard_view.short_recipient,
            outcome_class=dashboard_view.outcome_class,
            local_time=functools.partial(dashboard_view.local_time, zone=period.zone),
            thousands=dashboard_view.thousands,
            console=console,
            live=live_json(self.console.streams.views()),
            script_nonce=self.script_nonce,
        )


class StatsDataHandler(AdminHandler):
    """`GET /admin/stats.json|csv?since=&until=&by=`: what `stats --format json|csv` prints."""

    def initialize(self, *, reports: Reports, failed_logins: FailedLogins, data_format: str) -> None:  # type: ignore[override]
        super().initialize(reports=reports, failed_logins=failed_logins)
        self.data_format = data_format

    def wants_json(self) -> bool:
        return self.data_format == "json" or super().wants_json()

    async def get(self) -> None:
        by = self.get_query_argument("by", "day")
        try:
            if by not in BREAKDOWNS:
                raise BadReportRequest(BAD_BREAKDOWN)
            period = self.period_argument()
        except BadReportRequest as error:
            self.write_refusal(error.refusal)
            return
        report = await self.report(build_report, self.reports.engine, period, by)
        if report is None:
            return
        if self.data_format == "json":
            self.set_header("Content-Type", "application/json; charset=UTF-8")
            self.write(report_format.as_json(report))
            return
        name = "-".join(["tempdl", by, *(day.isoformat() for day in (period.since, period.until) if day)])
        self.set_header("Content-Type", "text/csv; charset=UTF-8")
        self.set_header("Content-Disposition", f'attachment; filename="{name}.csv"')
        self.write(report_format.as_csv(report))


class MetricsHandler(AdminHandler):
    """`GET /metrics`: Prometheus text format, counted from the audit database at scrape time."""

    def set_default_headers(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")

    async def get(self) -> None:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        body = await self.report(generate_latest, self.reports.registry)
        if body is None:
            return
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.write(body)
