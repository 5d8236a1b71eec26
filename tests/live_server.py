"""A real `python server.py serve` in a subprocess, driven with the standard library.

The live tests need what an in-process Tornado app cannot give them: the server's own start-up,
signal handling and logging configuration, crashes and restarts, plain synchronous requests
(hypothesis and pytest-tornado's event loop do not mix), and the server's complete stdout/stderr
to search for secrets. Everything talks to 127.0.0.1 only and every wait here is bounded.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import http.client
import os
import re
import resource
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tempdl.links.tokens import LinkSigner
from tempdl.wechat.signature import sha1_signature
from tests.engines import free_port
from tests.support import env_without_tempdl, sample_bytes, wait_until

REPO = Path(__file__).resolve().parent.parent
WECHAT_TOKEN = "live-wechat-token-5f1c"
START_TIMEOUT = 30.0
REQUEST_TIMEOUT = 15.0

#: The files a live server offers: small (one chunk), big (zero-copy path), a Chinese name.
LIVE_FILES = {
    "small": ("small.bin", sample_bytes(4096, seed=11)),
    "big": ("big.bin", sample_bytes(300_000, seed=12)),
    "manual": ("说明.pdf", sample_bytes(1000, seed=13)),
    "large": ("large.bin", sample_bytes(16 * 1024 * 1024, seed=14)),  # over loopback buffers (~4 + 6 MiB)
}


def live_config(root: Path, port: int, extra: str = "") -> str:
    """A tempdl.toml for a throw-away server whose files, data and token live under `root`."""
    offered = "".join(
        f'\n[[files]]\nid = "{file_id}"\npath = "{name}"\nkeywords = ["{file_id}"]\n'
        for file_id, (name, _) in LIVE_FILES.items()
    )
    return (
        f'files_dir = "{root / "files"}"\n'
        f'data_dir = "{root / "data"}"\n'
        f'public_url = "http://127.0.0.1:{port}"\n'
        "shutdown_grace = 2\n"
        f"{extra}\n"
        f'[wechat]\ntoken = "{WECHAT_TOKEN}"\n'
        f"{offered}"
    )


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes


class LiveServer:
    """One `python server.py serve` under `root`, its config in `root/tempdl.toml`.

    `LiveServer(root, config_text)` serves whatever that config says (files_dir, database, ...);
    `LiveServer.with_live_files(root)` writes `LIVE_FILES` and a config offering them, with a WeChat
    token, so the fuzz and log tests need nothing else. Nothing runs until `start()`.
    """

    def __init__(self, root: Path, config_text: str = "") -> None:
        self.root = root
        self.port = free_port()
        self.config_path = root / "tempdl.toml"
        self.log_path = root / "server.log"
        self.process: subprocess.Popen | None = None
        self.download_requests = 0  # requests sent to the download route so far
        self.extra_env: dict[str, str] = {}  # e.g. NOTIFY_SOCKET, for the next start()
        self.config_path.write_text(config_text, encoding="utf-8")

    @classmethod
    def with_live_files(cls, root: Path, *, extra_config: str = "") -> LiveServer:
        files = root / "files"
        files.mkdir(parents=True, exist_ok=True)
        for name, content in LIVE_FILES.values():
            (files / name).write_bytes(content)
        server = cls(root)
        server.config_path.write_text(live_config(root, server.port, extra_config), encoding="utf-8")
        return server

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def database(self) -> Path:
        """The SQLite audit database, where the config leaves `data_dir` and `database_url` alone."""
        return self.root / "data" / "tempdl.sqlite3"

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self, *, open_files: int | None = None, env: dict[str, str] | None = None) -> LiveServer:
        """Start the server and wait until `/healthz` says it serves (the audit database is open).

        `open_files` sets its RLIMIT_NOFILE (as `ulimit -n` would); `env` adds environment variables.
        """
        # A file, not a pipe: a full pipe would stall the server. Appended: a restart keeps the
        # first run's lines for the post-mortem.
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                [*self._command("serve"), "--port", str(self.port)],
                cwd=self.root,
                env={**env_without_tempdl(), "PYTHONUNBUFFERED": "1", **self.extra_env, **(env or {})},
                stdout=log_file,
                stderr=subprocess.STDOUT,
                preexec_fn=None if open_files is None else functools.partial(_limit_open_files, open_files),
            )
        try:
            wait_until(self._healthy, timeout=START_TIMEOUT, what=f"server on {self.port}", detail=self.log)
        except BaseException:
            self.kill()
            raise
        return self

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
        try:
            return self.request("GET", "/healthz").status == 200
        except OSError:
            return False

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send `signum` (SIGTERM, as an init system would); return the exit code.

        Killed if it has not exited after `timeout` seconds (then the code says SIGKILL).
        """
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signum)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash."""
        if self.alive():
            self.process.kill()
            self.process.wait(10)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    # --- the command line -------------------------------------------------------------------

    def _command(self, command: str) -> list[str]:
        return [sys.executable, str(REPO / "server.py"), command, "--config", str(self.config_path)]

    def cli(self, command: str, *args: str) -> subprocess.CompletedProcess[str]:
        """Run `python server.py COMMAND --config ... ARGS` as an operator would; it must succeed."""
        result = subprocess.run(
            [*self._command(command), *args],
            cwd=self.root,
            env=env_without_tempdl(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result

    def issue(self, file_id: str, *args: str) -> str:
        """A link from `python server.py issue`, as an operator gets one; returns its token."""
        return self.cli("issue", file_id, *args).stdout.strip().rsplit("/", 1)[1]

    # --- requests --------------------------------------------------------------------------

    def request(
        self, method: str, path: str, *, headers: Mapping[str, str] | None = None, body: bytes | None = None
    ) -> Response:
        """One request on a fresh connection; `path` must already be percent-encoded ASCII."""
        if method in ("GET", "HEAD") and path.startswith("/api/get_file/"):
            self.download_requests += 1
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT)
        try:
            connection.request(method, path, body=body, headers=dict(headers or {}))
            response = connection.getresponse()
            return Response(response.status, response.headers, response.read())
        finally:
            connection.close()

    def raw(self, data: bytes, *, timeout: float = 3.0) -> bytes:
        """Send bytes as they are (requests http.client refuses to build); return the reply.

        The socket is not half-closed after a complete request head: Tornado takes a client's
        end-of-stream as a hang-up and drops the answer it was about to send. So read until one
        whole response is in, the server closes, or `timeout`.
        """
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
            try:
                sock.sendall(data)
                if not re.search(rb"\r?\n\r?\n", data):
                    sock.shutdown(socket.SHUT_WR)  # an unfinished head: let the server see its end
            except OSError:
                pass  # the server hung up mid-request (a head over its limit): read what it said
            received = bytearray()
            deadline = time.monotonic() + timeout
            while not _one_whole_response(received) and time.monotonic() < deadline:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    chunk = sock.recv(65536)
                except (TimeoutError, ConnectionResetError):
                    break
                if not chunk:
                    break
                received += chunk
            return bytes(received)

    def download_and_hang_up(self, path: str, *, headers: Mapping[str, str], keep: int, reset: bool) -> tuple[int, int]:
        """GET `path`, read the head and `keep` body bytes, then hang up (RST if `reset`).

        Returns (status, body bytes received). Counts as a download request.
        """
        self.download_requests += 1
        lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
        with socket.create_connection(("127.0.0.1", self.port), timeout=REQUEST_TIMEOUT) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)  # so the server cannot run ahead
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            received = bytearray()
            while b"\r\n\r\n" not in received:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
            head, _, body = bytes(received).partition(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.IGNORECASE)
            want = min(keep, int(length.group(1)) if length else 0)
            got = len(body)
            while got < want:
                chunk = sock.recv(min(65536, want - got))
                if not chunk:
                    break
                got += len(chunk)
            if reset:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return status, got

    def wechat_query(self, *, token: str = WECHAT_TOKEN, timestamp: str | None = None, **extra: str) -> str:
        """A query string signed as WeChat signs it: fresh timestamp and nonce."""
        timestamp = timestamp or str(int(time.time()))
        nonce = os.urandom(6).hex()
        params = {"signature": sha1_signature(token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce}
        params.update(extra)
        return urllib.parse.urlencode(params)

    # --- the audit database, read as an operator would -----------------------------------------

    def rows(self, sql: str, *params) -> list[sqlite3.Row]:
        with contextlib.closing(sqlite3.connect(self.database, timeout=10)) as connection:
            connection.row_factory = sqlite3.Row
            return connection.execute(sql, params).fetchall()

    def settled_attempts(self, *, after_id: int = 0, expected: int = 1, timeout: float = 5.0) -> list[sqlite3.Row]:
        """The download_attempts rows past `after_id`, once at least `expected` are there and finished.

        A response can reach the client before its row is closed (the last body byte goes out
        before `close_attempt` commits), so poll, bounded. A refusal's row is written before its
        answer, so callers pass a short `timeout` there: a missing row then fails fast instead of
        stalling hypothesis's shrinking.
        """

        def settled() -> list[sqlite3.Row]:
            found = self.rows("SELECT * FROM download_attempts WHERE id > ? ORDER BY id", after_id)
            return found if len(found) >= expected and all(row["finished_at"] for row in found) else []

        return wait_until(
            settled,
            timeout=timeout,
            what=f"{expected} finished download_attempts rows after id {after_id}",
            interval=0.01,
        )

    def issuance_of(self, link: str) -> sqlite3.Row:
        """The issuances row a link names."""
        [row] = self.rows("SELECT * FROM issuances WHERE id = ?", self._issuance_id(link.rsplit("/", 1)[1]))
        return row

    def expire(self, token: str) -> None:
        """Make the link one issued a day ago with a ten-minute TTL: expired, without waiting.

        The server reads the issuance row on every request, so this is exactly what it would
        find once the link's time had run out.
        """
        issued = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
        expires = issued + datetime.timedelta(minutes=10)
        with contextlib.closing(sqlite3.connect(self.database, timeout=10)) as connection, connection:
            changed = connection.execute(
                "UPDATE issuances SET created_at = ?, expires_at = ? WHERE id = ?",
                (_db_time(issued), _db_time(expires), self._issuance_id(token)),
            ).rowcount
        assert changed == 1, token

    def _issuance_id(self, token: str) -> int:
        """The issuance a token names, read with this server's own secret key."""
        keys = (self.root / "data" / "secret.key").read_text().split()
        return LinkSigner(keys).read(token).issuance_id

    def last_attempt_id(self) -> int:
        return self.rows("SELECT COALESCE(MAX(id), 0) AS n FROM download_attempts")[0]["n"]


