"""`ingest-nginx-log`: in x-accel mode, nginx's access log says what each download really sent.

tempdl writes a download's row before nginx sends a byte (the claim that enforces the download
caps), and leaves it open: `finished_at` NULL, `outcome` partial, `bytes_sent` 0, its id in the
X-Tempdl-Attempt response header. nginx logs that id with what happened, in the `tempdl`
log_format of deploy/nginx-x-accel.conf, one key=value line per request:

    time=2026-11-30T08:00:05+00:00 msec=1796025605.123 attempt=42 status=206 bytes=1048576
    completion=OK request_time=0.051 upstream=127.0.0.1:8001

This module reads such lines and finishes the open rows: `bytes_sent` from `$body_bytes_sent`,
`outcome` `ok` when nginx completed a 200/206 (`$request_completion` = OK), `partial` when the
client went away, `not_modified` for a 304, `bad` for a 416 (as direct mode records them),
`http_status` from `$status`, `finished_at` from `$msec`. Only rows still open are written, so
running it again over the same (or a longer) log changes nothing. Other keys on the line are
ignored, so operators may log more; a line that is not in this format is counted as malformed.
"""

from __future__ import annotations

import datetime
import gzip
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from tempdl.audit.log import AuditLog
from tempdl.audit.records import Attempt, Outcome

BATCH = 1000
_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')


class MalformedLine(ValueError):
    """A line that is not in the `tempdl` log_format (the message says what is wrong)."""


@dataclass(frozen=True)
class LoggedRequest:
    attempt_id: int | None  # None: the request was no download tempdl handed to nginx
    status: int
    body_bytes: int
    completed: bool
    finished_at: datetime.datetime

    def attempt(self) -> Attempt:
        """The finished attempt row this request makes (only `attempt_id` requests have one)."""
        assert self.attempt_id is not None
        outcome, sent = Outcome.PARTIAL, 0
        if self.status in (200, 206):
            outcome, sent = (Outcome.OK if self.completed else Outcome.PARTIAL), self.body_bytes
        elif self.status == 304:
            outcome = Outcome.NOT_MODIFIED
        elif self.status == 416:
            outcome = Outcome.BAD
        return Attempt(
            id=self.attempt_id,
            started_at=self.finished_at,  # not written: the row keeps its own
            finished_at=self.finished_at,
            outcome=outcome,
            http_status=self.status,
            bytes_sent=sent,
        )


def parse_line(line: str) -> LoggedRequest:
    """Read one `tempdl` log_format line; raises `MalformedLine`."""
    fields = {key: value.strip('"') for key, value in _FIELD.findall(line)}
    try:
        status = int(fields["status"])
        body_bytes = int(fields["bytes"])
    except KeyError as missing:
        raise MalformedLine(f"no {missing.args[0]}=") from None
    except ValueError:
        raise MalformedLine("status= and bytes= must be numbers") from None
    return LoggedRequest(
        attempt_id=_attempt_id(fields.get("attempt", "")),
        status=status,
        body_bytes=body_bytes,
        completed=fields.get("completion") == "OK",
        finished_at=_logged_at(fields),
    )


def _attempt_id(value: str) -> int | None:
    """`$upstream_http_x_tempdl_attempt` (nginx keeps the last upstream's); `-` when there was none."""
    if value in ("", "-"):
        return None
    if not value.isdigit():
        raise MalformedLine(f"attempt={value!r} is not an attempt id")
    return int(value)


def _logged_at(fields: dict[str, str]) -> datetime.datetime:
    try:
        if "msec" in fields:
            return datetime.datetime.fromtimestamp(float(fields["msec"]), datetime.UTC)
        if "time" in fields:
            return datetime.datetime.fromisoformat(fields["time"]).astimezone(datetime.UTC)
    except (ValueError, OverflowError):
        raise MalformedLine("msec= or time= is not a time") from None
    raise MalformedLine("no msec= or time=")


@dataclass
class Ingested:
    """What one run did, for its one-line summary."""

    lines: int = 0
    finished: Counter[str] = field(default_factory=Counter)  # by outcome
    already: int = 0  # rows finished before: an earlier run, or closed as stale
    unknown: int = 0  # attempt ids with no row (pruned, or another database's)
    not_downloads: int = 0  # lines without an attempt id: refusals, WeChat, HEAD, pages
    malformed_lines: list[str] = field(default_factory=list)  # "FILE:LINE"

    def summary(self) -> str:
        finished = sum(self.finished.values())
        detail = ", ".join(f"{count} {outcome}" for outcome, count in sorted(self.finished.items()))
        text = (
            f"ingest-nginx-log: {self.lines} lines, {finished} downloads finished"
            + (f" ({detail})" if detail else "")
            + f", {self.already} already done, {self.unknown} unknown attempt ids, "
            f"{self.not_downloads} not downloads, {len(self.malformed_lines)} malformed"
        )
        if self.malformed_lines:
            shown = ", ".join(self.malformed_lines[:5])
            text += f" ({shown}{', ...' if len(self.malformed_lines) > 5 else ''})"
        return text


def _open(path: Path) -> TextIO:
    """A log file, gzip-compressed ones (logrotate's .gz) too; nginx escapes what is not ASCII."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return path.open("r", encoding="utf-8", errors="replace")


def _requests(paths: Iterable[Path], result: Ingested) -> Iterator[LoggedRequest]:
    for path in paths:
        with _open(path) as stream:
            for number, line in enumerate(stream, start=1):
                if not line.strip():
                    continue
                result.lines += 1
                try:
                    logged = parse_line(line)
                except MalformedLine:
                    result.malformed_lines.append(f"{path.name}:{number}")
                    continue
                if logged.attempt_id is None:
                    result.not_downloads += 1
                    continue
                yield logged


def ingest(audit: AuditLog, paths: Iterable[Path]) -> Ingested:
    """Finish the open attempt rows the logs tell about; see the module docstring."""
    result = Ingested()
    batch: list[Attempt] = []

    def flush() -> None:
        finished, already, unknown = audit.finish_open_attempts(batch)
        result.finished.update(attempt.outcome for attempt in finished)
        result.already += already
        result.unknown += unknown
        batch.clear()

    for logged in _requests(paths, result):
        batch.append(logged.attempt())
        if len(batch) >= BATCH:
            flush()
    if batch:
        flush()
    return result
