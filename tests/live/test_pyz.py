"""The single-file deployment, done as an operator on a fresh machine would do it.

`python tools/build_pyz.py` runs once per test session. Each test copies the pyz alone into an empty
folder and runs it with a clean environment (PATH and HOME only) and `python -I -S`: isolated mode
and no site-packages, so nothing the test environment has installed can stand in for something
the pyz forgot to bring. The story test then follows docs/deploy.md: init, check, serve, issue a link,
download it with urllib, stop with SIGTERM, and read the audit rows.
"""

from __future__ import annotations

import re
import shutil
import signal
import site
import subprocess
import sys
import threading
import urllib.request
import zipfile
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from tempdl import __version__
from tempdl.wechat.signature import sha1_signature
from tests.engines import free_port
from tests.support import rows, sample_bytes
from tools.build_pyz import pinned_versions, requirements_in, runtime_distributions

REPO = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT = 300
COMMAND_TIMEOUT = 60


@pytest.fixture(scope="session")
def built_pyz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pyz, built once for the whole session exactly as docs/deploy.md says (into a temp folder)."""
    output = tmp_path_factory.mktemp("build") / "tempdl.pyz"
    done = subprocess.run(
        [sys.executable, str(REPO / "tools" / "build_pyz.py"), "--output", str(output)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return output


class FreshMachine:
    """An empty folder holding only tempdl.pyz, and a way to run it with nothing else around."""

    def __init__(self, root: Path, pyz: Path) -> None:
        self.folder = root / "vps"
        self.home = root / "home"  # where shiv unpacks the bundled libraries on first run
        self.folder.mkdir()
        self.home.mkdir()
        shutil.copy(pyz, self.folder / "tempdl.pyz")

    def environment(self, **extra: str) -> dict[str, str]:
        return {"PATH": "/usr/bin:/bin", "HOME": str(self.home), **extra}

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-I", "-S", "tempdl.pyz", *args]

    def run(self, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args),
            cwd=self.folder,
            env=self.environment(**extra_env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
        )


@pytest.fixture
def machine(tmp_path: Path, built_pyz: Path) -> FreshMachine:
    return FreshMachine(tmp_path, built_pyz)


def test_pyz_holds_the_package_migrations_and_templates_but_no_test_tools(built_pyz: Path):
    names = set(zipfile.ZipFile(built_pyz).namelist())
    for needed in (
        "site-packages/tempdl/cli/main.py",
        "site-packages/tempdl/_migrations/env.py",
        "site-packages/tempdl/_migrations/versions/0001_initial.py",
        "site-packages/tempdl/web/templates/refusal.html",
        "site-packages/tornado/web.py",
        "site-packages/cryptography/__init__.py",
        "site-packages/tzdata/__init__.py",
    ):
        assert needed in names
    top_level = {name.split("/")[1] for name in names if name.startswith("site-packages/")}
    assert not top_level & {"pytest", "_pytest", "playwright", "hypothesis", "pytest_tornado", "shiv"}
    assert built_pyz.read_bytes().startswith(b"#!/usr/bin/env python3\n")


def test_pyz_bundles_exactly_the_runtime_requirements_and_their_dependencies(built_pyz: Path):
    """requirements.txt and what it pulls in, no more, no less, at the versions constraints.txt pins."""
    dist_infos = {
        name.split("/")[1].removesuffix(".dist-info")
        for name in zipfile.ZipFile(built_pyz).namelist()
        if re.match(r"site-packages/[^/]+\.dist-info/METADATA$", name)
    }
    bundled = {canonicalize_name(name.rsplit("-", 1)[0]): name.rsplit("-", 1)[1] for name in dist_infos}
    expected = {canonicalize_name(pin.split("==")[0]): pin.split("==")[1] for pin in runtime_distributions()}
    assert bundled == expected
    pinned = pinned_versions()
    assert all(pinned[name] == version for name, version in bundled.items())


def test_deploy_docs_name_every_bundled_requirement_and_no_left_out_one():
    """docs/deploy.md's "What the build bundles" paragraph tells the truth about requirements.txt."""
    text = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")
    paragraph = text.split("What the build bundles", 1)[1].split("\n\n", 1)[0]
    bundled, left_out = paragraph.split("Left out:", 1)
    for requirement in requirements_in(REPO / "requirements.txt"):
        assert f"`{requirement.name}`" in bundled, requirement.name
    for tool in ("pytest", "playwright", "shiv", "ruff", "mypy", "psycopg"):
        assert f"`{tool}`" in left_out and f"`{tool}`" not in bundled


