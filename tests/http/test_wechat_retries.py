"""WeChat's resends and replays over real signed HTTP: one issuance per message, stale or reused refused."""

from __future__ import annotations

import asyncio
import io
import logging
import re
import sqlite3
import threading

import pytest
import untangle

from tests.support import FOLLOWER, fresh_nonce, link_path, rows, text_message, wechat_event

pytestmark = pytest.mark.both_databases


def reply_link(body: bytes) -> str:
    content = untangle.parse(io.BytesIO(body)).xml.Content.cdata
    return re.search(r"http://\S+", content).group(0)


def issuance_count(settings) -> int:
    return rows(settings.database_url, "SELECT COUNT(*) AS n FROM issuances")[0]["n"]


# Resends


@pytest.mark.gen_test
async def test_three_tries_of_one_message_get_one_link(wechat_post, fetch, settings, files_dir, clock):
    message = text_message("hello.txt", msg_id="6054768590064713728")
    links = []
    for _ in range(3):  # WeChat: no reply within 5 s, try again, three tries in all
        response = await wechat_post(message)
        assert response.code == 200
        links.append(reply_link(response.body))
        clock.advance(5)

    assert links[0] == links[1] == links[2]
    assert issuance_count(settings) == 1
    download = await fetch(link_path(links[0]))
    assert download.body == (files_dir / "hello.txt").read_bytes()


@pytest.mark.gen_test
async def test_a_resend_with_the_same_query_string_is_not_a_replay(wechat_post, settings):
    message = text_message("hello.txt")
    first = await wechat_post(message, nonce="1320562132")
    second = await wechat_post(message, nonce="1320562132")

    assert second.code == 200
    assert reply_link(first.body) == reply_link(second.body)
    assert issuance_count(settings) == 1


