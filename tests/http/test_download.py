"""The download endpoint over real HTTP: statuses, headers, exact bytes, and the audit rows."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import socket

import pytest

from tests.support import rows

pytestmark = pytest.mark.both_databases

BIG = 300_000


@pytest.fixture
def attempts(audit_rows):
    """`await attempts()`: the download_attempts rows, in order."""

    async def _attempts() -> list:
        return await audit_rows("SELECT * FROM download_attempts ORDER BY id")

    return _attempts


@pytest.mark.gen_test
async def test_whole_file_with_headers(fetch, issue_link, files_dir, settings, attempts):
    response = await fetch(await issue_link("InstMsiW.exe"))
    assert response.code == 200
    assert response.body == (files_dir / "InstMsiW.exe").read_bytes()
    headers = response.headers
    assert headers["Content-Length"] == str(BIG)
    assert headers["Accept-Ranges"] == "bytes"
    assert headers["Cache-Control"] == "private, no-store"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Disposition"] == 'attachment; filename="InstMsiW.exe"'
    assert headers["Content-Type"] in {
        "application/x-msdownload",
        "application/x-msdos-program",
        "application/octet-stream",
    }
    assert headers["Etag"].startswith('"') and "Expires" not in headers
    [row] = await attempts()
    assert (row["outcome"], row["http_status"], row["bytes_sent"], row["range_start"], row["range_end"]) == (
        "ok",
        200,
        BIG,
        0,
        BIG - 1,
    )


@pytest.mark.gen_test
async def test_chinese_file_name_gets_ascii_fallback_and_rfc5987(fetch, issue_link):
    response = await fetch(await issue_link("manual"))
    assert response.code == 200
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="')
    disposition.encode("ascii")  # header stays ASCII
    assert "filename*=UTF-8''%E8%AF%B4%E6%98%8E.pdf" in disposition
    assert response.headers["Content-Type"] == "application/pdf"


@pytest.fixture
def config_text() -> str:
    return """
[[files]]
id = "InstMsiW.exe"
path = "InstMsiW.exe"
keywords = ["Open Sesame"]

[[files]]
id = "manual"
path = "说明.pdf"
keywords = ["manual"]

