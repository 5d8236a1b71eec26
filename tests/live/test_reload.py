"""SIGHUP on a real server: the config is read again without dropping a download; a bad one is refused;
systemd hears READY=1, RELOADING=1 ... READY=1 and STOPPING=1 on its notify socket."""

from __future__ import annotations

import base64
import re
import signal
import socket
import urllib.parse
import uuid

import pytest

from tests.live_server import LIVE_FILES, LiveServer, live_config, quote_token
from tests.support import rows, sample_bytes, wait_until

PASSWORD = "reload-admin-pw"
ADMIN = f'[admin]\npassword = "{PASSWORD}"\n'
NEW_FILE = sample_bytes(70_000, seed=21)


def auth() -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()}


def admin_issue(server: LiveServer, file_id: str) -> tuple[int, str]:
    """Issue a link from the dashboard's form, as a browser would (cookie and `_xsrf` field)."""
    page = server.request("GET", "/admin/", headers=auth())
    assert page.status == 200
    cookie = page.headers["Set-Cookie"].split(";")[0]
    token = re.search(r'name="_xsrf" value="([^"]+)"', page.body.decode()).group(1)
    body = urllib.parse.urlencode({"_xsrf": token, "file_id": file_id}).encode()
    headers = {**auth(), "Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"}
    response = server.request("POST", "/admin/links", headers=headers, body=body)
    return response.status, response.body.decode()


def read_rest(client: socket.socket) -> bytes:
    """The rest of a `Connection: close` response."""
    chunks = []
    while chunk := client.recv(1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def reloads(server: LiveServer) -> int:
    return server.log().count("event=reloaded") + server.log().count("event=reload_refused")


@pytest.fixture
def server(tmp_path):
    server = LiveServer.with_live_files(tmp_path, extra_config="link_ttl = 600\n" + ADMIN)
    yield server
    server.kill()


def rewrite(server: LiveServer, extra: str, files: str = "") -> None:
    server.config_path.write_text(live_config(server.root, server.port, extra) + files, encoding="utf-8")


def test_sighup_offers_the_new_config_while_a_download_goes_on_byte_exact(server):
    server.start()
    assert admin_issue(server, "extra")[0] == 400  # not on offer yet
    client = socket.create_connection(("127.0.0.1", server.port))
    path = quote_token(server.issue("large"))
    client.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    head = client.recv(65536)  # the client reads a little, then stalls: the download is in flight
    (server.root / "files" / "extra.bin").write_bytes(NEW_FILE)
    rewrite(server, "link_ttl = 77\n" + ADMIN, '\n[[files]]\nid = "extra"\npath = "extra.bin"\nkeywords = ["extra"]\n')
    server.process.send_signal(signal.SIGHUP)
    wait_until(lambda: reloads(server) == 1, timeout=10, what="the reload", detail=server.log)
    assert re.search(r"event=reloaded config=\S+ changed=\S*link_ttl\S* files=5", server.log())
    assert "event=reload_needs_restart" not in server.log()

    status, page = admin_issue(server, "extra")
    assert status == 200
    [issuance] = rows(server.database, "SELECT id, created_at, expires_at FROM issuances WHERE file_id = 'extra'")
    assert (issuance["expires_at"] - issuance["created_at"]).total_seconds() == 77  # the new link_ttl
    link = re.search(r'<input id="link" readonly value="([^"]+)"', page).group(1)
    fetched = server.request("GET", urllib.parse.urlsplit(link).path)
    assert fetched.status == 200 and fetched.body == NEW_FILE

    received = head + read_rest(client)
    client.close()
    headers, _, body = received.partition(b"\r\n\r\n")
    assert headers.startswith(b"HTTP/1.1 200")
    assert body == LIVE_FILES["large"][1]  # every byte, in order, across the reload
    big = server.settled_attempts(expected=2)
    assert [(row["file_id"], row["outcome"], row["bytes_sent"]) for row in big if row["file_id"] == "large"] == [
        ("large", "ok", len(LIVE_FILES["large"][1]))
    ]


def test_a_config_that_does_not_load_is_refused_and_the_running_one_stays(server):
    server.start()
    path = quote_token(server.issue("small"))
    rewrite(server, 'link_ttl = "soon"\n' + ADMIN)
    server.process.send_signal(signal.SIGHUP)
    wait_until(lambda: reloads(server) == 1, timeout=10, what="the refused reload", detail=server.log)
    refused = [line for line in server.log().splitlines() if "reload" in line]
    assert len(refused) == 1 and "level=ERROR" in refused[0] and "event=reload_refused" in refused[0]
    assert "link_ttl" in refused[0] and "kept=running_config" in refused[0]
    assert admin_issue(server, "small")[0] == 200
    [issuance] = rows(server.database, "SELECT created_at, expires_at FROM issuances WHERE channel = 'admin'")
    assert (issuance["expires_at"] - issuance["created_at"]).total_seconds() == 600  # still the old link_ttl
    assert server.request("GET", path).body == LIVE_FILES["small"][1]


def test_keys_that_need_a_restart_are_named_and_kept(server, tmp_path):
    server.start()
    text = server.config_path.read_text().replace(
        f'data_dir = "{tmp_path / "data"}"', f'data_dir = "{tmp_path / "elsewhere"}"'
    )
    server.config_path.write_text(text)
    server.process.send_signal(signal.SIGHUP)
    wait_until(lambda: reloads(server) == 1, timeout=10, what="the reload", detail=server.log)
    assert "event=reload_needs_restart keys=data_dir,database_url kept=running_values" in server.log()
    assert server.request("GET", "/healthz").status == 200
    assert admin_issue(server, "small")[0] == 200
    assert len(rows(server.database, "SELECT id FROM issuances")) == 1  # in the database it started with
    assert not (tmp_path / "elsewhere").exists()


def test_systemd_hears_ready_reloading_ready_stopping(server):
    name = f"tempdl-test-{uuid.uuid4().hex}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind("\0" + name)  # the abstract namespace, as systemd's `@` sockets
    listener.settimeout(15)
    server.extra_env["NOTIFY_SOCKET"] = "@" + name
    try:
        server.start()
        assert listener.recv(4096) == b"READY=1"
        server.process.send_signal(signal.SIGHUP)
        reloading = listener.recv(4096).decode()
        assert re.fullmatch(r"RELOADING=1\nMONOTONIC_USEC=\d+", reloading)
        assert listener.recv(4096) == b"READY=1"
        assert server.stop() == 0
        assert listener.recv(4096) == b"STOPPING=1"
    finally:
        listener.close()
