"""`Settings`: the frozen object every part of tempdl reads its configuration from.

The attributes mirror the rows of `tempdl.config.keys.KEYS` and take their defaults from there
(`wechat.*` and `limits.*` keys live in their own objects, other dotted keys such as
`admin.password` become `admin_password`); `load_settings` builds one from flags, environment,
file and defaults. Secrets are left out of `repr`, so a logged or printed `Settings` shows none.
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path

from tempdl.config.keys import default, default_database_url, default_public_url

FILE_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.~-]{1,128}$")
"""A file id goes into URLs and menu keys unescaped: letters, digits and `_ . ~ -` only."""


@dataclass(frozen=True)
class OfferedFileConfig:
    """One `[[files]]` table: a file on offer and the keywords that ask for it."""

    id: str
    path: str
    keywords: tuple[str, ...]
    name: str | None = None
    ttl: int | None = None
    max_downloads: int | None = None
    description: str | None = None
    scenes: tuple[str, ...] = ()


@dataclass(frozen=True)
class WeChatSettings:
    path: str = default("wechat.path")
    token: str | None = field(default=default("wechat.token"), repr=False)
    max_clock_skew: int = default("wechat.max_clock_skew")
    app_id: str | None = default("wechat.app_id")
    encoding_aes_key: str | None = field(default=default("wechat.encoding_aes_key"), repr=False)
    welcome: str | None = default("wechat.welcome")


@dataclass(frozen=True)
class LimitSettings:
    """Bandwidth and link limits; 0 everywhere means "no cap"."""

    max_concurrent_downloads: int = default("limits.max_concurrent_downloads")
    rate_per_download: int = default("limits.rate_per_download")
    total_rate: int = default("limits.total_rate")
    recipient_daily_bytes: int = default("limits.recipient_daily_bytes")
    total_daily_bytes: int = default("limits.total_daily_bytes")
    total_monthly_bytes: int = default("limits.total_monthly_bytes")
    issues_per_recipient_per_hour: int = default("limits.issues_per_recipient_per_hour")
    max_downloads: int = default("limits.max_downloads")


SECTION_SETTINGS: dict[str, type] = {"wechat": WeChatSettings, "limits": LimitSettings}
"""The sections whose keys are gathered into an object of their own, by the section's name."""


@dataclass(frozen=True)
class Settings:
    address: str = default("address")
    port: int = default("port")
    public_url: str = default_public_url(default("address"), default("port"))
    files_dir: Path = field(default=default("files_dir"))
    data_dir: Path = field(default=default("data_dir"))
    database_url: str = default_database_url(default("data_dir"))
    secret_keys: tuple[str, ...] = field(default=default("secret_keys"), repr=False)
    link_ttl: int = default("link_ttl")
    resume_grace: int = default("resume_grace")
    shutdown_grace: int = default("shutdown_grace")
    timezone: str = default("timezone")
    serve_mode: str = default("serve_mode")
    x_accel_prefix: str = default("x_accel_prefix")
    trusted_proxies: tuple[str, ...] = default("trusted_proxies")
    max_connections: int | None = default("max_connections")
    """None: `serve` derives it from the open-files limit."""
    sendfile: bool = default("sendfile")
    admin_password: str | None = field(default=default("admin.password"), repr=False)
    wechat: WeChatSettings = WeChatSettings()
    limits: LimitSettings = LimitSettings()
    files: tuple[OfferedFileConfig, ...] | None = None
    """The `[[files]]` tables; None when there are none (every file in files_dir is offered)."""
    config_path: Path | None = None
    """The config file read, as given (relative to the working directory); None without one."""

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)
