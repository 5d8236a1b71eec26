"""The signing secret: the operator's `secret_keys`, or one generated once into `data_dir`."""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from dataclasses import replace
from pathlib import Path

from tempdl.config.settings import Settings
from tempdl.errors import ConfigError

SECRET_KEY_FILE = "secret.key"
"""The generated key's file name inside `data_dir`."""


def ensure_secret_keys(settings: Settings) -> Settings:
    """Return settings whose `secret_keys` are set, generating `data_dir/secret.key` once if needed.

    `serve &` followed at once by `issue` races two processes to make the file; both must end up
    with the same key, and neither may read a half-written one.
    """
    if settings.secret_keys:
        return settings
    key_path = settings.data_dir / SECRET_KEY_FILE
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        if not key_path.exists():
            _create_key_file(key_path)
        keys = tuple(line.strip() for line in key_path.read_text().splitlines() if line.strip())
    except OSError as error:
        raise ConfigError(
            f"config key 'data_dir': cannot keep the secret key in {key_path}: {error.strerror}"
        ) from None
    if not keys:
        raise ConfigError(f"config key 'secret_keys': {key_path} is empty; delete it to generate a new key")
    return replace(settings, secret_keys=keys)


def _create_key_file(key_path: Path) -> None:
    """Write a new key beside `key_path` and link it into place whole, unless another process won.

    The temporary file is mode 0600 from its creation (`mkstemp`), so the key is never readable
    by other users, and it is on disk (fsync) before its name appears. `os.link` refuses to
    replace an existing file: the loser of a race drops its own key and reads the winner's.
    """
    fd, temporary = tempfile.mkstemp(prefix=".secret-", suffix=".tmp", dir=key_path.parent)
    try:
        with os.fdopen(fd, "w") as stream:
            stream.write(secrets.token_urlsafe(48) + "\n")
            stream.flush()
            os.fsync(stream.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(temporary, key_path)
    finally:
        os.unlink(temporary)
    _fsync_folder(key_path.parent)


def _fsync_folder(folder: Path) -> None:
    """Make the new name itself survive a power cut (a file's fsync does not cover its folder)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
