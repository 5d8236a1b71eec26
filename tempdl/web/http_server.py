"""The HTTP server `serve` runs: Tornado's, with the edges a public server needs.

- The client's address comes from `trusted_proxies` only (`tempdl.web.client_address`).
- A request head over the limit gets 414 or 431 (`tempdl.web.oversized`).
- At most `max_connections` connections are held at once. Over it, a new connection is accepted
  and closed at once; and should the process run out of file descriptors anyway (EMFILE),
  accepting pauses for a moment instead of retrying in a tight loop. Tornado's own accept loop
  lets EMFILE escape: the listening socket stays readable, so the event loop spins on it and logs
  a traceback per try, and requests on connections already open starve. Each incident (the cap
  reached, or descriptors exhausted) is one log line when it starts and one when it ends.
"""

from __future__ import annotations

import errno
import logging
import resource
import socket
from collections.abc import Callable, Iterable
from typing import Any

from tornado import httputil
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop

from tempdl.audit.log import AuditLog
from tempdl.timeutil import Clock
from tempdl.web.client_address import RealClientAdapter, TrustedProxies
from tempdl.web.oversized import HeadLimitAdapter

log = logging.getLogger("tempdl.server")

ACCEPTS_PER_WAKEUP = 128  # as Tornado's accept loop: then other events get their turn
PAUSE_WHEN_OUT_OF_DESCRIPTORS = 0.5  # seconds without accepting after EMFILE
OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
MIN_DESCRIPTOR_RESERVE = 64


def default_max_connections() -> int:
    """The open-files limit minus a reserve for served files, the database and logs.

    A quarter (at least 64) is kept back: each streaming download holds its file open beside its
    connection, and the audit database, its WAL and the log need theirs.
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20
    return max(1, soft - max(MIN_DESCRIPTOR_RESERVE, soft // 4))


class ConnectionCap:
    """Counts the connections held and says, once per incident, when new ones are turned away."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        self.turned_away = 0
        self.incident: str | None = None  # "full" or "out_of_descriptors" while one lasts

    def full(self) -> bool:
        return self.open >= self.limit

    def opened(self) -> None:
        self.open += 1
        if self.incident == "out_of_descriptors":
            self._end_incident()  # a descriptor was there for this one: accepting works again

    def closed(self) -> None:
        self.open -= 1
        if self.incident == "full" and self.open < self.limit - max(1, self.limit // 10):
            self._end_incident()  # some room again, not just the one slot a churn frees

    def _end_incident(self) -> None:
        log.warning(
            "event=connections_accepted_again cause=%s turned_away=%d open=%d",
            self.incident,
            self.turned_away,
            self.open,
        )
        self.incident, self.turned_away = None, 0

    def turn_away(self, cause: str, detail: str = "") -> None:
        self.turned_away += 1
        if self.incident is None:
            self.incident = cause
            log.warning(
                "event=connections_refused cause=%s open=%d max_connections=%d%s",
                cause,
                self.open,
                self.limit,
                f" error={detail}" if detail else "",
            )


class AcceptLoop:
    """Accepts connections on one listening socket, within the cap, never spinning."""

    def __init__(self, sock: socket.socket, admit: Callable[[socket.socket, Any], None], cap: ConnectionCap) -> None:
        self.sock = sock
        self.admit = admit
        self.cap = cap
        self.io_loop = IOLoop.current()
        self.listening = False
        self.stopped = False
        self.resume_timer: object | None = None

    def start(self) -> None:
        if not self.stopped and not self.listening:
            self.io_loop.add_handler(self.sock, self._accept_ready, IOLoop.READ)
            self.listening = True

    def stop(self) -> None:
        self.stopped = True
        self._stop_listening()
        if self.resume_timer is not None:
            self.io_loop.remove_timeout(self.resume_timer)

    def _stop_listening(self) -> None:
        if self.listening:
            self.io_loop.remove_handler(self.sock)
            self.listening = False

    def _accept_ready(self, fd: Any, events: int) -> None:
        for _ in range(ACCEPTS_PER_WAKEUP):
            try:
                connection, address = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as error:
                if error.errno not in OUT_OF_RESOURCES:
                    raise
                self.cap.turn_away("out_of_descriptors", errno.errorcode.get(error.errno or 0, str(error.errno)))
                self._pause()
                return
            if self.cap.full():
                connection.close()
                self.cap.turn_away("full")
                continue
            self.admit(connection, address)

    def _pause(self) -> None:
        """Stop watching the socket for a moment: it stays readable while EMFILE lasts."""
        self._stop_listening()
        self.resume_timer = self.io_loop.call_later(PAUSE_WHEN_OUT_OF_DESCRIPTORS, self._resume)

    def _resume(self) -> None:
        self.resume_timer = None
        self.start()


class TempdlHTTPServer(HTTPServer):
    """Tornado's server with the client address, head limits and connection cap described above.

    Tornado's own `xheaders` stays off: it believes X-Real-IP from anyone.
    """

    def initialize(  # type: ignore[override]
        self,
        app,
        *,
        trusted: TrustedProxies,
        audit: AuditLog | None,
        clock: Clock,
        max_connections: int,
        **options,
    ) -> None:
        super().initialize(app, xheaders=False, **options)
        self.trusted = trusted
        self.audit = audit
        self.clock = clock
        self.unsigned = getattr(app, "unsigned_wechat_request", lambda start_line: False)
        self.cap = ConnectionCap(max_connections)

    def add_sockets(self, sockets: Iterable[socket.socket]) -> None:
        """As Tornado's, with `AcceptLoop` in place of `netutil.add_accept_handler`."""
        for sock in sockets:
            loop = AcceptLoop(sock, self._handle_connection, self.cap)  # TCPServer's: socket -> stream
            self._sockets[sock.fileno()] = sock
            self._handlers[sock.fileno()] = loop.stop  # what TCPServer.stop calls
            loop.start()

    def handle_stream(self, stream, address) -> None:
        self.cap.opened()
        super().handle_stream(stream, address)

    def on_close(self, server_conn) -> None:
        super().on_close(server_conn)
        self.cap.closed()

    def start_request(self, server_conn, request_conn) -> httputil.HTTPMessageDelegate:
        app_delegate = super().start_request(server_conn, request_conn)
        limited = HeadLimitAdapter(app_delegate, request_conn, self.audit, self.clock, self.unsigned)
        return RealClientAdapter(limited, request_conn, self.trusted)
