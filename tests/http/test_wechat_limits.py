"""Links per follower per hour, and a polite answer when the audit database is slow or gone.

The cap is checked where the link is recorded, in the insert's own transaction; the tests below go
over HTTP for what followers see, and at the AuditLog for two writers at once (two engines on one
SQLite file, and a real PostgreSQL), which is what a second server process would be.
"""

from __future__ import annotations

import asyncio
import datetime
import io
import logging
import re
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import untangle

from tempdl.app import make_app
from tempdl.audit.engine import make_engine
from tempdl.audit.log import AuditLog
from tempdl.errors import IssuanceCapReached
from tempdl.web.handlers import wechat as wechat_handlers
from tempdl.wechat import conversation
from tests.support import FOLLOWER, rows, text_message

pytestmark = pytest.mark.both_databases

CAP = 2


@pytest.fixture
def config_text() -> str:
    return f"[limits]\nissues_per_recipient_per_hour = {CAP}\n"


def content(body: bytes) -> str:
    return untangle.parse(io.BytesIO(body)).xml.Content.cdata


def link_in(body: bytes) -> str | None:
    found = re.search(r"http://\S+", content(body))
    return found.group(0) if found else None


def issuances(settings, recipient: str = FOLLOWER) -> int:
    return rows(settings.database_url, "SELECT COUNT(*) AS n FROM issuances WHERE recipient = ?", recipient)[0]["n"]


# Per follower per hour, over HTTP


@pytest.mark.gen_test
async def test_over_the_cap_the_reply_says_when_to_try_again(wechat_post, settings, clock):
    first = await wechat_post(text_message("hello.txt", msg_id="1"))
    clock.advance(10 * 60)
    second = await wechat_post(text_message("hello.txt", msg_id="2"))
    clock.advance(5)
    resend = await wechat_post(text_message("hello.txt", msg_id="2"))  # dedupe before the cap
    clock.advance(27 * 60 - 5)
    refused = await wechat_post(text_message("InstMsiW.exe", msg_id="3"))

    assert link_in(first.body) and link_in(second.body)
    assert link_in(resend.body) == link_in(second.body)
    assert refused.code == 200
    text = content(refused.body)
    assert link_in(refused.body) is None
    assert "请在 23 分钟后再试" in text and "try again in 23 minutes" in text
    assert issuances(settings) == CAP

    clock.advance(23 * 60)  # the first link leaves the hour
    later = await wechat_post(text_message("InstMsiW.exe", msg_id="4"))
    assert link_in(later.body)
    assert issuances(settings) == CAP + 1


@pytest.mark.gen_test
async def test_the_cap_is_per_follower(wechat_post, settings):
    for msg_id in ("1", "2", "3"):
        await wechat_post(text_message("hello.txt", msg_id=msg_id))
    other = await wechat_post(text_message("hello.txt", msg_id="1", sender="oAnotherFollower"))

    assert link_in(other.body)
    assert issuances(settings) == CAP
    assert issuances(settings, "oAnotherFollower") == 1


@pytest.mark.gen_test
async def test_links_issued_by_the_operator_count_but_are_not_capped(wechat_post, issue_link, settings):
    for _ in range(CAP + 1):
        await issue_link("hello.txt", recipient=FOLLOWER)  # the CLI: never refused

    refused = await wechat_post(text_message("hello.txt"))

    assert link_in(refused.body) is None
    assert issuances(settings) == CAP + 1


@pytest.mark.gen_test
async def test_concurrent_requests_cannot_both_take_the_last_slot(wechat_post, settings):
    await wechat_post(text_message("hello.txt", msg_id="1"))
    replies = await asyncio.gather(*(wechat_post(text_message("hello.txt", msg_id=str(n))) for n in range(2, 8)))

    assert sum(link_in(reply.body) is not None for reply in replies) == CAP - 1
    assert issuances(settings) == CAP


# Two writers at the database


def try_to_issue(store: AuditLog, recipient: str, now: datetime.datetime, cap: int) -> bool:
    try:
        store.create_issuance_within_cap(
            file_id="hello.txt",
            recipient=recipient,
            channel="wechat",
            created_at=now,
            expires_at=now + datetime.timedelta(minutes=10),
            max_downloads=None,
            cap=cap,
            window=datetime.timedelta(hours=1),
        )
    except IssuanceCapReached:
        return False
    return True


