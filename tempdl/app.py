"""`make_app(settings, audit)`: the one routes table, and the one place handlers get their tools."""

from __future__ import annotations

from dataclasses import dataclass, field

from tornado.web import Application, OutputTransform

from tempdl.audit.log import AuditLog
from tempdl.config.settings import Settings
from tempdl.links.access import Gate
from tempdl.links.catalog import Catalog
from tempdl.links.issuing import DOWNLOAD_ROUTE, Issuer
from tempdl.links.tokens import LinkSigner
from tempdl.timeutil import Clock, utc_now
from tempdl.web.access_log import log_request
from tempdl.web.handlers.admin import DashboardHandler, MetricsHandler, Reports, StatsDataHandler
from tempdl.web.handlers.base import BaseHandler
from tempdl.web.handlers.basic_auth import FailedLogins
from tempdl.web.handlers.download import DownloadHandler
from tempdl.web.handlers.health import HealthHandler
from tempdl.web.handlers.wechat import ReplyMemory, WeChatHandler, wechat_handler_arguments
from tempdl.web.inflight import InFlight
from tempdl.web.templates import PackageLoader
from tempdl.web.throttle import RateLimiter
from tempdl.wechat.conversation import Conversation
from tempdl.wechat.replay import RetryMemory


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
    `serve` waits on `requests_in_flight` before it stops; tests read the others."""

    requests_in_flight: InFlight = field(default_factory=InFlight)
    """Download requests, served or refused, until their audit row is written."""
    downloads_streaming: InFlight = field(default_factory=InFlight)
    """Downloads sending bytes right now: what `limits.max_concurrent_downloads` and the
    `/metrics` gauge count."""
    wechat_replies: ReplyMemory = field(default_factory=RetryMemory)
    """The reply to each WeChat message, shared by its resends."""


def make_app(
    settings: Settings,
    audit: AuditLog,
    *,
    clock: Clock = utc_now,
    state: AppState | None = None,
) -> Application:
    state = state if state is not None else AppState()
    catalog = Catalog(settings.files_dir, settings.files)
    signer = LinkSigner(settings.secret_keys)
    conversation = Conversation(catalog, Issuer(settings, audit, signer), welcome=settings.wechat.welcome)
    wechat = wechat_handler_arguments(settings.wechat, conversation, clock, state.wechat_replies)
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
    operator = {
        "reports": Reports(settings, audit.engine, clock, state.downloads_streaming),
        "failed_logins": FailedLogins(),
    }
    routes = [
        (settings.wechat.path, WeChatHandler, wechat),
        (DOWNLOAD_ROUTE + r"([^/]*)", DownloadHandler, download),
        (r"/healthz", HealthHandler, {"audit": audit}),
        (r"/admin/?", DashboardHandler, operator),
        (r"/admin/stats\.json", StatsDataHandler, {**operator, "data_format": "json"}),
        (r"/admin/stats\.csv", StatsDataHandler, {**operator, "data_format": "csv"}),
        (r"/metrics", MetricsHandler, operator),
    ]
    return Application(
        routes,
        template_loader=PackageLoader(),
        log_function=log_request,
        default_handler_class=NotFoundHandler,
        transforms=[ServerHeader],
    )
