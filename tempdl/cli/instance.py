"""One server per `data_dir` (and per SQLite file): the locks that keep a second one out, and the
id its rows carry.

Two servers on one SQLite file each took the other's open rows for a crash's leftovers: the
second one's start closed the first one's downloads, which then served a `max_downloads = 1`
link again. `serve` holds an OS lock (`flock`) on `data_dir/server.lock` for its whole life, so
the kernel lets it go when the process dies however it dies, and a second `serve` stops before
it touches the database. Other commands (`issue`, `stats`, `revoke`) do not take it.

On PostgreSQL several servers share one database, each with its own `data_dir`; the id kept in
`data_dir/server.id` marks the attempt rows a server writes, so a server recovering from a
crash closes only its own.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import socket
from pathlib import Path

from tempdl.errors import CommandError

LOCK_FILE = "server.lock"
DATABASE_LOCK_SUFFIX = "-server.lock"
"""Beside a SQLite file, as SQLite's own `-wal` and `-shm` are: `tempdl.sqlite3-server.lock`."""
SERVER_ID_FILE = "server.id"
SERVER_ID_MAX = 64  # the `download_attempts.server_id` column


class ServerLock:
    """The held lock; `release` (or the process's end) lets the next server in.

    `ServerLock(data_dir)` is the one every server takes; `ServerLock.for_database(file)` the one
    a server on SQLite also takes, beside the database file, so that two servers with different
    `data_dir`s but one `database_url` cannot share a SQLite file either. It is a file of its own:
    opening and closing the database file itself would drop SQLite's POSIX locks on it.
    """

    def __init__(self, data_dir: Path, *, path: Path | None = None, what: str = "") -> None:
        self.path = path or data_dir / LOCK_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise CommandError(
                f"another tempdl server (PID {holder}) is already running on {what or f'data_dir {data_dir}'}; "
                f"stop it first (lock: {self.path})"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self._fd: int | None = fd
        os.register_at_fork(after_in_child=self.release)  # a child (the migration's) must not keep it

    @classmethod
    def for_database(cls, database_file: Path) -> ServerLock:
        database_file = database_file.resolve()
        lock_path = database_file.with_name(database_file.name + DATABASE_LOCK_SUFFIX)
        return cls(database_file.parent, path=lock_path, what=f"the SQLite database {database_file}")

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def server_id(data_dir: Path) -> str:
    """This server's id: generated once (host name and a random part) into `data_dir/server.id`."""
    path = data_dir / SERVER_ID_FILE
    try:
        return path.read_text(encoding="ascii").strip()[:SERVER_ID_MAX]
    except FileNotFoundError:
        pass
    generated = f"{socket.gethostname()[: SERVER_ID_MAX - 9]}-{secrets.token_hex(4)}"
    temporary = path.with_suffix(".tmp")
    temporary.write_text(generated + "\n", encoding="ascii")
    os.replace(temporary, path)
    return generated
