#!/usr/bin/env python3
"""Mixed load on a live tempdl, then proof that it kept serving and lost no record.

    python bench/load.py                      # own server, 30 s, 200 connections
    python bench/load.py --seconds 5 --connections 50
    python bench/load.py --url http://127.0.0.1:8000 --config tempdl.toml [--pid PID]

It starts a server with a temp config (or targets one with `--url`; then `--config` must be that
server's config, for `issue`, the WeChat token and the database), issues links with
`python server.py issue` (valid ones, some with `--ttl 1` that expire before the run, and
tampered copies), and runs N keep-alive HTTP/1.1 connections for S seconds, each sending a mix of
signed WeChat text messages, whole downloads of a small and a large file, Range requests,
expired links and bad tokens. The client is the standard library only: asyncio streams and a
tiny HTTP/1.1 reader, so the numbers are not a client library's.

Then it checks, and exits 1 if any check fails:
- no 5xx and no connection errors or timeouts; every answer the one its kind must get;
- one `download_attempts` row per download request sent (the server is stopped with SIGTERM
  first, so every row is committed; with `--url` the row count is polled until it settles),
  with the outcome and status of its kind (each request's User-Agent names its kind and run);
- every WeChat reply carries a link, and one `issuances` row (channel wechat) per message.

It reports requests/s, p50/p99 latency per kind, and the server's peak RSS (VmRSS sampled every
100 ms, and the kernel's VmHWM).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WECHAT_TOKEN = "load-test-wechat-token"
KEYWORD = "small"
REQUEST_TIMEOUT = 60.0

# kind -> (share of requests, expected status, expected audit outcome or None for WeChat)
KINDS = {
    "wechat": (0.20, 200, None),
    "small": (0.30, 200, "ok"),
    "large": (0.03, 200, "ok"),
    "range": (0.22, 206, "ok"),
    "expired": (0.125, 410, "expired"),
    "bad": (0.125, 403, "bad"),
}


# --- the server under test -------------------------------------------------------------------


@dataclass
class Target:
    host: str
    port: int
    config: Path
    database: Path
    wechat_token: str
    small_id: str
    large_id: str
    process: subprocess.Popen | None = None  # ours to stop, when we started it
    pid: int | None = None
    workdir: Path | None = None


def raise_file_limit() -> int:
    """200 client sockets plus as many on the server side: lift the soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_own_server(large_mib: int, pin: bool) -> Target:
    """A server on a temp dir: a 4 KiB and a `large_mib` MiB file, SQLite audit, WeChat token."""
    workdir = Path(tempfile.mkdtemp(prefix="tempdl-load-"))
    files = workdir / "files"
    files.mkdir()
    (files / "small.bin").write_bytes(os.urandom(4096))
    with (files / "large.bin").open("wb") as out:
        for _ in range(large_mib):
            out.write(os.urandom(1 << 20))
    port = free_port()
    config = workdir / "tempdl.toml"
    config.write_text(
        f'files_dir = "{files}"\ndata_dir = "{workdir / "data"}"\npublic_url = "http://127.0.0.1:{port}"\n'
        "link_ttl = 3600\nshutdown_grace = 10\n"
        f'[wechat]\ntoken = "{WECHAT_TOKEN}"\n'
        '[[files]]\nid = "small"\npath = "small.bin"\nkeywords = ["small"]\n'
        '[[files]]\nid = "large"\npath = "large.bin"\nkeywords = ["large"]\n',
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEMPDL_")}
    log = (workdir / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, str(REPO / "server.py"), "serve", "--config", str(config), "--port", str(port)],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # our own process group: Ctrl-C on the load does not hit it first
    )
    if pin and len(os.sched_getaffinity(0)) >= 2:
        # Server on one CPU, this client on the other: neither steals the other's core.
        os.sched_setaffinity(process.pid, {0})
        os.sched_setaffinity(0, set(os.sched_getaffinity(0)) - {0})
    target = Target(
        "127.0.0.1",
        port,
        config,
        workdir / "data" / "tempdl.sqlite3",
        WECHAT_TOKEN,
        "small",
        "large",
        process=process,
        pid=process.pid,
        workdir=workdir,
    )
    wait_until_listening(target)
    return target


