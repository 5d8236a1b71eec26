"""Issuing a link: the row it writes, the TTL and cap it picks, and the per-follower hourly cap.

A real SQLite audit database in tmp_path; every time is the test's, passed in as `now`.
"""

from __future__ import annotations

import asyncio
import datetime

import pytest

from tempdl.config.settings import LimitSettings, Settings
from tempdl.errors import IssuanceCapReached
from tempdl.links.catalog import OfferedFile
from tempdl.links.issuing import DOWNLOAD_ROUTE, IssuedLink, Issuer
from tempdl.links.tokens import LinkSigner
from tests.support import rows, sqlite_audit

NOW = datetime.datetime(2026, 11, 30, 8, 0, tzinfo=datetime.UTC)
PUBLIC_URL = "https://dl.example.com"
MANUAL = OfferedFile(id="manual", path="说明.pdf", keywords=("manual",), name="说明.pdf")
SIGNER = LinkSigner(["issuing-test-key"])


def minutes(count: float) -> datetime.timedelta:
    return datetime.timedelta(minutes=count)


@pytest.fixture
def database(tmp_path):
    return tmp_path / "audit.sqlite3"


@pytest.fixture
def audit(database):
    with sqlite_audit(database) as store:
        yield store


def issuer_with(audit, *, link_ttl: int = 600, max_downloads: int = 0, hourly: int = 0) -> Issuer:
    limits = LimitSettings(max_downloads=max_downloads, issues_per_recipient_per_hour=hourly)
    return Issuer(Settings(public_url=PUBLIC_URL, link_ttl=link_ttl, limits=limits), audit, SIGNER)


def issuance_rows(database) -> list[tuple]:
    return [
        tuple(row)
        for row in rows(
            database,
            "SELECT id, file_id, recipient, channel, created_at, expires_at, max_downloads, revoked_at "
            "FROM issuances ORDER BY id",
        )
    ]


def test_a_link_is_one_row_and_a_url_naming_it(audit, database):
    issued = issuer_with(audit).issue(MANUAL, recipient="alice", channel="cli", now=NOW)

    assert issued == IssuedLink(1, issued.url, 600, NOW + minutes(10))
    base, _, token = issued.url.rpartition("/")
    assert base + "/" == PUBLIC_URL + DOWNLOAD_ROUTE == "https://dl.example.com/api/get_file/"
    assert SIGNER.read(token).issuance_id == 1
    naive = NOW.replace(tzinfo=None)
    assert issuance_rows(database) == [(1, "manual", "alice", "cli", naive, naive + minutes(10), None, None)]


def test_link_for_signs_the_id_under_the_public_url(audit):
    url = issuer_with(audit).link_for(77)
    assert url.startswith("https://dl.example.com/api/get_file/")
    assert SIGNER.read(url.rpartition("/")[2]).issuance_id == 77


@pytest.mark.parametrize(
    ("asked", "file_ttl", "expected"),
    [(None, None, 600), (None, 3600, 3600), (60, 3600, 60), (60, None, 60)],
)
def test_the_ttl_asked_for_beats_the_files_which_beats_link_ttl(audit, database, asked, file_ttl, expected):
    offered = OfferedFile("manual", "说明.pdf", ("manual",), "说明.pdf", ttl=file_ttl)
    issued = issuer_with(audit, link_ttl=600).issue(offered, recipient=None, channel="cli", now=NOW, ttl=asked)

    assert (issued.ttl, issued.expires_at) == (expected, NOW + datetime.timedelta(seconds=expected))
    [row] = issuance_rows(database)
    assert row[5] == (NOW + datetime.timedelta(seconds=expected)).replace(tzinfo=None)


@pytest.mark.parametrize(
    ("asked", "file_cap", "default_cap", "stored"),
    [
        (None, None, 0, None),  # 0: no cap, stored as NULL
        (None, None, 3, 3),
        (None, 2, 3, 2),
        (5, 2, 3, 5),
        (0, 2, 3, None),  # the operator asked for no cap: the file's does not come back
    ],
)
def test_the_download_cap_asked_for_beats_the_files_which_beats_the_default(
    audit, database, asked, file_cap, default_cap, stored
):
    offered = OfferedFile("manual", "说明.pdf", ("manual",), "说明.pdf", max_downloads=file_cap)
    issuer = issuer_with(audit, max_downloads=default_cap)
    issuer.issue(offered, recipient="alice", channel="cli", now=NOW, max_downloads=asked)

    [row] = issuance_rows(database)
    assert row[6] == stored


def test_a_follower_over_the_hourly_cap_is_told_when_and_nothing_is_recorded(audit, database):
    issuer = issuer_with(audit, hourly=2)
    ask = {"recipient": "oFollower", "channel": "wechat", "limit_recipient": True}
    issuer.issue(MANUAL, now=NOW, **ask)
    issuer.issue(MANUAL, now=NOW + minutes(10), **ask)

    with pytest.raises(IssuanceCapReached) as reached:
        issuer.issue(MANUAL, now=NOW + minutes(20), **ask)
    assert (reached.value.cap, reached.value.retry_at) == (2, NOW + minutes(60))
    assert [row[0] for row in issuance_rows(database)] == [1, 2]

    # An hour after the first, the window holds one link: the next one is issued.
    assert issuer.issue(MANUAL, now=NOW + minutes(60), **ask).issuance_id == 3


def test_the_hourly_cap_is_for_followers_asking_not_for_the_operator(audit, database):
    issuer = issuer_with(audit, hourly=1)
    for minute in range(3):
        issuer.issue(MANUAL, recipient="oFollower", channel="cli", now=NOW + minutes(minute))
    for minute in range(3):  # no recipient to count against
        issuer.issue(MANUAL, recipient=None, channel="wechat", now=NOW + minutes(minute), limit_recipient=True)
    assert len(issuance_rows(database)) == 6


def test_issuing_from_the_event_loop_writes_the_same_row(audit, database):
    issuer = issuer_with(audit, link_ttl=900)

    issued = asyncio.run(issuer.issue_from_event_loop(MANUAL, recipient="oFollower", channel="wechat", now=NOW))

    assert (issued.issuance_id, issued.ttl, issued.expires_at) == (1, 900, NOW + minutes(15))
    assert SIGNER.read(issued.url.rpartition("/")[2]).issuance_id == 1
    naive = NOW.replace(tzinfo=None)
    assert issuance_rows(database) == [(1, "manual", "oFollower", "wechat", naive, naive + minutes(15), None, None)]


def test_issuing_from_the_event_loop_keeps_the_hourly_cap(audit, database):
    issuer = issuer_with(audit, hourly=1)

    async def twice() -> None:
        await issuer.issue_from_event_loop(MANUAL, recipient="oF", channel="wechat", now=NOW, limit_recipient=True)
        await issuer.issue_from_event_loop(
            MANUAL, recipient="oF", channel="wechat", now=NOW + minutes(5), limit_recipient=True
        )

    with pytest.raises(IssuanceCapReached) as reached:
        asyncio.run(twice())
    assert reached.value.retry_at == NOW + minutes(60)
    assert len(issuance_rows(database)) == 1
