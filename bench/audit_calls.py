"""CPU per 4 KiB download spent in the audit log alone, for the tempdl checkout in the working directory.

    cd CHECKOUT && bench/.venv/bin/python /path/to/bench/audit_calls.py [downloads] [concurrency]

Runs, on a fresh SQLite file, the audit calls one uncapped 4 KiB download makes through
`AuditLog.run` on the event loop (read the issuance, then its row written whole, as
`DownloadBody._send_small_body` does), plus one refusal written in one go, and prints the
process CPU µs per download. `concurrency` downloads (16, like `wrk -c16`) run at once, so
their writes share group commits as they do in the server. Without HTTP and Tornado around it
this moves far less with other load on the machine than `ab.py`; alternate two checkouts by
running it in each, in turn.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import sys
import tempfile
import time

sys.path.insert(0, os.getcwd())  # the checkout under test, not this file's

from tempdl.audit.engine import make_engine, upgrade
from tempdl.audit.log import AuditLog
from tempdl.audit.records import Attempt, Outcome


async def downloads(audit: AuditLog, issuance_id: int, count: int, concurrency: int) -> None:
    await asyncio.gather(*(_one_client(audit, issuance_id, count // concurrency) for _ in range(concurrency)))


async def _one_client(audit: AuditLog, issuance_id: int, count: int) -> None:
    for _ in range(count):
        now = datetime.datetime.now(datetime.UTC)
        issuance = await audit.run(audit.load_issuance, issuance_id)
        attempt = Attempt(started_at=now, client_ip="127.0.0.1", user_agent="wrk", issuance_id=issuance.id)
        attempt.file_id, attempt.http_status = issuance.file_id, 200
        attempt.outcome, attempt.bytes_sent, attempt.finished_at = Outcome.OK, 4096, now
        await audit.run(audit.record_attempt, attempt)
        refused = Attempt(started_at=now, client_ip="127.0.0.1", user_agent="wrk", outcome=Outcome.BAD, http_status=403)
        await audit.run(audit.record_attempt, refused)


def main() -> int:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 3200
    concurrency = int(sys.argv[2]) if len(sys.argv) > 2 else 16
    with tempfile.TemporaryDirectory(prefix="tempdl-audit-calls-") as temp:
        engine = make_engine(f"sqlite:///{temp}/audit.sqlite3")
        upgrade(engine)
        audit = AuditLog(engine)
        now = datetime.datetime.now(datetime.UTC)
        issuance_id = audit.create_issuance(
            file_id="small",
            recipient="bench",
            channel="cli",
            created_at=now,
            expires_at=now + datetime.timedelta(days=1),
            max_downloads=None,
        )
        asyncio.run(downloads(audit, issuance_id, 320, concurrency))  # warm-up: connections, statement caches
        started = time.process_time()
        asyncio.run(downloads(audit, issuance_id, count, concurrency))
        spent = time.process_time() - started
        audit.close()
    print(f"{spent / count * 1e6:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
