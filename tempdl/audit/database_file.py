"""Whether the SQLite file the server opened is still the one at its path.

Deleted or replaced under a running server (an operator's `rm`, a restore copied over it), the
file the connections hold open still takes every write, and all of it is gone at the next
start: downloads went on answering 200 while their rows were lost. A `stat` of the path costs
about a microsecond, so every write first checks that the path still names the same file.
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
        """Raise `AuditUnavailable` when the path is gone or now names another file."""
        if self._identity is None:
            if os.path.exists(self.path):
                self._identity = _identity(self.path)
            return
        try:
            now = _identity(self.path)
        except FileNotFoundError:
            raise AuditUnavailable(f"the database file {self.path} was deleted") from None
        if now != self._identity:
            raise AuditUnavailable(f"the database file {self.path} was replaced")


def _identity(path: str) -> tuple[int, int]:
    status = os.stat(path)
    return status.st_dev, status.st_ino