@pytest.mark.gen_test
async def test_resends_while_the_first_try_is_still_working_share_it(wechat_post, app_state, audit, settings):
    retries = app_state.wechat_replies
    audit_thread_free = threading.Event()
    blocker = asyncio.ensure_future(audit.run(audit_thread_free.wait))  # a busy audit thread
    # On SQLite the insert first runs on the event loop and only goes to the audit thread when
    # another writer holds the lock: hold it, so the first try has to wait for the thread.
    lock = None
    if settings.database_url.startswith("sqlite"):
        lock = sqlite3.connect(settings.database_url.removeprefix("sqlite:///"), isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")
    try:
        message = text_message("hello.txt")

        tries = [asyncio.ensure_future(wechat_post(message)) for _ in range(3)]
        for _ in range(1000):  # wait (not for a time, for a fact): both resends have joined the first
            if retries.resends == 2:
                break
            await asyncio.sleep(0.005)
        assert retries.resends == 2
        assert issuance_count(settings) == 0
        if lock is not None:
            lock.execute("ROLLBACK")
            lock.close()
        audit_thread_free.set()
        await blocker
        responses = await asyncio.gather(*tries)

        assert [r.code for r in responses] == [200, 200, 200]
        assert len({reply_link(r.body) for r in responses}) == 1
        assert issuance_count(settings) == 1
    finally:
        audit_thread_free.set()  # never leave the audit thread blocked, even when an assert failed


@pytest.mark.gen_test
async def test_event_resends_are_recognised_by_sender_and_create_time(wechat_post, settings):
    click = wechat_event("CLICK", event_key="hello.txt", create_time=1714036600)
    first, second = await wechat_post(click), await wechat_post(click)
    assert reply_link(first.body) == reply_link(second.body)
    assert issuance_count(settings) == 1

    later = await wechat_post(wechat_event("CLICK", event_key="hello.txt", create_time=1714036601))
    assert reply_link(later.body) != reply_link(first.body)
    assert issuance_count(settings) == 2


@pytest.mark.gen_test
async def test_different_messages_or_senders_get_their_own_links(wechat_post, settings):
    bodies = [
        text_message("hello.txt", msg_id="1"),
        text_message("hello.txt", msg_id="2"),
        text_message("hello.txt", msg_id="1", sender="oOtherFollower000000000000000"),
    ]
    links = {reply_link((await wechat_post(body)).body) for body in bodies}

    assert len(links) == 3
    assert issuance_count(settings) == 3


@pytest.mark.gen_test
async def test_a_reply_is_remembered_for_minutes_not_for_ever(wechat_post, settings, clock):
    # As long as the nonce ledger: twice max_clock_skew (300 s by default).
    message = text_message("hello.txt")
    first = reply_link((await wechat_post(message)).body)
    clock.advance(599)
    assert reply_link((await wechat_post(message)).body) == first
    clock.advance(2)

    assert reply_link((await wechat_post(message)).body) != first
    assert issuance_count(settings) == 2


@pytest.mark.gen_test
@pytest.mark.parametrize("config_text", ["[wechat]\nmax_clock_skew = 900\n"])
async def test_the_same_signed_request_within_a_long_skew_issues_once(wechat_post, settings, clock):
    timestamp, nonce = str(int(clock().timestamp())), fresh_nonce()
    first = await wechat_post(text_message("hello.txt"), timestamp=timestamp, nonce=nonce)
    clock.advance(305)  # past the old fixed 300 s memory, well within the 900 s skew
    again = await wechat_post(text_message("hello.txt"), timestamp=timestamp, nonce=nonce)

    assert (first.code, again.code) == (200, 200)
    assert again.body == first.body.replace(
        re.search(rb"<CreateTime>\d+</CreateTime>", first.body).group(0),
        re.search(rb"<CreateTime>\d+</CreateTime>", again.body).group(0),
    )
    assert issuance_count(settings) == 1


# Replays


@pytest.mark.gen_test
async def test_a_replayed_old_message_is_refused_and_logged(wechat_post, settings, clock, caplog):
    caplog.set_level(logging.WARNING)
    timestamp, nonce = str(int(clock().timestamp())), fresh_nonce()
    assert (await wechat_post(text_message("hello.txt"), timestamp=timestamp, nonce=nonce)).code == 200

    clock.advance(3600)
    replay = await wechat_post(text_message("hello.txt"), timestamp=timestamp, nonce=nonce)

    assert replay.code == 403
    assert "timestamp more than 300s from now" in caplog.text
    assert FOLLOWER not in caplog.text
    assert issuance_count(settings) == 1


@pytest.mark.gen_test
@pytest.mark.parametrize(("offset", "code"), [(-301, 403), (-300, 200), (0, 200), (300, 200), (301, 403)])
async def test_timestamp_must_be_within_the_skew_of_now(wechat_post, clock, offset, code):
    timestamp = str(int(clock().timestamp()) + offset)
    response = await wechat_post(text_message("hello.txt"), timestamp=timestamp)
    assert response.code == code


@pytest.mark.gen_test
@pytest.mark.parametrize("timestamp", ["", "abc", "1.5e9", "-1"])
async def test_a_timestamp_that_is_not_a_number_is_refused(wechat_post, timestamp):
    response = await wechat_post(text_message("hello.txt"), timestamp=timestamp or " ")
    assert response.code == 403


@pytest.mark.gen_test
async def test_a_nonce_reused_for_another_message_is_a_replay(wechat_post, settings, caplog):
    caplog.set_level(logging.WARNING)
    nonce = fresh_nonce()
    assert (await wechat_post(text_message("hello.txt", msg_id="1"), nonce=nonce)).code == 200

    forged = await wechat_post(text_message("InstMsiW.exe", msg_id="2"), nonce=nonce)

    assert forged.code == 403
    assert "nonce already used" in caplog.text
    assert issuance_count(settings) == 1


@pytest.mark.gen_test
async def test_the_old_published_handshake_still_works_but_not_as_a_post(fetch):
    query = (
        "signature=f464b24fc39322e44b38aa78f5edd27bd1441696"
        "&timestamp=1714036504&nonce=1514711492&echostr=4375120948345356249"
    )
    handshake = await fetch(f"/wechat?{query}")
    assert (handshake.code, handshake.body) == (200, b"4375120948345356249")

    post = await fetch(f"/wechat?{query}", method="POST", body=text_message("hello.txt"))
    assert post.code == 403


@pytest.mark.gen_test
@pytest.mark.parametrize("config_text", ["[wechat]\nmax_clock_skew = 0\n"])
async def test_skew_zero_turns_replay_protection_off(wechat_post, settings):
    old = await wechat_post(text_message("hello.txt", msg_id="1"), timestamp="1714036504", nonce="1")
    reused = await wechat_post(text_message("hello.txt", msg_id="2"), timestamp="1714036504", nonce="1")

    assert (old.code, reused.code) == (200, 200)
    assert issuance_count(settings) == 2
