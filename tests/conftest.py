"""Shared fixtures: a fresh tempdl app on a temporary SQLite database, with a clock tests control.

pytest-tornado's `app` fixture is ours; its `http_server` is replaced by one built the way
`serve` builds it, so the tests exercise the real header limits and timeouts.
"""

from __future__ import annotations

import datetime
import urllib.parse
from pathlib import Path

import pytest
import tornado.httpclient

from tempdl.app import make_app
from tempdl.audit import AuditLog
from tempdl.config import ensure_secret_keys, load_settings
from tempdl.inflight import InFlight
from tempdl.serving import make_http_server, prepare_audit
from tests.support import FakeClock, fresh_nonce, rows, sample_files, signed_query


def pytest_configure(config: pytest.Config) -> None:
    # pytest-tornado 0.8.1 calls IOLoop.make_current()/clear_current(), deprecated since Tornado
    # 6.2; filter exactly those, not warnings in general.
    config.addinivalue_line("filterwarnings", "ignore:make_current is deprecated:DeprecationWarning")
    config.addinivalue_line("filterwarnings", "ignore:clear_current is deprecated:DeprecationWarning")


@pytest.fixture
def files_dir(tmp_path: Path) -> Path:
    return sample_files(tmp_path / "files")


@pytest.fixture
def config_text() -> str:
    """The tempdl.toml of a test; override in a module to change settings."""
    return ""


@pytest.fixture
def settings(tmp_path: Path, files_dir: Path, config_text: str, http_port: int):
    config = tmp_path / "tempdl.toml"
    config.write_text(config_text, encoding="utf-8")
    environ = {
        "TEMPDL_FILES_DIR": str(files_dir),
        "TEMPDL_DATA_DIR": str(tmp_path / "data"),
        "TEMPDL_PUBLIC_URL": f"http://127.0.0.1:{http_port}",
        "TEMPDL_WECHAT_TOKEN": "AAAAA",
    }
    return ensure_secret_keys(load_settings({"config": str(config)}, environ, tmp_path))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime.datetime(2026, 11, 30, 8, 0, tzinfo=datetime.UTC))


@pytest.fixture
def audit(settings):
    store = prepare_audit(settings)
    yield store
    store.close()


@pytest.fixture
def inflight() -> InFlight:
    return InFlight()


@pytest.fixture
def app(settings, audit: AuditLog, clock: FakeClock, inflight: InFlight):
    return make_app(settings, audit, clock=clock, inflight=inflight)


@pytest.fixture
def http_server(request, io_loop, _unused_port, app, settings):
    server = make_http_server(app, settings)
    server.add_socket(_unused_port[0])
    yield server
    server.stop()
    io_loop.run_sync(server.close_all_connections, timeout=5)


@pytest.fixture
def base_url(http_port: int) -> str:
    return f"http://127.0.0.1:{http_port}"


@pytest.fixture
def fetch(http_client, base_url):
    """`await fetch(path, **kwargs)`: a request that returns error responses instead of raising."""

    async def _fetch(path: str, **kwargs) -> tornado.httpclient.HTTPResponse:
        url = path if path.startswith("http") else base_url + path
        return await http_client.fetch(url, raise_error=False, decompress_response=False, **kwargs)

    return _fetch


@pytest.fixture
def issue_link(app, audit: AuditLog, clock: FakeClock):
    """`await issue_link(file_id, **kwargs)` -> the link's path, issued as the CLI would, at `clock`."""
    issuer = app.settings["tempdl_issuer"]
    catalog = app.settings["tempdl_catalog"]

    async def _issue(file_id: str, recipient: str | None = "tester", **kwargs) -> str:
        offered = catalog.by_id(file_id)
        issued = await audit.run(issuer.issue, offered, recipient=recipient, channel="cli", now=clock(), **kwargs)
        return urllib.parse.urlsplit(issued.url).path

    return _issue


@pytest.fixture
def audit_rows(settings, inflight: InFlight):
    """`await audit_rows(sql)`: read the audit DB once every download in flight has written its row."""

    async def _rows(sql: str, *params) -> list:
        assert await inflight.wait_idle(5), "a download did not finish"
        return rows(settings.database_url, sql, *params)

    return _rows


@pytest.fixture
def wechat_post(fetch, clock):
    """`await wechat_post(body, **query)`: a POST to /wechat signed at the test clock's time.

    Each call gets a fresh nonce unless `nonce=` is given, as WeChat's requests do; other query
    arguments (`openid`, `timestamp`, `token` to sign with) pass through to `signed_query`.
    """

    async def _post(body: bytes, **query) -> tornado.httpclient.HTTPResponse:
        query.setdefault("timestamp", str(int(clock().timestamp())))
        query.setdefault("nonce", fresh_nonce())
        return await fetch(f"/wechat?{signed_query(**query)}", method="POST", body=body, allow_nonstandard_methods=True)

    return _post
