"""SHA-256 per file version: computed once, off the loop, and never given for another version."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os

from tempdl.links import digests
from tempdl.links.digests import FileDigests, repr_digest, version_of


def test_repr_digest_is_rfc_9530s_byte_sequence():
    digest = hashlib.sha256(b"hello").digest()
    assert repr_digest(digest) == f"sha-256=:{base64.b64encode(digest).decode()}:"


def test_one_computation_per_version_and_a_new_one_when_the_file_changes(tmp_path, monkeypatch):
    path = tmp_path / "f.bin"
    path.write_bytes(b"one")
    runs: list[str] = []
    real = digests._sha256_of_version

    def counted(*args):
        runs.append("run")
        return real(*args)

    monkeypatch.setattr(digests, "_sha256_of_version", counted)

    async def scenario() -> tuple[bytes | None, ...]:
        cache = FileDigests()
        stat = os.stat(path)
        together = await asyncio.gather(cache.compute(path, stat), cache.compute(path, stat))
        again = await cache.compute(path, stat)
        path.write_bytes(b"two!")
        os.utime(path, (5, 5))
        changed = await cache.compute(path, os.stat(path))
        return (*together, again, changed, cache.known(path, stat))

    first, second, again, changed, old = asyncio.run(scenario())
    assert first == second == again == old == hashlib.sha256(b"one").digest()
    assert changed == hashlib.sha256(b"two!").digest()
    assert runs == ["run", "run"]


def test_a_file_that_is_not_the_stated_version_gets_no_digest(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"one")
    stale = os.stat(path)
    path.write_bytes(b"changed")
    os.utime(path, (9, 9))
    assert digests._sha256_of_version(path, version_of(path, stale)) is None

    async def scenario() -> tuple[bytes | None, bytes | None]:
        cache = FileDigests()
        return await cache.compute(path, stale), cache.known(path, stale)

    assert asyncio.run(scenario()) == (None, None)
