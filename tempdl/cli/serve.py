"""Running the server: start-up checks, listening, and a graceful shutdown that loses no record.

Before anything touches the database, the server takes `data_dir`'s lock (`tempdl.cli.instance`):
a second server on the same `data_dir` stops there with one line naming the first one's PID.
On SIGTERM or SIGINT the server stops accepting, gives downloads in flight `shutdown_grace`
seconds to finish, then closes the rest (their rows become `partial` with the bytes they got),
waits for every audit write to be committed, and exits 0. On SIGHUP it reads the config again
(`tempdl.cli.reload`).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import gc
import logging
import signal
from collections.abc import Callable
from pathlib import Path

from tornado.ioloop import PeriodicCallback

from tempdl import __version__
from tempdl.app import AppState, make_app
from tempdl.audit.log import AuditLog
from tempdl.audit.open import open_audit
from tempdl.cli.instance import ServerLock, server_id
from tempdl.cli.reload import notify, reload, settings_loader
from tempdl.config.parsers import sqlite_file
from tempdl.config.settings import Settings
from tempdl.errors import CommandError
from tempdl.timeutil import Clock, utc_now
from tempdl.web.access_log import quoted
from tempdl.web.client_address import TrustedProxies
from tempdl.web.http_server import TempdlHTTPServer, default_max_connections
from tempdl.web.oversized import HEAD_READ_CEILING

log = logging.getLogger("tempdl.server")

IDLE_CONNECTION_TIMEOUT = 60
BODY_TIMEOUT = 30
CLOSING_WAIT = 5
"""Seconds, after shutdown_grace, for closed downloads to write their last audit rows."""
STALE_OPEN_ATTEMPT = datetime.timedelta(days=1)
"""An attempt row still open this long after it started belongs to no live download or log."""
UPKEEP_EVERY_MS = 2000
"""How often the audit store's upkeep runs (a long SQLite WAL cut back, the rollups' child collected)."""


def make_http_server(
    app, settings: Settings, audit: AuditLog | None = None, *, clock: Clock = utc_now
) -> TempdlHTTPServer:
    """The server `serve` runs; `audit` receives the rows of oversized download requests."""
    return TempdlHTTPServer(
        app,
        trusted=TrustedProxies(settings.trusted_proxies),
        audit=audit,
        clock=clock,
        max_connections=settings.max_connections or default_max_connections(),
        max_header_size=HEAD_READ_CEILING,
        idle_connection_timeout=IDLE_CONNECTION_TIMEOUT,
        body_timeout=BODY_TIMEOUT,
    )


def prepare_audit(settings: Settings, *, migrate_in_child: bool = False, server: str | None = None) -> AuditLog:
    """Open the audit database, migrate it, and close attempts a crash left open.

    `serve` migrates in a child process (`migrate_in_child`), which then brings the report
    rollups up to date, so the server itself never carries Alembic in memory, nor SQLAlchemy on
    SQLite. `server` is the id the rows of this server carry: on a shared database its own open
    rows are a crash's leftovers whatever their age.
    """
    audit = open_audit(
        settings.database_url,
        migrate="child" if migrate_in_child else "here",
        check_integrity=True,
        server_id=server,
        rollup_zone=settings.zone.key if migrate_in_child else None,
    )
    now = utc_now()
    closed = audit.close_abandoned_attempts(
        started_before=_abandoned_before(settings, audit.dialect, now),
        server_id=server if settings.serve_mode == "direct" else None,
    )
    if closed:
        log.warning("event=recovered_attempts count=%d outcome=partial cause=earlier_crash", closed)
    return audit


def _abandoned_before(settings: Settings, dialect: str, now: datetime.datetime) -> datetime.datetime | None:
    """Which open attempt rows a starting server may call abandoned (None: all of them).

    Alone on its SQLite file, every open row is a download an earlier run of this server never
    finished. On a shared database (PostgreSQL) another process may be streaming right now, and
    in x-accel mode an open row waits for `ingest-nginx-log` to say what nginx sent: closing
    those would free a download slot while it is in use, or lose the bytes. There, only rows
    older than `STALE_OPEN_ATTEMPT` are closed, and (direct mode) the rows this server wrote.
    """
    if dialect == "sqlite" and settings.serve_mode == "direct":
        return None
    return now - STALE_OPEN_ATTEMPT


def x_accel_ignored_limits(settings: Settings) -> list[str]:
    """Limits tempdl cannot apply when nginx sends the bytes (nginx.conf must say them)."""
    if settings.serve_mode != "x-accel":
        return []
    limits = settings.limits
    named = {"limits.max_concurrent_downloads": limits.max_concurrent_downloads, "limits.total_rate": limits.total_rate}
    return [key for key, value in named.items() if value]


def wechat_modes(settings: Settings) -> str:
    """What the start-up line says about the WeChat endpoint: which message modes will work."""
    if not settings.wechat.token:
        return "not_configured"  # set wechat.token
    if settings.wechat.encoding_aes_key and settings.wechat.app_id:
        return "live modes=plain,compatible,safe"
    return "live modes=plain"  # safe mode needs wechat.app_id and wechat.encoding_aes_key


def settle_startup_objects() -> None:
    """Keep the garbage collector off everything that lives as long as the process.

    The modules, SQLAlchemy's metadata and the app are hundreds of thousands of objects that
    never become garbage, yet every full collection walked them all: 20-35 ms with the event
    loop stopped, several times a second under a stream of WeChat messages, which put a
    reply's p99 at ~45 ms (~10 ms without). `gc.freeze()` moves them out of the collector's
    sight; what requests allocate is collected as before.
    """
    gc.collect()
    gc.freeze()


async def serve_until_stopped(settings: Settings, load: Callable[[], Settings] | None = None) -> None:
    """Serve until SIGTERM or SIGINT; `load` gives the settings again on SIGHUP (None: no reloads)."""
    locks = [ServerLock(settings.data_dir)]  # first: a second server must not touch a row
    try:
        database_file = sqlite_file(settings.database_url)
        if database_file is not None:
            locks.append(ServerLock.for_database(Path(database_file)))
        await _serve_holding_lock(settings, load)
    finally:
        for lock in locks:
            lock.release()


async def _serve_holding_lock(settings: Settings, load: Callable[[], Settings] | None) -> None:
    audit = prepare_audit(settings, migrate_in_child=True, server=server_id(settings.data_dir))
    state = AppState()
    inflight = state.requests_in_flight  # shutdown waits for these rows
    app = make_app(settings, audit, state=state)
    server = make_http_server(app, settings, audit)
    try:
        server.listen(settings.port, settings.address)
    except OSError as error:
        audit.close()
        raise CommandError(f"cannot listen on {settings.address}:{settings.port}: {error.strerror}") from None

    host = f"[{settings.address}]" if ":" in settings.address else settings.address
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if load is not None:
        loop.add_signal_handler(signal.SIGHUP, reload, app, load)
    log.info(
        "event=listening address=%s port=%d url=http://%s:%d config=%s public_url=%s wechat_path=%s wechat=%s "
        "files_dir=%s max_connections=%d version=%s",
        settings.address,
        settings.port,
        host,
        settings.port,
        quoted(settings.config_path or "none"),
        settings.public_url,
        settings.wechat.path,
        wechat_modes(settings),
        quoted(settings.files_dir),
        server.cap.limit,
        __version__,
    )
    for key in x_accel_ignored_limits(settings):
        log.warning("event=limit_not_applied key=%s serve_mode=x-accel: set it in nginx (limit_conn, limit_rate)", key)
    upkeep = PeriodicCallback(audit.upkeep, UPKEEP_EVERY_MS)
    upkeep.start()
    settle_startup_objects()
    notify("READY=1")
    await stop.wait()
    upkeep.stop()

    notify("STOPPING=1")
    log.info("event=shutting_down in_flight=%d grace_s=%d", len(inflight), settings.shutdown_grace)
    server.stop()
    if not await inflight.wait_idle(settings.shutdown_grace):
        log.warning("event=grace_expired closing=%d grace_s=%d", len(inflight), settings.shutdown_grace)
    await server.close_all_connections()
    await inflight.wait_idle(CLOSING_WAIT)
    audit.close()
    log.info("event=stopped audit=committed")


def serve(args: argparse.Namespace, settings: Settings) -> int:
    """`serve`: run until SIGTERM or SIGINT, then shut down without losing an audit row."""
    asyncio.run(serve_until_stopped(settings, settings_loader(args)))
    return 0
