#!/usr/bin/env python3
"""Fill an audit database with realistic rows, fast, to time the reports at scale.

    python server.py db upgrade --data-dir bench/out
    python bench/gen_audit_rows.py bench/out/tempdl.sqlite3 --attempts 1000000

It writes straight through `sqlite3` with `executemany` in one transaction (about a million
attempts in half a minute), in the exact storage format SQLAlchemy uses, so the server and
`stats` read these rows as if the server had written them. The schema must already exist: the
generator never creates tables, so it can only ever fill what the migrations made.

`generate()` is also used by the tests (a few hundred rows for the dashboard's browser test).
"""

from __future__ import annotations

import argparse
import datetime
import random
import sqlite3
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# (file id, size in bytes, share of the links)
FILES = (
    ("InstMsiW.exe", 1_822_848, 0.45),
    ("manual", 2_400_000, 0.25),
    ("hello.txt", 13, 0.10),
    ("dataset-2026.zip", 157_286_400, 0.12),
    ("slides.pdf", 9_437_184, 0.08),
)
# outcome: (share of the attempts, HTTP status)
OUTCOMES = {
    "ok": (0.58, 200),
    "partial": (0.12, 206),
    "expired": (0.08, 410),
    "bad": (0.03, 403),
    "revoked": (0.01, 410),
    "limited": (0.03, 429),
    "not_found": (0.01, 404),
    "not_modified": (0.04, 304),
    "landing": (0.10, 200),
}
ATTEMPTS_PER_LINK = 3
USER_AGENTS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 MicroMessenger/8.0.47",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36",
    "curl/8.5.0",
    "Wget/1.21.3",
)
_OPENID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@dataclass(frozen=True)
class Generated:
    issuances: int
    attempts: int


def sqlalchemy_datetime(moment: datetime.datetime) -> str:
    """The text SQLAlchemy's SQLite DATETIME stores (naive UTC, always with microseconds)."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _openid(rng: random.Random) -> str:
    return "o" + "".join(rng.choice(_OPENID_ALPHABET) for _ in range(27))


def _attempts_per_link(rng: random.Random, attempts: int) -> list[int]:
    """How many attempts each link gets (1-5, three on average), adding up to exactly `attempts`."""
    counts: list[int] = []
    left = attempts
    while left > 0:
        counts.append(min(rng.randint(1, 2 * ATTEMPTS_PER_LINK - 1), left))
        left -= counts[-1]
    return counts


def _creation_times(rng: random.Random, links: int, end: datetime.datetime, days: int) -> list[float]:
    """`links` sorted timestamps over `days` days before `end`: growing traffic, busier weekends and
    evenings, so the dashboard's chart has a shape; sorted, because ids grow with time in real life."""
    first_day = (end - datetime.timedelta(days=days)).date()
    weights = []
    for offset in range(days + 1):
        day = first_day + datetime.timedelta(days=offset)
        weights.append((1 + offset / max(days, 1)) * (1.3 if day.weekday() >= 5 else 1.0) * rng.uniform(0.8, 1.2))
    per_day = [0] * len(weights)
    for index in rng.choices(range(len(weights)), weights, k=links):
        per_day[index] += 1
    end_ts = end.timestamp()
    times: list[float] = []
    for offset, count in enumerate(per_day):
        midnight = datetime.datetime.combine(first_day + datetime.timedelta(days=offset), datetime.time(), datetime.UTC)
        base = midnight.timestamp()
        # the last day ends now: its links spread over the hours so far, not piled up at one
        # instant (thousands of rows with the same time made "latest first" sort them all)
        length = max(1.0, min(86400.0, end_ts - 1 - base))
        day_times = [base + length * min(rng.triangular(0, 1, 0.55), 0.99999) for _ in range(count)]
        times.extend(min(t, end_ts - 1) for t in sorted(day_times))
    return times


