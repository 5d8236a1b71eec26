"""`load_settings`: one `Settings` from flags, environment, a TOML file and the defaults.

Precedence is command-line flag > environment variable > config file > default, key by key, for
every row of `tempdl.config.keys.KEYS`. A bad value is refused at start with a `ConfigError`
whose one-line message names the key, so the operator sees one clear line instead of a traceback.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tempdl.config import parsers
from tempdl.config.keys import FILE_FIELDS, KEYS, SECTIONS, default_database_url, default_public_url
from tempdl.config.settings import FILE_ID_PATTERN, SECTION_SETTINGS, OfferedFileConfig, Settings
from tempdl.errors import ConfigError

MAX_NAME_BYTES = 255
"""A `[[files]] name` at most: every common file system's limit on a file name, and short enough
that a link reply (the name twice, the longest link, the fixed text) stays within WeChat's 2,047."""
MAX_SCENE_LENGTH = 64
"""WeChat's limit on a `scene_str` (`QR_LIMIT_STR_SCENE`)."""

DEFAULT_CONFIG_NAME = "tempdl.toml"
"""The config file read from the working directory when neither `--config` nor `TEMPDL_CONFIG` names one."""


def load_settings(
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Build `Settings` from flags, environment and the config file, refusing any bad value.

    `flags` holds the command-line values that were given, by argparse `dest` (``config`` and each
    key's `flag_dest`); `environ` defaults to `os.environ`. Relative paths are taken from `cwd`.
    Secret keys are not generated here: see `tempdl.config.secret.ensure_secret_keys`.
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

    known = {key.name for key in KEYS} | {"files"}
    for name in file_values:
        if name not in known:
            raise ConfigError(f"config key '{name}': unknown key (see docs/configuration.md)")

    values: dict[str, Any] = {}
    for key in KEYS:
        if key.flag_dest and key.flag_dest in flags:
            raw, source = flags[key.flag_dest], key.flag
        elif key.env in environ:
            raw, source = environ[key.env], key.env
        elif key.name in file_values:
            raw, source = file_values[key.name], None
        else:
            continue
        try:
            values[key.name] = key.parse(raw)
        except ValueError as error:
            label = f"config key '{key.name}'" if source is None else f"{source} (config key '{key.name}')"
            raise ConfigError(f"{label}: {error}") from None

    files = _offered_files(file_values["files"]) if "files" in file_values else None
    return _assemble(values, files, cwd, config_path)


def _flatten(table: Mapping[str, Any]) -> dict[str, Any]:
    """Turn `{"wechat": {"token": x}}` into `{"wechat.token": x}`; `files` stays as it is."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        if key in SECTIONS:
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
    fields = {field.name for field in FILE_FIELDS}
    offered: list[OfferedFileConfig] = []
    seen_ids: set[str] = set()
    for index, table in enumerate(raw):
        where = f"files[{index}]"
        if not isinstance(table, dict):
            raise ConfigError(f"config key '{where}': must be a table")
        unknown = set(table) - fields
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
            ttl = None if table.get("ttl") is None else parsers.positive_int(table["ttl"])
        except ValueError as error:
            raise ConfigError(f"config key '{where}.ttl': {error}") from None
        try:
            max_downloads = (
                None if table.get("max_downloads") is None else parsers.non_negative_int(table["max_downloads"])
            )
            name = parsers.optional_text(table.get("name"))
            description = parsers.optional_text(table.get("description"))
        except ValueError as error:
            raise ConfigError(f"config key '{where}': {error}") from None
        if name is not None and any(c in name for c in "/\\\r\n\0"):
            raise ConfigError(f"config key '{where}.name': must be a plain file name")
        if name is not None and len(name.encode("utf-8")) > MAX_NAME_BYTES:
            raise ConfigError(
                f"config key '{where}.name': {len(name.encode('utf-8'))} bytes of UTF-8, at most {MAX_NAME_BYTES}"
            )
        scenes = table.get("scenes", [])
        if not isinstance(scenes, list) or not all(
            isinstance(scene, str) and scene == scene.strip() and 1 <= len(scene) <= MAX_SCENE_LENGTH
            for scene in scenes
        ):
            raise ConfigError(
                f"config key '{where}.scenes': must be a list of scene strings of 1-{MAX_SCENE_LENGTH} characters "
                "without surrounding spaces"
            )
        offered.append(
            OfferedFileConfig(file_id, path, tuple(keywords), name, ttl, max_downloads, description, tuple(scenes))
        )
    return tuple(offered)


def _assemble(
    values: dict[str, Any],
    files: tuple[OfferedFileConfig, ...] | None,
    cwd: Path,
    config_path: Path | None,
) -> Settings:
    """Fill in defaults, take folders from `cwd`, derive the defaults that depend on other keys."""
    merged = {key.name: values.get(key.name, key.default) for key in KEYS}
    for name, value in merged.items():
        if isinstance(value, Path):
            merged[name] = (cwd / value).resolve()
    if merged["public_url"] is None:
        merged["public_url"] = default_public_url(merged["address"], merged["port"])
    if merged["database_url"] is None:
        merged["database_url"] = default_database_url(merged["data_dir"])
    if merged["wechat.encoding_aes_key"] and not merged["wechat.app_id"]:
        raise ConfigError("config key 'wechat.app_id': is needed when wechat.encoding_aes_key is set")

    top_level: dict[str, Any] = {}
    sections: dict[str, dict[str, Any]] = {name: {} for name in SECTION_SETTINGS}
    for key in KEYS:
        if key.section in sections:
            sections[key.section][key.short_name] = merged[key.name]
        else:
            top_level[key.name.replace(".", "_")] = merged[key.name]
    grouped = {name: SECTION_SETTINGS[name](**section_values) for name, section_values in sections.items()}
    return Settings(**top_level, **grouped, files=files, config_path=config_path)
