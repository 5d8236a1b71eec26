"""Measuring: /proc sampling of the server's process tree, and the HTTP clients.

Every client checks what it receives: status, byte count, and the content itself
(sha256 of whole files, exact bytes of a Range slice). A wrong body raises
BodyError, which fails the run.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import select
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
MiB = 1 << 20
CLIENT_CPU = "1"


class BodyError(AssertionError):
    """The server sent something other than the file: the run must fail."""


# --------------------------------------------------------------------------- /proc


def tree(pid: int) -> list[int]:
    """pid and all its descendants (nginx master + worker, uvicorn, ...)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of the processes (all their threads), in seconds."""
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / CLK_TCK


def rss_mib(pids: list[int]) -> float:
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1])
        except OSError:
            continue
    return total * PAGE_KIB / 1024


def _machine_busy() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine so far, from /proc/stat.

    irq and softirq time are left out: on this kernel loopback TCP processing is accounted
    there, to no process, so it would look like someone else's load."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, _irq, _softirq, steal = (int(x) for x in f.readline().split()[1:9])
    return (user + nice + system) / CLK_TCK, steal / CLK_TCK


def _own_cpu() -> float:
    t = os.times()  # this process and the children it has waited for (wrk, curl, ...)
    return t.user + t.system + t.children_user + t.children_system


class ForeignLoad:
    """How much of the machine something other than this benchmark used meanwhile.

    Other work on the two CPUs (a test suite, a build) slows whichever server is being
    measured; the report names it instead of letting it pass for the server's speed."""

    def __init__(self, *server_pids: int):
        self.pids = server_pids
        self.t0 = time.monotonic()
        self.busy0, self.steal0 = _machine_busy()
        self.own0 = _own_cpu() + self._servers_cpu()

    def _servers_cpu(self) -> float:
        return sum(cpu_seconds(tree(pid)) for pid in self.pids)

    def share(self) -> tuple[float, float]:
        """(foreign, steal) as fractions of all CPUs over the window so far."""
        capacity = (time.monotonic() - self.t0) * (os.cpu_count() or 1)
        busy, steal = _machine_busy()
        own = _own_cpu() + self._servers_cpu() - self.own0
        return max(0.0, busy - self.busy0 - own) / capacity, (steal - self.steal0) / capacity


class RssSampler:
    """Samples the tree's resident memory every `interval` seconds; `.peak` in MiB."""

    def __init__(self, pid: int, interval: float = 0.05):
        self.pids = tree(pid)
        self.interval = interval
        self.before = rss_mib(self.pids)
        self.peak = self.before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_mib(self.pids))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mib(self.pids))

    @property
    def growth(self) -> float:
        return self.peak - self.before


# --------------------------------------------------------------------------- wrk

WRK_LUA = Path(__file__).resolve().parent / "wrk_check.lua"
WRK_WECHAT_LUA = Path(__file__).resolve().parent / "wrk_wechat.lua"


@dataclass
class WrkResult:
    rps: float
    p99_ms: float
    good: int
    bad: int
    socket_errors: str
    stderr: str = ""


def _ms(value: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
    if not m:
        raise ValueError(value)
    return float(m[1]) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[m[2]]


def wrk(
    port: int,
    path: str,
    expected_file: Path | None,
    seconds: int,
    connections: int = 16,
    script: Path = WRK_LUA,
    script_args: tuple[str, ...] = (),
) -> WrkResult:
    """Keep-alive request rate; the Lua script checks every response (by default: the body is the file)."""
    args = script_args or (str(expected_file),)
    argv = [
        "taskset",
        "-c",
        CLIENT_CPU,
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}{path}",
        "--",
        *args,
    ]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    out = r.stdout
    if r.returncode != 0 or "Requests/sec" not in out:
        raise RuntimeError(f"wrk failed ({r.returncode}): {out}\n{r.stderr}")
    check = re.search(r"BENCHCHECK good=(\d+) bad=(\d+)", out)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M)[1])
    errors = re.search(r"Socket errors: (.*)", out)
    return WrkResult(rps, p99, int(check[1]), int(check[2]), errors[1] if errors else "", r.stderr.strip())


# --------------------------------------------------------------------------- whole-file clients


def _get(
    port: int, path: str, headers: dict | None = None, timeout: float = 120
) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request("GET", path, headers=headers or {})
    return conn, conn.getresponse()


def fetch_small(port: int, path: str, expected: bytes) -> None:
    conn, resp = _get(port, path)
    body = resp.read()
    conn.close()
    if resp.status != 200 or body != expected:
        raise BodyError(f"GET {path}: status {resp.status}, {len(body)} bytes, body differs from the file")


def check_range(port: int, path: str, source: Path, start: int = 1000, end: int = 1999) -> None:
    with open(source, "rb") as f:
        f.seek(start)
        want = f.read(end - start + 1)
    size = source.stat().st_size
    conn, resp = _get(port, path, {"Range": f"bytes={start}-{end}"})
    body = resp.read()
    conn.close()
    problems = []
    if resp.status != 206:
        problems.append(f"status {resp.status}, expected 206")
    if resp.getheader("Content-Range") != f"bytes {start}-{end}/{size}":
        problems.append(f"Content-Range {resp.getheader('Content-Range')!r}")
    if body != want:
        problems.append(f"body is {len(body)} bytes and {'equal' if body == want else 'not the slice'}")
    if problems:
        raise BodyError(f"Range bytes={start}-{end} of {path}: " + "; ".join(problems))


