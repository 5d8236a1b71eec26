"""Throughput of a big download: tempdl sending it itself (direct) vs nginx sending it (x-accel).

    python bench/xaccel.py                 # 256 MiB, 1 and 4 clients, both modes, one run
    python bench/xaccel.py --size-mib 64 --rounds 2

Both set-ups run at the same time, on the same file, and take turns, round by round:

* direct:  client -> tempdl (`serve_mode = "direct"`: its own sendfile path)
* x-accel: client -> nginx (deploy/nginx-x-accel.conf as shipped, pointed at loopback) -> tempdl
           (`serve_mode = "x-accel"`); tempdl checks the link and records the row, nginx sends

Servers (tempdl, and nginx with its worker) are pinned to CPU 0 and this client process to the
other CPUs, so the client's copying does not steal the servers' CPU. 1 client: `--rounds` single
downloads; 4 clients: `--rounds` rounds of 4 downloads at once, aggregate MiB/s = all bytes / wall
time from the first request to the last byte. The table shows the median and the range, and the
server processes' CPU time per GiB sent (from /proc: tempdl alone; nginx's master and worker plus
tempdl). Each download is read with recv_into into one reused buffer (no client-side allocation);
the first download of each set-up is checked byte for byte against the file.

Needs nginx (.ci/install-engines.sh installs it) and the project's requirements; run as root or
a user who may run nginx. Nothing is left running: servers are stopped in `finally` blocks.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import os
import secrets
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.engines import nginx_available, throwaway_nginx  # noqa: E402
from tests.live_server import LiveServer  # noqa: E402
from tests.nginx_deploy import nginx_config_from_deploy  # noqa: E402

MIB = 1024 * 1024
SERVER_CPU = 0


def pin(pid: int, cpus: set[int]) -> None:
    with contextlib.suppress(OSError):
        os.sched_setaffinity(pid, cpus)


def pin_tree(pid: int) -> None:
    """Pin a server and its children (nginx's worker) to the server CPU."""
    for member in tree(pid):
        pin(member, {SERVER_CPU})


def tree(pid: int) -> list[int]:
    """A process and its descendants (nginx's master and worker)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *(descendant for child in children for descendant in tree(int(child)))]


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes and their descendants, in seconds."""
    ticks = 0
    for root in pids:
        for pid in tree(root):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def write_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as stream:
        for _ in range(size // MIB):
            block = os.urandom(MIB)
            digest.update(block)
            stream.write(block)
    return digest.hexdigest()


def download(port: int, path: str, buffer: bytearray, *, check: str | None = None) -> int:
    """GET `path`, reading the body into `buffer` again and again; returns the body's length."""
    with socket.create_connection(("127.0.0.1", port)) as client:
        client.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(4096)
            if not chunk:
                raise RuntimeError("connection closed before the headers ended")
            head += chunk
        header, body_start = head.split(b"\r\n\r\n", 1)
        status = header.split(b" ", 2)[1]
        if status != b"200":
            raise RuntimeError(f"HTTP {status.decode()}: {header.decode(errors='replace')[:300]}")
        length = int(
            next(line for line in header.split(b"\r\n") if line.lower().startswith(b"content-length:")).split(b":")[1]
        )
        digest = hashlib.sha256(body_start) if check else None
        received = len(body_start)
        view = memoryview(buffer)
        while received < length:
            count = client.recv_into(view)
            if count == 0:
                raise RuntimeError(f"connection closed after {received} of {length} bytes")
            if digest is not None:
                digest.update(view[:count])
            received += count
    if check and digest is not None and digest.hexdigest() != check:
        raise RuntimeError("the body differs from the file")
    return received


def _after(barrier: threading.Barrier, port: int, path: str, buffer: bytearray) -> None:
    barrier.wait()
    download(port, path, buffer)


def one_client(port: int, path: str, buffer: bytearray, size: int) -> float:
    started = time.perf_counter()
    download(port, path, buffer)
    return size / MIB / (time.perf_counter() - started)


def four_clients(port: int, paths: list[str], buffers: list[bytearray], size: int) -> float:
    """Aggregate MiB/s of four downloads started together: all bytes / first request to last byte."""
    barrier = threading.Barrier(5)
    threads = [
        threading.Thread(target=_after, args=(barrier, port, path, buffer))
        for path, buffer in zip(paths, buffers, strict=True)
    ]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return 4 * size / MIB / (time.perf_counter() - started)


@dataclass
class Samples:
    one: list[float] = field(default_factory=list)  # MiB/s
    four: list[float] = field(default_factory=list)  # MiB/s, aggregate
    cpu: float = 0.0  # server CPU seconds over all timed downloads
    gib: float = 0.0  # GiB sent in them


def measure(targets: dict[str, Target], size: int, rounds: int, checksum: str) -> dict[str, Samples]:
    """Samples per set-up; the set-ups take turns, round by round, so a slow moment of the
    machine hits both rather than one."""
    buffers = [bytearray(4 * MIB) for _ in range(4)]
    samples = {name: Samples() for name in targets}
    for target in targets.values():
        download(target.port, next(target.links), buffers[0], check=checksum)  # warm-up, proof of bytes
    for clients in (1, 4):
        for _ in range(rounds):
            for name, target in targets.items():
                before = cpu_seconds(target.pids)
                if clients == 1:
                    samples[name].one.append(one_client(target.port, next(target.links), buffers[0], size))
                else:
                    paths = [next(target.links) for _ in range(4)]
                    samples[name].four.append(four_clients(target.port, paths, buffers, size))
                samples[name].cpu += cpu_seconds(target.pids) - before
                samples[name].gib += clients * size / 1024**3
    return samples


@dataclass
class Target:
    port: int
    links: Iterator[str]
    pids: list[int]  # the server processes whose CPU is counted


def tempdl_config(files_dir: Path, mode: str, keys: list[str]) -> str:
    return (
        f'serve_mode = "{mode}"\nfiles_dir = "{files_dir}"\nsecret_keys = ["{keys[0]}"]\n'
        "link_ttl = 86400\nshutdown_grace = 2\n"
    )


def issued(server: LiveServer, count: int) -> Iterator[str]:
    """`count` links to the big file, issued now with the CLI, handed out one by one later."""
    return iter([server.issue("big.bin") for _ in range(count)])


@contextlib.contextmanager
def tempdl(workdir: Path, config_text: str) -> Iterator[LiveServer]:
    workdir.mkdir()
    server = LiveServer(workdir, config_text)
    try:
        server.start()
        assert server.process is not None
        pin_tree(server.process.pid)
        yield server
    finally:
        if server.process is not None and server.process.poll() is None:
            server.stop(signal.SIGTERM)
        server.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    if reason := nginx_available():
        sys.stderr.write(f"xaccel bench: {reason}\n")
        return 1
    others = (set(range(os.cpu_count() or 1)) - {SERVER_CPU}) or {SERVER_CPU}
    pin(0, others)
    size = args.size_mib * MIB
    base = Path(tempfile.mkdtemp(prefix="tempdl-xaccel-bench-"))
    try:
        files_dir = base / "files"
        files_dir.mkdir()
        checksum = write_file(files_dir / "big.bin", size)
        keys = [secrets.token_urlsafe(32)]
        # Links are issued before timing starts: a CLI `issue` per download, outside the clock.
        needed = 1 + 5 * args.rounds
        with (
            tempdl(base / "direct", tempdl_config(files_dir, "direct", keys)) as direct,
            tempdl(base / "xaccel", tempdl_config(files_dir, "x-accel", keys)) as behind_nginx,
        ):
            builder = functools.partial(nginx_config_from_deploy, files_dir, [behind_nginx.port])
            with throwaway_nginx(base / "nginx", builder) as nginx:
                pin_tree(nginx.pid)
                assert direct.process is not None and behind_nginx.process is not None
                targets = {
                    "tempdl direct (its own sendfile)": Target(
                        direct.port, issued(direct, needed), [direct.process.pid]
                    ),
                    "nginx -> tempdl (x-accel)": Target(
                        nginx.port, issued(behind_nginx, needed), [nginx.pid, behind_nginx.process.pid]
                    ),
                }
                samples = measure(targets, size, args.rounds, checksum)
    finally:
        shutil.rmtree(base, ignore_errors=True)

    print(f"{args.size_mib} MiB download over loopback; servers on CPU {SERVER_CPU}, client on CPU {sorted(others)}")
    print(f"MiB/s: median (min-max) of {args.rounds} runs; 4 clients: aggregate of 4 downloads at once.")
    print("Server CPU: utime+stime of the server processes (tempdl; nginx + tempdl) per GiB sent.\n")
    print("| set-up | 1 client MiB/s | 4 clients MiB/s | server CPU s/GiB |")
    print("|---|---:|---:|---:|")
    for name, found in samples.items():
        cells = [
            f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"
            for values in (found.one, found.four)
        ]
        print(f"| {name} | {cells[0]} | {cells[1]} | {found.cpu / found.gib:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
