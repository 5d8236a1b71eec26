"""Running the server: start-up checks, listening, and a graceful shutdown that loses no record.

On SIGTERM or SIGINT the server stops accepting, gives downloads in flight `shutdown_grace`
seconds to finish, then closes the rest (their rows become `partial` with the bytes they got),
waits for every audit write to be committed, and exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from tornado.httpserver import HTTPServer

from tempdl.app import make_app
from tempdl.audit import AuditLog
from tempdl.cli import CommandError
from tempdl.config import Settings
from tempdl.db import integrity_problem, make_engine, upgrade
from tempdl.inflight import InFlight
from tempdl.timeutil import utc_now

log = logging.getLogger("tempdl.server")

MAX_HEADER_BYTES = 16 * 1024
IDLE_CONNECTION_TIMEOUT = 60
BODY_TIMEOUT = 30


def make_http_server(app, settings: Settings) -> HTTPServer:
    return HTTPServer(
        app,
        xheaders=settings.serve_mode == "x-accel",  # behind nginx, X-Real-IP is the client
        max_header_size=MAX_HEADER_BYTES,
        idle_connection_timeout=IDLE_CONNECTION_TIMEOUT,
        body_timeout=BODY_TIMEOUT,
    )


def prepare_audit(settings: Settings) -> AuditLog:
    """Open the audit database, migrate it, and close attempts a crash left open."""
    engine = make_engine(settings.database_url)
    problem = integrity_problem(engine)
    if problem:
        raise CommandError(f"the audit database fails SQLite's integrity check ({problem}); restore a backup")
    upgrade(engine)
    audit = AuditLog(engine)
    closed = audit.close_abandoned_attempts(utc_now())
    if closed:
        log.warning("closed %d download attempts left open by an earlier crash (now partial)", closed)
    return audit


def wechat_modes(settings: Settings) -> str:
    """What the start-up line says about the WeChat endpoint: which message modes will work."""
    if not settings.wechat.token:
        return "not configured (set wechat.token)"
    if settings.wechat.encoding_aes_key and settings.wechat.app_id:
        return "live: plain, compatible and safe mode"
    return "live: plain mode; set wechat.app_id and wechat.encoding_aes_key for safe mode"


async def serve_until_stopped(settings: Settings) -> None:
    audit = prepare_audit(settings)
    inflight = InFlight()
    app = make_app(settings, audit, inflight=inflight)
    server = make_http_server(app, settings)
    try:
        server.listen(settings.port, settings.address)
    except OSError as error:
        audit.close()
        raise CommandError(f"cannot listen on {settings.address}:{settings.port}: {error.strerror}") from None

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    wechat_state = wechat_modes(settings)
    log.info(
        "tempdl listening on http://%s:%d config=%s public_url=%s wechat=%s (%s) files_dir=%s",
        settings.address,
        settings.port,
        settings.config_path or "none (defaults)",
        settings.public_url,
        settings.wechat.path,
        wechat_state,
        settings.files_dir,
    )
    await stop.wait()

    log.info("shutting down: %d requests in flight, waiting up to %ds", len(inflight), settings.shutdown_grace)
    server.stop()
    if not await inflight.wait_idle(settings.shutdown_grace):
        log.warning("closing %d downloads still running after %ds", len(inflight), settings.shutdown_grace)
    await server.close_all_connections()
    await inflight.wait_idle(5)
    audit.close()
    log.info("stopped; every audit row is committed")


def run_server(settings: Settings) -> int:
    asyncio.run(serve_until_stopped(settings))
    return 0
