"""`make_app(settings, audit)`: the one routes table, and the one place handlers get their tools."""

from __future__ import annotations

from typing import Any

from tornado.web import Application, OutputTransform

from tempdl.audit.log import AuditLog
from tempdl.config.settings import Settings
from tempdl.links.access import Gate
from tempdl.links.catalog import Catalog
from tempdl.links.issuing import DOWNLOAD_ROUTE, Issuer
from tempdl.links.tokens import LinkSigner
from tempdl.timeutil import Clock, utc_now
from tempdl.web.access_log import log_request
from tempdl.web.handlers.admin import admin_routes
from tempdl.web.handlers.base import BaseHandler
from tempdl.web.handlers.download import DownloadHandler
from tempdl.web.handlers.health import HealthHandler
from tempdl.web.handlers.wechat import WeChatHandler, wechat_handler_arguments
from tempdl.web.inflight import InFlight
from tempdl.web.templates import PackageLoader
from tempdl.web.throttle import RateLimiter
from tempdl.wechat.conversation import Conversation


class ServerHeader(OutputTransform):
    """Say "tempdl" in the Server header: no need to tell scanners which Tornado version runs."""

    def transform_first_chunk(self, status_code, headers, chunk, finishing):
        headers["Server"] = "tempdl"
        return status_code, headers, chunk


class NotFoundHandler(BaseHandler):
    def prepare(self) -> None:
        self.send_error(404)


def make_app(
    settings: Settings,
    audit: AuditLog,
    *,
    clock: Clock = utc_now,
    inflight: InFlight | None = None,
    **overrides: Any,
) -> Application:
    inflight = inflight if inflight is not None else InFlight()
    catalog = Catalog(settings.files_dir, settings.files)
    signer = LinkSigner(settings.secret_keys)
    issuer = Issuer(settings, audit, signer)
    gate = Gate(settings, audit, signer, catalog)
    conversation = Conversation(catalog, issuer, welcome=settings.wechat.welcome)
    wechat = wechat_handler_arguments(settings.wechat, conversation, clock)
    streams = InFlight()
    routes = [
        (settings.wechat.path, WeChatHandler, wechat),
        (
            DOWNLOAD_ROUTE + r"([^/]*)",
            DownloadHandler,
            {
                "gate": gate,
                "audit": audit,
                "clock": clock,
                "inflight": inflight,
                "streams": streams,
                "shared_limiter": RateLimiter(settings.limits.total_rate) if settings.limits.total_rate else None,
                "use_sendfile": settings.sendfile,
                "serve_mode": settings.serve_mode,
                "x_accel_prefix": settings.x_accel_prefix,
            },
        ),
        (r"/healthz", HealthHandler, {"audit": audit}),
        *admin_routes(settings, audit, clock=clock, inflight=streams),  # the gauge counts bytes in flight
    ]
    app_settings: dict[str, Any] = {
        "template_loader": PackageLoader(),
        "log_function": log_request,
        "default_handler_class": NotFoundHandler,
        "transforms": [ServerHeader],
        "tempdl_settings": settings,
        "tempdl_issuer": issuer,
        "tempdl_catalog": catalog,
        "tempdl_inflight": inflight,
        "tempdl_wechat_retries": wechat["retries"],
        "tempdl_streams": streams,
    }
    app_settings.update(overrides)
    return Application(routes, **app_settings)
