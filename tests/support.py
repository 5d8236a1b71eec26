"""Helpers shared by the tests: a controllable clock, sample files, signed WeChat requests, rows,
and the one bounded wait for what another process does in its own time."""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import io
import os
import re
import secrets
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import untangle
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from tempdl.audit.engine import make_engine, upgrade
from tempdl.audit.log import AuditLog
from tempdl.wechat.signature import sha1_signature

WECHAT_TOKEN = "AAAAA"
FOLLOWER = "oyORnuP8q7ou2gfYjqLzSIWZf0rs"
ACCOUNT = "gh_10f6c3c3ac5a"

T = TypeVar("T")


class FakeClock:
    """A clock that stands still until a test moves it: expiry is tested without sleeping."""

    def __init__(self, start: datetime.datetime) -> None:
        self.now = start

    def __call__(self) -> datetime.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += datetime.timedelta(seconds=seconds)


def in_ci() -> bool:
    """Under CI (`CI=true`) every engine and browser test must run: a skip there is a failure."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Make one file read-only for real, even to root: bind-mounted onto itself read-only.

    Files opened before keep writing it, as with a `chmod` or a remount under a running
    process; what opens it from now on gets a read-only file. CI runs as root: a skip there is a
    failure.
    """
    target = str(path)
    for argv in (["mount", "--bind", target, target], ["mount", "-o", "remount,bind,ro", target]):
        made = subprocess.run(argv, capture_output=True, text=True)
        if made.returncode != 0:
            subprocess.run(["umount", "-l", target], capture_output=True)
            if in_ci():
                pytest.fail(f"cannot bind-mount {target} read-only (CI runs as root): {made.stderr.strip()}")
            pytest.skip("a read-only bind mount needs root")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", target], check=True)


def wait_until(
    predicate: Callable[[], T],
    *,
    timeout: float,
    what: str,
    detail: Callable[[], str] = lambda: "",
    error: Callable[[str], Exception] = AssertionError,
    interval: float = 0.05,
) -> T:
    """Poll `predicate` until it returns something truthy, and return that.

    Only for what a test cannot be told about: a subprocess starting to listen, a row another
    process commits after its answer went out. Bounded: after `timeout` seconds it raises `error`
    naming `what` it waited for, with `detail()` (a log, say) appended. A predicate may raise to
    give up at once (a server that exited will never listen).
    """
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        if time.monotonic() >= deadline:
            raise error(f"waited {timeout} s for {what}, in vain\n{detail()}".rstrip())
        time.sleep(interval)
    return result


def sample_bytes(size: int, seed: int = 7) -> bytes:
    """Deterministic, non-repeating content, so a wrong offset can never look right."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def sample_files(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "InstMsiW.exe").write_bytes(sample_bytes(300_000))
    (folder / "hello.txt").write_bytes("Hello 你好\n".encode())
    (folder / "说明.pdf").write_bytes(sample_bytes(1000, seed=3))
    return folder


def signed_query(token: str = WECHAT_TOKEN, timestamp: str | None = None, nonce: str = "1514711492", **extra) -> str:
    timestamp = timestamp or str(int(datetime.datetime.now(datetime.UTC).timestamp()))
    params = {"signature": sha1_signature(token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce}
    params.update(extra)
    return urllib.parse.urlencode(params)


def fresh_nonce() -> str:
    """A nonce like WeChat's (decimal digits), different on every call."""
    return str(secrets.randbelow(10**10))


def wechat_event(event: str, *, event_key: str = "", sender: str = FOLLOWER, create_time: int = 1714036504) -> bytes:
    return (
        f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
        f"<FromUserName><![CDATA[{sender}]]></FromUserName>"
        f"<CreateTime>{create_time}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        f"<Event><![CDATA[{event}]]></Event><EventKey><![CDATA[{event_key}]]></EventKey></xml>"
    ).encode()


def wechat_message(msg_type: str, *, sender: str = FOLLOWER, msg_id: str = "6054768590064713728") -> bytes:
    """A non-text message (image, voice, location, ...) with only the fields every message has."""
    return (
        f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
        f"<FromUserName><![CDATA[{sender}]]></FromUserName>"
        f"<CreateTime>1714036504</CreateTime><MsgType><![CDATA[{msg_type}]]></MsgType>"
        f"<MediaId><![CDATA[media_id]]></MediaId><MsgId>{msg_id}</MsgId></xml>"
    ).encode()


def text_message(
    content: str, *, sender: str = FOLLOWER, msg_id: str = "1234567890123456", create_time: int = 1714036504
) -> bytes:
    return (
        f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
        f"<FromUserName><![CDATA[{sender}]]></FromUserName>"
        f"<CreateTime>{create_time}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>"
    ).encode()


def reply_content(body: bytes) -> str:
    """The Content of a passive text reply, after checking it goes back to the follower."""
    document = untangle.parse(io.BytesIO(body))
    assert document.xml.ToUserName.cdata == FOLLOWER
    assert document.xml.FromUserName.cdata == ACCOUNT
    assert document.xml.MsgType.cdata == "text"
    return document.xml.Content.cdata


class Row(tuple):
    """One result row: a tuple that can also be read by column name, as `sqlite3.Row` can."""

    _names: dict[str, int]

    def __new__(cls, names: list[str], values) -> Row:
        row = super().__new__(cls, values)
        row._names = {name: index for index, name in enumerate(names)}
        return row

    def __getitem__(self, key):  # type: ignore[override]
        return super().__getitem__(self._names[key] if isinstance(key, str) else key)

    def keys(self) -> list[str]:
        return list(self._names)


_SQLITE_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?")


def _plain(value):
    """SQLite hands timestamps back as text; PostgreSQL as naive datetimes. Both mean naive UTC."""
    if isinstance(value, str) and _SQLITE_TIMESTAMP.fullmatch(value):
        return datetime.datetime.fromisoformat(value)
    return value


def database_url_of(database: Path | str) -> str:
    """A SQLAlchemy URL for a URL, or for the path of a SQLite file."""
    text = str(database)
    return text if "://" in text else f"sqlite:///{text}"


def rows(database: Path | str, sql: str, *params) -> list[Row]:
    """Read the audit database the way an operator would: plain SQL, on SQLite or PostgreSQL.

    `?` placeholders take `params` in order, as with the sqlite3 module. Timestamps come back as
    naive UTC datetimes on both databases (that is how `UTCDateTime` stores them).
    """
    names = iter(range(len(params)))
    statement = re.sub(r"\?", lambda _: f":p{next(names)}", sql)
    engine = create_engine(database_url_of(database), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            result = connection.execute(text(statement), {f"p{i}": value for i, value in enumerate(params)})
            columns = list(result.keys())
            return [Row(columns, [_plain(value) for value in record]) for record in result]
    finally:
        engine.dispose()


@contextlib.contextmanager
def sqlite_audit(database: Path) -> Iterator[AuditLog]:
    """A migrated audit database in a SQLite file, for unit tests that need real rows."""
    engine = make_engine(f"sqlite:///{database}")
    upgrade(engine)
    audit = AuditLog(engine)
    try:
        yield audit
    finally:
        audit.close()


def link_path(url: str) -> str:
    return urllib.parse.urlsplit(url).path


def env_without_tempdl() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TEMPDL_")}
