"""Prove the throw-away engine helpers in tests/engines.py really work.

Other tests trust these helpers to give them a real PostgreSQL and a real
nginx, so they are checked here end to end: connect/write through SQLAlchemy,
serve files (incl. Range and X-Accel-Redirect), and always clean up.
"""

from __future__ import annotations

import functools
import http.server
import os
import pathlib
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from tests import engines
from tests.engines import (
    free_port,
    minimal_nginx_config,
    skip_or_fail_without_nginx,
    skip_or_fail_without_postgres,
    throwaway_nginx,
    throwaway_postgres,
)


def _port_is_closed(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


# -- free_port / CI contract -------------------------------------------------


def test_free_port_is_bindable_on_loopback() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
    assert 1024 <= port <= 65535


@pytest.mark.parametrize(
    ("probe", "guard"),
    [("postgres_available", skip_or_fail_without_postgres), ("nginx_available", skip_or_fail_without_nginx)],
)
def test_missing_engine_skips_locally_but_fails_under_ci(monkeypatch, probe, guard) -> None:
    monkeypatch.setattr(engines, probe, lambda: "engine not installed")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="engine not installed"):
        guard()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="engine not installed"):
        guard()
    monkeypatch.setattr(engines, probe, lambda: None)
    guard()  # available: neither skips nor fails


# -- PostgreSQL ----------------------------------------------------------------


def test_postgres_roundtrip_with_sqlalchemy(tmp_path: pathlib.Path) -> None:
    skip_or_fail_without_postgres()
    with throwaway_postgres(tmp_path) as pg:
        assert pg.url == f"postgresql+psycopg://postgres@127.0.0.1:{pg.port}/tempdl_test"
        engine = sa.create_engine(pg.url)
        try:
            with engine.begin() as conn:
                assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
                conn.execute(sa.text("CREATE TABLE audit (id serial PRIMARY KEY, what text NOT NULL)"))
                conn.execute(sa.text("INSERT INTO audit (what) VALUES (:w)"), [{"w": "a"}, {"w": "b"}])
            with engine.connect() as conn:
                rows = conn.execute(sa.text("SELECT what FROM audit ORDER BY id")).scalars().all()
                assert rows == ["a", "b"]
                assert conn.execute(sa.text("SHOW fsync")).scalar_one() == "off"
        finally:
            engine.dispose()

        other_url = pg.create_database("tempdl_node2")
        other = sa.create_engine(other_url)
        try:
            with other.connect() as conn:
                assert conn.execute(sa.text("SELECT current_database()")).scalar_one() == "tempdl_node2"
        finally:
            other.dispose()
        cluster_dir, port = pg.cluster_dir, pg.port

    assert not cluster_dir.exists()
    assert _port_is_closed(port)
    assert (tmp_path / "postgres.log").exists()


def test_postgres_is_stopped_and_removed_when_the_test_body_raises(tmp_path: pathlib.Path) -> None:
    skip_or_fail_without_postgres()
    seen: dict[str, object] = {}
    with pytest.raises(RuntimeError), throwaway_postgres(tmp_path) as pg:
        seen.update(dir=pg.cluster_dir, port=pg.port)
        raise RuntimeError("the test body fails")
    assert not pathlib.Path(seen["dir"]).exists()
    assert _port_is_closed(int(seen["port"]))


# -- nginx ---------------------------------------------------------------------


@pytest.fixture
def files_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    directory = tmp_path / "files"
    directory.mkdir()
    (directory / "payload.bin").write_bytes(os.urandom(100_000))
    return directory


def test_nginx_serves_alias_file_with_range(tmp_path: pathlib.Path, files_dir: pathlib.Path) -> None:
    skip_or_fail_without_nginx()
    payload = (files_dir / "payload.bin").read_bytes()
    body = f"""
        location /static/ {{
            alias {files_dir}/;
        }}
    """
    builder = functools.partial(minimal_nginx_config, server_block=body)
    with throwaway_nginx(tmp_path, builder) as nginx:
        status, headers, data = _get(f"{nginx.url}/static/payload.bin")
        assert (status, data) == (200, payload)
        assert headers["Content-Length"] == str(len(payload))

        status, headers, data = _get(f"{nginx.url}/static/payload.bin", {"Range": "bytes=1000-1999"})
        assert status == 206
        assert data == payload[1000:2000]
        assert headers["Content-Range"] == f"bytes 1000-1999/{len(payload)}"

        assert '"GET /static/payload.bin HTTP/1.1" 206' in nginx.access_log()
        pid, port = nginx.pid, nginx.port

    assert _port_is_closed(port)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


class _AccelRedirectHandler(http.server.BaseHTTPRequestHandler):
    """Stands in for tempdl: answers every GET with an X-Accel-Redirect."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("X-Accel-Redirect", "/protected/payload.bin")
        self.send_header("Content-Disposition", 'attachment; filename="payload.bin"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def accel_upstream() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _AccelRedirectHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_nginx_x_accel_redirect_to_internal_location(
    tmp_path: pathlib.Path, files_dir: pathlib.Path, accel_upstream: int
) -> None:
    skip_or_fail_without_nginx()
    payload = (files_dir / "payload.bin").read_bytes()
    body = f"""
        location /protected/ {{
            internal;
            alias {files_dir}/;
        }}
        location /dl/ {{
            proxy_pass http://app;
        }}
    """
    builder = functools.partial(
        minimal_nginx_config,
        server_block=body,
        http_extra=f"    upstream app {{ server 127.0.0.1:{accel_upstream}; }}",
    )
    with throwaway_nginx(tmp_path, builder) as nginx:
        status, _, _ = _get(f"{nginx.url}/protected/payload.bin")
        assert status == 404  # internal: never reachable directly

        status, headers, data = _get(f"{nginx.url}/dl/some-token")
        assert (status, data) == (200, payload)
        assert headers["Content-Disposition"] == 'attachment; filename="payload.bin"'

        status, _, data = _get(f"{nginx.url}/dl/some-token", {"Range": "bytes=-10"})
        assert (status, data) == (206, payload[-10:])


def test_nginx_is_stopped_when_the_test_body_raises(tmp_path: pathlib.Path, files_dir: pathlib.Path) -> None:
    skip_or_fail_without_nginx()
    builder = functools.partial(minimal_nginx_config, server_block="location / { return 204; }")
    seen: dict[str, int] = {}
    with pytest.raises(RuntimeError), throwaway_nginx(tmp_path, builder) as nginx:
        seen.update(pid=nginx.pid, port=nginx.port)
        assert _get(nginx.url + "/")[0] == 204
        raise RuntimeError("the test body fails")
    assert _port_is_closed(seen["port"])
    with pytest.raises(ProcessLookupError):
        os.kill(seen["pid"], 0)


def test_nginx_start_failure_reports_the_error_log(tmp_path: pathlib.Path) -> None:
    skip_or_fail_without_nginx()
    broken = functools.partial(minimal_nginx_config, server_block="no_such_directive on;")
    with pytest.raises(engines.EngineStartError, match="no_such_directive"), throwaway_nginx(tmp_path, broken):
        pass  # pragma: no cover
