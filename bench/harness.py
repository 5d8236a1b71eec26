"""Runs every workload against each server in turn and prints the table.

Started by run.sh (which owns the venv, the temp dir and the last-resort cleanup);
the clients run here, on CPU 1, the servers on CPU 0.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

import measure
import report
import servers
from measure import MiB

GiB = 1 << 30
ORDER = [report.NGINX, report.TORNADO, report.FASTAPI, report.TEMPDL]


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def make_files(files: Path, huge: bool) -> dict:
    files.mkdir(parents=True, exist_ok=True)
    spec = {"small": 4096, "big": 256 * MiB}
    if huge:
        spec["huge"] = GiB
    out = {}
    for name, size in spec.items():
        path = files / f"{name}.bin"
        h = hashlib.sha256()
        with open(path, "wb") as f:
            left = size
            while left:
                block = os.urandom(min(left, 16 * MiB))
                f.write(block)
                h.update(block)
                left -= len(block)
        out[name] = {"path": path, "size": size, "sha256": h.hexdigest()}
    out["small"]["bytes"] = out["small"]["path"].read_bytes()
    return out


def keep_log(log_file: Path, out_dir: Path) -> None:
    """Server logs outlive the temp dir in bench/out/ (gitignored), for post-mortems."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / log_file.name).write_bytes(log_file.read_bytes()[-4 * MiB :])
    except OSError:
        pass


class Checks:
    """What was verified, for the report's footer."""

    def __init__(self):
        self.whole_files = 0
        self.wrk_bodies = 0
        self.ranges = 0
        self.small = 0


def bench_requests(srv: servers.Server, files: dict, args, bufs: list[bytearray], checks: Checks) -> dict:
    """Correctness, then (a) the 4 KiB request rate: before anything else has grown the server."""
    r: dict = {}
    port, small, big = srv.port, files["small"], files["big"]
    load = measure.ForeignLoad(srv.pid)
    r["rss_start"] = measure.rss_mib(measure.tree(srv.pid))

    # Correctness first (also warms up: StaticFileHandler hashes the file on first use).
    measure.fetch_small(port, srv.small_path, small["bytes"])
    checks.small += 1
    measure.check_range(port, srv.big_path, big["path"])
    checks.ranges += 1
    measure.download(port, srv.big_path, bufs[:1], big["sha256"])
    checks.whole_files += 1

    # (a) 4 KiB keep-alive request rate.
    measure.wrk(port, srv.small_path, small["path"], seconds=1)  # warm-up
    pids = measure.tree(srv.pid)
    cpu0 = measure.cpu_seconds(pids)
    w = measure.wrk(port, srv.small_path, small["path"], seconds=args.wrk_seconds)
    r["cpu_req"] = (measure.cpu_seconds(pids) - cpu0) / max(1, w.good + w.bad) * 1e6
    if w.bad or not w.good:
        raise measure.BodyError(f"wrk: {w.bad} of {w.good + w.bad} responses were not 200 with the exact 4 KiB file")
    checks.wrk_bodies += w.good
    r["rps"], r["p99"] = w.rps, w.p99_ms
    log(
        f"  4 KiB: {w.rps:,.0f} req/s, p99 {w.p99_ms:.2f} ms, server CPU {r['cpu_req']:.0f} µs/request {w.socket_errors}"
    )

    _note_foreign_load(r, load)
    return r


def bench_memory(srv: servers.Server, files: dict, args, checks: Checks, r: dict) -> None:
    """(e) memory under slow readers, (f) idle connections; after the throughput rounds, so
    their peak RSS is not that of a server that has just held 1,000 connections."""
    port, small, big = srv.port, files["small"], files["big"]
    load = measure.ForeignLoad(srv.pid)
    # (e) slow readers: memory must stay flat.
    with measure.RssSampler(srv.pid) as rss:
        secs = measure.slow_readers(port, srv.big_path, big["size"], big["sha256"], 4, args.slow_rate * MiB)
    checks.whole_files += 4
    r["slow_growth"] = rss.growth
    log(f"  4 slow readers ({args.slow_rate} MiB/s each, {secs:.1f}s): RSS {rss.before:.1f} -> {rss.peak:.1f} MiB")

    if args.huge:
        with measure.RssSampler(srv.pid) as rss:
            secs = measure.slow_readers(
                port, srv.huge_path, files["huge"]["size"], files["huge"]["sha256"], 4, args.huge_rate * MiB
            )
        checks.whole_files += 4
        r["huge_growth"] = rss.growth
        log(
            f"  4 slow readers of 1 GiB ({args.huge_rate} MiB/s each, {secs:.1f}s): RSS {rss.before:.1f} -> {rss.peak:.1f} MiB"
        )

    # (f) idle keep-alive connections.
    idle = measure.idle_connections(port, srv.small_path, small["bytes"], srv.pid, n=args.idle)
    checks.small += args.idle
    r["idle_rss"], r["idle_cost"] = idle.rss_with, idle.cost
    if idle.still_open != args.idle:
        r.setdefault("notes", []).append(f"only {idle.still_open} of {args.idle} idle connections still open after 1 s")
    log(
        f"  {args.idle} idle connections: RSS {idle.rss_before:.1f} -> {idle.rss_with:.1f} MiB, {idle.still_open} still open"
    )
    _note_foreign_load(r, load)


