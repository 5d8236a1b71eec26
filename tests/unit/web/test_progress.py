"""Bytes-so-far notes: at most one per interval, the latest figure, none after the download ends."""

from __future__ import annotations

import asyncio

from tempdl.errors import AuditUnavailable
from tempdl.web.progress import PROGRESS_INTERVAL, ProgressNotes


class FakeAudit:
    def __init__(self, *, unavailable: bool = False) -> None:
        self.notes: list[tuple[int, int]] = []
        self.unavailable = unavailable
        self.attempts = 0

    async def run(self, function, *args):
        self.attempts += 1
        return function(*args)

    def note_progress(self, attempt_id: int, sent: int) -> None:
        if self.unavailable:
            raise AuditUnavailable("locked")
        self.notes.append((attempt_id, sent))


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _turns() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_the_latest_figure_is_noted_once_the_interval_is_up():
    async def scenario() -> list:
        audit, clock = FakeAudit(), Monotonic()
        notes = ProgressNotes(audit, 7, now=clock)
        clock.now += PROGRESS_INTERVAL
        notes(100)
        notes(200)  # arrives before the note is written: it replaces the figure
        await _turns()
        return audit.notes

    assert asyncio.run(scenario()) == [(7, 200)]


def test_a_figure_that_comes_too_early_waits_and_stop_drops_it():
    async def scenario() -> tuple[list, list]:
        audit, clock = FakeAudit(), Monotonic()
        notes = ProgressNotes(audit, 7, now=clock)
        notes(100)  # due in PROGRESS_INTERVAL seconds
        await _turns()
        early = list(audit.notes)
        clock.now += PROGRESS_INTERVAL
        stopped = ProgressNotes(audit, 8, now=clock)
        clock.now += PROGRESS_INTERVAL
        stopped(300)  # due now, but the download ends first
        stopped.stop()
        notes.stop()
        await _turns()
        return early, audit.notes

    assert asyncio.run(scenario()) == ([], [])


def test_an_unavailable_audit_database_only_loses_the_note():
    audit = FakeAudit(unavailable=True)
    asyncio.run(ProgressNotes(audit, 7, now=Monotonic())._save(100))  # does not raise
    assert audit.attempts == 1
