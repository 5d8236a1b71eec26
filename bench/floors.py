"""How much of a 4 KiB download and of a WeChat reply is Tornado's own request machinery?

    taskset -c 1 bench/.venv/bin/python bench/floors.py [--rounds 6] [--seconds 4]

Issue 20 asks tempdl's 4 KiB download to cost no more than Tornado's bare StaticFileHandler, and
its keyword → link reply at most twice a fixed-XML Tornado handler. This measures, in one run,
what the layers every Tornado answer goes through cost by themselves, so the figures show how
much room each target leaves for tempdl's own work (token, issuance, audit row, log line):

- Tornado's HTTP/1.1 connection with a bare `HTTPMessageDelegate` writing 4 KiB from memory;
- a `RequestHandler` writing the same 4 KiB from memory (routing, handler, headers, finish, log);
- StaticFileHandler serving the 4 KiB file (the reference of target 2);
- tempdl's 4 KiB download, through a link, every body checked;
- the fixed-XML WeChat handler (the reference of target 3) and tempdl's keyword → link reply.

Servers on CPU 0 (`baseline_floors.py` and tempdl, both running throughout), wrk on CPU 1;
every round runs `wrk -t1 -c16` once against each, the order reversed each round, so the
machine's drift hits all alike. A figure is the median over rounds; server CPU per response is
the server tree's utime+stime from `/proc` during that sample.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import ab
import measure
import servers

DOWNLOADS = ("bare delegate", "RequestHandler", "StaticFileHandler", "tempdl download")
REPLIES = ("fixed-XML handler", "tempdl WeChat")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parent.parent)
    args = parser.parse_args()
    samples: dict[str, list[tuple[float, float, float]]] = {name: [] for name in DOWNLOADS + REPLIES}
    with tempfile.TemporaryDirectory(prefix="tempdl-floors-") as temp:
        work = Path(temp)
        files, small = ab.small_files(work)
        (work / "tempdl").mkdir()
        started = [servers.start_floors(work, files)]
        try:
            started.append(servers.start_tempdl(work / "tempdl", files, args.repo.resolve(), with_huge=False))
            floors, tempdl = started
            targets = {
                "bare delegate": (floors.extra["raw_port"], floors.pid, "/", "small"),
                "RequestHandler": (floors.port, floors.pid, "/mem", "small"),
                "StaticFileHandler": (floors.port, floors.pid, floors.small_path, "small"),
                "tempdl download": (tempdl.port, tempdl.pid, tempdl.small_path, "small"),
                "fixed-XML handler": (floors.port, floors.pid, "/wechat", "wechat"),
                "tempdl WeChat": (tempdl.port, tempdl.pid, "/wechat", "wechat"),
            }
            for name in targets:  # warm-up
                sample(*targets[name], small, work, 1)
            for round_number in range(args.rounds):
                order = list(targets) if round_number % 2 == 0 else list(reversed(targets))
                for name in order:
                    samples[name].append(sample(*targets[name], small, work, args.seconds))
                print(f"round {round_number + 1} of {args.rounds} done", file=sys.stderr)
        finally:
            for server in started:
                server.stop()
    print(report(samples, args))
    return 0


def sample(port: int, pid: int, path: str, workload: str, small: Path, work: Path, seconds: int) -> tuple:
    """(requests per second, server CPU µs per response, p99 ms) of one checked wrk run."""
    if workload == "wechat":  # the same checked messages as bench/run.sh, a fresh nonce each
        run = {"expected_file": None, "script": measure.WRK_WECHAT_LUA}
        run["script_args"] = ("small", str(ab.signatures(work, 20_000 * seconds)))
    else:
        run = {"expected_file": small}
    pids = measure.tree(pid)
    cpu_before = measure.cpu_seconds(pids)
    result = measure.wrk(port, path, seconds=seconds, **run)
    responses = result.good + result.bad
    if result.bad or not result.good:
        raise measure.BodyError(f"{path}: {result.bad} of {responses} responses were not what was asked for")
    return result.rps, (measure.cpu_seconds(pids) - cpu_before) / responses * 1e6, result.p99_ms


def report(samples: dict[str, list[tuple]], args: argparse.Namespace) -> str:
    median = {name: [statistics.median(column) for column in zip(*rows, strict=True)] for name, rows in samples.items()}
    lines = [
        f"Medians of {args.rounds} alternating {args.seconds} s samples, wrk -t1 -c16, keep-alive:",
        "",
        "| answer | req/s | server CPU µs/resp | p99 ms | CPU ÷ reference |",
        "|---|---:|---:|---:|---:|",
    ]
    for names, reference in ((DOWNLOADS, "StaticFileHandler"), (REPLIES, "fixed-XML handler")):
        for name in names:
            rps, cpu, p99 = median[name]
            lines.append(f"| {name} | {rps:,.0f} | {cpu:,.0f} | {p99:.2f} | {cpu / median[reference][1]:.2f}× |")
    handler, static, ours = (median[name][1] for name in ("RequestHandler", "StaticFileHandler", "tempdl download"))
    fixed, wechat = median["fixed-XML handler"][1], median["tempdl WeChat"][1]
    lines += [
        "",
        f"Over a RequestHandler's own {handler:,.0f} µs: StaticFileHandler's file work {static - handler:,.0f} µs,"
        f" tempdl's download work {ours - handler:,.0f} µs; target 2 leaves tempdl {static - handler:,.0f}.",
        f"Over the fixed-XML handler's {fixed:,.0f} µs: tempdl's keyword → link work {wechat - fixed:,.0f} µs;"
        f" target 3 (half its rate) leaves {fixed:,.0f}.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
