"""`ExpiringMemory`: a dict bounded in entries and in time, the time always the caller's."""

from __future__ import annotations

import pytest

from tempdl.expiring import ExpiringMemory


def test_entries_expire_after_ttl() -> None:
    memory: ExpiringMemory[str, int] = ExpiringMemory(ttl=10, max_entries=5)
    memory.put("a", 1, now=100)

    assert memory.get("a", now=109.9) == 1
    assert memory.get("a", now=110) is None
    assert len(memory) == 0


def test_oldest_entries_make_room_beyond_max_entries() -> None:
    memory: ExpiringMemory[int, int] = ExpiringMemory(ttl=60, max_entries=3)
    for key in range(5):
        memory.put(key, key, now=0)

    assert len(memory) == 3
    assert [memory.get(key, now=1) for key in range(5)] == [None, None, 2, 3, 4]
    assert memory.evicted == 2


def test_expired_entries_are_dropped_on_the_next_write() -> None:
    memory: ExpiringMemory[int, int] = ExpiringMemory(ttl=10, max_entries=1000)
    for key in range(100):
        memory.put(key, key, now=key / 10)

    memory.put("late", 0, now=1000)

    assert len(memory) == 1
    assert memory.evicted == 0


def test_discard_leaves_a_newer_value_alone() -> None:
    memory: ExpiringMemory[str, object] = ExpiringMemory(ttl=10, max_entries=5)
    old, new = object(), object()
    memory.put("k", old, now=0)
    memory.put("k", new, now=1)

    memory.discard("k", old)
    assert memory.get("k", now=2) is new
    memory.discard("k", new)
    assert memory.get("k", now=2) is None


@pytest.mark.parametrize(("ttl", "max_entries"), [(0, 1), (1, 0), (-1, 5)])
def test_bounds_must_be_positive(ttl: float, max_entries: int) -> None:
    with pytest.raises(ValueError):
        ExpiringMemory(ttl=ttl, max_entries=max_entries)


def test_putting_a_key_again_restarts_its_time_and_makes_it_the_newest() -> None:
    memory: ExpiringMemory[str, int] = ExpiringMemory(ttl=10, max_entries=2)
    memory.put("a", 1, now=0)
    memory.put("b", 2, now=1)
    memory.put("a", 3, now=5)  # "a" now lives until 15, and "b" is the oldest

    memory.put("c", 4, now=6)

    assert [memory.get(key, now=14.9) for key in ("a", "b", "c")] == [3, None, 4]
    assert memory.get("a", now=15) is None
    assert memory.evicted == 1


def test_replace_keeps_the_expiry_and_only_swaps_the_value_it_was_told_about() -> None:
    memory: ExpiringMemory[str, object] = ExpiringMemory(ttl=10, max_entries=5)
    pending, settled, other = object(), object(), object()
    memory.put("k", pending, now=0)

    memory.replace("k", other, settled)  # "k" does not hold `other`: nothing happens
    assert memory.get("k", now=1) is pending
    memory.replace("k", pending, settled)
    assert memory.get("k", now=9.9) is settled
    assert memory.get("k", now=10) is None  # the expiry of the first put, not of the replace
    memory.replace("k", settled, pending)  # gone: a replace does not bring it back
    assert len(memory) == 0


def test_reading_never_forgets_what_is_still_fresh() -> None:
    memory: ExpiringMemory[int, int] = ExpiringMemory(ttl=10, max_entries=10)
    for key in range(3):
        memory.put(key, key * 10, now=key)

    assert [memory.get(key, now=10.5) for key in range(3)] == [None, 10, 20]
    assert len(memory) == 2  # the expired one went on being read, the others stay
