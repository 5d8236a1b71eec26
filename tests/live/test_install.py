"""`pip install .` into a fresh venv, then the `tempdl` command an installed package gives.

The checkout's packaging files and sources are copied to a temporary folder first, so the build
leaves nothing in the checkout and sees only what a source distribution would hold. The new venv
gets the test environment's site-packages through a `.pth` file: pip still checks every
requirement in the package's metadata, but finds it installed instead of downloading it (the
build backend, setuptools, still comes from the index as for any `pip install .`). Every command
then runs from an empty folder with no `PYTHONPATH`, so the checkout cannot stand in for a file
the package forgot to ship: `db upgrade` proves the migrations are inside it.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tempdl import __version__

REPO = Path(__file__).resolve().parents[2]
SOURCE = ("pyproject.toml", "setup.py", "README.md", "LICENSE", "requirements.txt", "tempdl", "migrations")
HEAD_REVISION = sorted(path.name.split("_")[0] for path in (REPO / "migrations" / "versions").glob("0*.py"))[-1]


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("install")
    source = root / "source"
    source.mkdir()
    for name in SOURCE:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(REPO / name, source / name)
    environment = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(environment)], check=True, timeout=120)
    purelib = Path(sysconfig.get_paths(vars={"base": str(environment)})["purelib"])
    (purelib / "zz-test-environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    done = subprocess.run(
        [str(environment / "bin" / "pip"), "install", "--quiet", str(source)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return environment


def run(venv: Path, workdir: Path, *command: str) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("TEMPDL_", "PYTHON"))}
    return subprocess.run(
        [str(venv / "bin" / command[0]), *command[1:]],
        cwd=workdir,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_tempdl_command_is_the_installed_package(venv: Path, tmp_path: Path):
    version = run(venv, tmp_path, "tempdl", "--version")
    assert (version.returncode, version.stdout, version.stderr) == (0, f"tempdl {__version__}\n", "")
    where = run(venv, tmp_path, "python", "-c", "import tempdl; print(tempdl.__file__)")
    assert where.stdout.startswith(str(venv)), where.stdout + where.stderr
    assert run(venv, tmp_path, "python", "-m", "tempdl", "--version").stdout == f"tempdl {__version__}\n"


def test_help_lists_every_subcommand(venv: Path, tmp_path: Path):
    done = run(venv, tmp_path, "tempdl", "--help")
    assert done.returncode == 0, done.stderr
    for command in ("serve", "issue", "stats", "revoke", "db", "prune", "init", "check", "ingest-nginx-log"):
        assert re.search(rf"^ +{command}\b", done.stdout, re.MULTILINE), done.stdout


def test_db_upgrade_finds_the_migrations_inside_the_package(venv: Path, tmp_path: Path):
    done = run(venv, tmp_path, "tempdl", "db", "upgrade", "--data-dir", str(tmp_path / "data"))
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(tmp_path / "data" / "tempdl.sqlite3") as database:
        assert database.execute("SELECT version_num FROM alembic_version").fetchall() == [(HEAD_REVISION,)]
        tables = {name for (name,) in database.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"issuances", "download_attempts"} <= tables
