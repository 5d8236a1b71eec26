"""`init`, `check`, `--version` and the sample config, through the real command line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tempdl import __version__
from tempdl.cli.init import init
from tempdl.cli.main import main
from tempdl.cli.parser import build_parser
from tempdl.config.keys import KEYS
from tempdl.config.keys import KEYS as _KEYS  # one table: the loader reads what the example documents
from tempdl.config.load import load_settings
from tempdl.config.toml import example_config
from tempdl.links.catalog import Catalog
from tempdl.web.access_log import quoted
from tests.support import sample_files
from tools.build_pyz import runtime_distributions

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory and an environment without TEMPDL_ variables."""
    for name in [name for name in os.environ if name.startswith("TEMPDL_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_version_on_the_command_line():
    done = subprocess.run([sys.executable, "server.py", "--version"], cwd=REPO, capture_output=True, text=True)
    assert (done.returncode, done.stdout) == (0, f"tempdl {__version__}\n")


# --- the sample config -------------------------------------------------------------------------


def test_example_file_is_what_init_example_prints():
    assert (REPO / "tempdl.toml.example").read_text(encoding="utf-8") == example_config(), (
        "tempdl.toml.example is stale: python server.py init --example > tempdl.toml.example"
    )


def test_example_documents_every_config_key():
    documented = {key.name for key in KEYS}
    missing = {key.name for key in _KEYS} - documented
    assert not missing, f"document {sorted(missing)} in tempdl/config_file.py KEYS, then regenerate the example"
    assert documented <= {key.name for key in _KEYS}
    for key in KEYS:
        assert re.search(rf"^# {re.escape(key.short_name)} = ", example_config(), re.MULTILINE)
        assert key.env in example_config()


def test_example_offers_instmsiw_for_open_sesame(tmp_path: Path):
    config = tmp_path / "tempdl.toml"
    config.write_text(example_config(), encoding="utf-8")
    settings = load_settings({"config": str(config)}, {}, REPO)
    catalog = Catalog(settings.files_dir, settings.files)
    offered = catalog.by_keyword("ＯＰＥＮ  sesame ")
    assert offered is not None and offered.id == "InstMsiW.exe"
    assert catalog.absolute_path(offered) == REPO / "static_files" / "InstMsiW.exe"
    assert catalog.by_keyword("芝麻开门") == offered
    assert settings.wechat.token is None  # the README's sed line uncomments it


# --- init --------------------------------------------------------------------------------------


def test_init_off_a_terminal_asks_nothing_and_writes_a_config_serve_accepts(workdir: Path, capsys):
    assert main(["init", "--public-url", "https://dl.example.com/"]) == 0
    out = capsys.readouterr().out

    config = workdir / "tempdl.toml"
    assert config.stat().st_mode & 0o777 == 0o640
    settings = load_settings({"config": str(config)}, {}, Path("/"))
    assert settings.public_url == "https://dl.example.com"
    assert settings.data_dir == workdir / "data" and settings.files_dir == workdir / "static_files"
    assert re.fullmatch(r"[A-Za-z0-9]{32}", settings.wechat.token)
    assert settings.files is None  # the classic [[files]] table is there, commented out
    assert '# keywords = ["Open Sesame", "芝麻开门"]' in config.read_text(encoding="utf-8")
    assert (workdir / "data" / "secret.key").stat().st_mode & 0o777 == 0o600
    assert (workdir / "static_files").is_dir()

    assert re.search(r"URL:\s+https://dl\.example\.com/wechat$", out, re.MULTILINE)
    assert re.search(rf"Token:\s+{settings.wechat.token}$", out, re.MULTILINE)
    assert f"python server.py check --config {config}" in out


def test_init_refuses_to_overwrite_without_force(workdir: Path, capsys):
    (workdir / "tempdl.toml").write_text("port = 9000\n")
    assert main(["init"]) == 1
    assert "already exists; add --force" in capsys.readouterr().err
    assert (workdir / "tempdl.toml").read_text() == "port = 9000\n"

    assert main(["init", "--force", "--wechat-token", "abc123", "--port", "9001"]) == 0
    settings = load_settings({}, {}, workdir)
    assert (settings.port, settings.wechat.token) == (9001, "abc123")


def test_init_keeps_an_existing_secret(workdir: Path, capsys):
    (workdir / "data").mkdir()
    (workdir / "data" / "secret.key").write_text("an-old-secret-that-signs-live-links\n")
    assert main(["init"]) == 0
    assert "kept the existing signing secret" in capsys.readouterr().out
    assert (workdir / "data" / "secret.key").read_text() == "an-old-secret-that-signs-live-links\n"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--wechat-token", "no spaces"], "3 to 32 letters or digits"),
        (["--public-url", "dl.example.com"], "public_url: must be an http:// or https:// URL"),
    ],
)
def test_init_refuses_values_serve_would_refuse(workdir: Path, capsys, flags, message):
    assert main(["init", *flags]) == 1
    assert message in capsys.readouterr().err
    assert list(workdir.iterdir()) == []


