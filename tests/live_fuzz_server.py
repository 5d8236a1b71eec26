"""A real `python server.py serve` in a subprocess, driven with the standard library.

The fuzz and log tests need what an in-process Tornado app cannot give them: the server's own
start-up, signal handling and logging configuration, plain synchronous requests (hypothesis and
pytest-tornado's event loop do not mix), and the server's complete stdout/stderr to search for
secrets. Everything talks to 127.0.0.1 only and every wait here is bounded.
"""

from __future__ import annotations

import datetime
import http.client
import os
import re
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tempdl.links.tokens import LinkSigner
from tempdl.wechat.signature import sha1_signature
from tests.engines import free_port
from tests.support import env_without_tempdl, sample_bytes

REPO = Path(__file__).resolve().parent.parent
WECHAT_TOKEN = "live-wechat-token-5f1c"
START_TIMEOUT = 30.0
REQUEST_TIMEOUT = 15.0

#: The files a live server offers: small (one chunk), big (zero-copy path), a Chinese name.
LIVE_FILES = {
    "small": ("small.bin", sample_bytes(4096, seed=11)),
    "big": ("big.bin", sample_bytes(300_000, seed=12)),
    "manual": ("说明.pdf", sample_bytes(1000, seed=13)),
    "large": ("large.bin", sample_bytes(4 * 1024 * 1024, seed=14)),  # more than socket buffers hold
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


@dataclass
class LiveServer:
    root: Path
    port: int
    config_path: Path
    log_path: Path
    process: subprocess.Popen
    download_requests: int = field(default=0)  # requests sent to the download route so far

    # --- lifecycle ---------------------------------------------------------------------------

    @classmethod
    def start(cls, root: Path, *, extra_config: str = "", env: Mapping[str, str] | None = None) -> LiveServer:
        """Write the files and config under `root`, start the server, wait until it answers."""
        files = root / "files"
        files.mkdir(parents=True, exist_ok=True)
        for name, content in LIVE_FILES.values():
            (files / name).write_bytes(content)
        port = free_port()
        config_path = root / "tempdl.toml"
        config_path.write_text(live_config(root, port, extra_config), encoding="utf-8")
        log_path = root / "server.log"
        with log_path.open("wb") as log_file:  # a file, not a pipe: a full pipe would stall the server
            process = subprocess.Popen(
                [sys.executable, str(REPO / "server.py"), "serve", "--config", str(config_path), "--port", str(port)],
                cwd=root,
                env={**env_without_tempdl(), **(env or {})},
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        server = cls(root, port, config_path, log_path, process)
        server._wait_until_healthy()
        return server

    def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                if self.request("GET", "/healthz").status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not answer within {START_TIMEOUT}s:\n{self.log()}")

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, as an init system would; return the exit code (killed after `timeout`)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode

    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    @property
    def database(self) -> Path:
        return self.root / "data" / "tempdl.sqlite3"

    # --- links -----------------------------------------------------------------------------

    def cli(self, *args: str) -> str:
        """Run `python server.py ARGS --config ...` against this server's config; return stdout."""
        command, *rest = args
        result = subprocess.run(
            [sys.executable, str(REPO / "server.py"), command, "--config", str(self.config_path), *rest],
            cwd=self.root,
            env=env_without_tempdl(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def issue(self, file_id: str, *args: str) -> str:
        """A link from `python server.py issue`, as an operator gets one; returns its token."""
        return self.cli("issue", file_id, *args).strip().rsplit("/", 1)[1]

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
        with sqlite3.connect(self.database, timeout=10) as connection:
            connection.row_factory = sqlite3.Row
            return connection.execute(sql, params).fetchall()

    def settled_attempts(self, *, after_id: int = 0, expected: int = 1, timeout: float = 5.0) -> list[sqlite3.Row]:
        """The download_attempts rows past `after_id`, once `expected` of them are there and finished.

        A response can reach the client before its row is closed (the last body byte goes out
        before `close_attempt` commits), so poll, bounded. A refusal's row is written before its
        answer, so callers pass a short `timeout` there: a missing row then fails fast instead of
        stalling hypothesis's shrinking.
        """
        deadline = time.monotonic() + timeout
        while True:
            found = self.rows("SELECT * FROM download_attempts WHERE id > ? ORDER BY id", after_id)
            if len(found) >= expected and all(row["finished_at"] for row in found):
                return found
            if time.monotonic() > deadline:
                return found
            time.sleep(0.01)

    def issuance_of(self, link: str) -> sqlite3.Row:
        """The issuances row a link names, read with this server's own secret key."""
        keys = (self.root / "data" / "secret.key").read_text().split()
        issuance_id = LinkSigner(keys).read(link.rsplit("/", 1)[1]).issuance_id
        [row] = self.rows("SELECT * FROM issuances WHERE id = ?", issuance_id)
        return row

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


def quote_token(token: str | bytes) -> str:
    """Percent-encode a token (text as UTF-8, or raw bytes) so any value fits in a request line."""
    return "/api/get_file/" + urllib.parse.quote(token, safe="")