def race(database_url: str, followers: int = 40) -> list[int]:
    """Two AuditLogs (as two server processes would have) ask for the one link each follower may have.

    The threads meet at a barrier before each follower, so their transactions overlap as often
    as they can; returns how many links each follower got.
    """
    stores = [AuditLog(make_engine(database_url)) for _ in range(2)]
    now = datetime.datetime(2026, 11, 30, 8, 0, tzinfo=datetime.UTC)
    start = threading.Barrier(2)

    def worker(store: AuditLog) -> None:
        for number in range(followers):
            start.wait()
            try_to_issue(store, f"follower-{number}", now, cap=1)

    try:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(worker, stores))
        since = now - datetime.timedelta(hours=1)
        return [stores[0].issuances_since(f"follower-{number}", since) for number in range(followers)]
    finally:
        for store in stores:
            store.engine.dispose()


def test_two_writers_never_exceed_the_cap(settings, audit):
    assert race(settings.database_url) == [1] * 40


def test_issuances_since_counts_one_recipient_after_a_moment(audit):
    now = datetime.datetime(2026, 11, 30, 8, 0, tzinfo=datetime.UTC)
    for minutes, recipient in ((0, "a"), (30, "a"), (61, "a"), (61, "b")):
        audit.create_issuance(
            file_id="f",
            recipient=recipient,
            channel="wechat",
            created_at=now + datetime.timedelta(minutes=minutes),
            expires_at=now + datetime.timedelta(hours=2),
            max_downloads=None,
        )

    assert audit.issuances_since("a", now + datetime.timedelta(minutes=1)) == 2
    assert audit.issuances_since("a", now - datetime.timedelta(minutes=1)) == 3
    assert audit.issuances_since("nobody", now) == 0


def test_the_refusal_says_when_the_oldest_counted_link_leaves_the_window(audit):
    now = datetime.datetime(2026, 11, 30, 8, 0, tzinfo=datetime.UTC)
    arguments = {"file_id": "f", "recipient": "a", "channel": "wechat", "max_downloads": None}
    hour = datetime.timedelta(hours=1)
    for minutes in (0, 10, 20):
        audit.create_issuance(
            **arguments,
            created_at=now + datetime.timedelta(minutes=minutes),
            expires_at=now + hour,
        )

    at = now + datetime.timedelta(minutes=30)
    with pytest.raises(IssuanceCapReached) as caught:
        audit.create_issuance_within_cap(**arguments, created_at=at, expires_at=at + hour, cap=2, window=hour)

    assert caught.value.retry_at == now + datetime.timedelta(minutes=10) + hour  # two newest: 10 and 20
    assert audit.issuances_since("a", now - hour) == 3  # rolled back


# A slow or missing audit database (made so with the sqlite3 module: SQLite only)


@pytest.mark.sqlite_only
class TestAuditTrouble:
    @pytest.fixture
    def config_text(self) -> str:
        return ""

    @pytest.fixture
    def app(self, settings, audit, clock, app_state, monkeypatch):
        monkeypatch.setattr(wechat_handlers, "REPLY_DEADLINE_SECONDS", 0.2)
        return make_app(settings, audit, clock=clock, state=app_state)

    @pytest.mark.gen_test
    async def test_a_locked_database_gets_a_polite_reply_before_wechat_gives_up(
        self, wechat_post, settings, audit, caplog
    ):
        caplog.set_level(logging.ERROR)
        operator = sqlite3.connect(settings.database_url.removeprefix("sqlite:///"))
        operator.execute("BEGIN IMMEDIATE")  # e.g. a long write by hand, or a backup tool
        try:
            response = await wechat_post(text_message("hello.txt", msg_id="1"))
        finally:
            operator.rollback()
            operator.close()

        assert response.code == 200
        assert content(response.body) == conversation.UNAVAILABLE_TEXT
        assert "no reply within 0.2s" in caplog.text
        await audit.run(lambda: None)  # the late insert lands; the follower simply asks again
        again = await wechat_post(text_message("hello.txt", msg_id="2"))
        assert link_in(again.body)

    @pytest.mark.gen_test
    async def test_a_broken_database_gets_a_polite_reply_and_a_resend_tries_again(self, wechat_post, settings, caplog):
        caplog.set_level(logging.ERROR)
        database = settings.database_url.removeprefix("sqlite:///")
        with sqlite3.connect(database) as operator:
            operator.execute("ALTER TABLE issuances RENAME TO issuances_moved")

        broken = await wechat_post(text_message("hello.txt"))

        assert broken.code == 200
        text = content(broken.body)
        assert "服务暂时繁忙" in text and "busy right now" in text
        assert "audit database unavailable" in caplog.text
        with sqlite3.connect(database) as operator:
            operator.execute("ALTER TABLE issuances_moved RENAME TO issuances")
        resend = await wechat_post(text_message("hello.txt"))  # the failure was not remembered
        assert link_in(resend.body)
