"""Every statement a serving process runs, written once as SQLAlchemy Core, each under a name.

On PostgreSQL `tempdl.audit.runs.CoreRun` executes these objects through SQLAlchemy; on SQLite
`tempdl.audit.plan` compiles the same objects once for the sqlite3 driver (in a child process,
so the server never imports SQLAlchemy). So there is one text per statement, and the two paths
cannot drift apart. Each takes its values by name: the keys of `ISSUANCE_COLUMNS`, of
`Attempt.row()`, and the `bindparam` names below.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import (
    BigInteger,
    Executable,
    Integer,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)

from tempdl.audit.counts import COUNTED, DOWNLOAD, total_of
from tempdl.audit.held_ids import among_ids
from tempdl.audit.records import CLOSE_COLUMNS, ISSUANCE_COLUMNS, IssuanceRecord, Outcome
from tempdl.audit.tables import download_attempts as attempts
from tempdl.audit.tables import health_checks, issuances

ATTEMPT_COLUMNS = tuple(column.name for column in attempts.columns if column.name != "id")
"""What `Attempt.row()` gives: every column but the id."""

_running = attempts.c.finished_at.is_(None)
_moment = attempts.c.started_at.type


def _at(name: str) -> Any:
    """A timestamp value the caller gives as `name`."""
    return bindparam(name, type_=_moment)


def _not_held(name: str = "held_here") -> Any:
    """Leave out the open rows whose ids the caller gives: it counts them itself."""
    return ~and_(_running, among_ids(attempts.c.id, name))


# --- a link and its downloads, on every request ---------------------------------------------

INSERT_ISSUANCE = insert(issuances)
SELECT_ISSUANCE = select(*(issuances.c[field.name] for field in dataclasses.fields(IssuanceRecord))).where(
    issuances.c.id == bindparam("issuance_id")
)
"""The columns in `IssuanceRecord`'s order, so a row is the record's arguments as they stand."""
INSERT_ATTEMPT = insert(attempts)
CLOSE_ATTEMPT = (
    update(attempts)
    .where(attempts.c.id == bindparam("attempt_id"))
    .values({name: bindparam(name) for name in CLOSE_COLUMNS})
)
NOTE_PROGRESS = (
    update(attempts)
    .where(attempts.c.id == bindparam("attempt_id"), _running)
    .values(bytes_sent=bindparam("bytes_sent"), progress_at=bindparam("progress_at"))
)

# --- the limits' counts (see tempdl.audit.limit_counts) --------------------------------------

ISSUANCES_SINCE = (
    select(func.count())
    .select_from(issuances)
    .where(issuances.c.recipient == bindparam("recipient"), issuances.c.created_at > _at("since"))
)
CAP_BLOCKING = (  # the cap-th most recent earlier issuance in the window: if there is one, we are over
    select(issuances.c.created_at)
    .where(
        issuances.c.recipient == bindparam("recipient"),
        issuances.c.created_at > _at("after"),
        issuances.c.id != bindparam("issuance_id"),
    )
    .order_by(issuances.c.created_at.desc())
    .limit(1)
    .offset(bindparam("skip", type_=Integer))
)
COMPLETED_DOWNLOADS = select(total_of(attempts.c.bytes_sent)).where(
    attempts.c.issuance_id == bindparam("issuance_id"), attempts.c.outcome.in_(COUNTED), DOWNLOAD
)
_overlapping = and_(
    _running,
    attempts.c.range_start <= bindparam("end", type_=BigInteger),
    func.coalesce(attempts.c.range_end, attempts.c.range_start) >= bindparam("start", type_=BigInteger),
)
DOWNLOADS_CLAIMED = select(
    total_of(case((and_(~_running, attempts.c.outcome.in_(COUNTED)), attempts.c.bytes_sent), else_=0)),
    total_of(case((_overlapping, 1), else_=0)),
).where(attempts.c.issuance_id == bindparam("issuance_id"), DOWNLOAD)
_asked = and_(_running, attempts.c.range_start.is_not(None), attempts.c.range_end.is_not(None))
_amount = case((_asked, attempts.c.range_end - attempts.c.range_start + 1), else_=attempts.c.bytes_sent)
TRAFFIC_SINCE = select(
    total_of(_amount),
    total_of(case((attempts.c.started_at >= _at("day_start"), _amount), else_=0)),
).where(attempts.c.started_at >= _at("month_start"), _not_held())
_recipient_asked = func.coalesce(attempts.c.range_end - attempts.c.range_start + 1, attempts.c.bytes_sent)
RECIPIENT_BYTES_SINCE = (
    select(total_of(case((_running, _recipient_asked), else_=attempts.c.bytes_sent)))
    .select_from(attempts.join(issuances, attempts.c.issuance_id == issuances.c.id))
    .where(
        issuances.c.recipient == bindparam("recipient"), attempts.c.started_at >= _at("since"), DOWNLOAD, _not_held()
    )
)
_span_start = func.coalesce(attempts.c.range_start, 0)
DELIVERED_SPANS = select(
    _span_start,
    case(
        (_running, func.coalesce(attempts.c.range_end + 1, _span_start + attempts.c.bytes_sent)),
        else_=_span_start + attempts.c.bytes_sent,
    ),
    attempts.c.started_at,
).where(
    attempts.c.issuance_id == bindparam("issuance_id"),
    attempts.c.outcome.in_((*COUNTED, Outcome.ERROR)),
    DOWNLOAD,
    or_(_running, attempts.c.bytes_sent > 0),
)

# --- health and recovery -------------------------------------------------------------------

CLEAR_HEALTH_CHECKS = delete(health_checks)
INSERT_HEALTH_CHECK = insert(health_checks).values(checked_at=_at("checked_at"))
CLOSE_ABANDONED = (
    update(attempts)
    .where(
        _running,
        or_(
            _at("started_before").is_(None),
            attempts.c.started_at < _at("started_before"),
            attempts.c.server_id == bindparam("written_by", type_=attempts.c.server_id.type),
        ),
    )
    .values(outcome=Outcome.PARTIAL, finished_at=func.coalesce(attempts.c.progress_at, attempts.c.started_at))
)

SERVING: dict[str, tuple[Executable, tuple[str, ...] | None]] = {
    "insert_issuance": (INSERT_ISSUANCE, ISSUANCE_COLUMNS),
    "select_issuance": (SELECT_ISSUANCE, None),
    "insert_attempt": (INSERT_ATTEMPT, ATTEMPT_COLUMNS),
    "close_attempt": (CLOSE_ATTEMPT, None),
    "note_progress": (NOTE_PROGRESS, None),
    "issuances_since": (ISSUANCES_SINCE, None),
    "cap_blocking": (CAP_BLOCKING, None),
    "completed_downloads": (COMPLETED_DOWNLOADS, None),
    "downloads_claimed": (DOWNLOADS_CLAIMED, None),
    "traffic_since": (TRAFFIC_SINCE, None),
    "recipient_bytes_since": (RECIPIENT_BYTES_SINCE, None),
    "delivered_spans": (DELIVERED_SPANS, None),
    "clear_health_checks": (CLEAR_HEALTH_CHECKS, None),
    "insert_health_check": (INSERT_HEALTH_CHECK, None),
    "close_abandoned": (CLOSE_ABANDONED, None),
}
"""Every statement of `tempdl.audit.runs`, by the name its callers give (and their column keys)."""

POSTGRESQL_ONLY: dict[str, tuple[Executable, tuple[str, ...] | None]] = {
    # Two servers sharing the database serialize on these; on SQLite the write lock does it.
    "lock_recipient": (text("SELECT pg_advisory_xact_lock(hashtext(:recipient))"), None),
    "lock_issuance": (
        select(issuances.c.id).where(issuances.c.id == bindparam("issuance_id")).with_for_update(),
        None,
    ),
}