[[files]]
id = "hello.txt"
path = "hello.txt"
keywords = ["hello"]
"""


@pytest.mark.gen_test
async def test_tampered_token_is_403_bilingual_html_and_json(fetch, issue_link, settings, attempts):
    path = await issue_link("InstMsiW.exe")
    tampered = path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")
    page = await fetch(tampered, headers={"Accept": "text/html"})
    assert page.code == 403
    text = page.body.decode()
    assert "链接无效" in text and "This link is not valid" in text
    assert page.headers["Content-Type"].startswith("text/html")
    data = await fetch(tampered, headers={"Accept": "application/json"})
    assert data.code == 403
    body = json.loads(data.body)
    assert body["status"] == "fail" and body["reason"] == "bad"
    assert "链接无效" in body["data"] and "not valid" in body["data"]
    assert [(r["outcome"], r["http_status"], r["issuance_id"], r["bytes_sent"]) for r in (await attempts())] == [
        ("bad", 403, None, 0),
        ("bad", 403, None, 0),
    ]


@pytest.mark.gen_test
async def test_expired_link_is_410_and_still_names_its_issuance(fetch, issue_link, clock, settings, attempts):
    path = await issue_link("hello.txt")
    clock.advance(599)
    assert (await fetch(path)).code == 200
    clock.advance(2)
    response = await fetch(path, headers={"Accept": "application/json"})
    assert response.code == 410
    assert json.loads(response.body)["reason"] == "expired"
    page = await fetch(path)
    assert "链接已过期" in page.body.decode() and "expired" in page.body.decode()
    issuance_id = rows(settings.database_url, "SELECT id FROM issuances")[0]["id"]
    assert [(r["outcome"], r["issuance_id"]) for r in (await attempts())] == [
        ("ok", issuance_id),
        ("expired", issuance_id),
        ("expired", issuance_id),
    ]


@pytest.mark.gen_test
async def test_file_removed_after_issuance_is_404_not_found(fetch, issue_link, files_dir, settings, attempts):
    path = await issue_link("hello.txt")
    (files_dir / "hello.txt").unlink()
    response = await fetch(path)
    assert response.code == 404
    assert "不再提供" in response.body.decode() and "no longer" in response.body.decode()
    assert (await attempts())[0]["outcome"] == "not_found"


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "header, status, first, last",
    [
        ("bytes=100-199", 206, 100, 199),
        ("bytes=-500", 206, BIG - 500, BIG - 1),
        ("bytes=299000-", 206, 299_000, BIG - 1),
        ("bytes=0-", 200, 0, BIG - 1),
        ("bytes=100-999999999", 206, 100, BIG - 1),
        ("bytes=0-1,5-9", 200, 0, BIG - 1),  # multi-range: whole file, never multipart
        ("bytes=0-99999,0-99999,0-99999", 200, 0, BIG - 1),
        ("bytes=abc", 200, 0, BIG - 1),
        ("bytes=--5", 200, 0, BIG - 1),  # not digits: ignored, as RFC 9110 lets a server do
        ("bytes=1_0-2_0", 200, 0, BIG - 1),
        ("bytes=+5-+9", 200, 0, BIG - 1),
        ("Bytes=5-9", 206, 5, 9),
    ],
)
async def test_ranges(fetch, issue_link, files_dir, settings, header, status, first, last, attempts):
    response = await fetch(await issue_link("InstMsiW.exe"), headers={"Range": header})
    content = (files_dir / "InstMsiW.exe").read_bytes()
    assert response.code == status
    assert response.body == content[first : last + 1]
    if status == 206:
        assert response.headers["Content-Range"] == f"bytes {first}-{last}/{BIG}"
    [row] = await attempts()
    assert (row["http_status"], row["range_start"], row["range_end"], row["bytes_sent"], row["outcome"]) == (
        status,
        first,
        last,
        last - first + 1,
        "ok",
    )


@pytest.mark.gen_test
@pytest.mark.parametrize("header", ["bytes=300000-", "bytes=999999-1000000", "bytes=-0"])
async def test_unsatisfiable_range_is_416(fetch, issue_link, settings, header, attempts):
    response = await fetch(await issue_link("InstMsiW.exe"), headers={"Range": header})
    assert response.code == 416
    assert response.headers["Content-Range"] == f"bytes */{BIG}"
    [row] = await attempts()
    assert (row["http_status"], row["bytes_sent"], row["outcome"]) == (416, 0, "unsatisfiable")


@pytest.mark.gen_test
async def test_curl_resuming_a_finished_file_is_unsatisfiable_not_bad(fetch, issue_link, attempts):
    path = await issue_link("InstMsiW.exe")
    assert len((await fetch(path)).body) == BIG
    again = await fetch(path, headers={"Range": f"bytes={BIG}-"})  # what `curl -C -` sends
    assert again.code == 416 and again.headers["Content-Range"] == f"bytes */{BIG}"
    assert [(row["outcome"], row["http_status"]) for row in await attempts()] == [("ok", 200), ("unsatisfiable", 416)]


@pytest.mark.gen_test
async def test_head_has_the_headers_of_get_and_no_body(fetch, issue_link, settings, attempts):
    path = await issue_link("InstMsiW.exe")
    head = await fetch(path, method="HEAD")
    get = await fetch(path)
    assert head.code == 200 and head.body == b""
    for name in (
        "Content-Length",
        "Content-Type",
        "Etag",
        "Last-Modified",
        "Content-Disposition",
        "Accept-Ranges",
        "Cache-Control",
    ):
        assert head.headers[name] == get.headers[name], name
    first, second = await attempts()
    assert (first["outcome"], first["bytes_sent"], first["http_status"]) == ("ok", 0, 200)
    assert (first["method"], second["method"]) == ("HEAD", "GET")


@pytest.mark.gen_test
async def test_conditional_requests(fetch, issue_link, files_dir, settings, attempts):
    path = await issue_link("InstMsiW.exe")
    first = await fetch(path)
    etag, modified = first.headers["Etag"], first.headers["Last-Modified"]
    assert (await fetch(path, headers={"If-None-Match": etag})).code == 304
    assert (await fetch(path, headers={"If-Modified-Since": modified})).code == 304
    assert (await attempts())[1]["outcome"] == "not_modified"
    # If-Range with the current ETag resumes; with a stale one the whole file comes back.
    resumed = await fetch(path, headers={"Range": "bytes=1000-", "If-Range": etag})
    assert resumed.code == 206 and len(resumed.body) == BIG - 1000
    stale = await fetch(path, headers={"Range": "bytes=1000-", "If-Range": '"stale"'})
    assert stale.code == 200 and len(stale.body) == BIG
    by_date = await fetch(path, headers={"Range": "bytes=1000-", "If-Range": modified})
    assert by_date.code == 206
    # The file changes: the ETag changes, so no client can splice two versions.
    (files_dir / "InstMsiW.exe").write_bytes(b"new version")
    os.utime(files_dir / "InstMsiW.exe", (1, 1))
    changed = await fetch(path, headers={"Range": "bytes=5-", "If-Range": etag})
    assert changed.code == 200 and changed.body == b"new version"


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "headers",
    [
        {"User-Agent": "Mozilla/5.0 (iPhone) AppleWebKit/605.1.15 MicroMessenger/8.0.47 NetType/WIFI"},
        {"User-Agent": "facebookexternalhit/1.1"},
        {"User-Agent": "curl/8", "Sec-Purpose": "prefetch;prerender"},
        {"User-Agent": "curl/8", "Purpose": "prefetch"},
    ],
)
async def test_wechat_browser_and_previews_get_a_landing_page(fetch, issue_link, settings, headers, attempts):
    response = await fetch(await issue_link("InstMsiW.exe"), headers=headers)
    assert response.code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    page = response.body.decode()
    assert "在浏览器打开" in page and "Open in Browser" in page
    assert "InstMsiW.exe" in page and "293.0 KiB" in page and "10 分钟" in page
    [row] = await attempts()
    assert (row["outcome"], row["bytes_sent"], row["http_status"]) == ("landing", 0, 200)


@pytest.mark.gen_test
async def test_resume_after_expiry_within_grace_only_for_a_started_download(fetch, issue_link, clock, files_dir):
    content = (files_dir / "InstMsiW.exe").read_bytes()
    started = await issue_link("InstMsiW.exe")
    never_started = await issue_link("InstMsiW.exe")
    assert (await fetch(started, headers={"Range": "bytes=0-999"})).code == 206
    clock.advance(600 + 1800)
    resumed = await fetch(started, headers={"Range": "bytes=1000-"})
    assert resumed.code == 206 and resumed.body == content[1000:]
    assert (await fetch(started)).code == 410  # a fresh download after expiry
    assert (await fetch(never_started, headers={"Range": "bytes=1000-"})).code == 410
    clock.advance(3600)
    assert (await fetch(started, headers={"Range": "bytes=1000-"})).code == 410


@pytest.mark.gen_test
async def test_landing_page_and_repr_digest_carry_the_files_sha256(fetch, issue_link, files_dir):
    path = await issue_link("InstMsiW.exe")
    wechat = {"User-Agent": "Mozilla/5.0 (iPhone) MicroMessenger/8.0.47"}
    content = (files_dir / "InstMsiW.exe").read_bytes()
    first = await fetch(path)
    assert first.code == 200 and "Repr-Digest" not in first.headers  # not known yet: now computing
    page = (await fetch(path, headers=wechat)).body.decode()
    assert hashlib.sha256(content).hexdigest() in page and "300,000" in page
    whole = await fetch(path)
    assert whole.headers["Repr-Digest"] == f"sha-256=:{base64.b64encode(hashlib.sha256(content).digest()).decode()}:"
    assert (await fetch(path, method="HEAD")).headers["Repr-Digest"] == whole.headers["Repr-Digest"]
    assert "Repr-Digest" not in (await fetch(path, headers={"Range": "bytes=0-9"})).headers  # a part: none
    # A new version of the file is hashed afresh, never served with the old digest.
    (files_dir / "InstMsiW.exe").write_bytes(b"version two")
    os.utime(files_dir / "InstMsiW.exe", (2, 2))
    assert "Repr-Digest" not in (await fetch(path)).headers
    page = (await fetch(path, headers=wechat)).body.decode()
    assert hashlib.sha256(b"version two").hexdigest() in page
    assert hashlib.sha256(content).hexdigest() not in page


@pytest.mark.gen_test
async def test_resume_grace_finishes_one_copy_and_no_more(fetch, issue_link, clock, files_dir, attempts):
    content = (files_dir / "InstMsiW.exe").read_bytes()
    path = await issue_link("InstMsiW.exe")
    assert (await fetch(path, headers={"Range": "bytes=0-0"})).code == 206  # one byte, in time
    clock.advance(600 + 60)
    rest = await fetch(path, headers={"Range": "bytes=1-"})
    assert rest.code == 206 and rest.body == content[1:]  # the copy is finished, once
    for header in ("bytes=1-", "bytes=150000-", "bytes=-10", "bytes=0-0"):
        assert (await fetch(path, headers={"Range": header})).code == 410, header  # no byte twice
    assert (await fetch(path)).code == 410  # nor a fresh copy
    rows = [(row["outcome"], row["http_status"], row["bytes_sent"]) for row in await attempts()]
    assert rows[:2] == [("ok", 206, 1), ("ok", 206, BIG - 1)]
    assert rows[2:] == [("expired", 410, 0)] * 5


@pytest.mark.gen_test
async def test_resume_grace_serves_only_bytes_not_yet_delivered(fetch, issue_link, clock, files_dir):
    content = (files_dir / "InstMsiW.exe").read_bytes()
    path = await issue_link("InstMsiW.exe")
    assert (await fetch(path, headers={"Range": "bytes=0-99999"})).code == 206
    assert (await fetch(path, headers={"Range": "bytes=200000-"})).code == 206  # a download manager's pieces
    clock.advance(600 + 60)
    assert (await fetch(path, headers={"Range": "bytes=100000-"})).code == 410  # overlaps 200000-
    assert (await fetch(path, headers={"Range": "bytes=99999-199999"})).code == 410  # overlaps byte 99999
    middle = await fetch(path, headers={"Range": "bytes=100000-199999"})
    assert middle.code == 206 and middle.body == content[100_000:200_000]
    assert (await fetch(path, headers={"Range": "bytes=100000-199999"})).code == 410


@pytest.mark.gen_test
async def test_two_resumes_at_once_after_expiry_get_one_copy(fetch, issue_link, clock):
    path = await issue_link("InstMsiW.exe")
    assert (await fetch(path, headers={"Range": "bytes=0-0"})).code == 206
    clock.advance(600 + 60)
    answers = await asyncio.gather(*(fetch(path, headers={"Range": "bytes=1-"}) for _ in range(5)))
    assert sorted(answer.code for answer in answers) == [206, 410, 410, 410, 410]


@pytest.mark.gen_test(timeout=20)
async def test_client_that_disconnects_mid_file_leaves_partial_with_its_bytes(
    http_server, issue_link, http_port, files_dir, attempts
):
    (files_dir / "InstMsiW.exe").write_bytes(os.urandom(8 * 1024 * 1024))
    path = await issue_link("InstMsiW.exe")
    reader, writer = await asyncio.open_connection("127.0.0.1", http_port)
    writer.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    received = len(await reader.readexactly(100_000))
    writer.transport.abort()  # RST, as a phone losing signal would
    [row] = await attempts()
    assert row["outcome"] == "partial"
    assert received <= row["bytes_sent"] + 1000  # headers came first, then at least what we read
    assert 0 < row["bytes_sent"] < 8 * 1024 * 1024


@pytest.mark.gen_test
async def test_server_header_does_not_advertise_the_tornado_version(fetch, issue_link):
    for response in (await fetch(await issue_link("hello.txt")), await fetch("/healthz"), await fetch("/nope")):
        assert response.headers["Server"] == "tempdl"
    assert (await fetch("/healthz", method="HEAD")).code == 200


@pytest.mark.gen_test
@pytest.mark.parametrize(
    ("accept", "expected_type"),
    [
        ("application/json, text/html;q=0.5", "application/json"),
        ("APPLICATION/JSON", "application/json"),
        ("text/html;q=0, application/json", "application/json"),
        ("application/json;q=0.5, text/html", "text/html"),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "text/html"),
    ],
)
async def test_refusal_body_follows_the_accept_preference(fetch, accept, expected_type):
    response = await fetch("/api/get_file/not-a-token", headers={"Accept": accept})
    assert response.code == 403
    assert response.headers["Content-Type"].startswith(expected_type)
    if expected_type == "application/json":
        assert json.loads(response.body)["reason"] == "bad"
    else:
        assert "This link is not valid" in response.body.decode()
