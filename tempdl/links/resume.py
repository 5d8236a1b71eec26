"""`resume_grace`: after a link expires, finishing the one copy begun in time, and nothing more.

Allowing any Range request that starts past byte 0 let one fetched byte before expiry buy
`bytes=1-` as often as asked for an hour (5 full copies seen). So after expiry a request is
served only when every byte it asks for is one no earlier attempt of the link has delivered (or
is delivering), and one of those attempts began before the link expired. A cut-off resume can be
resumed again from where it stopped; a second copy of any byte cannot be had. Of two resumes of
one link at once, the second is refused until the first ends: its row does not exist yet.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from tempdl.audit.log import AuditLog
from tempdl.audit.records import IssuanceRecord

Span = tuple[int, int]
"""Bytes `start` up to, not including, `end`."""


def overlaps(span: Span, others: Sequence[Span]) -> bool:
    start, end = span
    return any(start < other_end and other_start < end for other_start, other_end in others)


class GraceResumes:
    """Decides resumes after expiry; remembers which links have one running in this process."""

    def __init__(self, audit: AuditLog) -> None:
        self.audit = audit
        self._running: set[int] = set()

    async def begin(self, issuance: IssuanceRecord, span: Span | None) -> bool:
        """True when `span` finishes the copy of `issuance` begun in time; then `end` must follow."""
        if span is None or span[0] >= span[1] or issuance.id in self._running:
            return False
        self._running.add(issuance.id)  # before the await: a parallel resume sees it
        try:
            delivered, began_in_time = await self.audit.run(
                self.audit.delivered_spans, issuance.id, issuance.expires_at
            )
        except BaseException:
            self._running.discard(issuance.id)
            raise
        if began_in_time and not overlaps(span, delivered):
            return True
        self._running.discard(issuance.id)
        return False

    def end(self, issuance_id: int) -> None:
        self._running.discard(issuance_id)

    @staticmethod
    def within_grace(issuance: IssuanceRecord, now: datetime.datetime, grace: int) -> bool:
        return grace > 0 and now < issuance.expires_at + datetime.timedelta(seconds=grace)
