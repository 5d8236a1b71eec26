"""deploy/tempdl.service: what docs/deploy.md promises about it, and systemd's own verdict on it."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

from tempdl.cli.serve import CLOSING_WAIT
from tempdl.config.settings import Settings

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "deploy" / "tempdl.service"
GUIDE = REPO / "docs" / "deploy.md"


@pytest.fixture(scope="module")
def service() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)  # systemd allows repeated keys
    parser.optionxform = str  # keys are case-sensitive
    parser.read(UNIT, encoding="utf-8")
    return parser["Service"]


def test_runs_the_pyz_as_its_own_user_with_state_in_var_lib(service):
    assert service["ExecStart"] == "/usr/bin/python3 /opt/tempdl/tempdl.pyz serve --config /etc/tempdl.toml"
    assert (service["User"], service["StateDirectory"], service["WorkingDirectory"]) == (
        "tempdl",
        "tempdl",
        "/var/lib/tempdl",
    )
    assert service["Environment"] == "SHIV_ROOT=/var/cache/tempdl" and service["CacheDirectory"] == "tempdl"


def test_the_guide_describes_the_unit_as_it_is(service):
    guide = " ".join(GUIDE.read_text(encoding="utf-8").split())  # the guide wraps its lines
    assert f"runs `{service['ExecStart'].removeprefix('/usr/bin/')}` as user `{service['User']}`" in guide
    assert f"`TimeoutStopSec={service['TimeoutStopSec']}`" in guide


def test_stop_timeout_outlasts_the_graceful_shutdown(service):
    assert service["KillSignal"] == "SIGTERM" and service["Restart"] == "on-failure"
    timeout = int(service["TimeoutStopSec"].removesuffix("s"))
    assert timeout > Settings().shutdown_grace + CLOSING_WAIT


def test_is_hardened(service):
    expected = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "CapabilityBoundingSet": "",
    }
    assert {key: service.get(key) for key in expected} == expected


@pytest.mark.ci_may_skip  # systemd is not an engine the suite installs
@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_finds_nothing_to_say():
    done = subprocess.run(["systemd-analyze", "verify", str(UNIT)], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")
