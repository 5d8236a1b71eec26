"""SHA-256 of the files on offer, computed once per file version, off the event loop.

A follower who got a file through a mirror, or a download manager, can check it against the
digest the landing page shows; a client that speaks RFC 9530 gets it as `Repr-Digest`. Hashing a
large file takes seconds, so it runs on the loop's thread pool, once per version (device, inode,
size, mtime): a file replaced or touched is hashed again, an unchanged one never.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import logging
import os
from pathlib import Path

log = logging.getLogger("tempdl.digests")

MAX_VERSIONS = 1024  # kept digests; the oldest go first (a catalogue has far fewer files)

Version = tuple[str, int, int, int, int]


def version_of(path: Path, stat: os.stat_result) -> Version:
    return (str(path), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=MAX_VERSIONS)
def repr_digest(digest: bytes) -> str:
    """The `Repr-Digest` field value of RFC 9530 for a SHA-256 digest (made once per digest: every
    whole-file answer carries it)."""
    return f"sha-256=:{base64.b64encode(digest).decode('ascii')}:"


class FileDigests:
    def __init__(self) -> None:
        self._known: dict[Version, bytes] = {}
        self._pending: dict[Version, asyncio.Future[bytes | None]] = {}

    def known(self, path: Path, stat: os.stat_result) -> bytes | None:
        """The digest of this version of the file if it is computed already; else None."""
        return self._known.get(version_of(path, stat))

    def compute(self, path: Path, stat: os.stat_result) -> asyncio.Future[bytes | None]:
        """The digest of this version (None if the file changed or failed while being read),
        computed on the loop's thread pool at most once at a time."""
        version = version_of(path, stat)
        loop = asyncio.get_running_loop()
        if version in self._known:
            done: asyncio.Future[bytes | None] = loop.create_future()
            done.set_result(self._known[version])
            return done
        pending = self._pending.get(version)
        if pending is None:
            pending = loop.run_in_executor(None, _sha256_of_version, path, version)
            self._pending[version] = pending
            pending.add_done_callback(lambda future: self._settle(version, future))
        return pending

    def _settle(self, version: Version, future: asyncio.Future[bytes | None]) -> None:
        del self._pending[version]
        if future.cancelled():
            return
        error = future.exception()
        if error is not None:
            log.warning("event=digest_failed file=%s detail=%s", version[0], error)
            return
        digest = future.result()
        if digest is not None:
            while len(self._known) >= MAX_VERSIONS:
                del self._known[next(iter(self._known))]
            self._known[version] = digest


def _sha256_of_version(path: Path, version: Version) -> bytes | None:
    """The file's SHA-256, or None when what was read is not that version any more.

    `hashlib.file_digest` reads into one reused 256 KiB buffer: reading 1 MiB `bytes` blocks left
    2 MiB of heap resident in the server after the first large file was hashed.
    """
    with path.open("rb") as source:
        if version_of(path, os.fstat(source.fileno())) != version:
            return None
        digest = hashlib.file_digest(source, "sha256")
        if version_of(path, os.fstat(source.fileno())) != version:
            return None
    return digest.digest()
