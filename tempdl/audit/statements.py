"""The statements every download and every new link runs, written once as SQLAlchemy Core.

`AuditLog` executes them through SQLAlchemy on any database; on SQLite, `tempdl.audit.sqlite`
compiles the same objects once for the sqlite3 driver. So there is one text per statement, and
the two paths cannot drift apart. Each takes its values by name: the keys of `ISSUANCE_COLUMNS`,
of `Attempt.row()`, and the `bindparam` names below.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import CursorResult, bindparam, insert, select, update

from tempdl.audit.records import Attempt
from tempdl.audit.tables import download_attempts as attempts
from tempdl.audit.tables import issuances

ISSUANCE_COLUMNS = ("file_id", "recipient", "channel", "created_at", "expires_at", "max_downloads")
ATTEMPT_COLUMNS = tuple(column.name for column in attempts.columns if column.name != "id")
"""What `Attempt.row()` gives: every column but the id."""

INSERT_ISSUANCE = insert(issuances)
SELECT_ISSUANCE = select(issuances).where(issuances.c.id == bindparam("issuance_id"))
INSERT_ATTEMPT = insert(attempts)
CLOSE_COLUMNS = ("outcome", "http_status", "bytes_sent", "finished_at", "range_start", "range_end")
CLOSE_ATTEMPT = (
    update(attempts)
    .where(attempts.c.id == bindparam("attempt_id"))
    .values({name: bindparam(name) for name in CLOSE_COLUMNS})
)
NOTE_PROGRESS = (
    update(attempts)
    .where(attempts.c.id == bindparam("attempt_id"), attempts.c.finished_at.is_(None))
    .values(bytes_sent=bindparam("bytes_sent"), progress_at=bindparam("progress_at"))
)


def close_values(attempt: Attempt) -> dict[str, Any]:
    """`CLOSE_ATTEMPT`'s values: what came of `attempt`."""
    values = {name: getattr(attempt, name) for name in CLOSE_COLUMNS}
    values["attempt_id"] = attempt.id
    return values


def new_id(result: CursorResult[Any]) -> int:
    """The primary key an INSERT just created (every tempdl insert writes exactly one row)."""
    key = result.inserted_primary_key
    if key is None:
        raise TypeError("not the result of a single-row INSERT")
    return int(key[0])
