"""Settings for scale-out: PostgreSQL URLs as providers hand them out, and `check`'s warnings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tempdl.cli.main import main
from tempdl.cli.serve import x_accel_ignored_limits
from tempdl.config.load import load_settings
from tempdl.errors import ConfigError
from tests.support import sample_files


@pytest.mark.parametrize(
    "given, used",
    [
        (
            "postgresql://tempdl:s%40cret@db.internal:5433/tempdl",
            "postgresql+psycopg://tempdl:s%40cret@db.internal:5433/tempdl",
        ),
        ("postgres://tempdl@db/tempdl?sslmode=require", "postgresql+psycopg://tempdl@db/tempdl?sslmode=require"),
        ("postgresql+psycopg://tempdl@db/tempdl", "postgresql+psycopg://tempdl@db/tempdl"),
        ("sqlite:////var/lib/tempdl/tempdl.sqlite3", "sqlite:////var/lib/tempdl/tempdl.sqlite3"),
    ],
)
def test_postgresql_urls_use_the_driver_tempdl_ships(tmp_path, given, used):
    assert load_settings({}, {"TEMPDL_DATABASE_URL": given}, tmp_path).database_url == used


def test_a_database_url_that_is_no_url_is_refused_naming_the_key(tmp_path):
    (tmp_path / "tempdl.toml").write_text('database_url = "my database"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="database_url"):
        load_settings({}, {}, tmp_path)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in [name for name in os.environ if name.startswith("TEMPDL_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    sample_files(tmp_path / "static_files")
    return tmp_path


def test_check_warns_about_settings_that_break_with_several_processes(workdir, capsys):
    (workdir / "tempdl.toml").write_text(
        'database_url = "postgresql://tempdl@127.0.0.1:1/tempdl"\n'
        'serve_mode = "x-accel"\n'
        "[limits]\nmax_concurrent_downloads = 50\ntotal_rate = 1000000\nrate_per_download = 100000\n",
        encoding="utf-8",
    )
    main(["check"])  # the database does not answer: a problem, and a non-zero exit; not the point here
    out = capsys.readouterr().out
    assert "warning: database_url is a shared database but secret_keys is not set" in out
    assert "warning: limits.max_concurrent_downloads is nginx's job in x-accel mode" in out
    assert "warning: limits.total_rate is nginx's job in x-accel mode" in out
    assert "rate_per_download is nginx's job" not in out  # tempdl passes it on as X-Accel-Limit-Rate


def test_direct_mode_applies_every_limit_itself(tmp_path):
    (tmp_path / "tempdl.toml").write_text("[limits]\nmax_concurrent_downloads = 5\ntotal_rate = 9\n")
    assert x_accel_ignored_limits(load_settings({}, {}, tmp_path)) == []