def _note_foreign_load(r: dict, load: measure.ForeignLoad) -> None:
    """Keep the worst share of the CPUs that other processes took during this server's windows."""
    foreign, steal = load.share()
    r["foreign"], r["steal"] = max(foreign, r.get("foreign", 0.0)), max(steal, r.get("steal", 0.0))
    log(f"  other processes used {foreign:.0%} of the CPUs meanwhile, hypervisor steal {steal:.0%}")


def bench_throughput(live: dict, files: dict, args, bufs: list[bytearray], checks: Checks, results: dict) -> None:
    """(b) throughput, (c) CPU per GiB over all of it, (d) peak RSS with 4 clients.

    Single downloads on this kind of VM vary 2-3x from one to the next, for every server, and
    drift over minutes; so the servers take turns, one sample each per round, and every
    server's median comes from the same stretch of time.
    """
    big = files["big"]
    racing = dict(live)  # a server whose download fails drops out; the others go on
    cpu = dict.fromkeys(live, 0.0)
    served = dict.fromkeys(live, 0)
    one: dict = {key: [] for key in live}
    four: dict = {key: [] for key in live}
    peak = dict.fromkeys(live, 0.0)

    def sample(key: str, clients: int) -> None:
        srv = racing[key]
        pids = measure.tree(srv.pid)
        cpu0 = measure.cpu_seconds(pids)
        with measure.RssSampler(srv.pid) as rss:
            d = measure.download(srv.port, srv.big_path, bufs[:clients], big["sha256"])
        cpu[key] += measure.cpu_seconds(pids) - cpu0
        served[key] += d.bytes
        checks.whole_files += clients
        (one if clients == 1 else four)[key].append(d.mib_s)
        if clients == 4:
            peak[key] = max(peak[key], rss.peak)

    for clients, rounds in ((1, args.repeat1), (4, args.repeat4)):
        for _ in range(rounds):
            for key in list(racing):
                try:
                    sample(key, clients)
                except Exception as e:
                    racing.pop(key)
                    results[key]["error"] = _error_text(e)
                    log(f"{key}: throughput: {results[key]['error']}")

    for key in racing:
        r = results[key]
        r["mib1"], r["mib4"] = statistics.median(one[key]), statistics.median(four[key])
        r["samples"] = (
            f"1 client {', '.join(f'{x:,.0f}' for x in one[key])}; "
            f"4 clients {', '.join(f'{x:,.0f}' for x in four[key])} MiB/s"
        )
        r["cpu_gib"] = cpu[key] / (served[key] / GiB)
        r["rss_peak4"] = peak[key]
        log(
            f"{key}: 256 MiB: 1 client {r['mib1']:,.0f} MiB/s, 4 clients {r['mib4']:,.0f} MiB/s, "
            f"CPU {r['cpu_gib']:.3f} s/GiB, peak RSS {r['rss_peak4']:.1f} MiB"
        )


