"""Faults made for real beside a running server (SPEC "Faults"): a second server, a lock held by
another process, a full disk, a deleted or read-only database, a long reader, a SIGKILL mid-download."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tempdl.audit.sqlite_setup import JOURNAL_SIZE_LIMIT_BYTES
from tests.live_server import LiveServer, quote_token
from tests.support import in_ci, read_only, reply_content, rows, sample_bytes, text_message, wait_until

BIG = 64 * 1024 * 1024


@pytest.fixture
def server(tmp_path):
    live = LiveServer.with_live_files(tmp_path).start()
    yield live
    live.kill()


class HeldLock:
    """Another process (Python's sqlite3, as an operator's sqlite3 shell) holding `BEGIN EXCLUSIVE`."""

    def __init__(self, database: Path) -> None:
        script = (
            "import sqlite3, sys\n"
            f"c = sqlite3.connect({str(database)!r}, isolation_level=None)\n"
            "c.execute('BEGIN EXCLUSIVE')\n"
            "print('locked', flush=True)\n"
            "sys.stdin.readline()\n"
            "c.execute('ROLLBACK')\n"
        )
        self.process = subprocess.Popen(
            [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout.readline().strip() == "locked"

    def release(self) -> None:
        self.process.communicate("\n", timeout=10)


@pytest.mark.parametrize("shared", ["data_dir", "database"])
def test_a_second_server_on_the_same_data_dir_refuses_to_start_and_leaves_the_rows_alone(server, tmp_path, shared):
    """Also with a data_dir of its own but the first one's SQLite file as its database_url."""
    client = open_download(server, "large")
    wait_until(lambda: len(server.rows("SELECT id FROM download_attempts")) == 1, timeout=10, what="the open row")
    own_data_dir = ["--data-dir", str(tmp_path / "second")] if shared == "database" else []
    second = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve().parents[2] / "server.py"),
            "serve",
            "--config",
            str(server.config_path),
            "--port",
            str(server.port + 1),
            *own_data_dir,
        ],
        cwd=server.root,
        env={**os.environ, "TEMPDL_DATABASE_URL": f"sqlite:///{server.database}"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert second.returncode == 1
    [line] = second.stderr.strip().splitlines()
    assert f"(PID {server.process.pid})" in line
    assert ("SQLite database" in line) == (shared == "database")
    [row] = server.rows("SELECT finished_at, outcome FROM download_attempts")
    assert row["finished_at"] is None  # still the first server's running download
    client.close()  # only now: hanging up closes the row, which must not be mistaken for the second's doing
    assert "recovered_attempts" not in second.stdout + second.stderr
    assert server.request("GET", "/healthz").status == 200


def open_download(server: LiveServer, file_id: str):
    from tests.live_server import open_slow_download

    return open_slow_download(server.port, quote_token(server.issue(file_id)), read_first=4096)


def test_a_lock_held_elsewhere_answers_every_waiting_request_within_seconds(server):
    tokens = [quote_token(server.issue("small")) for _ in range(6)]
    issued_before = len(server.rows("SELECT id FROM issuances"))
    lock = HeldLock(server.database)
    try:
        started = time.monotonic()

        def wechat(n: int):
            body = text_message("small", msg_id=str(9000 + n))
            return server.request("POST", f"/wechat?{server.wechat_query()}", body=body)

        with ThreadPoolExecutor(max_workers=10) as pool:  # all at once: 6 downloads, 4 WeChat messages
            waiting = [pool.submit(server.request, "GET", path) for path in tokens]
            waiting += [pool.submit(wechat, n) for n in range(4)]
            answers = [future.result() for future in waiting]
        downloads, replies = answers[:6], answers[6:]
        elapsed = time.monotonic() - started
    finally:
        lock.release()
    assert [response.status for response in downloads] == [503] * 6
    assert all(response.headers["Retry-After"] for response in downloads)
    assert all("busy" in reply_content(reply.body) for reply in replies)
    assert elapsed < 4.0, f"waited {elapsed:.1f} s: requests queued behind each other's timeouts"
    time.sleep(1.0)  # a queued insert committing late would show now
    assert len(server.rows("SELECT id FROM issuances")) == issued_before  # the "busy" replies left nothing
    assert server.rows("SELECT id FROM download_attempts") == []
    assert "status=503" in server.log() and not [
        line for line in server.log().splitlines() if "status=503" in line and "outcome=ok" in line
    ]
    assert server.request("GET", tokens[0]).status == 200  # and serving again once it is let go


def test_a_deleted_database_makes_health_and_downloads_answer_503(server):
    path = quote_token(server.issue("small"))
    for suffix in ("", "-wal", "-shm"):
        Path(f"{server.database}{suffix}").unlink(missing_ok=True)
    assert server.request("GET", "/healthz").status == 503
    assert server.request("GET", path).status == 503
    assert server.log().count("event=audit_unavailable") == 1


def test_a_read_only_database_file_is_refused_with_503_until_it_can_be_written_again(server):
    path = quote_token(server.issue("small"))
    assert server.request("GET", path).status == 200  # the server's connections are open, read-write
    with read_only(server.database):
        assert [server.request("GET", "/healthz").status for _ in range(2)] == [503, 503]
        refused = server.request("GET", path)
        assert refused.status == 503 and refused.headers["Retry-After"]
    assert server.request("GET", "/healthz").status == 200
    assert server.request("GET", path).status == 200
    log = server.log()
    assert log.count("event=audit_unavailable") == 1 and "is read-only" in log
    assert log.count("event=audit_recovered") == 1
    assert [row[0] for row in server.rows("SELECT outcome FROM download_attempts ORDER BY id")] == ["ok", "ok"]


@pytest.fixture
def tmpfs_data(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(data)], capture_output=True)
    if mounted.returncode != 0:
        if in_ci():
            pytest.fail(f"cannot mount a tmpfs (CI runs as root): {mounted.stderr.decode()}")
        pytest.skip("mounting a tmpfs needs root")
    yield data
    subprocess.run(["umount", "-l", str(data)], check=False)


