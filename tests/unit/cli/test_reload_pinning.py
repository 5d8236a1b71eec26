"""What a reload keeps from the running settings: the keys that need a restart, and a default
`public_url` derived from the address and port still listened on."""

from __future__ import annotations

import pytest

from tempdl.cli.reload import pinned, restart_only_changes
from tempdl.config.load import load_settings


def settings_from(tmp_path, text: str):
    config = tmp_path / "tempdl.toml"
    config.write_text(text, encoding="utf-8")
    return load_settings({"config": str(config)}, {}, tmp_path)


@pytest.mark.parametrize(
    ("before", "after", "public_url"),
    [
        ("port = 8000\n", "port = 9000\n", "http://127.0.0.1:8000"),  # the default follows the kept port
        ('address = "127.0.0.2"\n', 'address = "127.0.0.3"\n', "http://127.0.0.2:8000"),
        ("port = 8000\n", 'port = 9000\npublic_url = "https://dl.example.com"\n', "https://dl.example.com"),
        ('port = 8000\npublic_url = "https://dl.example.com"\n', "port = 9000\n", "http://127.0.0.1:8000"),
        ("port = 8000\n", "port = 8000\n", "http://127.0.0.1:8000"),
    ],
)
def test_a_default_public_url_points_where_the_server_still_listens(tmp_path, before, after, public_url):
    running = settings_from(tmp_path, before)
    loaded = settings_from(tmp_path, after)
    kept = pinned(running, loaded)
    assert (kept.address, kept.port) == (running.address, running.port)
    assert kept.public_url == public_url


def test_restart_keys_are_named(tmp_path):
    running = settings_from(tmp_path, "port = 8000\n")
    loaded = settings_from(tmp_path, "port = 9000\n")
    assert restart_only_changes(running, loaded) == ["port"]
