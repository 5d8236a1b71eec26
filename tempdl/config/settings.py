"""Settings: one frozen object built from flags, environment, a TOML file and defaults.

Precedence is command-line flag > environment variable > config file > default, key by key. A bad
value is refused at start with a `ConfigError` whose message names the key, so the operator sees
one clear line instead of a traceback.
"""

from __future__ import annotations

import os
import re
import secrets
import tomllib
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tempdl.errors import ConfigError

DEFAULT_CONFIG_NAME = "tempdl.toml"
SECRET_KEY_FILE = "secret.key"
FILE_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.~-]{1,128}$")


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


@dataclass(frozen=True)
class WeChatSettings:
    path: str = "/wechat"
    token: str | None = field(default=None, repr=False)
    max_clock_skew: int = 300
    app_id: str | None = None
    encoding_aes_key: str | None = field(default=None, repr=False)
    welcome: str | None = None


@dataclass(frozen=True)
class LimitSettings:
    """Bandwidth and link limits; 0 everywhere means "no cap"."""

    max_concurrent_downloads: int = 0
    rate_per_download: int = 0
    total_rate: int = 0
    recipient_daily_bytes: int = 0
    issues_per_recipient_per_hour: int = 0
    max_downloads: int = 0


@dataclass(frozen=True)
class Settings:
    address: str = "127.0.0.1"
    port: int = 8000
    public_url: str = "http://127.0.0.1:8000"
    files_dir: Path = Path("static_files")
    data_dir: Path = Path("data")
    database_url: str = "sqlite:///data/tempdl.sqlite3"
    secret_keys: tuple[str, ...] = field(default=(), repr=False)
    link_ttl: int = 600
    resume_grace: int = 3600
    shutdown_grace: int = 30
    timezone: str = "UTC"
    serve_mode: str = "direct"
    x_accel_prefix: str = "/_tempdl_files/"
    sendfile: bool = True
    admin_password: str | None = field(default=None, repr=False)
    wechat: WeChatSettings = WeChatSettings()
    limits: LimitSettings = LimitSettings()
    files: tuple[OfferedFileConfig, ...] | None = None
    config_path: Path | None = None

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


# --- value parsers: each takes the raw value and returns the typed one or raises ValueError ----


def _non_negative_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("must be a whole number")
    if isinstance(value, str):
        value = value.strip()
        if not re.fullmatch(r"\d+", value):
            raise ValueError(f"must be a whole number >= 0, not {value!r}")
        value = int(value)
    if not isinstance(value, int) or value < 0:
        raise ValueError(f"must be a whole number >= 0, not {value!r}")
    return value


def _port(value: Any) -> int:
    port = _non_negative_int(value)
    if port > 65535:
        raise ValueError(f"must be a port number 0-65535, not {port}")
    return port


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return value.strip()


def _optional_text(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value.strip() or None


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"1", "true", "yes", "on"}:
        return True
    if isinstance(value, str) and value.strip().lower() in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"must be true or false, not {value!r}")


def _url_path(value: Any) -> str:
    text = _text(value)
    if not text.startswith("/") or any(c in text for c in "?#\\ "):
        raise ValueError(f"must be a URL path starting with '/', not {text!r}")
    return text


def _public_url(value: Any) -> str:
    text = _text(value)
    if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", text):
        raise ValueError(f"must be an http:// or https:// URL, not {text!r}")
    return text.rstrip("/")


def _timezone(value: Any) -> str:
    text = _text(value)
    try:
        zoneinfo.ZoneInfo(text)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {text!r} (use a name like Asia/Shanghai)") from None
    return text


