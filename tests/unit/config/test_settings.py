"""Settings: precedence, refusal of bad values with the key named, secret keys and rotation."""

from __future__ import annotations

import stat

import pytest

from tempdl.config.load import load_settings
from tempdl.config.secret import ensure_secret_keys
from tempdl.errors import ConfigError, LinkInvalid
from tempdl.links.tokens import LinkSigner


def settings_from(tmp_path, text="", environ=None, flags=None):
    (tmp_path / "tempdl.toml").write_text(text, encoding="utf-8")
    return load_settings(flags or {}, environ or {}, tmp_path)


def test_defaults_without_any_config(tmp_path):
    settings = load_settings({}, {}, tmp_path)
    assert (settings.address, settings.port, settings.link_ttl, settings.resume_grace) == ("127.0.0.1", 8000, 600, 3600)
    assert settings.public_url == "http://127.0.0.1:8000"
    assert settings.files_dir == (tmp_path / "static_files").resolve()
    assert settings.database_url == f"sqlite:///{(tmp_path / 'data').resolve()}/tempdl.sqlite3"
    assert settings.config_path is None and settings.files is None
    assert settings.wechat.path == "/wechat" and settings.wechat.token is None
    assert settings.limits.max_downloads == 0


def test_flag_beats_environment_beats_file(tmp_path):
    text = "port = 9001\nlink_ttl = 60\n[wechat]\ntoken = 'from-file'\n"
    settings = settings_from(tmp_path, text)
    assert (settings.port, settings.link_ttl, settings.wechat.token) == (9001, 60, "from-file")
    settings = settings_from(tmp_path, text, environ={"TEMPDL_PORT": "9002", "TEMPDL_WECHAT_TOKEN": "env"})
    assert (settings.port, settings.wechat.token) == (9002, "env")
    settings = settings_from(tmp_path, text, environ={"TEMPDL_PORT": "9002"}, flags={"port": 9003})
    assert settings.port == 9003
    assert settings.public_url == "http://127.0.0.1:9003"


def test_config_file_from_flag_or_environment(tmp_path):
    (tmp_path / "other.toml").write_text("port = 7000\n")
    assert load_settings({"config": "other.toml"}, {}, tmp_path).port == 7000
    assert load_settings({}, {"TEMPDL_CONFIG": str(tmp_path / "other.toml")}, tmp_path).port == 7000


@pytest.mark.parametrize(
    "text, environ, key",
    [
        ("port = 'eighty'", {}, "port"),
        ("port = 70000", {}, "port"),
        ("link_ttl = -5", {}, "link_ttl"),
        ("", {"TEMPDL_LINK_TTL": "ten"}, "link_ttl"),
        ("link_ttl = 0", {}, "link_ttl"),  # every link dead on arrival
        ("[[files]]\nid = 'a'\npath = 'x'\nttl = 0", {}, "files[0].ttl"),
        ("timezone = 'Mars/Olympus'", {}, "timezone"),
        ("public_url = 'ftp://x'", {}, "public_url"),
        ("serve_mode = 'magic'", {}, "serve_mode"),
        ("[wechat]\npath = 'no-slash'", {}, "wechat.path"),
        ("[wechat]\nencoding_aes_key = 'short'", {}, "wechat.encoding_aes_key"),
        ("secret_keys = ['short']", {}, "secret_keys"),
        ("unknown_thing = 1", {}, "unknown_thing"),
        ("[limits]\ntotal_rat = 5", {}, "limits.total_rat"),
        ("[[files]]\nid = 'a b'\npath = 'x'", {}, "files[0].id"),
        ("[[files]]\nid = 'a'\npath = '../etc/passwd'", {}, "files[0].path"),
        ("[[files]]\nid = 'a'\npath = 'x'\nname = '" + "说" * 86 + "'", {}, "name': 258 bytes of UTF-8, at most 255"),
        ("[[files]]\nid = 'a'\npath = 'x'\nscenes = 'poster'", {}, "files[0].scenes"),
        ("[[files]]\nid = 'a'\npath = 'x'\nscenes = ['" + "s" * 65 + "']", {}, "files[0].scenes"),
        ("[[files]]\nid = 'a'\npath = 'x'\nscenes = [' poster']", {}, "files[0].scenes"),
        ("this is not toml", {}, "TOML"),
    ],
)
def test_bad_values_are_refused_naming_the_key(tmp_path, text, environ, key):
    with pytest.raises(ConfigError) as refused:
        settings_from(tmp_path, text, environ)
    assert key in str(refused.value)
    assert "\n" not in str(refused.value)


def test_secret_key_is_generated_once_with_mode_0600(tmp_path):
    settings = ensure_secret_keys(load_settings({}, {}, tmp_path))
    key_file = tmp_path / "data" / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert settings.secret_keys == (key_file.read_text().strip(),)
    assert ensure_secret_keys(load_settings({}, {}, tmp_path)).secret_keys == settings.secret_keys


def test_a_name_of_255_bytes_and_scenes_are_loaded(tmp_path):
    name = "说" * 85
    settings = settings_from(tmp_path, f"[[files]]\nid = 'a'\npath = 'x'\nname = '{name}'\nscenes = ['poster', '7']")
    assert (settings.files[0].name, settings.files[0].scenes) == (name, ("poster", "7"))


def test_key_rotation_keeps_old_links_working(tmp_path):
    old, new = "old-key-" + "x" * 20, "new-key-" + "y" * 20
    before = settings_from(tmp_path, f"secret_keys = ['{old}']")
    after = settings_from(tmp_path, "", environ={"TEMPDL_SECRET_KEYS": f"{old},{new}"})
    token = LinkSigner(before.secret_keys).sign(42)
    assert LinkSigner(after.secret_keys).read(token).issuance_id == 42
    fresh = LinkSigner(after.secret_keys).sign(43)
    with pytest.raises(LinkInvalid):
        LinkSigner(before.secret_keys).read(fresh)  # the new key signs


def test_tampered_and_foreign_tokens_are_invalid():
    signer = LinkSigner(["k" * 32])
    token = signer.sign(7)
    assert len(token) < 80
    assert signer.read(token) == signer.read(token)  # the second read is remembered: still the same answer
    for bad in (token[:-1] + ("A" if token[-1] != "A" else "B"), token + "x", "", "a.b.c", "x" * 500):
        for _ in range(2):  # refusals are not remembered as anything else
            with pytest.raises(LinkInvalid):
                signer.read(bad)
    with pytest.raises(LinkInvalid):
        LinkSigner(["other" * 8]).read(token)
