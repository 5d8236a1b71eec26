"""A `[[files]]` entry whose file cannot be served is not on offer: not listed, not matched, not
issued; a file deleted after start is off offer from then on. Over real signed HTTP and the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import env_without_tempdl, reply_content, rows, text_message

SERVER = Path(__file__).resolve().parents[2] / "server.py"
FILES = """
[[files]]
id = "hello"
path = "hello.txt"
keywords = ["hello"]

[[files]]
id = "ghost"
path = "not-there.zip"
keywords = ["ghost"]

[[files]]
id = "folder"
path = "a-folder"
keywords = ["folder"]
"""


@pytest.fixture
def config_text() -> str:
    return FILES


@pytest.fixture
def files_dir(files_dir: Path) -> Path:
    (files_dir / "a-folder").mkdir()
    return files_dir


def issued(settings) -> list[str]:
    return [row["file_id"] for row in rows(settings.database_url, "SELECT file_id FROM issuances ORDER BY id")]


@pytest.mark.gen_test
async def test_missing_files_are_neither_listed_nor_matched(wechat_post, settings):
    for number, typed in enumerate(("ghost", "folder", "what is on offer?")):
        content = reply_content((await wechat_post(text_message(typed, msg_id=str(number)))).body)
        assert "/api/get_file/" not in content
        assert "• hello" in content and "ghost" not in content and "folder" not in content
    assert issued(settings) == []


@pytest.mark.gen_test
async def test_a_file_deleted_after_start_is_off_offer_from_then_on(wechat_post, settings, files_dir):
    assert "/api/get_file/" in reply_content((await wechat_post(text_message("hello"))).body)
    (files_dir / "hello.txt").unlink()
    content = reply_content((await wechat_post(text_message("hello", msg_id="2"))).body)
    assert "/api/get_file/" not in content and "• hello" not in content
    assert issued(settings) == ["hello"]


def cli(tmp_path: Path, settings, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SERVER), *argv, "--config", "tempdl.toml"],
        cwd=tmp_path,
        env={
            **env_without_tempdl(),
            "TEMPDL_FILES_DIR": str(settings.files_dir),
            "TEMPDL_DATABASE_URL": settings.database_url,
            "TEMPDL_DATA_DIR": str(settings.data_dir),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_issue_refuses_a_file_that_cannot_be_served_in_one_line(tmp_path, settings, audit):
    result = cli(tmp_path, settings, "issue", "ghost")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "tempdl: file 'ghost' cannot be served: missing, unreadable or outside files_dir\n"
    assert issued(settings) == []
    assert cli(tmp_path, settings, "issue", "hello").returncode == 0


def test_check_names_the_files_that_cannot_be_served(tmp_path, settings, audit):
    result = cli(tmp_path, settings, "check")
    assert result.returncode != 0
    assert "file 'ghost'" in result.stderr + result.stdout and "file 'folder'" in result.stderr + result.stdout
    assert "file 'hello'" not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("flag", "value"), [("--ttl", "0"), ("--max-downloads", "0"), ("--ttl", "-5"), ("--max-downloads", "-1")]
)
def test_issue_refuses_non_positive_values_in_one_line(tmp_path, settings, audit, flag, value):
    result = cli(tmp_path, settings, "issue", "hello", f"{flag}={value}")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.count("\n") == 1 and flag in result.stderr and "Traceback" not in result.stderr
    assert issued(settings) == []
