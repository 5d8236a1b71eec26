"""The counts the download limits decide on: whole files sent, downloads running, bytes used.

Each reads `download_attempts` through a `Run` inside the caller's transaction
(`AuditLog.claim_download` locks first, then counts), so they take a `Run`, not a store. The
statements are `tempdl.audit.statements`' of the same names.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from tempdl.audit.records import Attempt
from tempdl.audit.runs import CoreRun, Run

if TYPE_CHECKING:
    from sqlalchemy import Engine


def completed_downloads(run: Run, issuance_id: int, file_size: int) -> int:
    """Complete downloads of a link: all the body bytes it sent, in whole files.

    A download fetched as several Range requests (download managers, resumes after a dropped
    connection) counts once, when its pieces add up to the whole file.
    """
    (sent,) = run.one("completed_downloads", {"issuance_id": issuance_id})
    return int(sent) // file_size if file_size > 0 else 0


def downloads_claimed(run: Run, attempt: Attempt, file_size: int) -> int:
    """Downloads of a link that count against its cap, as the request `attempt` is about to start.

    Finished requests count the body bytes they sent, in whole files: a download fetched as
    several Range requests one after another, or resumed after a dropped connection, counts once,
    when its pieces add up to the file. Requests still running count one download each when the
    bytes they asked for overlap the bytes this one asks for: two requests for the same bytes at
    once are two downloads (five "Range: bytes=1-" at once cannot share one), while a download
    manager's parallel pieces, which do not overlap, are one.
    One statement, so one snapshot: at READ COMMITTED two statements could see a download that
    finished in between as neither running (its row closed) nor sent (its bytes read as 0), and
    let a second download past the cap (two servers on PostgreSQL did, about one race in ten).
    """
    start = attempt.range_start or 0
    end = attempt.range_end if attempt.range_end is not None else max(file_size - 1, start)
    settled, running_here = run.one(
        "downloads_claimed", {"issuance_id": attempt.issuance_id, "start": start, "end": end}
    )
    return (int(settled) // file_size if file_size > 0 else 0) + int(running_here)


def traffic_since(
    run: Run, month_start: datetime.datetime, day_start: datetime.datetime, held_here: Sequence[int] = ()
) -> tuple[int, int]:
    """Body bytes of all downloads started since `month_start`, and since `day_start` (later).

    A download still running counts the bytes it asked for, not the bytes sent so far: what
    `limits.total_*_bytes` must reserve, so downloads starting together cannot all squeeze under
    the allowance. Its row, once closed, counts what really went out. Running rows in `held_here`
    are left out: this process holds them (`tempdl.links.reservations`) and counts them itself.
    """
    month, day = run.one(
        "traffic_since", {"month_start": month_start, "day_start": day_start, "held_here": list(held_here)}
    )
    return int(month), int(day)


def engine_traffic(engine: Engine) -> Callable[[datetime.datetime, datetime.datetime, Sequence[int]], tuple[int, int]]:
    """`traffic_since` on an engine of its own: for reports, which hold an engine, not a store."""

    def traffic(month_start: datetime.datetime, day_start: datetime.datetime, held_here: Sequence[int] = ()):
        with engine.connect() as connection:
            return traffic_since(CoreRun(connection), month_start, day_start, held_here)

    return traffic
