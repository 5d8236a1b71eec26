"""Faults: shutdown mid-download, a crash, a database that cannot be written, unexpected errors.

The promise under test: the server keeps serving, and no download is served unrecorded.
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import sqlite3
import threading
import time

import pytest

import tempdl.audit.sqlite_setup
import tempdl.links.access
from tests.live_server import LiveServer, drain, open_slow_download, quote_token
from tests.support import rows, sample_bytes, wait_until

BIG = 64 * 1024 * 1024


@pytest.fixture
def big_workdir(tmp_path):
    files = tmp_path / "static_files"
    files.mkdir()
    (files / "big.bin").write_bytes(sample_bytes(BIG))
    (files / "small.txt").write_bytes(b"small file\n")
    return tmp_path


def test_sigterm_lets_a_download_finish_within_the_grace(big_workdir):
    server = LiveServer(big_workdir, "shutdown_grace = 20\n").start()
    try:
        path = quote_token(server.issue("big.bin"))
        client = open_slow_download(server.port, path)
        server.process.send_signal(signal.SIGTERM)
        wait_until(lambda: "event=shutting_down" in server.log(), timeout=10, what="the shutdown to begin")
        received = 65536 + drain(client)  # the client reads on; the server waits for it
        assert server.process.wait(timeout=30) == 0
    finally:
        server.kill()
    [row] = rows(server.database, "SELECT * FROM download_attempts")
    assert (row["outcome"], row["bytes_sent"]) == ("ok", BIG)
    assert received >= BIG
    assert "event=stopped audit=committed" in server.log()


def test_sigterm_closes_downloads_still_running_after_the_grace_as_partial(big_workdir):
    server = LiveServer(big_workdir, "shutdown_grace = 1\n").start()
    try:
        client = open_slow_download(server.port, quote_token(server.issue("big.bin")))
        started = time.monotonic()
        assert server.stop(signal.SIGTERM) == 0
        assert time.monotonic() - started < 15
        client.close()
    finally:
        server.kill()
    [row] = rows(server.database, "SELECT * FROM download_attempts")
    assert row["outcome"] == "partial" and row["finished_at"] is not None
    assert 65536 <= row["bytes_sent"] < BIG


def test_after_sigkill_the_next_start_closes_open_rows_and_serves_at_once(big_workdir):
    server = LiveServer(big_workdir).start()
    client = open_slow_download(server.port, quote_token(server.issue("big.bin")))
    # A long download notes its bytes so far every few seconds, so a crash loses little.
    wait_until(
        lambda: rows(server.database, "SELECT bytes_sent FROM download_attempts")[0]["bytes_sent"] > 0,
        timeout=15,
        what="the download to note its progress",
    )
    server.kill()  # SIGKILL: no shutdown code runs
    client.close()
    assert rows(server.database, "SELECT finished_at FROM download_attempts")[0]["finished_at"] is None

    restarted = LiveServer(big_workdir).start()
    try:
        with sqlite3.connect(restarted.database) as connection:
            assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        [row] = rows(restarted.database, "SELECT * FROM download_attempts")
        assert row["outcome"] == "partial" and row["finished_at"] is not None
        assert 65536 <= row["bytes_sent"] < BIG
        assert "event=recovered_attempts count=1" in restarted.log()
        import urllib.request

        small = quote_token(restarted.issue("small.txt"))
        with urllib.request.urlopen(restarted.url + small) as response:
            assert response.read() == b"small file\n"
    finally:
        restarted.kill()


@pytest.fixture
def short_busy_timeout(monkeypatch):
    monkeypatch.setattr(tempdl.audit.sqlite_setup, "SQLITE_BUSY_TIMEOUT_MS", 200)


@pytest.fixture
def audit(settings, short_busy_timeout):
    from tempdl.cli.serve import prepare_audit

    store = prepare_audit(settings)
    yield store
    store.close()


class DatabaseLock:
    """Another process holding SQLite's write lock longer than our busy timeout."""

    def __init__(self, database_url: str) -> None:
        self.connection = sqlite3.connect(
            database_url.removeprefix("sqlite:///"), isolation_level=None, check_same_thread=False
        )

    def __enter__(self):
        self.connection.execute("BEGIN IMMEDIATE")
        return self

    def __exit__(self, *exc):
        self.connection.execute("ROLLBACK")
        self.connection.close()


