"""The signing secret: the operator's `secret_keys`, or one generated once into `data_dir`."""

from __future__ import annotations

import os
import secrets
from dataclasses import replace

from tempdl.config.settings import Settings
from tempdl.errors import ConfigError

SECRET_KEY_FILE = "secret.key"
"""The generated key's file name inside `data_dir`."""


def ensure_secret_keys(settings: Settings) -> Settings:
    """Return settings whose `secret_keys` are set, generating `data_dir/secret.key` once if needed.

    The generated key is written with mode 0600 before any content goes in, so it is never
    readable by other users, not even for a moment.
    """
    if settings.secret_keys:
        return settings
    key_path = settings.data_dir / SECRET_KEY_FILE
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        if not key_path.exists():
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as stream:
                stream.write(secrets.token_urlsafe(48) + "\n")
        keys = tuple(line.strip() for line in key_path.read_text().splitlines() if line.strip())
    except OSError as error:
        raise ConfigError(
            f"config key 'data_dir': cannot keep the secret key in {key_path}: {error.strerror}"
        ) from None
    if not keys:
        raise ConfigError(f"config key 'secret_keys': {key_path} is empty; delete it to generate a new key")
    return replace(settings, secret_keys=keys)
