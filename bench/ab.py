"""A/B of one workload between two checkouts of tempdl, in one run, samples alternating.

    taskset -c 1 /work/venv/bin/python bench/ab.py --before ../audit-before --after . --rounds 8
    taskset -c 1 /work/venv/bin/python bench/ab.py --before ../old --after . --workload wechat

Both servers run at once, pinned to CPU 0 as in `run.sh`, each on its own SQLite file; every
round runs `wrk -t1 -c16` against one then the other (the order flips each round, so a drift of
the machine hits both alike). A sample is one workload of `harness.py`: the 4 KiB download
(keep-alive, every body checked) or the WeChat keyword → link message (every reply checked for
a link), with server CPU per response from `/proc`. Prints the medians and the ratios
after/before. Needs `wrk` and `taskset`; run it with the project's venv.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import measure
import servers


def signatures(work: Path, messages: int) -> Path:
    """A file of `timestamp nonce signature` lines, a fresh nonce per message (see wrk_wechat.lua)."""
    token, timestamp = servers.WECHAT_TOKEN, str(int(time.time()))
    index = len(list(work.glob("signatures-*")))
    path = work / f"signatures-{index}.txt"
    with open(path, "w") as f:
        for i in range(messages):
            nonce = f"ab{index}n{i}x"
            f.write(
                f"{timestamp} {nonce} {hashlib.sha1(''.join(sorted([token, timestamp, nonce])).encode()).hexdigest()}\n"
            )
    return path


def small_files(work: Path) -> tuple[Path, Path]:
    """WORK/files with a random 4 KiB small.bin, and the file itself. big.bin and huge.bin are on
    offer in tempdl's bench config, so they exist too, 4 KiB each: the small workloads never fetch them."""
    files = work / "files"
    files.mkdir()
    for name in ("small.bin", "big.bin", "huge.bin"):
        (files / name).write_bytes(os.urandom(4096))
    return files, files / "small.bin"


def sample(server: servers.Server, small: Path, seconds: int, workload: str, work: Path) -> tuple[float, float]:
    """(requests per second, server CPU µs per response) of one wrk run."""
    if workload == "wechat":  # nonces are spent: every sample gets its own
        script_args = ("small", str(signatures(work, 20_000 * seconds)))
        run = {"path": "/wechat", "expected_file": None, "script": measure.WRK_WECHAT_LUA, "script_args": script_args}
    else:
        run = {"path": server.small_path, "expected_file": small}
    pids = measure.tree(server.pid)
    cpu0 = measure.cpu_seconds(pids)
    result = measure.wrk(server.port, seconds=seconds, **run)
    responses = result.good + result.bad
    if result.bad or not result.good:
        raise measure.BodyError(f"{server.name}: {result.bad} of {responses} responses were not what was asked for")
    return result.rps, (measure.cpu_seconds(pids) - cpu0) / max(1, responses) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="checkout measured first (the reference)")
    parser.add_argument("--after", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--workload", choices=("small", "wechat"), default="small")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tempdl-ab-") as temp:
        work = Path(temp)
        files, small = small_files(work)
        started: dict[str, servers.Server] = {}
        try:
            for side, repo in (("before", args.before), ("after", args.after)):
                side_work = work / side
                side_work.mkdir()
                started[side] = servers.start_tempdl(side_work, files, repo.resolve(), with_huge=False)
                sample(started[side], small, 1, args.workload, work)  # warm-up
            figures: dict[str, list[tuple[float, float]]] = {"before": [], "after": []}
            for round_number in range(args.rounds):
                order = ("before", "after") if round_number % 2 == 0 else ("after", "before")
                for side in order:
                    figures[side].append(sample(started[side], small, args.seconds, args.workload, work))
                    rps, cpu = figures[side][-1]
                    print(f"round {round_number + 1} {side:6}: {rps:7,.0f} req/s  {cpu:5.0f} µs/req", file=sys.stderr)
        finally:
            for server in started.values():
                server.stop()
    medians = {
        side: [statistics.median(column) for column in zip(*rows, strict=True)] for side, rows in figures.items()
    }
    (rps_before, cpu_before), (rps_after, cpu_after) = medians["before"], medians["after"]
    print(f"{args.workload}, medians of {args.rounds} alternating {args.seconds} s samples (wrk -t1 -c16):")
    print(f"  before: {rps_before:,.0f} req/s, {cpu_before:.0f} µs server CPU/req")
    print(f"  after:  {rps_after:,.0f} req/s, {cpu_after:.0f} µs server CPU/req")
    print(f"  after/before: req/s {rps_after / rps_before:.3f}x, CPU/req {cpu_after / cpu_before:.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
