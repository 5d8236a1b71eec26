"""A small audit history written row by row, whose every report figure can be worked out by hand.

Times are UTC. Two rows sit just before midnight UTC, which is the next morning in Asia/Shanghai:
they move to the next day there. The expected figures are in tests/unit/reports/test_stats.py.
"""

from __future__ import annotations

import datetime

from sqlalchemy import Engine, insert

from tempdl.audit.tables import download_attempts, issuances

ALICE = "oyORnuP8q7ou2gfYjqLzSIWZf0rs"
BOB = "oBobxQ2mZr81kLpW4fUcN7HsT0aa"


def at(day: int, hour: int, minute: int = 0) -> datetime.datetime:
    return datetime.datetime(2026, 11, day, hour, minute, tzinfo=datetime.UTC)


ISSUANCES = [
    # id, created_at, file_id, recipient
    (1, at(28, 10), "InstMsiW.exe", ALICE),
    (2, at(28, 23, 30), "manual", BOB),
    (3, at(29, 9), "InstMsiW.exe", ALICE),
    (4, at(30, 8), "hello.txt", None),  # `issue` without --to
    (5, at(30, 9), "manual", BOB),  # never used
]
ATTEMPTS = [
    # issuance, file_id, started_at, outcome, http_status, bytes_sent
    (1, "InstMsiW.exe", at(28, 10, 1), "ok", 200, 300_000),
    (1, "InstMsiW.exe", at(28, 10, 5), "not_modified", 304, 0),
    (2, "manual", at(28, 23, 40), "partial", 206, 1000),
    (2, "manual", at(29, 0, 10), "ok", 206, 1400),
    (None, None, at(29, 12), "bad", 403, 0),
    (3, "InstMsiW.exe", at(29, 9, 20), "expired", 410, 0),
    (4, "hello.txt", at(30, 8, 1), "ok", 200, 13),
    (1, "InstMsiW.exe", at(30, 9), "expired", 410, 0),
    (3, "InstMsiW.exe", at(29, 9, 1), "landing", 200, 0),
]


def write_hand_built_history(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(
            insert(issuances),
            [
                {
                    "id": issuance_id,
                    "created_at": created,
                    "expires_at": created + datetime.timedelta(minutes=10),
                    "file_id": file_id,
                    "recipient": recipient,
                    "channel": "wechat" if recipient else "cli",
                }
                for issuance_id, created, file_id, recipient in ISSUANCES
            ],
        )
        connection.execute(
            insert(download_attempts),
            [
                {
                    "issuance_id": issuance_id,
                    "file_id": file_id,
                    "started_at": started,
                    "finished_at": started + datetime.timedelta(seconds=2),
                    "outcome": outcome,
                    "http_status": status,
                    "bytes_sent": sent,
                    "client_ip": "203.0.113.7",
                    "user_agent": "curl/8.5.0",
                }
                for issuance_id, file_id, started, outcome, status, sent in ATTEMPTS
            ],
        )
