"""tests/ci_guard.py: under CI=true a skip fails the run, unless the test is marked `ci_may_skip`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROBE = """
import pytest

def test_runs():
    pass

def test_skips():
    pytest.skip("no such engine here")

@pytest.mark.skipif(True, reason="no such tool here")
def test_skipped_by_mark():
    pass

@pytest.mark.ci_may_skip
def test_may_skip():
    pytest.skip("optional tool")
"""


def run_probe(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    probe = tmp_path / "test_probe.py"
    probe.write_text(PROBE, encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if key != "CI"}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", str(REPO / "pytest.ini"), str(probe)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_under_ci_a_skip_is_a_failure_naming_its_reason(tmp_path):
    done = run_probe(tmp_path, "true")
    assert done.returncode == 1, done.stdout
    assert "1 failed, 1 passed, 1 skipped, 1 error" in done.stdout  # a skip mark fails at setup: an error
    assert "skipped under CI=true, where every test must run: Skipped: no such engine here" in done.stdout
    assert "skipped under CI=true, where every test must run: Skipped: no such tool here" in done.stdout


def test_elsewhere_skips_stay_skips(tmp_path):
    done = run_probe(tmp_path, None)
    assert done.returncode == 0, done.stdout
    assert "1 passed, 3 skipped" in done.stdout
