"""Bandwidth cap and fairness: 8 downloads at once under `limits.total_rate`.

Starts tempdl on loopback with a total rate cap, issues one link per client, downloads the same
file with 8 concurrent clients, checks every body (sha256), and prints the aggregate rate against
the cap and the spread between the fastest and the slowest download.

    python bench/fairness.py [--rate-mib 16] [--size-mib 8] [--clients 8]

Exit status 1 when the aggregate is not within 10 % of the cap or a body is wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def download(port: int, path: str) -> tuple[float, float, int, str]:
    """GET one link; return (start, end, bytes, sha256 of the body)."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    assert b" 200 " in head.split(b"\r\n", 1)[0], head
    digest = hashlib.sha256()
    received = 0
    while chunk := await reader.read(256 * 1024):
        digest.update(chunk)
        received += len(chunk)
    writer.close()
    return started, time.monotonic(), received, digest.hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate-mib", type=float, default=16.0, help="limits.total_rate in MiB/s")
    parser.add_argument("--size-mib", type=int, default=8)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    rate = int(args.rate_mib * MIB)
    workdir = Path(tempfile.mkdtemp(prefix="tempdl-fairness-"))
    try:
        (workdir / "static_files").mkdir()
        content = os.urandom(args.size_mib * MIB)
        (workdir / "static_files" / "big.bin").write_bytes(content)
        expected = hashlib.sha256(content).hexdigest()
        port = free_port()
        (workdir / "tempdl.toml").write_text(f"port = {port}\nlink_ttl = 3600\n[limits]\ntotal_rate = {rate}\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("TEMPDL_")}
        server = subprocess.Popen(
            [sys.executable, str(REPO / "server.py")],
            cwd=workdir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(200):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                    break
                except OSError:
                    time.sleep(0.05)

            def issue(file_id: str) -> str:
                """The path of a new link, issued with the CLI as an operator would."""
                link = subprocess.run(
                    [sys.executable, str(REPO / "server.py"), "issue", file_id],
                    cwd=workdir,
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.strip()
                return urllib.parse.urlsplit(link).path

            paths = [issue("big.bin") for _ in range(args.clients)]
            (workdir / "static_files" / "small.bin").write_bytes(content[:4096])
            small = issue("small.bin")

            async def small_file_latencies() -> list[float]:
                """While the big downloads are throttled, a 4 KiB download must still be quick."""
                await asyncio.sleep(0.5)
                latencies = []
                for _ in range(20):
                    started, ended, size, _ = await download(port, small)
                    assert size == 4096
                    latencies.append(ended - started)
                    await asyncio.sleep(0.05)
                return latencies

            async def run_all():
                small_task = asyncio.create_task(small_file_latencies())
                big = await asyncio.gather(*(download(port, path) for path in paths))
                return big, await small_task

            results, small_latencies = asyncio.run(run_all())
        finally:
            server.terminate()
            server.wait(timeout=30)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    first_start = min(r[0] for r in results)
    last_end = max(r[1] for r in results)
    total = sum(r[2] for r in results)
    aggregate = total / (last_end - first_start)
    per_client = [r[2] / (r[1] - r[0]) for r in results]
    bodies_ok = all(r[3] == expected and r[2] == len(content) for r in results)
    ratio = aggregate / rate
    spread = max(per_client) / min(per_client)
    print(f"cap {rate / MIB:.1f} MiB/s, {args.clients} clients x {args.size_mib} MiB")
    print(f"aggregate {aggregate / MIB:.2f} MiB/s = {ratio:.3f} x cap (target 0.90-1.10)")
    print("per client MiB/s: " + ", ".join(f"{r / MIB:.2f}" for r in sorted(per_client)))
    print(f"spread fastest/slowest {spread:.3f}; bodies {'ok (sha256)' if bodies_ok else 'WRONG'}")
    small_latencies.sort()
    print(f"4 KiB download meanwhile: p50 {small_latencies[10] * 1000:.1f} ms, max {small_latencies[-1] * 1000:.1f} ms")
    return 0 if bodies_ok and 0.9 <= ratio <= 1.1 else 1


if __name__ == "__main__":
    sys.exit(main())
