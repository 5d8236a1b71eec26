"""The operator's pages (`/admin/...`, `/metrics`), loaded on their first request.

A process that only answers followers (WeChat messages, downloads, landing pages) never imports
the handlers, report queries, chart and console code behind these pages: with the lazy PostgreSQL
dialect of `tempdl.audit.rollups`, a serving process's imports went from 49.2 to 46.6 MiB
(bench/RESULTS.md). The first dashboard visit or scrape pays it once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tornado import httputil
from tornado.routing import Router

if TYPE_CHECKING:
    from tornado.web import Application

    from tempdl.audit.log import AuditLog
    from tempdl.config.settings import Settings
    from tempdl.links.catalog import Catalog
    from tempdl.links.issuing import Issuer
    from tempdl.timeutil import Clock
    from tempdl.web.handlers.admin import Reports
    from tempdl.web.handlers.basic_auth import FailedLogins
    from tempdl.web.streams import Streams

OPERATOR_PATHS = r"(?:/admin(?:/.*)?|/metrics)$"
"""Every path the operator's routes answer; within it, a path none of them has is a 404 as before."""


class OperatorReports:
    """The one `Reports` (query thread, metrics registry) every reload shares, made on first use."""

    def __init__(
        self, audit: AuditLog, clock: Clock, downloads_streaming: Streams, failed_logins: FailedLogins
    ) -> None:
        self._audit = audit  # its engine (SQLAlchemy with it) is made on an operator's first request
        self._clock = clock
        self.downloads_streaming = downloads_streaming
        self.failed_logins = failed_logins
        self._reports: Reports | None = None

    def for_settings(self, settings: Settings) -> Reports:
        if self._reports is None:
            from tempdl.web.handlers.admin import Reports

            self._reports = Reports(settings, self._audit.engine, self._clock, self.downloads_streaming)
        self._reports.settings = settings
        return self._reports


class OperatorRoutes(Router):
    """The operator's routes for one `Settings`: a reload makes a new one, built on its first request."""

    def __init__(
        self,
        app: Application,
        settings: Settings,
        catalog: Catalog,
        issuer: Issuer,
        audit: AuditLog,
        shared: OperatorReports,
    ) -> None:
        self._app = app
        self._settings = settings
        self._catalog = catalog
        self._issuer = issuer
        self._audit = audit
        self._shared = shared
        self._router: Router | None = None

    def find_handler(self, request: httputil.HTTPServerRequest, **kwargs: Any) -> httputil.HTTPMessageDelegate | None:
        if self._router is None:
            self._router = self._build()
        return self._router.find_handler(request)

    def _build(self) -> Router:
        from tempdl.web.handlers.admin import DashboardHandler, MetricsHandler, StatsDataHandler
        from tempdl.web.handlers.admin_actions import Console, IssueLinkHandler, LiveDownloadsHandler, RevokeLinkHandler

        shared = self._shared
        reports = shared.for_settings(self._settings)
        operator = {"reports": reports, "failed_logins": shared.failed_logins}
        console = {**operator, "console": Console(self._catalog, self._issuer, self._audit, shared.downloads_streaming)}
        return type(self._app.wildcard_router)(  # Tornado's table of RequestHandler routes
            self._app,
            [
                (r"/admin/?", DashboardHandler, console),
                (r"/admin/stats\.json", StatsDataHandler, {**operator, "data_format": "json"}),
                (r"/admin/stats\.csv", StatsDataHandler, {**operator, "data_format": "csv"}),
                (r"/admin/links", IssueLinkHandler, console),
                (r"/admin/links/([0-9]+)/revoke", RevokeLinkHandler, console),
                (r"/admin/live\.json", LiveDownloadsHandler, console),
                (r"/metrics", MetricsHandler, operator),
            ],
        )
