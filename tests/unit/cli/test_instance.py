"""One server per data_dir: the lock, and the children that must not hold it."""

from __future__ import annotations

import os
import signal

import pytest

from tempdl.cli.instance import ServerLock
from tempdl.errors import CommandError


def test_a_second_server_on_the_same_data_dir_is_refused(tmp_path):
    first = ServerLock(tmp_path)
    try:
        with pytest.raises(CommandError, match=f"PID {os.getpid()}"):
            ServerLock(tmp_path)
    finally:
        first.release()
    ServerLock(tmp_path).release()  # free again once released


def test_one_sqlite_file_takes_one_server_whatever_its_data_dir(tmp_path):
    database = tmp_path / "shared" / "tempdl.sqlite3"
    first = ServerLock.for_database(database)
    try:
        assert first.path == tmp_path / "shared" / "tempdl.sqlite3-server.lock"
        with pytest.raises(CommandError, match=f"PID {os.getpid()}.*SQLite database {database}"):
            ServerLock.for_database(tmp_path / "shared" / ".." / "shared" / "tempdl.sqlite3")
        ServerLock.for_database(tmp_path / "shared" / "other.sqlite3").release()  # another file: free
    finally:
        first.release()


def test_a_forked_child_does_not_keep_the_lock_after_the_server_lets_go(tmp_path):
    """`serve`'s migration child lives on to build the rollups; had it inherited the lock, a
    server restarted after a crash would be refused until that child finished."""
    lock = ServerLock(tmp_path)
    ready, started = os.pipe()
    child = os.fork()
    if child == 0:  # the child: say it runs (the fork hooks have), outlive the parent's lock
        os.write(started, b"!")
        signal.pause()
        os._exit(0)
    try:
        assert os.read(ready, 1) == b"!"
        lock.release()
        ServerLock(tmp_path).release()  # the child still runs
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        os.close(ready)
        os.close(started)
