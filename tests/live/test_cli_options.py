"""Global options before or after the command, help texts, exit codes, and the log's shape.

Real subprocesses of `python server.py`, as operators and systemd run it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tempdl.cli.main import COMMANDS
from tempdl.cli.parser import build_parser
from tests.engines import free_port
from tests.support import env_without_tempdl, sample_files, wait_until

REPO = Path(__file__).resolve().parents[2]


def run(workdir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "server.py"), *args],
        cwd=workdir,
        env={**env_without_tempdl(), **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    sample_files(tmp_path / "files")
    path = tmp_path / "elsewhere.toml"
    path.write_text(f'files_dir = "{tmp_path / "files"}"\ndata_dir = "{tmp_path / "data"}"\n', encoding="utf-8")
    return path


def test_config_before_or_after_the_command_is_the_same(tmp_path: Path, config: Path):
    before = run(tmp_path, "--config", str(config), "check")
    after = run(tmp_path, "check", "--config", str(config))
    assert before.returncode == 0, before.stderr
    assert "hello.txt" in before.stdout
    assert (after.returncode, after.stdout) == (0, before.stdout)


def test_data_dir_before_the_command_is_where_issue_keeps_its_secret(tmp_path: Path, config: Path):
    done = run(tmp_path, "--data-dir", str(tmp_path / "before"), "--config", str(config), "issue", "hello.txt")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "before" / "secret.key").is_file()
    assert not (tmp_path / "data").exists()
    again = run(tmp_path, "issue", "hello.txt", "--config", str(config), "--data-dir", str(tmp_path / "after"))
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "after" / "secret.key").is_file()


def test_exit_codes_zero_one_two_as_the_help_says(tmp_path: Path, config: Path):
    helped = run(tmp_path, "--help")
    assert helped.returncode == 0
    assert re.search(r"exit codes:\n  0 .*\n  1 .*\n  2  usage or configuration error", helped.stdout)
    assert run(tmp_path, "--config", str(config), "issue", "no-such-file").returncode == 1
    assert run(tmp_path, "--config", str(config), "issue").returncode == 2  # FILE_ID missing
    assert run(tmp_path, "--config", str(tmp_path / "missing.toml"), "check").returncode == 2
    bad_level = run(tmp_path, "--config", str(config), "check", TEMPDL_LOG_LEVEL="LOUD")
    assert (bad_level.returncode, bad_level.stderr) == (
        2,
        "tempdl: TEMPDL_LOG_LEVEL='LOUD': choose from DEBUG, INFO, WARNING, ERROR\n",
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_a_description_examples_and_exit_codes(tmp_path: Path, command: str):
    done = run(tmp_path, command, "--help")
    assert done.returncode == 0, done.stderr
    examples = done.stdout.split("examples:\n", 1)[1].split("\n\n", 1)[0]
    assert all(line.startswith("  tempdl ") or " tempdl " in line for line in examples.splitlines()), examples
    assert command in examples
    assert "exit codes:" in done.stdout and "TEMPDL_CONFIG" in done.stdout


def test_every_argument_has_a_help_text():
    parser = build_parser()
    [commands] = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    missing = [
        f"{name} {action.dest}"
        for name, subparser in commands.choices.items()
        for action in subparser._actions
        if not action.help
    ]
    assert missing == []
    assert sorted(commands.choices) == sorted(COMMANDS)


def _healthy(port: int, server: subprocess.Popen) -> bool:
    if server.poll() is not None:
        raise AssertionError(f"serve exited with {server.returncode}")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            return answer.status == 200
    except OSError:
        return False


def _first_log_lines(tmp_path: Path, config: Path, *flags: str, **env: str) -> list[str]:
    """Start `serve`, wait until `/healthz` answers, stop it with SIGTERM; return what it logged."""
    log_path, port = tmp_path / "serve.log", free_port()
    with log_path.open("wb") as log_file:
        server = subprocess.Popen(
            [sys.executable, str(REPO / "server.py"), *flags, "--config", str(config), "--port", str(port)],
            cwd=tmp_path,
            env={**env_without_tempdl(), "PYTHONUNBUFFERED": "1", **env},
            stdin=subprocess.DEVNULL,
            stderr=log_file,
        )
    try:
        wait_until(lambda: _healthy(port, server), timeout=30, what="/healthz", detail=log_path.read_text)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    return log_path.read_text().splitlines()


def test_json_log_lines_are_objects_with_the_event_pulled_out(tmp_path: Path, config: Path):
    lines = _first_log_lines(tmp_path, config, "serve", "--log-format", "json")
    objects = [json.loads(line) for line in lines]  # every line, not only ours, is JSON
    [listening] = [line for line in objects if line.get("event") == "listening"]
    assert listening["level"] == "INFO" and listening["logger"].startswith("tempdl")
    assert listening["message"].startswith("event=listening ")
    assert datetime.datetime.strptime(listening["time"], "%Y-%m-%dT%H:%M:%S%z")


def test_under_journald_text_lines_carry_no_time_of_their_own(tmp_path: Path, config: Path):
    lines = _first_log_lines(tmp_path, config, JOURNAL_STREAM="8:12345")
    [listening] = [line for line in lines if "event=listening" in line]
    assert listening.startswith("level=INFO logger=tempdl")
    plain = _first_log_lines(tmp_path, config)
    [listening] = [line for line in plain if "event=listening" in line]
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} level=INFO logger=tempdl", listening)


def test_log_level_warning_drops_the_info_lines(tmp_path: Path, config: Path):
    assert any("level=INFO" in line for line in _first_log_lines(tmp_path, config, "serve"))
    quiet = _first_log_lines(tmp_path, config, "--log-level", "warning", "serve")
    assert not [line for line in quiet if "level=INFO" in line or "level=DEBUG" in line], quiet
