#!/usr/bin/env python3
"""Time the reports on a big audit database, the way an operator meets them.

    python server.py db upgrade --data-dir bench/out
    python bench/gen_audit_rows.py bench/out/tempdl.sqlite3 --attempts 1000000
    python bench/time_reports.py bench/out/tempdl.sqlite3

It first runs `python server.py db upgrade`, which builds the daily rollups the reports read
(timed on its own: the first build is paid once), then `python server.py stats` for every breakdown (the whole command: interpreter start,
imports, queries, output), then starts `python server.py` on a free port and fetches the
dashboard, the data endpoints and /metrics, and the same reports in-process (queries only).
Each figure is the best and the median wall-clock time of `--runs` runs, and the best CPU time
(user + system) the work took: on a machine other jobs share, CPU time is what the code costs and
the wall clock what the operator waits. Everything stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import zoneinfo
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tempdl.audit.engine import make_engine  # noqa: E402
from tempdl.reports.period import Period  # noqa: E402
from tempdl.reports.stats import BREAKDOWNS, build_dashboard, build_report, metrics_snapshot  # noqa: E402

PASSWORD = "bench-password"


def own_cpu() -> float:
    return time.process_time()


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def process_cpu(pid: int) -> Callable[[], float]:
    def cpu() -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    return cpu


def timed(action: Callable[[], object], runs: int, cpu: Callable[[], float]) -> tuple[float, float, float]:
    action()  # warm the page cache once
    durations, cpu_times = [], []
    for _ in range(runs):
        started, cpu_started = time.perf_counter(), cpu()
        action()
        durations.append(time.perf_counter() - started)
        cpu_times.append(cpu() - cpu_started)
    return min(durations), statistics.median(durations), min(cpu_times)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("database", type=Path, help="an audit SQLite file (see bench/gen_audit_rows.py)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--timezone", default="Asia/Shanghai")
    args = parser.parse_args()
    database = args.database.resolve()
    workdir = Path(tempfile.mkdtemp(prefix="tempdl-bench-"))
    port = free_port()
    (workdir / "tempdl.toml").write_text(
        f'port = {port}\ntimezone = "{args.timezone}"\ndatabase_url = "sqlite:///{database}"\n'
        f'data_dir = "{workdir}"\nfiles_dir = "{REPO / "static_files"}"\n[admin]\npassword = "{PASSWORD}"\n',
        encoding="utf-8",
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("TEMPDL_")}
    results: list[tuple[str, float, float, float]] = []

    def command(*argv: str) -> Callable[[], object]:
        def run() -> None:
            subprocess.run(
                [sys.executable, str(REPO / "server.py"), *argv],
                cwd=workdir,
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
            )

        return run

    def measure(label: str, action: Callable[[], object], cpu: Callable[[], float] = own_cpu) -> None:
        results.append((label, *timed(action, args.runs, cpu)))

    # the first build of the daily rollups (what `db upgrade` and a starting server do), timed once;
    # everything after it measures the steady state, where a report extends them by a few rows
    started, cpu_started = time.perf_counter(), children_cpu()
    command("db", "upgrade")()
    first_build = (time.perf_counter() - started, children_cpu() - cpu_started)

    for by in BREAKDOWNS:
        measure(f"CLI: python server.py stats --by {by}", command("stats", "--by", by), children_cpu)
    json_by_recipient = command("stats", "--format", "json", "--by", "recipient")
    measure("CLI: stats --format json --by recipient", json_by_recipient, children_cpu)

    engine = make_engine(f"sqlite:///{database}")
    zone = zoneinfo.ZoneInfo(args.timezone)
    today = datetime.datetime.now(zone).date()
    all_time, last_30 = Period(None, None, zone), Period.last_days(30, today, zone)
    for by in BREAKDOWNS:
        measure(f"queries: build_report(all time, by={by})", lambda by=by: build_report(engine, all_time, by))
    measure("queries: build_dashboard(last 30 days)", lambda: build_dashboard(engine, last_30))
    last_366 = Period.last_days(366, today, zone)
    measure("queries: build_dashboard(last 366 days)", lambda: build_dashboard(engine, last_366))
    measure("queries: metrics_snapshot()", lambda: metrics_snapshot(engine))
    measure(
        "queries: build_report(all time, by=file), no rollups",
        lambda: build_report(engine, all_time, "file", use_rollups=False),
    )
    engine.dispose()

    server = subprocess.Popen(
        [sys.executable, str(REPO / "server.py")], cwd=workdir, env=env, stderr=subprocess.DEVNULL
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(1200):  # a big file: the start-up integrity check reads all of it
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.25)
        authorization = "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()

        def get(path: str) -> Callable[[], object]:
            def fetch() -> None:
                request = urllib.request.Request(base + path, headers={"Authorization": authorization})
                with urllib.request.urlopen(request, timeout=60) as response:
                    response.read()

            return fetch

        since = (today - datetime.timedelta(days=365)).isoformat()
        for label, path in [
            ("HTTP: GET /admin/ (last 30 days)", "/admin/"),
            ("HTTP: GET /admin/ (last 366 days = all rows)", f"/admin/?since={since}&until={today}"),
            ("HTTP: GET /admin/stats.json?by=recipient", "/admin/stats.json?by=recipient"),
            ("HTTP: GET /admin/stats.csv?by=day", "/admin/stats.csv?by=day"),
            ("HTTP: GET /metrics", "/metrics"),
        ]:
            measure(label, get(path), process_cpu(server.pid))
    finally:
        server.terminate()
        server.wait(timeout=30)

    with open("/proc/loadavg") as loadavg:
        load = loadavg.read().split()[:3]
    print(f"{database} ({database.stat().st_size / 2**20:.0f} MiB), {args.runs} runs, load average {' '.join(load)}")
    print(
        f"first build of the rollups (python server.py db upgrade): {first_build[0]:.1f} s, CPU {first_build[1]:.1f} s"
    )
    width = max(len(label) for label, *_ in results)
    print(f"{'':{width}}  {'best':>7}  {'median':>7}  {'CPU':>7}")
    for label, best, median, cpu_time in results:
        print(f"{label:{width}}  {best:6.3f}s  {median:6.3f}s  {cpu_time:6.3f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
