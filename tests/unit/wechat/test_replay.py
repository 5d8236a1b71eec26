"""The retry and nonce memories on their own: bounded in entries and in (injected) time."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from tempdl.wechat.replay import NonceLedger, RetryMemory, retry_window, timestamp_is_fresh

# RetryMemory


def test_resends_share_the_first_computation() -> None:
    async def scenario() -> tuple[list[str], int]:
        memory: RetryMemory[str, str] = RetryMemory(ttl=300, max_entries=10)
        release = asyncio.Event()
        calls = 0

        async def compute() -> str:
            nonlocal calls
            calls += 1
            await release.wait()
            return "the reply"

        futures = [memory.share("msg", 0, compute) for _ in range(3)]  # all before the first is done
        release.set()
        return list(await asyncio.gather(*futures)), calls

    replies, calls = asyncio.run(scenario())
    assert replies == ["the reply"] * 3
    assert calls == 1


def test_a_failure_is_forgotten_so_a_resend_tries_again() -> None:
    async def scenario() -> str:
        memory: RetryMemory[str, str] = RetryMemory(ttl=300, max_entries=10)
        attempts = iter([RuntimeError("database locked"), "second try"])

        async def compute() -> str:
            outcome = next(attempts)
            if isinstance(outcome, Exception):
                raise outcome
            return outcome

        with pytest.raises(RuntimeError):
            await memory.share("msg", 0, compute)
        assert len(memory) == 0
        return await memory.share("msg", 1, compute)

    assert asyncio.run(scenario()) == "second try"


def test_a_reply_is_forgotten_after_its_ttl() -> None:
    async def scenario() -> list[int]:
        memory: RetryMemory[str, int] = RetryMemory(ttl=300, max_entries=10)
        counter = iter(range(10))

        async def compute() -> int:
            return next(counter)

        return [await memory.share("msg", now, compute) for now in (0, 299, 300)]

    assert asyncio.run(scenario()) == [0, 0, 1]


def test_a_finished_reply_is_kept_without_its_task() -> None:
    """Ten thousand finished tasks (coroutine, context, callbacks each) made every full garbage
    collection take 15-35 ms; the memory keeps the bare reply instead."""

    async def scenario() -> tuple[bool, str, int]:
        memory: RetryMemory[str, str] = RetryMemory(ttl=300, max_entries=10)

        async def compute() -> str:
            return "the reply"

        first = memory.share("msg", 0, compute)
        await first
        task = weakref.ref(first)
        del first
        await asyncio.sleep(0)  # let the done callbacks run
        gc.collect()
        task_gone = task() is None
        again = await memory.share("msg", 1, compute)
        return task_gone, again, memory.resends

    assert asyncio.run(scenario()) == (True, "the reply", 1)


# NonceLedger


def test_a_nonce_is_good_for_one_message_and_its_resends() -> None:
    ledger = NonceLedger(window=300, max_entries=100)

    assert ledger.admit("123", ("openid", "msg-1"), now=0)
    assert ledger.admit("123", ("openid", "msg-1"), now=5)  # WeChat's resend, same query string
    assert not ledger.admit("123", ("openid", "msg-2"), now=6)  # the same signature, another body
    assert not ledger.admit("123", ("attacker", "msg-1"), now=6)
    assert ledger.admit("456", ("openid", "msg-2"), now=6)


def test_a_nonce_is_remembered_for_twice_the_window() -> None:
    ledger = NonceLedger(window=300, max_entries=100)
    ledger.admit("123", "a", now=0)

    assert not ledger.admit("123", "b", now=599)
    assert ledger.admit("123", "b", now=600)


def test_the_ledger_is_bounded() -> None:
    ledger = NonceLedger(window=300, max_entries=50)
    for number in range(200):
        ledger.admit(str(number), number, now=0)

    assert len(ledger) == 50
    assert ledger.evicted == 150


# timestamp_is_fresh


@pytest.mark.parametrize(
    ("timestamp", "fresh"),
    [
        ("1000", True),
        ("700", True),
        ("1300", True),
        ("699", False),
        ("1301", False),
        ("", False),
        ("-1000", False),
        ("1e3", False),
        ("１０００", False),  # full-width digits: isdigit() says yes, WeChat never sends them
        ("9" * 40, False),
    ],
)
def test_timestamp_within_the_skew(timestamp: str, fresh: bool) -> None:
    assert timestamp_is_fresh(timestamp, now=1000, max_skew=300) is fresh


@pytest.mark.parametrize(("skew", "window"), [(0, 300), (60, 300), (150, 300), (300, 600), (900, 1800)])
def test_the_retry_window_covers_every_accepted_copy_of_a_request(skew, window) -> None:
    assert retry_window(skew) == window


def test_a_memory_made_to_last_longer_keeps_replies_that_long() -> None:
    async def scenario() -> None:
        memory: RetryMemory[str, str] = RetryMemory(ttl=300)
        memory.last_at_least(1800)
        memory.last_at_least(60)  # never shorter
        calls = []

        async def compute() -> str:
            calls.append(1)
            return "reply"

        assert await memory.share("k", 0.0, compute) == "reply"
        assert await memory.share("k", 1799.0, compute) == "reply"
        assert await memory.share("k", 1800.0, compute) == "reply"
        assert len(calls) == 2

    asyncio.run(scenario())
