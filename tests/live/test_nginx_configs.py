"""The two nginx files in deploy/ pass `nginx -t` as shipped, HTTPS block included.

Each is put inside a minimal `http { }` (it is a conf.d file), with a self-signed certificate the
test makes in place of the Let's Encrypt paths and log paths under the test's folder; nothing
else in the file is changed. The x-accel file's HTTPS server is shipped commented out, so the test
uncomments it exactly as its comment tells the operator to.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.engines import nginx_binary, skip_or_fail_without_nginx

REPO = Path(__file__).resolve().parents[2]
DIRECT = REPO / "deploy" / "nginx-direct.conf"
X_ACCEL = REPO / "deploy" / "nginx-x-accel.conf"
LETSENCRYPT = "/etc/letsencrypt/live/dl.example.com/"
HTTPS_SERVER = re.compile(r"^# server \{\n(?:#.*\n)*?# \}\n", re.MULTILINE)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tls")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=dl.example.com",
         "-keyout", str(folder / "privkey.pem"), "-out", str(folder / "fullchain.pem")],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return folder


def _nginx_version() -> tuple[int, ...]:
    done = subprocess.run([nginx_binary(), "-v"], capture_output=True, text=True, check=True)
    return tuple(int(part) for part in re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", done.stderr).groups())


def _for_this_nginx(site: str) -> str:
    """Before nginx 1.25.1 there is no `http2` directive: the files' own comment says what instead."""
    if _nginx_version() >= (1, 25, 1):
        return site
    assert site.count("    http2 on;\n") >= 1
    site = site.replace("    http2 on;\n", "")
    return site.replace("listen 443 ssl;", "listen 443 ssl http2;").replace(
        "listen [::]:443 ssl;", "listen [::]:443 ssl http2;"
    )


def nginx_test(tmp_path: Path, site: str, certificate: Path) -> subprocess.CompletedProcess[str]:
    prefix = tmp_path / "nginx"
    (prefix / "logs").mkdir(parents=True)
    site = site.replace(LETSENCRYPT, f"{certificate}/").replace("/var/log/nginx/", f"{prefix}/logs/")
    (prefix / "site.conf").write_text(_for_this_nginx(site), encoding="utf-8")
    temp_paths = "".join(
        f"    {kind}_temp_path {prefix}/{kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (prefix / "nginx.conf").write_text(
        f"error_log {prefix}/logs/error.log;\npid {prefix}/nginx.pid;\nevents {{}}\n"
        f"http {{\n{temp_paths}    access_log off;\n    include {prefix}/site.conf;\n}}\n",
        encoding="utf-8",
    )
    return subprocess.run(
        [nginx_binary(), "-t", "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def uncommented_https(site: str) -> str:
    [block] = HTTPS_SERVER.findall(site)
    return site.replace(block, re.sub(r"^# ?", "", block, flags=re.MULTILINE))


def test_direct_passes_nginx_t(tmp_path: Path, certificate: Path):
    skip_or_fail_without_nginx()
    done = nginx_test(tmp_path, DIRECT.read_text(encoding="utf-8"), certificate)
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr


def test_x_accel_with_its_https_server_uncommented_passes_nginx_t(tmp_path: Path, certificate: Path):
    skip_or_fail_without_nginx()
    site = uncommented_https(X_ACCEL.read_text(encoding="utf-8"))
    assert "\nserver {\n    listen 443 ssl;\n" in site
    done = nginx_test(tmp_path, site, certificate)
    assert done.returncode == 0, done.stderr


def test_a_broken_file_fails_nginx_t(tmp_path: Path, certificate: Path):
    skip_or_fail_without_nginx()
    broken = DIRECT.read_text(encoding="utf-8").rstrip().removesuffix("}")
    assert nginx_test(tmp_path, broken, certificate).returncode != 0


@pytest.mark.parametrize("path", [DIRECT, X_ACCEL], ids=["direct", "x-accel"])
def test_https_servers_say_hsts_http2_and_the_forwarded_headers(path: Path):
    site = path.read_text(encoding="utf-8")
    https = site if path == DIRECT else uncommented_https(site)
    assert re.search(r"^\s*http2 on;$", https, re.MULTILINE)
    assert not re.search(r"^\s*listen [^;]*\bhttp2\b", https, re.MULTILINE)  # deprecated since 1.25.1
    assert 'add_header Strict-Transport-Security "max-age=31536000" always;' in https
    for header in ("X-Real-IP $remote_addr", "X-Forwarded-For $proxy_add_x_forwarded_for", "X-Forwarded-Proto $scheme"):
        assert f"proxy_set_header {header};" in https


def test_direct_redirects_port_80_and_streams_unbuffered():
    site = DIRECT.read_text(encoding="utf-8")
    assert re.search(r"listen 80;\n.*?return 301 https://\$host\$request_uri;", site, re.DOTALL)
    assert "proxy_buffering off;" in site and "proxy_pass http://127.0.0.1:8000;" in site