def bench_wechat(srv: servers.Server, args) -> dict:
    """(g) Signed WeChat text messages asking for a file by keyword; each reply must carry a link.
    For tempdl every request issues a fresh link, so this is also the audit-write rate; the
    Tornado baseline answers every POST with one fixed XML reply of the same size."""
    token, ts = srv.extra["wechat_token"], str(int(time.time()))
    sig_file = args.work / "wechat-signatures.txt"
    with open(sig_file, "w") as f:  # one fresh nonce per message; more than wrk can send in the time
        for i in range(args.wechat_messages):
            nonce = f"b{i}x{os.getpid()}"
            f.write(f"{ts} {nonce} {hashlib.sha1(''.join(sorted([token, ts, nonce])).encode()).hexdigest()}\n")
    w = measure.wrk(
        srv.port,
        srv.extra["wechat_path"],
        None,
        seconds=args.wrk_seconds,
        script=measure.WRK_WECHAT_LUA,
        script_args=("small", str(sig_file)),
    )
    if w.good + w.bad > args.wechat_messages:
        raise RuntimeError(
            f"WeChat: wrk sent {w.good + w.bad} messages but only {args.wechat_messages} nonces were made"
        )
    if w.bad or not w.good:
        raise measure.BodyError(
            f"WeChat: {w.bad} of {w.good + w.bad} replies were not 200 with a link; {w.stderr[:400]}"
        )
    log(f"  WeChat keyword -> link: {w.rps:,.0f} req/s, p99 {w.p99_ms:.2f} ms")
    return {"wechat_rps": w.rps, "wechat_p99": w.p99_ms, "notes": [f"WeChat: {w.good:,} replies checked"]}


def _error_text(e: BaseException) -> str:
    if isinstance(e, measure.BodyError):
        return f"WRONG BODY: {e}"
    if isinstance(e, servers.ServerError):
        return str(e)
    return f"{type(e).__name__}: {e}"


def stop_server(key: str, srv: servers.Server, results: dict, args) -> None:
    """Stop one server; note how it stopped, keep its log, and quote the log's tail on an error."""
    row = results.setdefault(key, {})
    if srv.proc.poll() is not None and not row.get("error"):
        row["error"] = f"server exited with {srv.proc.returncode} during the run"
    stop_note = srv.stop()
    if stop_note:
        row.setdefault("notes", []).append(stop_note)
    keep_log(srv.log, args.out.parent)
    if row.get("error"):
        row["error"] += f"\n\n  log tail ({srv.log.name}):\n" + "\n".join(
            "    " + ln for ln in servers.tail(srv.log, 15).splitlines()
        )