def test_nothing_leaks_in_from_the_test_environment(machine: FreshMachine):
    modules = "tornado, sqlalchemy, alembic, itsdangerous, untangle, cryptography, tempdl"
    probe = f"import sys, {modules}; print(*(m.__file__ for m in ({modules})), *sys.path, sep='\\n')"
    done = machine.run("-c", probe, SHIV_INTERPRETER="1")
    assert done.returncode == 0, done.stderr
    module_files, search_path = done.stdout.splitlines()[:7], done.stdout.splitlines()[7:]
    assert all(path.startswith(str(machine.home / ".shiv")) for path in module_files), module_files
    for site_packages in site.getsitepackages():
        assert site_packages not in search_path


def test_version_and_example_config_come_from_the_pyz_alone(machine: FreshMachine):
    version = machine.run("--version")
    assert (version.returncode, version.stdout) == (0, f"tempdl {__version__}\n")
    example = machine.run("init", "--example")
    assert example.returncode == 0
    assert example.stdout == (REPO / "tempdl.toml.example").read_text(encoding="utf-8")


def _wait_for_line(stream, pattern: str, process: subprocess.Popen, seen: list[str]) -> str:
    """Read `stream` until a line matches; the watchdog kills a server that never says it."""
    watchdog = threading.Timer(COMMAND_TIMEOUT, process.kill)
    watchdog.start()
    try:
        for line in stream:
            seen.append(line)
            if re.search(pattern, line):
                return line
    finally:
        watchdog.cancel()
    raise AssertionError(f"the server exited (code {process.wait()}) without logging {pattern}:\n{''.join(seen)}")


def test_fresh_machine_init_check_serve_issue_download(machine: FreshMachine):
    port = free_port()
    public_url = f"http://127.0.0.1:{port}"

    init = machine.run("init", "--public-url", public_url, "--port", str(port), "--files-dir", "files")
    assert init.returncode == 0, init.stderr
    assert f"{public_url}/wechat" in init.stdout
    token = re.search(r"Token:\s+(\w+)", init.stdout).group(1)
    assert re.fullmatch(r"[A-Za-z0-9]{32}", token)
    assert (machine.folder / "data" / "secret.key").stat().st_mode & 0o777 == 0o600

    content = sample_bytes(300_000)
    (machine.folder / "files" / "InstMsiW.exe").write_bytes(content)
    check = machine.run("check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert re.search(r"InstMsiW\.exe\s+293\.0 KiB", check.stdout)

    server = subprocess.Popen(
        machine.command("serve"),
        cwd=machine.folder,
        env=machine.environment(),
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    log: list[str] = []
    try:
        listening = _wait_for_line(server.stderr, r"event=listening", server, log)
        assert f"port={port}" in listening and "wechat=live" in listening and "config=tempdl.toml" in listening

        handshake = f"{public_url}/wechat?signature={sha1_signature(token, '1714036504', '42')}"
        with urllib.request.urlopen(f"{handshake}&timestamp=1714036504&nonce=42&echostr=hi", timeout=10) as answer:
            assert answer.read() == b"hi"  # the token init printed is the one being served

        issue = machine.run("issue", "InstMsiW.exe", "--to", "operator")
        assert issue.returncode == 0, issue.stderr
        link = issue.stdout.strip()
        assert link.startswith(f"{public_url}/api/get_file/")

        with urllib.request.urlopen(link, timeout=30) as download:
            assert download.status == 200
            assert 'filename="InstMsiW.exe"' in download.headers["Content-Disposition"]
            assert download.read() == content
    finally:
        server.send_signal(signal.SIGTERM)
        _, remaining = server.communicate(timeout=COMMAND_TIMEOUT)
    log += remaining.splitlines(keepends=True)
    assert server.returncode == 0, "".join(log)
    assert any("event=stopped" in line for line in log)

    # Every line tempdl logged is key=value, for `journalctl -u tempdl | grep event=...`.
    ours = [line for line in log if "logger=tempdl" in line]
    assert ours and all(re.search(r" level=[A-Z]+ logger=tempdl\S* event=\w+( |$)", line) for line in ours), ours
    assert any("event=request method=GET path=/api/get_file/… status=200" in line for line in ours)

    database = machine.folder / "data" / "tempdl.sqlite3"
    issued = rows(database, "SELECT id, file_id, recipient, channel FROM issuances")
    assert [tuple(row) for row in issued] == [(1, "InstMsiW.exe", "operator", "cli")]
    attempts = rows(database, "SELECT issuance_id, outcome, http_status, bytes_sent FROM download_attempts")
    assert [tuple(row) for row in attempts] == [(1, "ok", 200, 300_000)]
