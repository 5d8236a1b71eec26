"""`make_app(settings, audit)`: the one routes table, and the one place handlers get their tools;
`TempdlApp.reload` rebuilds it from new settings (SIGHUP)."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field

from tornado.httputil import RequestStartLine
from tornado.web import Application, OutputTransform

from tempdl.audit.log import AuditLog
from tempdl.config.settings import Settings
from tempdl.links.access import Gate
from tempdl.links.catalog import Catalog
from tempdl.links.issuing import DOWNLOAD_ROUTE, Issuer
from tempdl.links.tokens import LinkSigner
from tempdl.timeutil import Clock, utc_now
from tempdl.web.access_log import log_request
from tempdl.web.handlers.base import BaseHandler
from tempdl.web.handlers.basic_auth import FailedLogins
from tempdl.web.handlers.download import DownloadHandler
from tempdl.web.handlers.health import HealthHandler
from tempdl.web.handlers.wechat import ReplyMemory, WeChatHandler, wechat_handler_arguments
from tempdl.web.inflight import InFlight
from tempdl.web.operator_routes import OPERATOR_PATHS, OperatorReports, OperatorRoutes
from tempdl.web.streams import Streams
from tempdl.web.templates import PackageLoader
from tempdl.web.throttle import RateLimiter
from tempdl.wechat.conversation import Conversation
from tempdl.wechat.replay import RetryMemory
from tempdl.wechat.signature import query_argument, query_signed


class ServerHeader(OutputTransform):
    """Say "tempdl" in the Server header: no need to tell scanners which Tornado version runs."""

    def transform_first_chunk(self, status_code, headers, chunk, finishing):
        headers["Server"] = "tempdl"
        return status_code, headers, chunk


class NotFoundHandler(BaseHandler):
    def prepare(self) -> None:
        self.send_error(404)


@dataclass(frozen=True)
class AppState:
    """What an app's requests share while it runs, handed in by whoever needs to look at it:
    `serve` waits on `requests_in_flight` before it stops; tests read the others. All of it
    outlives a reload of the config."""

    requests_in_flight: InFlight = field(default_factory=InFlight)
    """Download requests, served or refused, until their audit row is written."""
    downloads_streaming: Streams = field(default_factory=Streams)
    """Downloads sending bytes right now: what `limits.max_concurrent_downloads`, the
    `/metrics` gauge and the dashboard's "now downloading" count."""
    wechat_replies: ReplyMemory = field(default_factory=RetryMemory)
    """The reply to each WeChat message, shared by its resends."""
    failed_logins: FailedLogins = field(default_factory=FailedLogins)
    """Wrong admin passwords per address: a reload does not forgive them."""


XSRF_COOKIE = {"httponly": True, "samesite": "Strict", "path": "/admin/"}
"""The `_xsrf` cookie the dashboard's forms are checked against: for the admin pages only."""


class TempdlApp(Application):
    """The routes table, built from one `Settings`; `reload` swaps in one built from another.

    Every handler is handed its collaborators (catalog, signer, gate, limits...) by the routes
    table, so the table is the one holder of what the settings say. A reload builds the whole
    new table first (nothing changes if that fails) and then replaces the old in one step on
    the event loop: a request already running keeps the collaborators it started with (a
    download goes on with the file and limits it was granted), the next one gets the new ones.
    """

    def __init__(self, settings: Settings, audit: AuditLog, clock: Clock, state: AppState) -> None:
        self.config = settings
        self.audit = audit
        self.clock = clock
        self.state = state
        self.reports = OperatorReports(audit, clock, state.downloads_streaming, state.failed_logins)
        self._wechat: dict | None = None
        super().__init__(
            self._routes(settings),
            template_loader=PackageLoader(),
            log_function=log_request,
            default_handler_class=NotFoundHandler,
            transforms=[ServerHeader],
            xsrf_cookie_kwargs=XSRF_COOKIE,
        )

    def reload(self, settings: Settings) -> None:
        """Serve the next requests with `settings`; raises (changing nothing) if they cannot be built."""
        router = self.wildcard_router
        fresh = type(router)(self, self._routes(settings))  # parses every rule before anything changes
        router.rules = fresh.rules
        self.config = settings

    def unsigned_wechat_request(self, start_line: RequestStartLine) -> bool:
        """Whether a request for the WeChat path lacks WeChat's signature. The HTTP server asks
        before it refuses a body over the size limit: SPEC checks the signature before anything
        else, so a forged oversized message is a 403, a genuine one a 413."""
        url = urllib.parse.urlsplit(start_line.path)
        wechat = self.config.wechat
        return url.path == wechat.path and not query_signed(wechat.token or "", query_argument(url.query))

    def _routes(self, settings: Settings) -> list:
        audit, clock, state = self.audit, self.clock, self.state
        catalog = Catalog(settings.files_dir, settings.files)
        signer = LinkSigner(settings.secret_keys)
        issuer = Issuer(settings, audit, signer)
        conversation = Conversation(catalog, issuer, welcome=settings.wechat.welcome)
        wechat = wechat_handler_arguments(settings.wechat, conversation, clock, state.wechat_replies)
        if self._wechat is not None and self._wechat["wechat"].max_clock_skew == settings.wechat.max_clock_skew:
            wechat["nonces"] = self._wechat["nonces"]  # a reload must not make spent nonces good again
        self._wechat = wechat
        download = {
            "gate": Gate(settings, audit, signer, catalog),
            "audit": audit,
            "clock": clock,
            "requests_in_flight": state.requests_in_flight,
            "downloads_streaming": state.downloads_streaming,
            "shared_limiter": RateLimiter(settings.limits.total_rate) if settings.limits.total_rate else None,
            "use_sendfile": settings.sendfile,
            "serve_mode": settings.serve_mode,
            "x_accel_prefix": settings.x_accel_prefix,
        }
        return [
            (settings.wechat.path, WeChatHandler, wechat),
            (DOWNLOAD_ROUTE + r"([^/]*)", DownloadHandler, download),
            (r"/healthz", HealthHandler, {"audit": audit}),
            (OPERATOR_PATHS, OperatorRoutes(self, settings, catalog, issuer, audit, self.reports)),
        ]


def make_app(
    settings: Settings,
    audit: AuditLog,
    *,
    clock: Clock = utc_now,
    state: AppState | None = None,
) -> TempdlApp:
    return TempdlApp(settings, audit, clock, state if state is not None else AppState())
