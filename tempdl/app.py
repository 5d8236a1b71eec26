"""`make_app(settings, audit)`: the one routes table, and the one place handlers get their tools."""

from __future__ import annotations

import logging
import re
from typing import Any

from tornado.web import Application, OutputTransform, RequestHandler

from tempdl.access import Gate
from tempdl.audit import AuditLog
from tempdl.catalog import Catalog
from tempdl.config import Settings
from tempdl.conversation import Conversation
from tempdl.handlers.admin import admin_routes
from tempdl.handlers.base import BaseHandler
from tempdl.handlers.download import DownloadHandler
from tempdl.handlers.health import HealthHandler
from tempdl.handlers.wechat import WeChatHandler, wechat_handler_arguments
from tempdl.inflight import InFlight
from tempdl.issuing import DOWNLOAD_ROUTE, Issuer
from tempdl.templates import PackageLoader
from tempdl.throttle import RateLimiter
from tempdl.timeutil import Clock, utc_now
from tempdl.tokens import LinkSigner

access_log = logging.getLogger("tempdl.access")


class ServerHeader(OutputTransform):
    """Say "tempdl" in the Server header: no need to tell scanners which Tornado version runs."""

    def transform_first_chunk(self, status_code, headers, chunk, finishing):
        headers["Server"] = "tempdl"
        return status_code, headers, chunk


class NotFoundHandler(BaseHandler):
    def prepare(self) -> None:
        self.send_error(404)


# Near misses of the download route still carry a live token: `//api/get_file/…`, `/API/GET_FILE/…`.
_DOWNLOAD_ROUTE_ANYWHERE = re.compile(r"get(?:_|%5f)file", re.IGNORECASE)
# What a token looks like (payload.timestamp.signature), wherever someone pasted one.
_TOKEN_SHAPED = re.compile(r"[\w-]+\.[\w-]{4,}\.[\w-]{20,}")


def safe_path(path: str) -> str:
    """The request path as it may be logged: a download token is a credential, so it is cut."""
    if path.startswith(DOWNLOAD_ROUTE):
        return DOWNLOAD_ROUTE + "…"
    route = _DOWNLOAD_ROUTE_ANYWHERE.search(path)
    if route:
        return path[: route.end()] + "/…"
    return _TOKEN_SHAPED.sub("…", path[:200])


def log_request(handler: RequestHandler) -> None:
    """One line per request, key=value, without query strings (they carry openids) or tokens."""
    status = handler.get_status()
    level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    fields = [
        f"method={handler.request.method}",
        f"path={safe_path(handler.request.path)}",
        f"status={status}",
        f"ms={1000.0 * handler.request.request_time():.1f}",
        f"ip={handler.request.remote_ip}",
    ]
    attempt = getattr(handler, "attempt", None)
    if attempt is not None:
        fields += [f"attempt={attempt.id}", f"outcome={attempt.outcome}", f"bytes={attempt.bytes_sent}"]
    access_log.log(level, "event=request %s", " ".join(fields))


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