def _rows(
    rng: random.Random, attempts: int, end: datetime.datetime, days: int, recipients: int, first_issuance_id: int
) -> Iterator[tuple[tuple, list[tuple]]]:
    """Yield (issuance row, its attempt rows): exactly `attempts` attempt rows in all."""
    followers = [_openid(rng) for _ in range(recipients)]
    files, file_weights = [f[:2] for f in FILES], [f[2] for f in FILES]
    outcomes = list(OUTCOMES)
    outcome_weights = [OUTCOMES[o][0] for o in outcomes]
    counts = _attempts_per_link(rng, attempts)
    end_ts = end.timestamp()
    created_times = _creation_times(rng, len(counts), end, days)
    for offset, (created_ts, count) in enumerate(zip(created_times, counts, strict=True)):
        issuance_id = first_issuance_id + offset
        created = datetime.datetime.fromtimestamp(created_ts, datetime.UTC)
        file_id, size = rng.choices(files, file_weights)[0]
        # a few followers download a lot: the "top recipients" table has something to show
        if rng.random() < 0.3:
            follower = followers[min(int(rng.paretovariate(1.2)) - 1, recipients - 1)]
        else:
            follower = rng.choice(followers)
        issuance = (
            issuance_id,
            sqlalchemy_datetime(created),
            sqlalchemy_datetime(created + datetime.timedelta(seconds=600)),
            file_id,
            follower,
            "wechat" if rng.random() < 0.95 else "cli",
            None,
            None,
        )
        link_attempts = []
        for _ in range(count):
            outcome = rng.choices(outcomes, outcome_weights)[0]
            started_ts = min(created_ts + rng.randint(1, 900), end_ts - 1)
            started = datetime.datetime.fromtimestamp(started_ts, datetime.UTC)
            sent = size if outcome == "ok" else rng.randint(0, size) if outcome == "partial" else 0
            finished = started + datetime.timedelta(seconds=1 + sent // 2_000_000)
            tokenless = outcome == "bad"  # a mangled link names no issuance
            link_attempts.append(
                (
                    None if tokenless else issuance_id,
                    None if tokenless else file_id,
                    sqlalchemy_datetime(started),
                    sqlalchemy_datetime(finished),
                    outcome,
                    OUTCOMES[outcome][1],
                    0 if sent else None,
                    sent - 1 if sent else None,
                    sent,
                    f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                    rng.choice(USER_AGENTS),
                )
            )
        yield issuance, link_attempts


def generate(
    database: Path | str,
    *,
    attempts: int,
    end: datetime.datetime | None = None,
    days: int = 60,
    recipients: int = 5000,
    seed: int = 2026,
    batch: int = 50_000,
) -> Generated:
    """Append about `attempts / 3` issuances and exactly `attempts` attempts, started within
    `days` days before `end` (default: now), to an existing, migrated SQLite audit database."""
    end = end or datetime.datetime.now(datetime.UTC)
    rng = random.Random(seed)
    connection = sqlite3.connect(str(database))
    try:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not {"issuances", "download_attempts"} <= tables:
            raise SystemExit(f"{database}: no audit tables; run `python server.py db upgrade` first")
        connection.execute("PRAGMA synchronous=OFF")
        first_id = connection.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM issuances").fetchone()[0]
        issuance_rows: list[tuple] = []
        attempt_rows: list[tuple] = []
        made_issuances = made_attempts = 0

        def flush() -> None:
            connection.executemany("INSERT INTO issuances VALUES (?, ?, ?, ?, ?, ?, ?, ?)", issuance_rows)
            connection.executemany(
                "INSERT INTO download_attempts (issuance_id, file_id, started_at, finished_at, outcome, "
                "http_status, range_start, range_end, bytes_sent, client_ip, user_agent) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                attempt_rows,
            )
            issuance_rows.clear()
            attempt_rows.clear()

        with connection:  # one transaction: all rows or none
            for issuance, link_attempts in _rows(rng, attempts, end, days, recipients, first_id):
                issuance_rows.append(issuance)
                attempt_rows.extend(link_attempts)
                made_issuances += 1
                made_attempts += len(link_attempts)
                if len(attempt_rows) >= batch:
                    flush()
            flush()
    finally:
        connection.close()
    return Generated(made_issuances, made_attempts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("database", type=Path, help="SQLite file made by `python server.py db upgrade`")
    parser.add_argument("--attempts", type=int, default=1_000_000, help="download_attempts rows to add")
    parser.add_argument("--days", type=int, default=60, help="spread the rows over this many days before now")
    parser.add_argument("--recipients", type=int, default=5000, help="distinct followers")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    if not args.database.is_file():
        parser.error(f"{args.database} does not exist; run `python server.py db upgrade` first")
    started = time.perf_counter()
    made = generate(args.database, attempts=args.attempts, days=args.days, recipients=args.recipients, seed=args.seed)
    print(
        f"added {made.attempts} download attempts and {made.issuances} issuances to {args.database} "
        f"in {time.perf_counter() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
