"""Helpers shared by the tests: a controllable clock, sample files, signed WeChat requests, rows."""

from __future__ import annotations

import datetime
import hashlib
import io
import os
import secrets
import sqlite3
import urllib.parse
from pathlib import Path

import untangle

from tempdl.wechat.signature import sha1_signature

WECHAT_TOKEN = "AAAAA"
FOLLOWER = "oyORnuP8q7ou2gfYjqLzSIWZf0rs"
ACCOUNT = "gh_10f6c3c3ac5a"


class FakeClock:
    """A clock that stands still until a test moves it: expiry is tested without sleeping."""

    def __init__(self, start: datetime.datetime) -> None:
        self.now = start

    def __call__(self) -> datetime.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += datetime.timedelta(seconds=seconds)


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


def rows(database: Path | str, sql: str, *params) -> list[sqlite3.Row]:
    """Read the audit database the way an operator would, with the sqlite3 module."""
    path = str(database).removeprefix("sqlite:///")
    with sqlite3.connect(path) as connection:
        connection.row_factory = sqlite3.Row
        return connection.execute(sql, params).fetchall()


def link_path(url: str) -> str:
    return urllib.parse.urlsplit(url).path


def env_without_tempdl() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TEMPDL_")}