def _database_url(value: Any) -> str:
    """A SQLAlchemy URL; plain `postgresql://` (and Heroku-style `postgres://`) mean psycopg 3.

    SQLAlchemy's default PostgreSQL driver is psycopg2, which tempdl does not install; operators
    paste the URL their provider gives them, so we pick the driver we ship.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    text = _text(value)
    try:
        url = make_url(text)
    except ArgumentError:
        raise ValueError("must be a URL like sqlite:///data/tempdl.sqlite3 or postgresql://user@host/db") from None
    if url.drivername in {"postgresql", "postgres"}:
        return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return text


def _serve_mode(value: Any) -> str:
    text = _text(value)
    if text not in {"direct", "x-accel"}:
        raise ValueError(f"must be 'direct' or 'x-accel', not {text!r}")
    return text


def _secret_keys(value: Any) -> tuple[str, ...]:
    keys = value.split(",") if isinstance(value, str) else value
    if not isinstance(keys, list | tuple) or not all(isinstance(k, str) for k in keys):
        raise ValueError("must be a list of strings")
    keys = tuple(k.strip() for k in keys if k.strip())
    if not keys:
        raise ValueError("must hold at least one key")
    if any(len(k) < 16 for k in keys):
        raise ValueError("every key must be at least 16 characters long")
    return keys


def _encoding_aes_key(value: Any) -> str | None:
    text = _optional_text(value)
    if text is not None and not re.fullmatch(r"[A-Za-z0-9]{43}", text):
        raise ValueError("must be the 43-character EncodingAESKey from the WeChat admin console")
    return text


@dataclass(frozen=True)
class _Key:
    name: str  # dotted name in the TOML file
    parse: Callable[[Any], Any]
    flag: str | None = None

    @property
    def env(self) -> str:
        return "TEMPDL_" + self.name.replace(".", "_").upper()


_KEYS = (
    _Key("address", _text, flag="address"),
    _Key("port", _port, flag="port"),
    _Key("public_url", _public_url),
    _Key("files_dir", _text),
    _Key("data_dir", _text, flag="data_dir"),
    _Key("database_url", _database_url),
    _Key("secret_keys", _secret_keys),
    _Key("link_ttl", _non_negative_int),
    _Key("resume_grace", _non_negative_int),
    _Key("shutdown_grace", _non_negative_int),
    _Key("timezone", _timezone),
    _Key("serve_mode", _serve_mode),
    _Key("x_accel_prefix", _url_path),
    _Key("sendfile", _bool),
    _Key("wechat.path", _url_path),
    _Key("wechat.token", _optional_text),
    _Key("wechat.max_clock_skew", _non_negative_int),
    _Key("wechat.app_id", _optional_text),
    _Key("wechat.encoding_aes_key", _encoding_aes_key),
    _Key("wechat.welcome", _optional_text),
    _Key("admin.password", _optional_text),
    _Key("limits.max_concurrent_downloads", _non_negative_int),
    _Key("limits.rate_per_download", _non_negative_int),
    _Key("limits.total_rate", _non_negative_int),
    _Key("limits.recipient_daily_bytes", _non_negative_int),
    _Key("limits.issues_per_recipient_per_hour", _non_negative_int),
    _Key("limits.max_downloads", _non_negative_int),
)
_SECTIONS = {"wechat", "admin", "limits"}


def _flatten(table: Mapping[str, Any]) -> dict[str, Any]:
    """Turn `{"wechat": {"token": x}}` into `{"wechat.token": x}`; `files` stays as it is."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        if key in _SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"config key '{key}': must be a table ([{key}])")
            for sub_key, sub_value in value.items():
                flat[f"{key}.{sub_key}"] = sub_value
        else:
            flat[key] = value
    return flat


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as stream:
            return tomllib.load(stream)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}") from None
    except OSError as error:
        raise ConfigError(f"config file {path} cannot be read: {error.strerror}") from None


def _offered_files(raw: Any) -> tuple[OfferedFileConfig, ...]:
    if not isinstance(raw, list):
        raise ConfigError("config key 'files': must be [[files]] tables")
    offered: list[OfferedFileConfig] = []
    seen_ids: set[str] = set()
    for index, table in enumerate(raw):
        where = f"files[{index}]"
        if not isinstance(table, dict):
            raise ConfigError(f"config key '{where}': must be a table")
        unknown = set(table) - {"id", "path", "keywords", "name", "ttl", "max_downloads", "description"}
        if unknown:
            raise ConfigError(f"config key '{where}.{sorted(unknown)[0]}': unknown key")
        file_id = table.get("id")
        if not isinstance(file_id, str) or not FILE_ID_PATTERN.fullmatch(file_id):
            raise ConfigError(f"config key '{where}.id': must be a URL-safe word (letters, digits, _ . ~ -)")
        if file_id in seen_ids:
            raise ConfigError(f"config key '{where}.id': {file_id!r} is used twice")
        seen_ids.add(file_id)
        path = table.get("path")
        if not isinstance(path, str) or not path.strip():
            raise ConfigError(f"config key '{where}.path': must name a file inside files_dir")
        if Path(path).is_absolute() or ".." in Path(path).parts:
            raise ConfigError(f"config key '{where}.path': must be relative to files_dir, without '..'")
        keywords = table.get("keywords", [])
        if not isinstance(keywords, list) or not all(isinstance(k, str) and k.strip() for k in keywords):
            raise ConfigError(f"config key '{where}.keywords': must be a list of non-empty strings")
        try:
            ttl = None if table.get("ttl") is None else _non_negative_int(table["ttl"])
            max_downloads = None if table.get("max_downloads") is None else _non_negative_int(table["max_downloads"])
            name = _optional_text(table.get("name"))
            description = _optional_text(table.get("description"))
        except ValueError as error:
            raise ConfigError(f"config key '{where}': {error}") from None
        if name is not None and any(c in name for c in "/\\\r\n\0"):
            raise ConfigError(f"config key '{where}.name': must be a plain file name")
        offered.append(OfferedFileConfig(file_id, path, tuple(keywords), name, ttl, max_downloads, description))
    return tuple(offered)


