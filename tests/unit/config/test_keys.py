"""The keys table is the truth: every row reaches `Settings`, from the file, the environment and a
flag, with its default, its section and its secrecy."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tempdl.cli.parser import build_parser
from tempdl.config.fields import Key
from tempdl.config.keys import BY_NAME, FILE_FIELDS, KEYS, SECTIONS
from tempdl.config.load import load_settings
from tempdl.config.settings import SECTION_SETTINGS, OfferedFileConfig, Settings
from tempdl.config.toml import example_config, render_config
from tempdl.errors import ConfigError

SAMPLES: dict[str, Any] = {
    "address": "10.1.2.3",
    "port": 8123,
    "public_url": "https://dl.example.com",
    "files_dir": "offered",
    "data_dir": "state",
    "database_url": "sqlite:////var/lib/tempdl/audit.sqlite3",
    "secret_keys": ["sample-key-one-0123456789", "sample-key-two-0123456789"],
    "link_ttl": 61,
    "resume_grace": 62,
    "shutdown_grace": 63,
    "timezone": "Asia/Shanghai",
    "serve_mode": "x-accel",
    "x_accel_prefix": "/_internal/",
    "trusted_proxies": ["10.0.0.0/8", "192.0.2.1"],
    "max_connections": 500,
    "sendfile": False,
    "wechat.path": "/wx",
    "wechat.token": "sampletoken123",
    "wechat.max_clock_skew": 64,
    "wechat.app_id": "wx0123456789abcdef",
    "wechat.encoding_aes_key": "a" * 43,
    "wechat.welcome": "Hello {keywords}",
    "admin.password": "sample-admin-password",
    "limits.max_concurrent_downloads": 65,
    "limits.rate_per_download": 66,
    "limits.total_rate": 67,
    "limits.recipient_daily_bytes": 68,
    "limits.total_daily_bytes": 1000,
    "limits.total_monthly_bytes": 30000,
    "limits.issues_per_recipient_per_hour": 69,
    "limits.max_downloads": 70,
}
"""A valid value for every key, each different from its default."""


def attribute(settings: Settings, key: Key) -> Any:
    """Where `settings` keeps `key`, by the rule `tempdl.config.settings` describes."""
    if key.section in SECTION_SETTINGS:
        return getattr(getattr(settings, key.section), key.short_name)
    return getattr(settings, key.name.replace(".", "_"))


def expected(key: Key, cwd: Path) -> Any:
    value = key.parse(SAMPLES[key.name])
    return (cwd / value).resolve() if isinstance(value, Path) else value


def as_environment(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def test_every_key_has_a_sample_value():
    missing = [key.name for key in KEYS if key.name not in SAMPLES]
    assert not missing, f"give {missing} a valid, non-default value in SAMPLES"
    assert set(SAMPLES) == set(BY_NAME)


DERIVED = ("public_url", "database_url")
"""The keys whose default is computed from other keys (the table's default is None)."""


@pytest.mark.parametrize("key", [key for key in KEYS if key.name not in DERIVED], ids=lambda key: key.name)
def test_settings_defaults_are_the_table_defaults(key: Key):
    assert attribute(Settings(), key) == key.default


def test_derived_defaults_follow_the_keys_they_come_from(tmp_path: Path):
    assert [BY_NAME[name].default for name in DERIVED] == [None, None]
    assert Settings().public_url == "http://127.0.0.1:8000"
    assert Settings().database_url == "sqlite:///data/tempdl.sqlite3"
    settings = load_settings({"address": "::1", "port": 9000, "data_dir": "state"}, {}, tmp_path)
    assert settings.public_url == "http://[::1]:9000"
    assert settings.database_url == f"sqlite:///{(tmp_path / 'state').resolve()}/tempdl.sqlite3"


def test_every_settings_attribute_is_a_key():
    attributes = {f.name for f in dataclasses.fields(Settings)} - set(SECTION_SETTINGS) - {"files", "config_path"}
    for section, section_class in SECTION_SETTINGS.items():
        attributes |= {f"{section}.{f.name}" for f in dataclasses.fields(section_class)}
    names = {key.name if key.section in SECTION_SETTINGS else key.name.replace(".", "_") for key in KEYS}
    assert attributes == names


def test_every_key_is_read_from_the_generated_file(tmp_path: Path):
    """All keys set at once, through `render_config`: each lands in its section and on its attribute."""
    config = tmp_path / "tempdl.toml"
    config.write_text(render_config(SAMPLES, offer_classic_file=False, header="all keys"), encoding="utf-8")
    settings = load_settings({"config": str(config)}, {}, tmp_path)
    for key in KEYS:
        assert attribute(settings, key) == expected(key, tmp_path), key.name
        assert attribute(settings, key) != attribute(Settings(), key), key.name


@pytest.mark.parametrize("key", KEYS, ids=lambda key: key.name)
def test_every_key_is_read_from_its_environment_variable(tmp_path: Path, key: Key):
    environ = {key.env: as_environment(SAMPLES[key.name])}
    if key.name == "wechat.encoding_aes_key":
        environ["TEMPDL_WECHAT_APP_ID"] = SAMPLES["wechat.app_id"]
    assert attribute(load_settings({}, environ, tmp_path), key) == expected(key, tmp_path)


@pytest.mark.parametrize("key", [key for key in KEYS if key.flag], ids=lambda key: key.name)
def test_every_flag_is_an_option_of_serve_and_beats_the_environment(tmp_path: Path, key: Key):
    args = build_parser().parse_args(["serve", key.flag, as_environment(SAMPLES[key.name])])
    given = getattr(args, key.flag_dest)
    environ = {key.env: as_environment(BY_NAME[key.name].default)}
    assert attribute(load_settings({key.flag_dest: given}, environ, tmp_path), key) == expected(key, tmp_path)


def test_the_flags_are_the_ones_serve_takes():
    assert [key.flag for key in KEYS if key.flag] == ["--address", "--port", "--data-dir"]


def test_secrets_stay_out_of_repr(tmp_path: Path):
    environ = {key.env: as_environment(SAMPLES[key.name]) for key in KEYS}
    shown = repr(load_settings({}, environ, tmp_path))
    secrets = [key for key in KEYS if key.secret]
    assert [key.name for key in secrets] == ["secret_keys", "wechat.token", "wechat.encoding_aes_key", "admin.password"]
    for key in secrets:
        for value in SAMPLES[key.name] if isinstance(SAMPLES[key.name], list) else [SAMPLES[key.name]]:
            assert value not in shown, key.name
    assert "https://dl.example.com" in shown and "wx0123456789abcdef" in shown  # the rest is shown


def test_sections_are_titled_and_each_one_is_written_in_one_piece():
    """A TOML key after a `[section]` header belongs to it: top-level keys first, sections unbroken."""
    order = [key.section for key in KEYS]
    first_section = next(index for index, section in enumerate(order) if section is not None)
    assert all(section is None for section in order[:first_section])
    runs = [section for index, section in enumerate(order) if index == 0 or order[index - 1] != section]
    assert runs == [None, *SECTIONS]
    assert set(SECTION_SETTINGS) <= set(SECTIONS)


def test_every_key_has_help_that_ends_a_sentence():
    for key in KEYS:
        assert key.help.endswith("."), key.name
        assert "Flag:" not in key.help and "Env:" not in key.help, key.name  # written from flag and env


def test_the_example_sets_no_key_and_every_key_is_in_it_at_its_default():
    text = example_config()
    parsed = tomllib.loads(text)
    assert set(parsed) == {"wechat", "admin", "limits", "files"}
    assert all(not table for name, table in parsed.items() if name != "files")
    for key in KEYS:
        assert f"\n# {key.short_name} = " in text, key.name
        assert key.env in text, key.name


def test_files_fields_are_the_offered_file_attributes(tmp_path: Path):
    assert [field.name for field in FILE_FIELDS] == [f.name for f in dataclasses.fields(OfferedFileConfig)]
    (tmp_path / "tempdl.toml").write_text(
        '[[files]]\nid = "a"\npath = "b.bin"\nkeywords = ["k"]\nname = "说明.pdf"\nttl = 5\n'
        'max_downloads = 2\ndescription = "d"\n',
        encoding="utf-8",
    )
    assert load_settings({}, {}, tmp_path).files == (OfferedFileConfig("a", "b.bin", ("k",), "说明.pdf", 5, 2, "d"),)
    (tmp_path / "tempdl.toml").write_text('[[files]]\nid = "a"\npath = "b.bin"\nsize = 5\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"files\[0\]\.size"):
        load_settings({}, {}, tmp_path)
