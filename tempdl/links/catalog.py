"""The files on offer: which keyword asks for which file, and where on disk it is.

Every path handed to the download handler comes from here, and here it is confined to
`files_dir`: a configured path that resolves (through `..` or a symlink) outside of it is never
served.
"""

from __future__ import annotations

import functools
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tempdl.config.settings import FILE_ID_PATTERN, OfferedFileConfig
from tempdl.errors import ConfigError
from tempdl.links.keywords import normalize_keyword

__all__ = ["Catalog", "OfferedFile", "normalize_keyword", "offer_conflicts"]


@dataclass(frozen=True)
class OfferedFile:
    id: str
    path: str
    keywords: tuple[str, ...]
    name: str
    ttl: int | None = None
    max_downloads: int | None = None
    description: str | None = None
    scenes: tuple[str, ...] = ()
    """Parametric QR-code scenes whose scan asks for this file."""


def offer_conflicts(files: Sequence[OfferedFile]) -> list[str]:
    """What makes a set of offered files ambiguous, one line each, naming the config key.

    Two files whose keywords fold alike (`芝麻开门` and `「芝麻开门」`), or that share a scene,
    would leave which file a follower gets to the order of the tables; a keyword that folds to
    nothing (only punctuation or symbols) can never be matched.
    """
    problems: list[str] = []
    askers: dict[str, list[tuple[int, str]]] = {}
    scene_owner: dict[str, int] = {}
    for index, offered in enumerate(files):
        for keyword in offered.keywords:
            folded = normalize_keyword(keyword)
            if not folded:
                problems.append(
                    f"keyword {keyword!r} is only punctuation or symbols (config key 'files[{index}].keywords')"
                )
            elif all(asker != index for asker, _ in askers.get(folded, ())):
                askers.setdefault(folded, []).append((index, keyword))
        for scene in offered.scenes:
            first = scene_owner.setdefault(scene, index)
            if first != index:
                problems.append(
                    f"scene {scene!r} asks for several files ({files[first].id}, {offered.id}) "
                    f"(config key 'files[{index}].scenes')"
                )
    for folded, asked in askers.items():
        if len(asked) > 1:
            ids = ", ".join(files[index].id for index, _ in asked)
            typed = " and ".join(repr(keyword) for _, keyword in asked)
            problems.append(
                f"keyword {folded!r} asks for several files ({ids}): {typed} fold alike "
                f"(config key 'files[{asked[1][0]}].keywords')"
            )
    return problems


class Catalog:
    """Looks up offered files by id or keyword.

    Without `[[files]]` in the config, every regular file directly in `files_dir` is on offer under
    its own name. The listing is read again whenever the folder's mtime changes, so a file the
    operator drops in is offered at once, without a restart, and a lookup costs one stat.

    Configured files that conflict (see `offer_conflicts`) raise `ConfigError` here, at start;
    `check` passes `refuse_conflicts=False` to list every conflict instead.
    """

    def __init__(
        self,
        files_dir: Path,
        configured: tuple[OfferedFileConfig, ...] | None,
        *,
        refuse_conflicts: bool = True,
    ) -> None:
        self.files_dir = Path(files_dir).resolve()
        self._listing: tuple[int, tuple[OfferedFile, ...]] | None = None
        self._index_of: _Index | None = None
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
                    scenes=entry.scenes,
                )
                for entry in configured
            )
            conflicts = offer_conflicts(self._configured)
            if conflicts and refuse_conflicts:
                raise ConfigError(conflicts[0])

    def listing(self) -> tuple[OfferedFile, ...]:
        """Every configured (or, without `[[files]]`, found) file, servable or not: for `check`."""
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

    def files(self) -> tuple[OfferedFile, ...]:
        """The files that can be served right now: what a follower may be told about."""
        return tuple(offered for offered in self.listing() if self.servable(offered))

    def entry(self, file_id: str) -> OfferedFile | None:
        """The configured file with this id, whether or not it can be served now."""
        return self._index().by_id.get(file_id)

    def by_id(self, file_id: str) -> OfferedFile | None:
        """The file with this id, if it can be served now (None for a missing or unreadable one)."""
        return self._if_servable(self.entry(file_id))

    def by_keyword(self, text: str) -> OfferedFile | None:
        wanted = normalize_keyword(text)
        return self._if_servable(self._index().by_keyword.get(wanted)) if wanted else None

    def servable(self, offered: OfferedFile) -> bool:
        """Whether the file exists inside files_dir and this process may read it.

        Asked at every match and issue, so a file deleted or made unreadable after start is off
        offer from that moment: one stat (and one access check), the path's confinement cached.
        """
        return self.servable_location(offered) is not None

    def servable_location(self, offered: OfferedFile) -> tuple[Path, os.stat_result] | None:
        """`locate`, for a file this process may also read: what serving it needs, in one stat."""
        located = self.locate(offered)
        return located if located is not None and os.access(located[0], os.R_OK) else None

    def _if_servable(self, offered: OfferedFile | None) -> OfferedFile | None:
        return offered if offered is not None and self.servable(offered) else None

    def by_scene(self, scene: str) -> OfferedFile | None:
        """The file a parametric QR code of `scene` asks for (compared exactly, as WeChat sends it)."""
        return self._index().by_scene.get(scene.strip())

    def _index(self) -> _Index:
        """The lookup tables of the current listing, built once per listing."""
        files = self.listing()
        if self._index_of is None or self._index_of.files is not files:
            self._index_of = _Index.of(files)
        return self._index_of

    def absolute_path(self, offered: OfferedFile) -> Path | None:
        """The file's real location, or None when it is missing or would lie outside files_dir."""
        located = self.locate(offered)
        return located and located[0]

    def locate(self, offered: OfferedFile) -> tuple[Path, os.stat_result] | None:
        """The file's real location and its stat, or None when missing, not a regular file, or
        outside files_dir (through `..` or a symlink).

        One stat per call: where a name leads is worked out once per file it leads to (the stat's
        device and inode), so a symlink pointed elsewhere is resolved and confined afresh.
        """
        configured = os.path.join(self.files_dir, offered.path)
        try:
            status = os.stat(configured)
        except OSError:
            return None
        if not stat.S_ISREG(status.st_mode):
            return None
        real = _confined(self.files_dir, configured, status.st_dev, status.st_ino)
        return None if real is None else (real, status)


@dataclass(frozen=True)
class _Index:
    files: tuple[OfferedFile, ...]
    by_id: dict[str, OfferedFile]
    by_keyword: dict[str, OfferedFile]
    by_scene: dict[str, OfferedFile]

    @classmethod
    def of(cls, files: tuple[OfferedFile, ...]) -> _Index:
        """Ids, normalized keywords and scenes -> file; the first file with a keyword wins."""
        by_keyword: dict[str, OfferedFile] = {}
        for offered in files:
            for keyword in offered.keywords:
                by_keyword.setdefault(normalize_keyword(keyword), offered)
        by_id: dict[str, OfferedFile] = {}
        for offered in files:
            by_id.setdefault(offered.id, offered)
        by_scene = {scene: offered for offered in reversed(files) for scene in offered.scenes}
        return cls(files, by_id, by_keyword, by_scene)


@functools.lru_cache(maxsize=4096)
def _confined(files_dir: Path, configured: str, device: int, inode: int) -> Path | None:
    """`configured` with symlinks and `..` resolved, or None when that lies outside files_dir.

    Cached by the file the path leads to (`device`, `inode`): realpath stats every component,
    several times the cost of the one stat that `locate` needs anyway.
    """
    real = Path(os.path.realpath(configured))
    return real if real.is_relative_to(files_dir) else None
