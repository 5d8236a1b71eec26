"""Scale-out on the real engines: several tempdl processes on one PostgreSQL, nginx sending the bytes.

Only whole processes show this: two `python server.py` sharing a database and signing keys race
for the last allowed download, and a real nginx, configured from deploy/nginx-x-accel.conf, sits in front
of two servers in x-accel mode, with its access log ingested afterwards.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import http.client
import json
import re
import secrets
import signal
import socket
import struct
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tempdl.audit.engine import make_engine
from tempdl.audit.log import AuditLog
from tempdl.links.tokens import LinkSigner
from tests.engines import skip_or_fail_without_nginx, throwaway_nginx
from tests.live_server import LiveServer
from tests.nginx_deploy import nginx_config_from_deploy
from tests.support import rows, sample_bytes, sample_files

pytestmark = pytest.mark.postgres

REPO = Path(__file__).resolve().parents[2]
RACES = 50
BIG_SIZE = 24 * 1024 * 1024  # large enough that a client hanging up mid-file stops nginx mid-file


@pytest.fixture
def pg_url(postgres_databases) -> Iterator[str]:
    with postgres_databases.fresh() as url:
        yield url


@pytest.fixture
def secret_keys() -> list[str]:
    return [secrets.token_urlsafe(32)]


@pytest.fixture
def shared_files(tmp_path: Path) -> Path:
    folder = sample_files(tmp_path / "files")
    (folder / "big.bin").write_bytes(sample_bytes(BIG_SIZE, seed=11))
    return folder


def server_config(database_url: str, keys: list[str], files_dir: Path, serve_mode: str) -> str:
    return (
        f'serve_mode = "{serve_mode}"\n'
        f'database_url = "{database_url}"\n'
        f"secret_keys = {json.dumps(keys)}\n"
        f'files_dir = "{files_dir}"\n'
        "shutdown_grace = 2\n"
    )


@contextlib.contextmanager
def running(*servers: LiveServer) -> Iterator[tuple[LiveServer, ...]]:
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            if server.process is not None and server.process.poll() is None:
                server.stop(signal.SIGTERM)
            server.kill()


def make_servers(tmp_path: Path, count: int, config_text: str) -> list[LiveServer]:
    servers = []
    for number in range(count):
        workdir = tmp_path / f"tempdl-{number}"
        workdir.mkdir()
        servers.append(LiveServer(workdir, config_text))
    return servers


def issue_link(
    database_url: str,
    keys: list[str],
    file_id: str,
    *,
    max_downloads: int | None = None,
    expired: bool = False,
) -> str:
    """A link as `issue` makes it (its row, its token), without a CLI process per link."""
    audit = AuditLog(make_engine(database_url))
    now = datetime.datetime.now(datetime.UTC)
    created = now - datetime.timedelta(hours=3) if expired else now
    try:
        issuance_id = audit.create_issuance(
            file_id=file_id,
            recipient="tester",
            channel="cli",
            created_at=created,
            expires_at=created + datetime.timedelta(minutes=10),
            max_downloads=max_downloads,
        )
    finally:
        audit.close()
    return "/api/get_file/" + LinkSigner(tuple(keys)).sign(issuance_id)


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


# --- two servers, one database: the last download is claimed once ------------------------------


def test_two_servers_racing_for_the_last_download_exactly_one_wins(tmp_path, pg_url, secret_keys, shared_files):
    config_text = server_config(pg_url, secret_keys, shared_files, "direct")
    with running(*make_servers(tmp_path, 2, config_text)) as servers:
        links = [issue_link(pg_url, secret_keys, "hello.txt", max_downloads=1) for _ in range(RACES)]
        start = threading.Barrier(2)

        def download(server: LiveServer, path: str) -> tuple[int, str]:
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            connection.connect()  # both connected before the barrier: the requests leave together
            try:
                start.wait()
                connection.request("GET", path, headers={"Accept": "application/json"})
                response = connection.getresponse()
                body = response.read()
                return response.status, body.decode() if response.status == 200 else json.loads(body)["reason"]
            finally:
                connection.close()

        with ThreadPoolExecutor(2) as pool:
            for path in links:
                results = sorted(pool.map(download, servers, [path, path]))
                assert results == [(200, "Hello 你好\n"), (410, "used_up")], path
    # Both got past the first check and met at the claim (the refusal names it): a real race.
    assert "last download already taken" in servers[0].log() + servers[1].log()

    found = rows(
        pg_url,
        "SELECT issuance_id, outcome, http_status, bytes_sent FROM download_attempts ORDER BY issuance_id, outcome",
    )
    per_link: dict[int, list[tuple]] = {}
    for row in found:
        per_link.setdefault(row["issuance_id"], []).append(tuple(row)[1:])
    assert len(per_link) == RACES
    size = len("Hello 你好\n".encode())
    assert all(attempts == [("limited", 410, 0), ("ok", 200, size)] for attempts in per_link.values())


# --- nginx in front of two x-accel servers ------------------------------------------------------


def hang_up_after(port: int, path: str, read: int) -> int:
    """Read the first bytes of a download, then reset the connection; returns the bytes read."""
    client = socket.create_connection(("127.0.0.1", port))
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    client.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    received = 0
    while received < read:
        received += len(client.recv(65536))
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()
    return received


def test_nginx_in_front_of_two_x_accel_servers(tmp_path, pg_url, secret_keys, shared_files):
    skip_or_fail_without_nginx()
    config_text = server_config(pg_url, secret_keys, shared_files, "x-accel")
    whole_file = (shared_files / "InstMsiW.exe").read_bytes()
    with running(*make_servers(tmp_path, 2, config_text)) as servers:
        builder = functools.partial(nginx_config_from_deploy, shared_files, [server.port for server in servers])
        with throwaway_nginx(tmp_path / "nginx", builder) as nginx:
            link = issue_link(pg_url, secret_keys, "InstMsiW.exe")
            received: list[int] = []

            # Whole, four times: nginx spreads them over both servers; each is the file, byte for byte.
            for _ in range(4):
                status, headers, body = get(nginx.port, link)
                assert (status, body) == (200, whole_file)
                assert headers["Content-Disposition"] == 'attachment; filename="InstMsiW.exe"'
                assert headers["X-Content-Type-Options"] == "nosniff"
                assert "X-Tempdl-Attempt" not in headers and "X-Accel-Redirect" not in headers
                received.append(len(body))

            # By Range: 206 and the slice asked for.
            status, headers, body = get(nginx.port, link, {"Range": "bytes=1000-1999"})
            assert (status, headers["Content-Range"], body) == (
                206,
                f"bytes 1000-1999/{len(whole_file)}",
                whole_file[1000:2000],
            )
            received.append(len(body))
            status, headers, body = get(nginx.port, link, {"Range": "bytes=-10"})
            assert (status, body) == (206, whole_file[-10:])
            received.append(len(body))

            # Refusals are tempdl's own answers, passed through nginx untouched.
            status, _, body = get(nginx.port, link[:-3] + "AAA", {"Accept": "application/json"})
            assert (status, json.loads(body)["reason"]) == (403, "bad")
            status, _, body = get(nginx.port, issue_link(pg_url, secret_keys, "hello.txt", expired=True))
            assert status == 410 and "链接已过期" in body.decode() and "expired" in body.decode()

            # A client that hangs up mid-file.
            big_link = issue_link(pg_url, secret_keys, "big.bin")
            hang_up_after(nginx.port, big_link, 256 * 1024)

            # The download cap counts a download handed to nginx the moment it is handed over.
            capped = issue_link(pg_url, secret_keys, "hello.txt", max_downloads=1)
            assert get(nginx.port, capped)[0] == 200
            status, _, body = get(nginx.port, capped, {"Accept": "application/json"})
            assert (status, json.loads(body)["reason"]) == (410, "used_up")

        log_text = (nginx.prefix / "logs" / "tempdl-access.log").read_text()
        assert {f"upstream=127.0.0.1:{server.port}" for server in servers} <= set(log_text.split())
        assert "get_file" not in log_text  # no tokens in nginx's log

        first = servers[0].cli("ingest-nginx-log", str(nginx.prefix / "logs" / "tempdl-access.log"))
        assert first.returncode == 0, first.stderr
        assert re.fullmatch(
            r"ingest-nginx-log: 11 lines, 8 downloads finished \(7 ok, 1 partial\), 0 already done, "
            r"0 unknown attempt ids, 3 not downloads, 0 malformed\n",
            first.stdout,
        ), first.stdout
        link_rows = rows(
            pg_url,
            "SELECT a.outcome, a.http_status, a.bytes_sent, a.finished_at FROM download_attempts a "
            "JOIN issuances i ON i.id = a.issuance_id WHERE i.file_id = 'InstMsiW.exe' AND a.outcome <> 'bad' "
            "ORDER BY a.id",
        )
        assert [(row["outcome"], row["http_status"], row["bytes_sent"]) for row in link_rows] == [
            ("ok", 200, size) for size in received[:4]
        ] + [("ok", 206, received[4]), ("ok", 206, received[5])]
        assert all(row["finished_at"] is not None for row in link_rows)
        [dropped] = rows(pg_url, "SELECT outcome, bytes_sent FROM download_attempts WHERE file_id = 'big.bin'")
        assert dropped["outcome"] == "partial" and 0 < dropped["bytes_sent"] < BIG_SIZE

        before = rows(pg_url, "SELECT * FROM download_attempts ORDER BY id")
        second = servers[1].cli("ingest-nginx-log", str(nginx.prefix / "logs" / "tempdl-access.log"))
        assert second.returncode == 0, second.stderr
        assert "0 downloads finished, 8 already done" in second.stdout
        assert rows(pg_url, "SELECT * FROM download_attempts ORDER BY id") == before
