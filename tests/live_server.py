"""A real `python server.py` in a subprocess, for what only a whole process shows: signals,
crashes, logs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

from tests.engines import free_port
from tests.support import env_without_tempdl

REPO = Path(__file__).resolve().parent.parent


class LiveServer:
    def __init__(self, workdir: Path, config_text: str = "") -> None:
        self.workdir = workdir
        self.port = free_port()
        (workdir / "tempdl.toml").write_text(config_text, encoding="utf-8")
        self.log_path = workdir / "server.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(REPO / "server.py"), *args],
            cwd=self.workdir,
            env=env_without_tempdl(),
            capture_output=True,
            text=True,
            timeout=60,
        )

    def issue(self, file_id: str, *args: str) -> str:
        """Issue a link with the CLI and return its path."""
        result = self.cli("issue", file_id, *args)
        assert result.returncode == 0, result.stderr
        return urllib.parse.urlsplit(result.stdout.strip()).path

    def start(self) -> LiveServer:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, str(REPO / "server.py"), "serve", "--port", str(self.port)],
            cwd=self.workdir,
            env=env_without_tempdl(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited at start:\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"server did not listen:\n{self.log()}")

    def stop(self, signum: int, timeout: float = 30) -> int:
        assert self.process is not None
        self.process.send_signal(signum)
        return self.process.wait(timeout=timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    @property
    def database(self) -> Path:
        return self.workdir / "data" / "tempdl.sqlite3"


def open_slow_download(port: int, path: str, read_first: int = 65536) -> socket.socket:
    """Start a download and read only its first bytes: a client on a slow line, still connected."""
    client = socket.create_connection(("127.0.0.1", port))
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


os.environ.setdefault("PYTHONUNBUFFERED", "1")
