"""x-accel mode without nginx: tempdl decides and records, and hands nginx the file's location."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.both_databases


@pytest.fixture
def config_text() -> str:
    return """
serve_mode = "x-accel"
x_accel_prefix = "/_files/"
[limits]
rate_per_download = 500000
[[files]]
id = "hello.txt"
path = "hello.txt"
[[files]]
id = "manual"
path = "说明.pdf"
"""


@pytest.mark.gen_test
async def test_download_is_handed_to_nginx_and_recorded(fetch, issue_link, audit_rows):
    response = await fetch(await issue_link("hello.txt"), headers={"Range": "bytes=2-5"})
    assert response.code == 200
    assert response.body == b""
    assert response.headers["X-Accel-Redirect"] == "/_files/hello.txt"
    assert response.headers["X-Accel-Limit-Rate"] == "500000"
    assert response.headers["Content-Disposition"] == 'attachment; filename="hello.txt"'
    assert response.headers["Cache-Control"] == "private, no-store"
    attempt_id = int(response.headers["X-Tempdl-Attempt"])
    [row] = await audit_rows("SELECT * FROM download_attempts")
    assert row["id"] == attempt_id
    assert (row["range_start"], row["range_end"], row["finished_at"], row["outcome"]) == (2, 5, None, "partial")


@pytest.mark.gen_test
async def test_non_ascii_paths_are_percent_encoded_for_nginx(fetch, issue_link, files_dir):
    response = await fetch(await issue_link("manual"))
    assert response.headers["X-Accel-Redirect"] == "/_files/%E8%AF%B4%E6%98%8E.pdf"


@pytest.mark.gen_test
async def test_refusals_never_reach_nginx(fetch, issue_link, clock):
    path = await issue_link("hello.txt")
    clock.advance(3600)
    response = await fetch(path)
    assert response.code == 410 and "X-Accel-Redirect" not in response.headers
