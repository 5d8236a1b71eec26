"""Start and stop each server under test, pinned to CPU 0, on 127.0.0.1.

Every server runs in its own process group (its pgid is appended to WORK/pids so
run.sh's trap can end leftovers by id) and logs to a file, never to a pipe: a
server that logs every request must not block on a pipe nobody reads.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
SERVER_CPU = "0"
FASTAPI_SECRET = "bench-secret-not-for-production"
WECHAT_TOKEN = "benchtoken"


class ServerError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerError(f"exited with {proc.returncode} before listening; log tail:\n{tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise ServerError(f"not listening on {port} after {timeout:.0f}s; log tail:\n{tail(log)}")


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class Server:
    """A running server: `pid` is the process whose tree is measured."""

    name: str
    port: int
    proc: subprocess.Popen
    log: Path
    small_path: str  # URL path of the 4 KiB file
    big_path: str  # URL path of the 256 MiB file
    huge_path: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> str | None:
        """SIGTERM, then SIGKILL after 10 s. Returns a note when the server did not stop cleanly."""
        note = None
        if self.proc.poll() is None:
            t0 = time.monotonic()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout=10)
                if rc not in (0, -signal.SIGTERM, 128 + signal.SIGTERM):
                    note = f"exited with {rc} on SIGTERM"
                elif time.monotonic() - t0 > 2:
                    note = f"took {time.monotonic() - t0:.1f}s to stop on SIGTERM with nothing in flight"
            except subprocess.TimeoutExpired:
                note = "still running 10 s after SIGTERM with nothing in flight; killed"
        with contextlib.suppress(ProcessLookupError, PermissionError):  # workers still in the group
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        return note


def _spawn(work: Path, name: str, argv: list[str], cwd: Path, env: dict | None = None) -> tuple[subprocess.Popen, Path]:
    log = work / f"{name}.log"
    full_env = dict(os.environ, **(env or {}))
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            ["taskset", "-c", SERVER_CPU, *argv],
            cwd=cwd,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    with open(work / "pids", "a") as f:
        f.write(f"{proc.pid}\n")
    return proc, log


def start_nginx(work: Path, files: Path) -> Server:
    port = free_port()
    prefix = work / "nginx"
    prefix.mkdir(exist_ok=True)
    user = "user root root;\n" if os.geteuid() == 0 else ""
    conf = prefix / "nginx.conf"
    conf.write_text(f"""{user}daemon off;
worker_processes 1;
worker_rlimit_nofile 8192;
pid {prefix}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location /files/ {{ alias {files}/; }}
    }}
}}
""")
    proc, log = _spawn(work, "nginx", [_nginx_bin(), "-p", str(prefix), "-c", str(conf), "-e", "stderr"], cwd=prefix)
    srv = Server("nginx (sendfile)", port, proc, log, "/files/small.bin", "/files/big.bin", "/files/huge.bin")
    wait_port(port, proc, log)
    return srv


def _nginx_bin() -> str:
    for cand in ("/usr/sbin/nginx", "/usr/bin/nginx"):
        if os.access(cand, os.X_OK):
            return cand
    return "nginx"


def start_tornado(work: Path, files: Path) -> Server:
    port = free_port()
    proc, log = _spawn(
        work, "tornado", [sys.executable, str(BENCH_DIR / "baseline_tornado.py"), str(port), str(files)], cwd=BENCH_DIR
    )
    srv = Server(
        "tornado StaticFileHandler",
        port,
        proc,
        log,
        "/files/small.bin",
        "/files/big.bin",
        "/files/huge.bin",
        extra={"wechat_token": WECHAT_TOKEN, "wechat_path": "/wechat"},  # a fixed-XML handler
    )
    wait_port(port, proc, log)
    return srv


def start_floors(work: Path, files: Path) -> Server:
    """`baseline_floors.py`: Tornado's request layers alone; the bare delegate's port is extra["raw_port"]."""
    port, raw_port = free_port(), free_port()
    argv = [sys.executable, str(BENCH_DIR / "baseline_floors.py"), str(port), str(raw_port), str(files)]
    proc, log = _spawn(work, "floors", argv, cwd=BENCH_DIR)
    srv = Server("tornado floors", port, proc, log, "/files/small.bin", "", extra={"raw_port": raw_port})
    wait_port(port, proc, log)
    wait_port(raw_port, proc, log)
    return srv


def start_fastapi(work: Path, files: Path) -> Server:
    from itsdangerous import URLSafeTimedSerializer

    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "baseline_fastapi:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--no-access-log",
        "--log-level",
        "warning",
        "--timeout-keep-alive",
        "75",
    ]
    proc, log = _spawn(
        work, "fastapi", argv, cwd=BENCH_DIR, env={"BENCH_FILES_DIR": str(files), "BENCH_SECRET": FASTAPI_SECRET}
    )
    signer = URLSafeTimedSerializer(FASTAPI_SECRET, salt="bench-baseline")
    srv = Server(
        "FastAPI FileResponse + token",
        port,
        proc,
        log,
        "/dl/" + signer.dumps("small.bin"),
        "/dl/" + signer.dumps("big.bin"),
        "/dl/" + signer.dumps("huge.bin"),
    )
    wait_port(port, proc, log)
    return srv


def tempdl_config(work: Path, files: Path, port: int) -> Path:
    data = work / "tempdl-data"
    data.mkdir(exist_ok=True)
    conf = work / "tempdl.toml"
    conf.write_text(f"""address = "127.0.0.1"