def attach_to_server(url: str, config: Path, pid: int | None, small_id: str, large_id: str) -> Target:
    sys.path.insert(0, str(REPO))
    from tempdl.config.load import load_settings  # only here: the client itself needs nothing of tempdl

    settings = load_settings({"config": str(config)})
    if not settings.database_url.startswith("sqlite:///"):
        raise SystemExit("load.py reads the audit rows with sqlite3: point it at a SQLite-backed server")
    if not settings.wechat.token:
        raise SystemExit("the server's config has no [wechat] token: WeChat messages cannot be signed")
    parts = urllib.parse.urlsplit(url)
    target = Target(
        parts.hostname or "127.0.0.1",
        parts.port or 80,
        config,
        Path(settings.database_url.removeprefix("sqlite:///")),
        settings.wechat.token,
        small_id,
        large_id,
        pid=pid,
    )
    wait_until_listening(target)
    return target


def wait_until_listening(target: Target, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if target.process is not None and target.process.poll() is not None:
            raise SystemExit(f"the server exited with {target.process.returncode}; see {target.workdir}/server.log")
        with contextlib.suppress(OSError), socket.create_connection((target.host, target.port), timeout=1):
            return
        time.sleep(0.1)
    raise SystemExit(f"nothing listens on {target.host}:{target.port}")


def stop_own_server(target: Target) -> int | None:
    """SIGTERM, as an init system would, and wait: afterwards every audit row is committed."""
    if target.process is None:
        return None
    target.process.send_signal(signal.SIGTERM)
    try:
        return target.process.wait(60)
    except subprocess.TimeoutExpired:
        target.process.kill()
        target.process.wait(10)
        return None


# --- links -----------------------------------------------------------------------------------


def issue(target: Target, file_id: str, *args: str) -> str:
    """A token from `python server.py issue`, the operator's command."""
    result = subprocess.run(
        [sys.executable, str(REPO / "server.py"), "issue", file_id, "--config", str(target.config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"issue {file_id} failed: {result.stderr.strip()}")
    return result.stdout.strip().rsplit("/", 1)[1]


def tampered(token: str, rng: random.Random) -> str:
    """The same token with one signature character changed, or cut short, or junk."""
    how = rng.choice(["flip", "cut", "junk"])
    if how == "flip":
        index = rng.randrange(token.rindex(".") + 1, len(token))
        return token[:index] + ("A" if token[index] != "A" else "B") + token[index + 1 :]
    if how == "cut":
        return token[: rng.randrange(1, len(token))]
    return "".join(rng.choice("abcdefXYZ0123._-") for _ in range(rng.randrange(1, 60)))


@dataclass
class Links:
    small: list[str]
    large: list[str]
    expired: list[str]
    bad: list[str]


def prepare_links(target: Target, rng: random.Random, per_kind: int) -> Links:
    """Valid links for both files, `--ttl 1` links waited out until expired, and bad ones."""
    expired = [issue(target, target.small_id, "--ttl", "1", "--to", f"load-expired-{i}") for i in range(per_kind)]
    expired_at = time.monotonic() + 1.5
    small = [issue(target, target.small_id, "--ttl", "3600", "--to", f"load-{i}") for i in range(per_kind)]
    large = [issue(target, target.large_id, "--ttl", "3600", "--to", f"load-{i}") for i in range(per_kind)]
    bad = [tampered(rng.choice(small + large), rng) for _ in range(4 * per_kind)]
    time.sleep(max(0.0, expired_at - time.monotonic()))
    return Links(small, large, expired, bad)


# --- a tiny HTTP/1.1 keep-alive client ----------------------------------------------------------


class ConnectionBroken(Exception):
    pass


@dataclass
class Answer:
    status: int
    length: int  # body bytes read
    body: bytes  # kept only when small (WeChat replies, refusals)


class Connection:
    """One keep-alive connection; requests go one at a time, bodies are read to the end."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, target: str, headers: dict[str, str], body: bytes = b"") -> Answer:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=1 << 20)
        assert self.reader is not None
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body:
            lines.append(f"Content-Length: {len(body)}")
        try:
            self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
            head = await self.reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length_match = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.IGNORECASE)
            if length_match is None:
                raise ConnectionBroken(f"answer {status} without Content-Length")
            remaining = int(length_match.group(1))
            kept = bytearray()
            total = 0
            while remaining:
                chunk = await self.reader.read(min(remaining, 1 << 20))
                if not chunk:
                    raise ConnectionBroken("connection closed mid-body")
                remaining -= len(chunk)
                total += len(chunk)
                if len(kept) < 65536:
                    kept += chunk[: 65536 - len(kept)]
            if re.search(rb"\r\nconnection:\s*close", head, re.IGNORECASE):
                await self.close()
            return Answer(status, total, bytes(kept))
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError) as error:
            await self.close()
            raise ConnectionBroken(f"{type(error).__name__}: {error}") from None

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
        self.reader = self.writer = None


# --- the workload ------------------------------------------------------------------------------


@dataclass
class Tally:
    """What was sent and what came back, per kind."""

    sent: Counter = field(default_factory=Counter)
    statuses: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    wrong: list[str] = field(default_factory=list)  # first few unexpected answers, for the report
    errors: Counter = field(default_factory=Counter)
    body_bytes: int = 0

    def note_wrong(self, text: str) -> None:
        if len(self.wrong) < 20:
            self.wrong.append(text)


def wechat_request(token: str, follower: int, message_id: int) -> tuple[str, bytes]:
    """A text message signed as WeChat signs it: sha1 of sorted token, timestamp, fresh nonce."""
    timestamp = str(int(time.time()))
    nonce = os.urandom(8).hex()
    signature = hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()
    openid = f"oLoad{follower:023d}"
    query = urllib.parse.urlencode({"signature": signature, "timestamp": timestamp, "nonce": nonce, "openid": openid})
    body = (
        f"<xml><ToUserName><![CDATA[gh_loadtest]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
        f"<CreateTime>{timestamp}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{KEYWORD}]]></Content><MsgId>{message_id}</MsgId></xml>"
    ).encode()
    return f"/wechat?{query}", body


def pick_range(rng: random.Random, size: int) -> tuple[str, int]:
    """A satisfiable single Range that is not the whole file, and how many bytes it asks for."""
    if rng.random() < 0.2:
        suffix = rng.randint(1, min(size - 1, 65536))
        return f"bytes=-{suffix}", suffix
    start = rng.randrange(1, size)
    end = min(size - 1, start + rng.randint(0, 256 * 1024))
    return f"bytes={start}-{end}", end - start + 1


async def worker(
    number: int,
    target: Target,
    links: Links,
    sizes: dict[str, int],
    deadline: float,
    run_id: str,
    tally: Tally,
    seed: int,
    counter: list[int],
) -> None:
    rng = random.Random(seed * 1000 + number)
    connection = Connection(target.host, target.port)
    kinds = list(KINDS)
    weights = [KINDS[kind][0] for kind in kinds]
    try:
        while time.monotonic() < deadline:
            kind = rng.choices(kinds, weights)[0]
            counter[0] += 1
            sequence = counter[0]
            headers = {"User-Agent": f"tempdl-load/{run_id}/{kind}/{sequence}"}
            method, body, expect_bytes = "GET", b"", None
            if kind == "wechat":
                method = "POST"
                path, body = wechat_request(target.wechat_token, rng.randrange(1000), 10**15 + sequence)
            elif kind in ("small", "large"):
                path = f"/api/get_file/{rng.choice(getattr(links, kind))}"
                expect_bytes = sizes[kind]
            elif kind == "range":
                file_kind = "small" if rng.random() < 0.5 else "large"
                path = f"/api/get_file/{rng.choice(getattr(links, file_kind))}"
                headers["Range"], expect_bytes = pick_range(rng, sizes[file_kind])
            else:
                path = f"/api/get_file/{urllib.parse.quote(rng.choice(getattr(links, kind)), safe='')}"
            tally.sent[kind] += 1
            started = time.perf_counter()
            try:
                answer = await asyncio.wait_for(connection.request(method, path, headers, body), REQUEST_TIMEOUT)
            except (ConnectionBroken, TimeoutError) as error:
                tally.errors[f"{kind}: {type(error).__name__}"] += 1
                tally.note_wrong(f"{kind} #{sequence}: {error}")
                await connection.close()
                continue
            tally.latencies[kind].append(time.perf_counter() - started)
            tally.statuses[kind][answer.status] += 1
            tally.body_bytes += answer.length
            check_answer(kind, sequence, answer, expect_bytes, tally)
    finally:
        await connection.close()


def check_answer(kind: str, sequence: int, answer: Answer, expect_bytes: int | None, tally: Tally) -> None:
    expected_status = KINDS[kind][1]
    if answer.status != expected_status:
        tally.note_wrong(f"{kind} #{sequence}: {answer.status} {answer.body[:120]!r}")
    elif expect_bytes is not None and answer.length != expect_bytes:
        tally.note_wrong(f"{kind} #{sequence}: {answer.length} body bytes, expected {expect_bytes}")
    elif kind == "wechat" and b"/api/get_file/" not in answer.body:
        tally.note_wrong(f"wechat #{sequence}: reply without a link {answer.body[:200]!r}")


async def sample_rss(pid: int | None, stop: asyncio.Event, samples: list[int]) -> None:
    """VmRSS of the server every 100 ms, in KiB."""
    if pid is None:
        return
    while not stop.is_set():
        rss = read_status_kib(pid, "VmRSS")
        if rss is not None:
            samples.append(rss)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.1)


def cpu_seconds(pid: int | None) -> float | None:
    """utime + stime of a process (all its threads: the event loop and the audit writer)."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def read_status_kib(pid: int, key: str) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{key}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else None


async def probe_sizes(target: Target, links: Links) -> dict[str, int]:
    """File sizes from a `Range: bytes=0-0` answer (206 with Content-Range: bytes 0-0/SIZE)."""
    sizes = {}
    for kind in ("small", "large"):
        reader, writer = await asyncio.open_connection(target.host, target.port)
        writer.write(
            f"GET /api/get_file/{getattr(links, kind)[0]} HTTP/1.1\r\nHost: x\r\nRange: bytes=0-0\r\n"
            f"User-Agent: tempdl-load/probe\r\nConnection: close\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        writer.close()
        match = re.search(rb"Content-Range: bytes 0-0/(\d+)", head, re.IGNORECASE)
        if not match:
            raise SystemExit(f"cannot learn the size of the {kind} file: {head[:200]!r}")
        sizes[kind] = int(match.group(1))
    return sizes


async def run_load(target: Target, links: Links, seconds: float, connections: int, seed: int, run_id: str):
    sizes = await probe_sizes(target, links)
    tally = Tally()
    rss: list[int] = []
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_rss(target.pid, stop, rss))
    counter = [0]
    server_cpu_before = cpu_seconds(target.pid)
    client_cpu_before = time.process_time()
    started = time.monotonic()
    deadline = started + seconds
    await asyncio.gather(
        *(worker(i, target, links, sizes, deadline, run_id, tally, seed, counter) for i in range(connections))
    )
    elapsed = time.monotonic() - started
    server_cpu_after = cpu_seconds(target.pid)
    cpu = {
        "server_cpu_percent": None
        if server_cpu_before is None or server_cpu_after is None
        else round(100 * (server_cpu_after - server_cpu_before) / elapsed, 1),
        "client_cpu_percent": round(100 * (time.process_time() - client_cpu_before) / elapsed, 1),
    }
    peak_hwm = read_status_kib(target.pid, "VmHWM") if target.pid else None
    stop.set()
    await sampler
    return tally, elapsed, rss, peak_hwm, sizes, cpu


# --- after the run: the audit, read as an operator would ------------------------------------


def audit_by_kind(database: Path, run_id: str) -> dict[str, Counter]:
    """(outcome, http_status) counts of this run's download_attempts rows, per kind."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as connection:
        found = connection.execute(
            "SELECT user_agent, outcome, http_status, finished_at IS NULL FROM download_attempts "
            "WHERE user_agent LIKE ?",
            (f"tempdl-load/{run_id}/%",),
        ).fetchall()
    by_kind: dict[str, Counter] = defaultdict(Counter)
    for user_agent, outcome, status, unfinished in found:
        kind = user_agent.split("/")[2]
        by_kind[kind][(outcome, status, "unfinished" if unfinished else "finished")] += 1
    return by_kind


def count_wechat_issuances(database: Path, since: str) -> int:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as connection:
        return connection.execute(
            "SELECT COUNT(*) FROM issuances WHERE channel = 'wechat' AND recipient LIKE 'oLoad%' AND created_at >= ?",
            (since,),
        ).fetchone()[0]


def wait_for_rows(database: Path, run_id: str, expected: int, timeout: float = 30.0) -> None:
    """With `--url` the server keeps running: poll until this run's rows are all in and closed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        by_kind = audit_by_kind(database, run_id)
        total = sum(sum(c.values()) for c in by_kind.values())
        unfinished = sum(n for c in by_kind.values() for (_, _, state), n in c.items() if state == "unfinished")
        if total >= expected and not unfinished:
            return
        time.sleep(0.2)


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--url", help="target a running server instead of starting one (needs --config)")
    parser.add_argument("--config", type=Path, help="with --url: that server's tempdl.toml")
    parser.add_argument("--pid", type=int, help="with --url: the server's pid, to sample its RSS")
    parser.add_argument("--small-id", default="small", help="with --url: id of a small file on offer")
    parser.add_argument("--large-id", default="large", help="with --url: id of a large file on offer")
    parser.add_argument("--large-mib", type=int, default=8, help="size of the large file we create (MiB)")
    parser.add_argument("--links", type=int, default=4, help="links issued per kind with the CLI")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-pin", action="store_true", help="do not pin server and client to separate CPUs")
    parser.add_argument("--keep", action="store_true", help="keep our server's temp dir (log, database)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.url and not args.config:
        parser.error("--url needs --config (to issue links, sign WeChat messages and read the audit)")

    file_limit = raise_file_limit()
    if file_limit < 2 * args.connections + 100:
        print(f"warning: only {file_limit} file descriptors allowed; connections may fail", file=sys.stderr)
    if args.url:
        target = attach_to_server(args.url, args.config, args.pid, args.small_id, args.large_id)
    else:
        target = start_own_server(args.large_mib, pin=not args.no_pin)
    run_id = f"{int(time.time())}{os.getpid()}"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() - 1))
    failures: list[str] = []
    exit_code = None
    try:
        rng = random.Random(args.seed)
        links = prepare_links(target, rng, args.links)
        print(
            f"load: {args.connections} connections for {args.seconds:g} s on {target.host}:{target.port} "
            f"(fd limit {file_limit})",
            file=sys.stderr,
        )
        tally, elapsed, rss, hwm, sizes, cpu = asyncio.run(
            run_load(target, links, args.seconds, args.connections, args.seed, run_id)
        )
    finally:
        exit_code = stop_own_server(target)
    downloads_sent = sum(n for kind, n in tally.sent.items() if kind != "wechat")
    if target.process is None:
        wait_for_rows(target.database, run_id, downloads_sent)
    elif exit_code != 0:
        failures.append(f"server exit code after SIGTERM: {exit_code}")

    # --- checks ---
    fives = {kind: sum(n for status, n in c.items() if status >= 500) for kind, c in tally.statuses.items()}
    if any(fives.values()):
        failures.append(f"5xx answers: {fives}")
    if tally.errors:
        failures.append(f"connection errors/timeouts: {dict(tally.errors)}")
    if tally.wrong:
        failures.append(f"{len(tally.wrong)}+ unexpected answers, e.g. " + "; ".join(tally.wrong[:5]))
    by_kind = audit_by_kind(target.database, run_id)
    rows_total = sum(sum(c.values()) for c in by_kind.values())
    if rows_total != downloads_sent:
        failures.append(f"download_attempts rows {rows_total} != download requests sent {downloads_sent}")
    for kind, (_, status, outcome) in KINDS.items():
        if outcome is None:
            continue
        wanted = Counter({(outcome, status, "finished"): tally.sent[kind]}) if tally.sent[kind] else Counter()
        if by_kind.get(kind, Counter()) != wanted:
            failures.append(f"rows for {kind}: {dict(by_kind.get(kind, {}))}, expected {dict(wanted)}")
    issued = count_wechat_issuances(target.database, since)
    if issued != tally.sent["wechat"]:
        failures.append(f"issuances via WeChat {issued} != messages sent {tally.sent['wechat']}")
    if target.workdir is not None:
        log = (target.workdir / "server.log").read_text(errors="replace")
        if "Traceback" in log or re.search(r" ERROR ", log):
            failures.append(f"errors in the server log: {target.workdir}/server.log")

    # --- report ---
    total = sum(tally.sent.values())
    figures = {
        "seconds": round(elapsed, 2),
        "connections": args.connections,
        "requests": total,
        "requests_per_second": round(total / elapsed, 1),
        "body_mib_per_second": round(tally.body_bytes / elapsed / 2**20, 1),
        "peak_rss_mib_sampled": round(max(rss) / 1024, 1) if rss else None,
        "peak_rss_mib_vmhwm": round(hwm / 1024, 1) if hwm else None,
        **cpu,
        "download_requests": downloads_sent,
        "download_attempts_rows": rows_total,
        "wechat_issuances": issued,
        "file_sizes": sizes,
        "kinds": {
            kind: {
                "sent": tally.sent[kind],
                "per_second": round(tally.sent[kind] / elapsed, 1),
                "statuses": dict(tally.statuses[kind]),
                "p50_ms": round(1000 * percentile(tally.latencies[kind], 0.50), 1),
                "p99_ms": round(1000 * percentile(tally.latencies[kind], 0.99), 1),
            }
            for kind in KINDS
        },
        "failures": failures,
    }
    print_report(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    if target.workdir is not None:
        if failures or args.keep:
            print(f"server dir kept: {target.workdir}", file=sys.stderr)
        else:
            shutil.rmtree(target.workdir, ignore_errors=True)
    return 1 if failures else 0


def print_report(figures: dict) -> None:
    print(
        f"\n{figures['requests']} requests in {figures['seconds']} s over {figures['connections']} connections: "
        f"{figures['requests_per_second']} req/s, {figures['body_mib_per_second']} MiB/s of bodies"
    )
    print(f"{'kind':<8} {'sent':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}  statuses")
    for kind, row in figures["kinds"].items():
        statuses = " ".join(f"{status}x{n}" for status, n in sorted(row["statuses"].items()))
        print(f"{kind:<8} {row['sent']:>7} {row['per_second']:>8} {row['p50_ms']:>8} {row['p99_ms']:>8}  {statuses}")
    print(
        f"server peak RSS: {figures['peak_rss_mib_sampled']} MiB sampled every 100 ms, "
        f"{figures['peak_rss_mib_vmhwm']} MiB VmHWM; CPU: server {figures['server_cpu_percent']}% "
        f"of one core, this client {figures['client_cpu_percent']}%"
    )
    print(
        f"download requests {figures['download_requests']}, download_attempts rows "
        f"{figures['download_attempts_rows']}; WeChat issuances {figures['wechat_issuances']}"
    )
    if figures["failures"]:
        print("FAILED:")
        for failure in figures["failures"]:
            print(f"  - {failure}")
    else:
        print("all checks passed")


if __name__ == "__main__":
    sys.exit(main())
