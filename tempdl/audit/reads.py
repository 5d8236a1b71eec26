"""The audit store's reads that the limits ask on every download or issuance.

How many links a recipient was sent, how many downloads a link completed, a recipient's bytes of
the day, the server's bytes of the day and month, and a link's delivered spans: read-only
queries, apart from the writes of `AuditLog`, which inherits them, so the server still runs them
through `AuditRunner.run`.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from tempdl.audit import limit_counts
from tempdl.audit.runner import AuditRunner


class AuditReads(AuditRunner):
    """The read-only queries of `AuditLog` that `tempdl.links` counts its limits with."""

    def issuances_since(self, recipient: str, since: datetime.datetime) -> int:
        """How many links `recipient` was sent after `since` (any channel)."""
        with self.reading() as run:
            (count,) = run.one("issuances_since", {"recipient": recipient, "since": since})
        return int(count)

    def completed_downloads(self, issuance_id: int, file_size: int) -> int:
        with self.reading() as run:
            return limit_counts.completed_downloads(run, issuance_id, file_size)

    def traffic_since(
        self, month_start: datetime.datetime, day_start: datetime.datetime, held_here: Sequence[int] = ()
    ) -> tuple[int, int]:
        """`limit_counts.traffic_since`: the server's bytes since `month_start` and `day_start`."""
        with self.reading() as run:
            return limit_counts.traffic_since(run, month_start, day_start, held_here)

    def recipient_bytes_since(self, recipient: str, since: datetime.datetime, *, held_here: Sequence[int] = ()) -> int:
        """Body bytes of one recipient's downloads since a moment (the daily allowance).

        A finished row counts what it sent; a row still open counts the bytes it asked for, as
        they may all go out (see `tempdl.links.reservations`), unless its id is in `held_here`:
        the caller counts those itself.
        """
        values = {"recipient": recipient, "since": since, "held_here": list(held_here)}
        with self.reading() as run:
            (total,) = run.one("recipient_bytes_since", values)
        return int(total)

    def delivered_spans(self, issuance_id: int, moment: datetime.datetime) -> tuple[list[tuple[int, int]], bool]:
        """The byte spans a link's downloads delivered, or are delivering (as much as they asked
        for), and whether any of them started sending by `moment` (resume after expiry).

        A download that failed (`error`) still delivered its bytes.
        """
        with self.reading() as run:
            found = run.all("delivered_spans", {"issuance_id": issuance_id})
        rows = [(int(first), int(last), started) for first, last, started in found]
        spans = [(first, last) for first, last, _ in rows if last > first]
        began = any(started <= moment and last > first for first, last, started in rows)
        return spans, began
