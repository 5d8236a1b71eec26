"""nginx configured from the shipped deploy/nginx-x-accel.conf, for tests and benchmarks on loopback.

The file is taken as the operator gets it; only what every machine changes (the upstream ports,
files_dir, the log path, listen and server_name) is pointed at the test's own, and each of those
lines must be found exactly once, so a test fails when the shipped file loses one.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.engines import minimal_nginx_config

REPO = Path(__file__).resolve().parent.parent
DEPLOY_CONF = REPO / "deploy" / "nginx-x-accel.conf"
ACCESS_LOG = "tempdl-access.log"


def nginx_config_from_deploy(files_dir: Path, upstream_ports: list[int], port: int, prefix: Path) -> str:
    """A full nginx.conf for `throwaway_nginx`: deploy/nginx-x-accel.conf inside `minimal_nginx_config`.

    `upstream_ports` fill the shipped two `server` lines of `upstream tempdl` (one port: both).
    Use with `functools.partial(nginx_config_from_deploy, files_dir, ports)`.
    """
    upstream_ports = list(upstream_ports) * (2 if len(upstream_ports) == 1 else 1)
    shipped = DEPLOY_CONF.read_text(encoding="utf-8")
    match = re.search(r"^server \{\n(.*?)^\}\n", shipped, re.MULTILINE | re.DOTALL)
    assert match, "deploy/nginx-x-accel.conf has no server { } block at the top level"
    http_level, server_body = shipped[: match.start()], match.group(1)

    def swap(text: str, old: str, new: str) -> str:
        assert text.count(old) == 1, f"deploy/nginx-x-accel.conf should hold {old!r} once"
        return text.replace(old, new)

    http_level = swap(http_level, "server 127.0.0.1:8001;", f"server 127.0.0.1:{upstream_ports[0]};")
    http_level = swap(http_level, "server 127.0.0.1:8002;", f"server 127.0.0.1:{upstream_ports[1]};")
    server_body = swap(server_body, "alias /srv/tempdl/static_files/;", f'alias "{files_dir}/";')
    log_path = prefix / "logs" / ACCESS_LOG
    server_body = swap(server_body, "/var/log/nginx/tempdl-access.log", f'"{log_path}"')
    # minimal_nginx_config writes the listen line (loopback, a free port) and server_name.
    server_body = re.sub(r"^\s*(listen|server_name) .*\n", "", server_body, flags=re.MULTILINE)
    return minimal_nginx_config(port, prefix, server_body, http_extra=http_level)
