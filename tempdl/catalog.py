"""The files on offer: which keyword asks for which file, and where on disk it is.

Every path handed to the download handler comes from here, and here it is confined to
`files_dir`: a configured path that resolves (through `..` or a symlink) outside of it is never
served.
"""

from __future__ import annotations

import functools
import os
import re
import stat
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from tempdl.config import FILE_ID_PATTERN, OfferedFileConfig


def normalize_keyword(text: str) -> str:
    """Fold what a follower typed into the form keywords are compared in.

    NFKC turns full-width letters and spaces (common with Chinese input methods) into their ASCII
    forms, casefold ignores case, and runs of white space count as one space.
    """
    folded = unicodedata.normalize("NFKC", text).casefold()
    return re.sub(r"\s+", " ", folded).strip()


@dataclass(frozen=True)
class OfferedFile:
    id: str
    path: str
    keywords: tuple[str, ...]
    name: str
    ttl: int | None = None
    max_downloads: int | None = None
    description: str | None = None


class Catalog:
    """Looks up offered files by id or keyword.

    Without `[[files]]` in the config, every regular file directly in `files_dir` is on offer under
    its own name. The listing is read again whenever the folder's mtime changes, so a file the
    operator drops in is offered at once, without a restart, and a lookup costs one stat.
    """

    def __init__(self, files_dir: Path, configured: tuple[OfferedFileConfig, ...] | None) -> None:
        self.files_dir = Path(files_dir).resolve()
        self._listing: tuple[int, tuple[OfferedFile, ...]] | None = None
        self._configured = None
        if configured is not None:
            self._configured = tuple(
                OfferedFile(
                    id=entry.id,
                    path=entry.path,
                    keywords=entry.keywords,
                    name=entry.name or Path(entry.path).name,
                    ttl=entry.ttl,
                    max_downloads=entry.max_downloads,
                    description=entry.description,
                )
                for entry in configured
            )

    def files(self) -> tuple[OfferedFile, ...]:
        if self._configured is not None:
            return self._configured
        try:
            version = os.stat(self.files_dir).st_mtime_ns
            if self._listing is None or self._listing[0] != version:
                self._listing = (version, self._scan())
        except OSError:
            return ()
        return self._listing[1]

    def _scan(self) -> tuple[OfferedFile, ...]:
        entries = sorted(os.scandir(self.files_dir), key=lambda e: e.name)
        return tuple(
            OfferedFile(id=entry.name, path=entry.name, keywords=(entry.name,), name=entry.name)
            for entry in entries
            if entry.is_file(follow_symlinks=False)
            and not entry.name.startswith(".")
            and FILE_ID_PATTERN.fullmatch(entry.name)
        )

    def by_id(self, file_id: str) -> OfferedFile | None:
        return next((f for f in self.files() if f.id == file_id), None)

    def by_keyword(self, text: str) -> OfferedFile | None:
        wanted = normalize_keyword(text)
        return self._keyword_index(self.files()).get(wanted) if wanted else None

    @staticmethod
    @functools.lru_cache(maxsize=4)
    def _keyword_index(files: tuple[OfferedFile, ...]) -> dict[str, OfferedFile]:
        """Normalized keyword -> file, built once per listing (the first file with a keyword wins)."""
        index: dict[str, OfferedFile] = {}
        for offered in files:
            for keyword in offered.keywords:
                index.setdefault(normalize_keyword(keyword), offered)
        return index

    def absolute_path(self, offered: OfferedFile) -> Path | None:
        """The file's real location, or None when it is missing or would lie outside files_dir."""
        located = self.locate(offered)
        return located and located[0]

    def locate(self, offered: OfferedFile) -> tuple[Path, os.stat_result] | None:
        """The file's real location and its stat, or None when missing, not a regular file, or
        outside files_dir (through `..` or a symlink)."""
        candidate = Path(os.path.realpath(self.files_dir / offered.path))
        if not candidate.is_relative_to(self.files_dir):
            return None
        try:
            status = os.stat(candidate)
        except OSError:
            return None
        return (candidate, status) if stat.S_ISREG(status.st_mode) else None