port = {port}
files_dir = "{files}"
data_dir = "{data}"
link_ttl = 86400

[limits]
max_downloads = 0

[wechat]
token = "{WECHAT_TOKEN}"

[[files]]
id = "small"
path = "small.bin"
keywords = ["small"]

[[files]]
id = "big"
path = "big.bin"
keywords = ["big"]

[[files]]
id = "huge"
path = "huge.bin"
keywords = ["huge"]
""")
    return conf


def issue_link(repo: Path, conf: Path, file_id: str, work: Path) -> str:
    """`python server.py issue FILE_ID --config CONF` must print one link, alone, on stdout."""
    argv = [sys.executable, "server.py", "issue", file_id, "--config", str(conf)]
    r = subprocess.run(
        argv,
        cwd=repo,
        env=dict(os.environ, TEMPDL_CONFIG=str(conf)),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    with open(work / "tempdl-issue.log", "a") as f:
        f.write(f"$ {' '.join(argv)}\nexit {r.returncode}\nstdout: {r.stdout!r}\nstderr: {r.stderr!r}\n")
    if r.returncode != 0:
        raise ServerError(f"`{' '.join(argv[1:])}` exited {r.returncode}: {r.stderr.strip()[-2000:]}")
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    if len(lines) != 1:
        raise ServerError(
            f"`issue {file_id}` printed {len(lines)} lines on stdout, expected the link alone: {r.stdout!r}"
        )
    url = urllib.parse.urlsplit(lines[0].strip())
    if not url.path.startswith("/api/get_file/"):
        raise ServerError(f"`issue {file_id}` printed {lines[0]!r}, not a /api/get_file/<token> link")
    return url.path + (f"?{url.query}" if url.query else "")


def start_tempdl(work: Path, files: Path, repo: Path, with_huge: bool) -> Server:
    if not (repo / "server.py").exists():
        raise ServerError(f"{repo}/server.py does not exist yet")
    port = free_port()
    conf = tempdl_config(work, files, port)
    env = {"TEMPDL_CONFIG": str(conf)}
    proc, log = _spawn(work, "tempdl", [sys.executable, "server.py", "serve", "--config", str(conf)], cwd=repo, env=env)
    try:
        wait_port(port, proc, log)
        small = issue_link(repo, conf, "small", work)
        big = issue_link(repo, conf, "big", work)
        huge = issue_link(repo, conf, "huge", work) if with_huge else None
    except BaseException:
        Server("tempdl", port, proc, log, "", "").stop()
        raise
    return Server(
        "tempdl",
        port,
        proc,
        log,
        small,
        big,
        huge,
        extra={"config": conf, "wechat_token": WECHAT_TOKEN, "wechat_path": "/wechat"},
    )


STARTERS = {
    "nginx": lambda a: start_nginx(a.work, a.files),
    "tornado": lambda a: start_tornado(a.work, a.files),
    "fastapi": lambda a: start_fastapi(a.work, a.files),
    "tempdl": lambda a: start_tempdl(a.work, a.files, a.repo, a.huge),
}
