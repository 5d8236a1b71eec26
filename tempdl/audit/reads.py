"""The audit store's reads that the limits ask on every download or issuance.

How many links a recipient was sent, how many downloads a link completed, a recipient's bytes of
the day and a link's delivered spans: read-only queries, apart from the writes of `AuditLog`,
which inherits them, so the server still runs them through `AuditRunner.run`.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, case, func, or_, select

from tempdl.audit import counts
from tempdl.audit.records import Outcome
from tempdl.audit.runner import AuditRunner
from tempdl.audit.tables import download_attempts as _attempts
from tempdl.audit.tables import issuances as _issuances


class AuditReads(AuditRunner):
    """The read-only queries of `AuditLog` that `tempdl.links` counts its limits with."""

    def issuances_since(self, recipient: str, since: datetime.datetime) -> int:
        """How many links `recipient` was sent after `since` (any channel)."""
        with self.engine.connect() as connection:
            return connection.execute(
                select(func.count())
                .select_from(_issuances)
                .where(_issuances.c.recipient == recipient, _issuances.c.created_at > since)
            ).scalar_one()

    def completed_downloads(self, issuance_id: int, file_size: int) -> int:
        with self.engine.connect() as connection:
            return counts.completed_downloads(connection, issuance_id, file_size)

    def recipient_bytes_since(self, recipient: str, since: datetime.datetime, *, held_here: Sequence[int] = ()) -> int:
        """Body bytes of one recipient's downloads since a moment (the daily allowance).

        A finished row counts what it sent; a row still open counts the bytes it asked for, as
        they may all go out (see `tempdl.links.reservations`), unless its id is in `held_here`:
        the caller counts those itself.
        """
        running = _attempts.c.finished_at.is_(None)
        asked = func.coalesce(_attempts.c.range_end - _attempts.c.range_start + 1, _attempts.c.bytes_sent)
        counted = case((running, asked), else_=_attempts.c.bytes_sent)
        conditions = [_issuances.c.recipient == recipient, _attempts.c.started_at >= since, counts.DOWNLOAD]
        if held_here:
            conditions.append(~and_(running, _attempts.c.id.in_(held_here)))
        with self.engine.connect() as connection:
            total: int = connection.execute(
                select(func.coalesce(func.sum(counted), 0))
                .select_from(_attempts.join(_issuances, _attempts.c.issuance_id == _issuances.c.id))
                .where(*conditions)
            ).scalar_one()
        return int(total)

    def delivered_spans(self, issuance_id: int, moment: datetime.datetime) -> tuple[list[tuple[int, int]], bool]:
        """The byte spans a link's downloads delivered, or are delivering (as much as they asked
        for), and whether any of them started sending by `moment` (resume after expiry).

        A download that failed (`error`) still delivered its bytes.
        """
        running = _attempts.c.finished_at.is_(None)
        start = func.coalesce(_attempts.c.range_start, 0)
        end = case(
            (running, func.coalesce(_attempts.c.range_end + 1, start + _attempts.c.bytes_sent)),
            else_=start + _attempts.c.bytes_sent,
        )
        with self.engine.connect() as connection:
            found: Sequence[Any] = connection.execute(  # `end` is a CASE: typed as object, an integer here
                select(start, end, _attempts.c.started_at).where(
                    _attempts.c.issuance_id == issuance_id,
                    _attempts.c.outcome.in_((*counts.COUNTED, Outcome.ERROR)),
                    counts.DOWNLOAD,
                    or_(running, _attempts.c.bytes_sent > 0),
                )
            ).all()
        rows = [(int(first), int(last), started) for first, last, started in found]
        spans = [(first, last) for first, last, _ in rows if last > first]
        began = any(started <= moment and last > first for first, last, started in rows)
        return spans, began
