"""Whether the SQLite file the server opened is still the one at its path, and writable.

Deleted or replaced under a running server (an operator's `rm`, a restore copied over it), the
file the connections hold open still takes every write, and all of it is gone at the next
start: downloads went on answering 200 while their rows were lost. Made read-only (its mode, or
a mount), the connections already open go on writing it, but SQLite opens the next one
read-only without a word: `/healthz` said `ok` while the downloads that opened it got 503, and a
restart would refuse to start. A `stat` and an `access` of the path cost a microsecond or two,
so every write first checks both.
"""

from __future__ import annotations

import os

from tempdl.errors import AuditUnavailable


class DatabaseFile:
    """The device and inode the path had when the server opened it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._identity: tuple[int, int] | None = None  # taken at the first check: the file may not exist yet

    def check(self) -> None:
        """Raise `AuditUnavailable` when the path is gone, names another file, or is read-only."""
        try:
            now = _identity(self.path)
        except FileNotFoundError:
            if self._identity is None:
                return  # not created yet
            raise AuditUnavailable(f"the database file {self.path} was deleted") from None
        if self._identity is None:
            self._identity = now
        if now != self._identity:
            raise AuditUnavailable(f"the database file {self.path} was replaced")
        if not os.access(self.path, os.W_OK):
            raise AuditUnavailable(f"the database file {self.path} is read-only")


def _identity(path: str) -> tuple[int, int]:
    status = os.stat(path)
    return status.st_dev, status.st_ino