def test_a_full_disk_makes_health_answer_503_until_space_is_freed(tmp_path, tmpfs_data):
    server = LiveServer.with_live_files(tmp_path).start()
    try:
        filler = tmpfs_data / "filler"
        with filler.open("wb", buffering=0) as stream:
            try:
                while True:
                    stream.write(b"\0" * 4096)
            except OSError:
                pass
        statuses = {server.request("GET", "/healthz").status for _ in range(3)}
        assert statuses == {503}
        filler.unlink()
        assert server.request("GET", "/healthz").status == 200
        log = server.log()
        assert log.count("event=audit_unavailable") == 1 and log.count("event=audit_recovered") == 1
    finally:
        server.kill()


def test_the_wal_is_cut_back_within_seconds_once_a_long_reader_ends(server):
    server.request("GET", quote_token(server.issue("small")))  # the server's connections are open
    reader = sqlite3.connect(server.database, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM download_attempts").fetchone()  # a snapshot the WAL must keep
    writer = sqlite3.connect(server.database, isolation_level=None)
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("CREATE TABLE scratch (blob BLOB)")
    for _ in range(24):
        writer.execute("INSERT INTO scratch VALUES (?)", (os.urandom(1024 * 1024),))
    writer.execute("DROP TABLE scratch")
    writer.close()
    wal = Path(f"{server.database}-wal")
    time.sleep(3)  # two of the server's WAL checks: the reader pins it meanwhile
    assert wal.stat().st_size > 24 * 1024 * 1024
    reader.execute("COMMIT")
    reader.close()
    wait_until(lambda: wal.stat().st_size <= JOURNAL_SIZE_LIMIT_BYTES, timeout=10, what="the WAL to be cut back")


def test_after_sigkill_the_row_is_within_a_second_of_what_the_client_got(tmp_path):
    files = tmp_path / "files"
    files.mkdir()
    (files / "big.bin").write_bytes(sample_bytes(8 * 1024 * 1024))
    rate = 256 * 1024
    config = f'files_dir = "{files}"\ndata_dir = "{tmp_path / "data"}"\n[limits]\nrate_per_download = {rate}\n'
    server = LiveServer(tmp_path, config).start()
    import socket

    client = socket.create_connection(("127.0.0.1", server.port))
    client.sendall(f"GET {quote_token(server.issue('big.bin'))} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    received = 0
    stop = threading.Event()

    def read() -> None:
        nonlocal received
        while not stop.is_set() and (chunk := client.recv(65536)):
            received += len(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(3.5)
    server.kill()
    killed_at = time.time()
    reader.join(10)
    client.close()
    restarted = LiveServer(tmp_path, config)
    restarted.port = server.port
    time.sleep(2)  # the restart comes later than the kill: finished_at must not be the restart's time
    restarted.start()
    try:
        [row] = rows(restarted.database, "SELECT * FROM download_attempts")
    finally:
        restarted.kill()
    assert row["outcome"] == "partial"
    assert abs(row["bytes_sent"] - received) <= 1.5 * rate + 512 * 1024  # a second's bytes, plus socket buffers
    finished = row["finished_at"].timestamp()
    assert killed_at - 1.5 <= finished <= killed_at