@pytest.mark.gen_test(timeout=30)
async def test_unwritable_database_means_503_never_an_unrecorded_download(
    fetch, issue_link, settings, caplog, audit_rows
):
    good = await issue_link("hello.txt")
    forged = good[:-4] + "AAAA"
    caplog.set_level(logging.INFO)
    with DatabaseLock(settings.database_url):
        for path in (good, good, forged):
            response = await fetch(path, headers={"Accept": "application/json"})
            assert response.code == 503
            assert response.headers["Retry-After"] == "10"
            assert json.loads(response.body)["reason"] == "unavailable"
        page = await fetch(good)
        assert "暂时不可用" in page.body.decode() and "temporarily unavailable" in page.body.decode()
        health = await fetch("/healthz")
        assert health.code == 503
    incidents = [r for r in caplog.records if "audit_unavailable" in r.getMessage()]
    assert len(incidents) == 1  # once per incident, not once per request
    # The lock is gone: it recovers by itself.
    assert (await fetch("/healthz")).code == 200
    response = await fetch(good)
    assert response.code == 200 and response.body == "Hello 你好\n".encode()
    assert any("audit_recovered" in r.getMessage() for r in caplog.records)
    outcomes = [r["outcome"] for r in await audit_rows("SELECT outcome FROM download_attempts")]
    assert outcomes == ["ok"]  # nothing was served while unrecordable


@pytest.mark.gen_test
async def test_unexpected_error_is_a_500_with_a_request_id_in_page_and_log(fetch, issue_link, monkeypatch, caplog):
    path = await issue_link("hello.txt")

    async def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(tempdl.links.access.Gate, "admit", broken)
    caplog.set_level(logging.INFO)
    response = await fetch(path, headers={"Accept": "application/json"})
    assert response.code == 500
    body = json.loads(response.body)
    assert body["status"] == "fail"
    page = await fetch(path)
    assert page.code == 500 and "Internal server error" in page.body.decode()
    logged = [r.getMessage() for r in caplog.records if "event=uncaught_exception" in r.getMessage()]
    assert len(logged) == 2
    request_id = logged[-1].split("request_id=")[1].split()[0]
    assert request_id in page.body.decode()  # what the user sees leads to the log line
    assert "boom" not in page.body.decode()
    assert (await fetch("/healthz")).code == 200  # and it keeps serving


def test_threads_are_not_leaked():
    assert threading.active_count() < 50


def test_two_fast_downloads_take_turns(big_workdir):
    """On loopback the socket never pushes back, and one zero-copy download kept the event loop
    until its last byte: the other client got nothing meanwhile (nor would a WeChat message)."""
    server = LiveServer(big_workdir).start()
    try:
        paths = [quote_token(server.issue("big.bin")) for _ in range(2)]
        received = [0, 0]
        other_had_when_first_done: list[int] = []
        start = threading.Barrier(2)

        def download(i: int) -> None:
            client = socket.create_connection(("127.0.0.1", server.port))
            buffer = bytearray(1 << 20)
            start.wait()
            client.sendall(f"GET {paths[i]} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            while count := client.recv_into(buffer):
                received[i] += count
            client.close()
            if not other_had_when_first_done:
                other_had_when_first_done.append(received[1 - i])

        threads = [threading.Thread(target=download, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert received[0] > BIG and received[1] > BIG  # body and headers, both complete
        assert other_had_when_first_done[0] > BIG // 4
    finally:
        server.stop(signal.SIGTERM)
