"""Bytes-so-far notes in a long download's audit row, so a crash leaves roughly what went out."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from tempdl.audit.log import AuditLog
from tempdl.errors import AuditUnavailable

PROGRESS_INTERVAL = 1.0
"""Seconds between notes in one download's row: what a SIGKILL can leave it short of (-18% was
seen at 5 s), and the `progress_at` a crash recovery finishes it at."""


class ProgressNotes:
    """Called with the bytes sent so far; writes them to the row at most every `PROGRESS_INTERVAL`.

    A figure that arrives too early is kept and written when the interval is up, so the bytes of a
    burst followed by a stalled client are noted too. A note the audit database cannot take is
    dropped: the row is closed with the exact figure when the download ends anyway.
    """

    def __init__(self, audit: AuditLog, attempt_id: int, *, now: Callable[[], float] = time.monotonic) -> None:
        self.audit = audit
        self.attempt_id = attempt_id
        self._now = now
        self._last_note = now()
        self._unsaved = 0
        self._timer: asyncio.TimerHandle | None = None
        self._writing: set[asyncio.Task] = set()  # referenced, so a pending write is not collected

    def __call__(self, sent: int) -> None:
        self._unsaved = sent
        if self._timer is None:
            due = max(0.0, self._last_note + PROGRESS_INTERVAL - self._now())
            self._timer = asyncio.get_running_loop().call_later(due, self._write)

    @property
    def sent(self) -> int:
        """The latest figure given, written to the row or not yet."""
        return self._unsaved

    def stop(self) -> None:
        """No more notes: the download ended, and its row gets the final figure."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _write(self) -> None:
        self._timer = None
        self._last_note = self._now()
        task = asyncio.ensure_future(self._save(self._unsaved))
        self._writing.add(task)
        task.add_done_callback(self._writing.discard)

    async def _save(self, sent: int) -> None:
        with contextlib.suppress(AuditUnavailable):
            await self.audit.run(self.audit.note_progress, self.attempt_id, sent)