def _one_whole_response(received: bytes) -> bool:
    head, separator, body = bytes(received).partition(b"\r\n\r\n")
    if not separator:
        return False
    length = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.IGNORECASE)
    return length is not None and len(body) >= int(length.group(1))


def parse_db_time(value: str | None) -> datetime.datetime | None:
    return None if value is None else datetime.datetime.fromisoformat(value)


def _db_time(moment: datetime.datetime) -> str:
    """A timestamp as the audit database stores it on SQLite: naive UTC, to the microsecond."""
    return moment.astimezone(datetime.UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def quote_token(token: str | bytes) -> str:
    """Percent-encode a token (text as UTF-8, or raw bytes) so any value fits in a request line."""
    return "/api/get_file/" + urllib.parse.quote(token, safe="")


def open_slow_download(port: int, path: str, read_first: int = 65536) -> socket.socket:
    """Start a download and read only its first bytes: a client on a slow line, still connected.

    Its receive buffer is held small: autotuned on loopback it grows to 6 MiB, and together with
    the server's send buffer it could take in a whole 4 MiB file, which finished the download
    this client is meant to hold open.
    """
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    client.connect(("127.0.0.1", port))
    client.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    received = 0
    while received < read_first:
        received += len(client.recv(65536))
    return client


def drain(client: socket.socket) -> int:
    total = 0
    while chunk := client.recv(1 << 20):
        total += len(chunk)
    return total


def _limit_open_files(count: int) -> None:
    """In the child, before exec: `ulimit -n count`."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (count, count))