def _download_into(port: int, path: str, buf: memoryview, start_gate: threading.Barrier | None) -> tuple[float, float]:
    """GET the whole file into buf (pre-faulted memory, so the client costs only the copy).

    Returns (t_start, t_end) on the monotonic clock."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    if start_gate is not None:
        start_gate.wait()
    t0 = time.monotonic()
    conn.request("GET", path)
    resp = conn.getresponse()
    if resp.status != 200:
        raise BodyError(f"GET {path}: status {resp.status}: {resp.read(300)!r}")
    length = resp.getheader("Content-Length")
    if length is not None and int(length) != len(buf):
        raise BodyError(f"GET {path}: Content-Length {length}, file is {len(buf)} bytes")
    got = 0
    while got < len(buf):
        n = resp.readinto(buf[got:])
        if not n:
            break
        got += n
    t1 = time.monotonic()
    extra = resp.read(1)
    conn.close()
    if got != len(buf) or extra:
        raise BodyError(f"GET {path}: received {got + len(extra)}{'+' if extra else ''} bytes, file is {len(buf)}")
    return t0, t1


def alloc_buffers(n: int, size: int) -> list[bytearray]:
    bufs = [bytearray(size) for _ in range(n)]
    for b in bufs:  # fault the pages in now, not inside the timed download
        b[::4096] = b"\x01" * len(range(0, size, 4096))
    return bufs


@dataclass
class Download:
    seconds: float  # wall time, first request sent .. last byte received
    bytes: int

    @property
    def mib_s(self) -> float:
        return self.bytes / MiB / self.seconds


def download(port: int, path: str, bufs: list[bytearray], sha256: str) -> Download:
    """len(bufs) clients fetch the whole file at once; every body is hashed afterwards."""
    n = len(bufs)
    for b in bufs:
        b[:1] = b"\xff" if b[:1] != b"\xff" else b"\x00"  # a stale buffer must never pass the hash check
    gate = threading.Barrier(n)
    times: list[tuple[float, float] | None] = [None] * n
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            times[i] = _download_into(port, path, memoryview(bufs[i]), gate if n > 1 else None)
        except BaseException as e:
            errors.append(e)
            gate.abort()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    for i, b in enumerate(bufs):
        got = hashlib.sha256(b).hexdigest()
        if got != sha256:
            raise BodyError(f"GET {path}: client {i} body sha256 {got[:16]}…, file is {sha256[:16]}…")
    start = min(t[0] for t in times)
    end = max(t[1] for t in times)
    return Download(end - start, sum(len(b) for b in bufs))


def slow_readers(port: int, path: str, size: int, sha256: str, n: int, rate: float, chunk: int = 64 * 1024) -> float:
    """n clients each reading at `rate` bytes/s; every body is hashed as it arrives.

    Returns the wall time. A server that does not respect back-pressure has to
    buffer what the slow clients have not taken yet: its RSS grows."""
    errors: list[BaseException] = []

    def one() -> None:
        try:
            conn, resp = _get(port, path, timeout=300)
            if resp.status != 200:
                raise BodyError(f"slow GET {path}: status {resp.status}")
            h, got, buf = hashlib.sha256(), 0, bytearray(chunk)
            mv = memoryview(buf)
            t0 = time.monotonic()
            while True:
                k = resp.readinto(mv)
                if not k:
                    break
                h.update(mv[:k])
                got += k
                ahead = got / rate - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
            conn.close()
            if got != size or h.hexdigest() != sha256:
                raise BodyError(f"slow GET {path}: {got} bytes, sha256 {'ok' if h.hexdigest() == sha256 else 'WRONG'}")
        except BaseException as e:
            errors.append(e)

    t0 = time.monotonic()
    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return time.monotonic() - t0


# --------------------------------------------------------------------------- idle connections


@dataclass
class IdleResult:
    rss_before: float
    rss_with: float
    still_open: int

    @property
    def cost(self) -> float:
        return self.rss_with - self.rss_before


def idle_connections(
    port: int, path: str, expected: bytes, server_pid: int, n: int = 1000, settle: float = 1.0
) -> IdleResult:
    """Open n keep-alive connections, one small (checked) request on each, keep them open."""
    pids = tree(server_pid)
    before = rss_mib(pids)
    conns = []
    try:
        for _ in range(n):
            conn, resp = _get(port, path, timeout=30)
            body = resp.read()
            if resp.status != 200 or body != expected:
                raise BodyError(f"idle-connection GET {path}: status {resp.status}, {len(body)} bytes, body differs")
            if resp.will_close:
                raise BodyError(f"idle-connection GET {path}: server refused keep-alive")
            conns.append(conn)
        time.sleep(settle)
        with_conns = rss_mib(pids)
        # A connection the server closed reads as EOF: count those still open.
        poller = select.poll()
        by_fd = {c.sock.fileno(): c for c in conns}
        for fd in by_fd:
            poller.register(fd, select.POLLIN | select.POLLHUP)
        closed = sum(1 for fd, ev in poller.poll(0))
        return IdleResult(before, with_conns, n - closed)
    finally:
        for c in conns:
            c.close()
