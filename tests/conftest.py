"""Shared fixtures: a fresh tempdl app on a temporary database, with a clock tests control.

pytest-tornado's `app` fixture is ours; its `http_server` is replaced by one built the way
`serve` builds it, so the tests exercise the real header limits and timeouts.

The database is SQLite, or, for test modules marked `both_databases`, SQLite and PostgreSQL: each
such test runs twice (`[sqlite]`, `[postgresql]`; select with `-m postgres`). The PostgreSQL runs
share one throw-away cluster for the whole session and get a fresh database each, copied from a
template that is already migrated (tests/databases.py).
"""

from __future__ import annotations

import datetime
import urllib.parse
from pathlib import Path

import pytest
import tornado.httpclient

from tempdl.app import AppState, make_app
from tempdl.audit.log import AuditLog
from tempdl.cli.serve import make_http_server, prepare_audit
from tempdl.config.load import load_settings
from tempdl.config.secret import ensure_secret_keys
from tempdl.links.catalog import Catalog
from tempdl.links.issuing import Issuer
from tempdl.links.tokens import LinkSigner
from tempdl.web.inflight import InFlight
from tests.databases import BOTH_DATABASES, PostgresDatabases
from tests.support import FakeClock, fresh_nonce, rows, sample_files, signed_query


def pytest_configure(config: pytest.Config) -> None:
    for marker in (
        "both_databases: the module's database tests run on SQLite and on PostgreSQL (tests/conftest.py)",
        "sqlite_only: keep this test on SQLite inside a both_databases module (it pokes SQLite directly)",
        "postgres: the PostgreSQL run of a test (select with -m postgres, leave out with -m 'not postgres')",
    ):
        config.addinivalue_line("markers", marker)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests in `both_databases` modules that use the database run on SQLite and on PostgreSQL."""
    node = metafunc.definition
    if (
        "database_kind" in metafunc.fixturenames
        and node.get_closest_marker("both_databases")
        and not node.get_closest_marker("sqlite_only")
    ):
        metafunc.parametrize("database_kind", BOTH_DATABASES, indirect=True)


@pytest.fixture
def database_kind(request) -> str:
    """`sqlite`, or what `pytest_generate_tests` chose for this run of the test."""
    return getattr(request, "param", "sqlite")


@pytest.fixture(scope="session")
def postgres_databases(tmp_path_factory):
    """One throw-away PostgreSQL cluster for the session (skips, or fails under CI=true, without one)."""
    with PostgresDatabases.started(tmp_path_factory.mktemp("postgres")) as databases:
        yield databases


@pytest.fixture
def database_url(request, database_kind: str, tmp_path: Path):
    """The audit database of this test: a SQLite file in tmp_path, or a fresh PostgreSQL database."""
    if database_kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'tempdl.sqlite3'}"
        return
    databases: PostgresDatabases = request.getfixturevalue("postgres_databases")
    with databases.fresh() as url:
        yield url


@pytest.fixture
def files_dir(tmp_path: Path) -> Path:
    return sample_files(tmp_path / "files")


@pytest.fixture
def config_text() -> str:
    """The tempdl.toml of a test; override in a module to change settings."""
    return ""


@pytest.fixture
def empty_database(request, database_kind: str, tmp_path: Path):
    """A database no migration has run on yet: a new SQLite file, or a new PostgreSQL database."""
    if database_kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite3'}"
        return
    with request.getfixturevalue("postgres_databases").fresh(migrated=False) as url:
        yield url


@pytest.fixture
def settings(tmp_path: Path, files_dir: Path, config_text: str, http_port: int, database_url: str):
    config = tmp_path / "tempdl.toml"
    config.write_text(config_text, encoding="utf-8")
    environ = {
        "TEMPDL_FILES_DIR": str(files_dir),
        "TEMPDL_DATA_DIR": str(tmp_path / "data"),
        "TEMPDL_DATABASE_URL": database_url,
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
    """The app's download requests in flight: wait for it to be idle before reading their rows."""
    return InFlight()


@pytest.fixture
def app_state(inflight: InFlight) -> AppState:
    """What the app's requests share (downloads streaming, WeChat replies), for tests to look at."""
    return AppState(requests_in_flight=inflight)


@pytest.fixture
def app(settings, audit: AuditLog, clock: FakeClock, app_state: AppState):
    return make_app(settings, audit, clock=clock, state=app_state)


@pytest.fixture
def http_server(request, io_loop, _unused_port, app, settings, audit, clock):
    server = make_http_server(app, settings, audit, clock=clock)
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
def issue_link(settings, audit: AuditLog, clock: FakeClock):
    """`await issue_link(file_id, **kwargs)` -> the link's path, issued as the CLI would, at `clock`."""
    issuer = Issuer(settings, audit, LinkSigner(settings.secret_keys))
    catalog = Catalog(settings.files_dir, settings.files)

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
