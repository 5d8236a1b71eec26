"""The walk-through's start, `serve &` then `issue` at once, as two real processes racing.

Both find no `secret.key` and both make one; whichever links its file into place first wins,
and the other must read that key, not die on `File exists` nor read an empty file. Twenty
rounds, each on a fresh `data_dir`, each proven by downloading the link `issue` signed from the
server that `serve` started.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.live_server import LIVE_FILES, LiveServer
from tests.support import env_without_tempdl

ROUNDS = 20


@pytest.mark.parametrize("round_number", range(ROUNDS))
def test_serve_and_issue_started_together_agree_on_one_new_key(tmp_path: Path, round_number: int):
    server = LiveServer.with_live_files(tmp_path)
    issue = subprocess.Popen(
        [*server._command("issue"), "small"],
        cwd=tmp_path,
        env=env_without_tempdl(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        server.start()  # waits for /healthz: a server that died on the key fails here, with its log
        printed, errors = issue.communicate(timeout=60)
        assert (issue.returncode, errors) == (0, ""), errors
        [link] = printed.splitlines()
        download = server.request("GET", link.removeprefix(server.url))
        assert download.status == 200, server.log()
        assert download.body == LIVE_FILES["small"][1]  # signed by issue's key, read with serve's
    finally:
        issue.kill()
        assert server.stop() == 0, server.log()
    data = tmp_path / "data"
    assert (data / "secret.key").stat().st_mode & 0o777 == 0o600
    assert sorted(path.name for path in data.iterdir() if "secret" in path.name) == ["secret.key"]
