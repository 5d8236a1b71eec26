"""A server on a SQLite file serves followers without ever loading SQLAlchemy.

SQLAlchemy costs a process 14.3 MiB resident. The migration's child compiles the serving
statements for sqlite3 and the server runs those; only an operator page (the reports are
SQLAlchemy queries) loads it. The check reads the server's memory map, where SQLAlchemy's
compiled extensions show once it is imported; the last step proves it would see them.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest

from tests.live_server import LiveServer, quote_token
from tests.support import text_message, wait_until

ADMIN_PASSWORD = "memory-test-password-31"


def sqlalchemy_mapped(server: LiveServer) -> bool:
    assert server.process is not None
    return "/sqlalchemy/" in Path(f"/proc/{server.process.pid}/maps").read_text()


def children(pid: int) -> list[str]:
    """The state letters of `pid`'s child processes ("Z": exited, not yet collected)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(fields[0])
    return found


@pytest.fixture
def server(tmp_path):
    limits = "[limits]\ntotal_daily_bytes = 1000000000\nrecipient_daily_bytes = 100000000\n"  # their counts run too
    running = LiveServer.with_live_files(tmp_path, extra_config=limits)
    running.start(env={"TEMPDL_ADMIN_PASSWORD": ADMIN_PASSWORD})
    yield running
    running.stop()


def test_followers_are_served_without_sqlalchemy_and_the_first_operator_page_loads_it(server: LiveServer):
    link = quote_token(server.issue("small", "--to", "alice", "--max-downloads", "3"))
    assert server.request("GET", link).status == 200
    assert server.request("GET", link, headers={"Range": "bytes=0-99"}).status == 206
    reply = server.request(
        "POST", f"/wechat?{server.wechat_query()}", body=text_message("big", create_time=int(time.time()))
    )
    assert reply.status == 200 and b"/api/get_file/" in reply.body
    assert server.request("GET", "/healthz").status == 200
    rows = server.rows("SELECT method, outcome, bytes_sent FROM download_attempts ORDER BY id")
    assert [tuple(row) for row in rows] == [("GET", "ok", 4096), ("GET", "ok", 100)]
    assert not sqlalchemy_mapped(server)
    # The migration's child rolled the reports up and exited; the server collected it.
    wait_until(lambda: not children(server.process.pid), timeout=10, what="the child to be collected")

    credentials = base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
    page = server.request("GET", "/admin/", headers={"Authorization": f"Basic {credentials}"})
    assert page.status == 200
    assert sqlalchemy_mapped(server)