def load_settings(
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Build `Settings` from flags, environment and the config file, refusing any bad value.

    `flags` holds the command-line values that were given (``config``, ``address``, ``port``,
    ``data_dir``); `environ` defaults to `os.environ`. Relative paths are taken from `cwd`.
    Secret keys are not generated here: see `ensure_secret_keys`.
    """
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    environ = os.environ if environ is None else environ
    cwd = Path.cwd() if cwd is None else cwd

    config_path: Path | None = None
    if flags.get("config"):
        config_path = Path(flags["config"])
    elif environ.get("TEMPDL_CONFIG"):
        config_path = Path(environ["TEMPDL_CONFIG"])
    elif (cwd / DEFAULT_CONFIG_NAME).is_file():
        config_path = Path(DEFAULT_CONFIG_NAME)
    file_values: dict[str, Any] = {}
    if config_path is not None:
        file_values = _flatten(_read_config_file(cwd / config_path))

    known = {key.name for key in _KEYS} | {"files"}
    for name in file_values:
        if name not in known:
            raise ConfigError(f"config key '{name}': unknown key (see the README's config table)")

    values: dict[str, Any] = {}
    for key in _KEYS:
        if key.flag and key.flag in flags:
            raw, source = flags[key.flag], f"--{key.flag.replace('_', '-')}"
        elif key.env in environ:
            raw, source = environ[key.env], key.env
        elif key.name in file_values:
            raw, source = file_values[key.name], f"config key '{key.name}'"
        else:
            continue
        try:
            values[key.name] = key.parse(raw)
        except ValueError as error:
            label = source if source.startswith("config key") else f"{source} (config key '{key.name}')"
            raise ConfigError(f"{label}: {error}") from None

    files = _offered_files(file_values["files"]) if "files" in file_values else None
    return _assemble(values, files, cwd, config_path)


def _assemble(
    values: dict[str, Any],
    files: tuple[OfferedFileConfig, ...] | None,
    cwd: Path,
    config_path: Path | None,
) -> Settings:
    defaults = Settings()
    address = values.get("address", defaults.address)
    port = values.get("port", defaults.port)
    data_dir = (cwd / values.get("data_dir", "data")).resolve()
    files_dir = (cwd / values.get("files_dir", "static_files")).resolve()
    host = f"[{address}]" if ":" in address else address
    wechat_values = {k.split(".", 1)[1]: v for k, v in values.items() if k.startswith("wechat.")}
    limit_values = {k.split(".", 1)[1]: v for k, v in values.items() if k.startswith("limits.")}
    wechat = WeChatSettings(**wechat_values)
    if wechat.encoding_aes_key and not wechat.app_id:
        raise ConfigError("config key 'wechat.app_id': is needed when wechat.encoding_aes_key is set")
    return Settings(
        address=address,
        port=port,
        public_url=values.get("public_url", f"http://{host}:{port}"),
        files_dir=files_dir,
        data_dir=data_dir,
        database_url=values.get("database_url", f"sqlite:///{data_dir / 'tempdl.sqlite3'}"),
        secret_keys=values.get("secret_keys", ()),
        link_ttl=values.get("link_ttl", defaults.link_ttl),
        resume_grace=values.get("resume_grace", defaults.resume_grace),
        shutdown_grace=values.get("shutdown_grace", defaults.shutdown_grace),
        timezone=values.get("timezone", defaults.timezone),
        serve_mode=values.get("serve_mode", defaults.serve_mode),
        x_accel_prefix=values.get("x_accel_prefix", defaults.x_accel_prefix),
        sendfile=values.get("sendfile", defaults.sendfile),
        admin_password=values.get("admin.password"),
        wechat=wechat,
        limits=LimitSettings(**limit_values),
        files=files,
        config_path=config_path,
    )


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