def describe(args, elapsed: float, checks: Checks) -> str:
    def cmd(*argv):
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        except OSError:
            return "?"
        return (r.stdout.strip() or r.stderr.strip()) if r.returncode == 0 else "?"

    commit = cmd("git", "-C", str(args.repo), "rev-parse", "--short", "HEAD")
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    nginx = cmd(servers._nginx_bin(), "-v").replace("nginx version: ", "")
    return "\n".join(
        [
            f"- when: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, commit {commit}, harness {elapsed:.0f} s",
            f"- machine: {cpu}, {os.cpu_count()} CPUs, Linux {platform.release()}, Python {platform.python_version()}, {nginx}",
            "- pinning: each server on CPU 0, every client (wrk, Python clients) on CPU 1; loopback only",
            f"- 4 KiB: wrk -t1 -c16 -d{args.wrk_seconds}s keep-alive after 1 s warm-up; p99 from wrk --latency; "
            "CPU µs/req = server tree utime+stime during that run ÷ responses",
            f"- 256 MiB: median of {args.repeat1} single downloads and of {args.repeat4} rounds of 4 at once "
            f"(4 clients = aggregate MiB/s), the servers taking turns sample by sample (all running, idle but "
            f"the one measured); CPU = server tree utime+stime over all of them ÷ GiB served",
            f"- memory: RSS of the server's whole process tree sampled every 50 ms; slow readers read {args.slow_rate} MiB/s each"
            + (f"; 1 GiB slow readers {args.huge_rate} MiB/s each" if args.huge else ""),
            f"- checked: {checks.whole_files} whole-file bodies by sha256, {checks.wrk_bodies:,} wrk bodies byte-for-byte, "
            f"{checks.small:,} other 4 KiB bodies, {checks.ranges} Range bytes=1000-1999 answers (206, Content-Range, exact slice)",
        ]
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--work", type=Path, required=True, help="scratch dir (run.sh makes and removes it)")
    p.add_argument("--repo", type=Path, required=True)
    p.add_argument("--only", default=",".join(ORDER), help="comma-separated subset of " + ",".join(ORDER))
    p.add_argument("--no-tempdl", action="store_true", help="baselines only")
    p.add_argument("--huge", action="store_true", help="also 4 slow readers of a 1 GiB file")
    p.add_argument("--wrk-seconds", type=int, default=8)
    p.add_argument("--repeat1", type=int, default=11)
    p.add_argument("--repeat4", type=int, default=7)
    p.add_argument("--slow-rate", type=float, default=20, help="MiB/s per slow reader")
    p.add_argument("--huge-rate", type=float, default=64, help="MiB/s per slow reader of the 1 GiB file")
    p.add_argument("--idle", type=int, default=1000)
    p.add_argument("--wechat-messages", type=int, default=200_000, help=argparse.SUPPRESS)
    p.add_argument(
        "--no-wechat",
        dest="wechat",
        action="store_false",
        help="skip the WeChat request rate (tempdl and its fixed-XML Tornado baseline)",
    )
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out" / "latest.md")
    args = p.parse_args()
    args.work, args.repo = args.work.resolve(), args.repo.resolve()
    wanted = [s for s in ORDER if s in args.only.split(",") and not (s == report.TEMPDL and args.no_tempdl)]

    def on_term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    os.sched_setaffinity(0, {int(measure.CLIENT_CPU)})
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))

    t_start = time.monotonic()
    args.files = args.work / "files"
    log(f"making test files in {args.files}")
    files = make_files(args.files, args.huge)
    bufs = measure.alloc_buffers(4, files["big"]["size"])
    results: dict = {}
    names: dict = {}
    checks = Checks()
    live: dict = {}  # running servers that passed the request workloads
    try:
        for key in wanted:
            srv = None
            log(f"{key}: starting")
            try:
                srv = servers.STARTERS[key](args)
                names[key] = srv.name
                results[key] = bench_requests(srv, files, args, bufs, checks)
                live[key], srv = srv, None  # kept running for the rounds below
            except (measure.BodyError, servers.ServerError) as e:
                results[key] = {"error": _error_text(e)}
                log(f"{key}: {results[key]['error']}")
            except Exception as e:
                results[key] = {"error": _error_text(e)}
                log(f"{key}: {traceback.format_exc()}")
            finally:
                if srv is not None:
                    stop_server(key, srv, results, args)
                names.setdefault(key, key)

        log(f"256 MiB: {', '.join(live)} take turns")
        load = measure.ForeignLoad(*(srv.pid for srv in live.values()))
        bench_throughput(live, files, args, bufs, checks, results)
        for key in live:
            _note_foreign_load(results[key], load)

        for key, srv in live.items():
            if results[key].get("error"):
                continue
            log(f"{key}: memory" + (" and WeChat" if "wechat_path" in srv.extra and args.wechat else ""))
            try:
                bench_memory(srv, files, args, checks, results[key])
                if "wechat_path" in srv.extra and args.wechat:
                    extra = bench_wechat(srv, args)
                    results[key].setdefault("notes", []).extend(extra.pop("notes"))
                    results[key].update(extra)
            except Exception as e:  # keep the figures so far, still fail loudly
                results[key]["error"] = _error_text(e)
                log(f"{key}: {results[key]['error']}")
    finally:
        for key, srv in live.items():
            stop_server(key, srv, results, args)
    body_failed = any(r.get("error", "").startswith("WRONG BODY") for r in results.values())

    elapsed = time.monotonic() - t_start
    notes = [f"- {names[k]}: {n}" for k in wanted for n in results.get(k, {}).get("notes", [])]
    disturbed = [k for k in wanted if results.get(k, {}).get("foreign", 0) > 0.05]
    if disturbed:
        notes.insert(
            0,
            "- **WARNING: other processes were busy during this run** (CPU share of all CPUs taken by "
            "processes outside the benchmark: "
            + ", ".join(f"{names[k]} {results[k]['foreign']:.0%}" for k in disturbed)
            + "). Figures of those rows are unreliable; run again on a quiet machine.",
        )
    notes += [
        f"- {names[k]}: other processes {results[k]['foreign']:.0%} of the CPUs, steal {results[k]['steal']:.0%}"
        for k in wanted
        if "foreign" in results.get(k, {})
    ]
    notes += [
        f"- {names[k]} throughput samples: {results[k]['samples']}" for k in wanted if results.get(k, {}).get("samples")
    ]
    text = (
        "\n\n".join(
            filter(
                None,
                [
                    "# tempdl benchmark",
                    report.table(results, names, wanted, args.huge, args.wechat and report.TEMPDL in wanted),
                    report.legend(),
                    describe(args, elapsed, checks),
                    ("## Notes\n" + "\n".join(notes)) if notes else "",
                    ("## Failures\n" + report.failures(results, names, wanted))
                    if any(r.get("error") for r in results.values())
                    else "",
                ],
            )
        )
        + "\n"
    )
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    log(f"written to {args.out}")
    if body_failed:
        log("FAILED: a server sent a wrong body (see Failures above)")
        return 2
    if any(r.get("error") for r in results.values()):
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as e:
        log(f"interrupted ({e or 'Ctrl-C'}); servers stopped")
        sys.exit(130)