def test_init_on_a_terminal_asks_for_public_url_and_token_with_defaults(workdir: Path, capsys):
    answers = iter(["not a url", "https://files.example.cn", ""])
    questions: list[str] = []

    def ask(question: str) -> str:
        questions.append(question)
        return next(answers)

    assert init(build_parser().parse_args(["init"]), ask=ask) == 0
    assert questions[0].startswith("Public URL") and "[http://127.0.0.1:8000]" in questions[0]
    assert questions[1] == questions[0]  # asked again after a bad answer
    assert questions[2].startswith("WeChat Token")
    settings = load_settings({}, {}, workdir)
    assert settings.public_url == "https://files.example.cn"
    assert settings.wechat.token in questions[2]  # the offered default was taken
    assert "must be an http:// or https:// URL" in capsys.readouterr().err


# --- check -------------------------------------------------------------------------------------


def test_check_lists_what_would_be_served(workdir: Path, capsys):
    assert main(["init", "--public-url", "https://dl.example.com"]) == 0
    sample_files(workdir / "static_files")
    capsys.readouterr()

    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert f"files on offer from {workdir / 'static_files'}: 2" in out
    assert re.search(r"InstMsiW\.exe\s+293\.0 KiB\s+InstMsiW\.exe\s+InstMsiW\.exe", out)
    assert "wechat: https://dl.example.com/wechat (token set, plaintext mode)" in out
    assert "warning: '说明.pdf' is not offered: rename it or give it an id in [[files]]" in out  # not a URL-safe id
    assert out.endswith("ok: the configuration can be served\n")


def test_check_flags_missing_files_and_shared_keywords(workdir: Path, capsys):
    sample_files(workdir / "static_files")
    (workdir / "tempdl.toml").write_text(
        '[[files]]\nid = "installer"\npath = "InstMsiW.exe"\nkeywords = ["Open Sesame"]\n'
        '[[files]]\nid = "gone"\npath = "gone.zip"\nkeywords = ["OPEN  SESAME"]\n',
        encoding="utf-8",
    )
    assert main(["check"]) == 1
    captured = capsys.readouterr()
    assert re.search(r"gone\s+MISSING", captured.out)
    assert "PROBLEM: file 'gone'" in captured.out
    assert "PROBLEM: keyword 'open sesame' asks for several files (installer, gone)" in captured.out
    assert captured.err == "tempdl: 2 problems found; fix before (re)starting the server\n"


def test_check_with_nothing_on_offer_fails(workdir: Path, capsys):
    assert main(["check"]) == 1
    assert "PROBLEM: nothing is on offer" in capsys.readouterr().out


def test_check_refuses_a_bad_config_in_one_line(workdir: Path, capsys):
    (workdir / "tempdl.toml").write_text('link_ttl = "ten"\n')
    assert main(["check"]) == 2
    assert capsys.readouterr().err == "tempdl: config key 'link_ttl': must be a whole number >= 0, not 'ten'\n"


def test_check_reports_the_schema_of_an_existing_database(workdir: Path, capsys):
    sample_files(workdir / "static_files")
    assert main(["db", "upgrade"]) == 0
    assert main(["check"]) == 0
    assert re.search(r"database: sqlite:///\S+ \(schema \w+, newest\)", capsys.readouterr().out)


# --- the build's choices, and log values ---------------------------------------------------------


def test_build_bundles_what_tempdl_imports_and_no_test_tools():
    names = {pin.split("==")[0].lower() for pin in runtime_distributions()}
    assert {"tornado", "sqlalchemy", "alembic", "itsdangerous", "untangle", "cryptography"} <= names
    assert not names & {"pytest", "pytest-tornado", "hypothesis", "playwright", "shiv"}


def test_log_values_stay_one_token():
    assert quoted("abc") == "abc"
    assert quoted("/srv/my files") == '"/srv/my files"'
    assert quoted('say "hi"') == '"say \\"hi\\""'
    assert quoted("") == '""'


def test_example_parses_as_toml():
    assert tomllib.loads(example_config())["files"][0]["keywords"] == ["Open Sesame", "芝麻开门"]
