"""How the command line logs: `--log-format text|json`, `--log-level`, and journald's own timestamp.

Text lines are key=value (`level=INFO logger=tempdl event=request ...`), for grep. Under systemd
(`JOURNAL_STREAM` set, the journal holding stderr) the journal stamps every line itself, so ours
carry no time of their own.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time

from tempdl.web import log_filter as log_hygiene

LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
FORMAT_VARIABLE = "TEMPDL_LOG_FORMAT"
LEVEL_VARIABLE = "TEMPDL_LOG_LEVEL"
_TEXT = "level=%(levelname)s logger=%(name)s %(message)s"


def under_journald() -> bool:
    """True when stderr goes to systemd's journal, which adds its own timestamp to every line."""
    return bool(os.environ.get("JOURNAL_STREAM"))


class TextFormatter(logging.Formatter):
    """`logging.Formatter` whose timestamp is formatted once per second, not once per line.

    The access log writes a line per request, and `time.strftime` of the same second over and
    over was the costliest part of each; the milliseconds are still the record's own.
    """

    def __init__(self, fmt: str) -> None:
        super().__init__(fmt)
        self._second: int | None = None
        self._second_text = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        if second != self._second:
            self._second_text = time.strftime(self.default_time_format, self.converter(record.created))
            self._second = second
        return f"{self._second_text},{int(record.msecs):03d}"  # logging's default_msec_format


class JsonFormatter(logging.Formatter):
    """One JSON object per line; `event` copied out of an `event=NAME ...` message for filters."""

    def __init__(self, *, with_time: bool) -> None:
        super().__init__()
        self.with_time = with_time

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        line: dict[str, object] = {}
        if self.with_time:
            line["time"] = self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z")
        line.update(level=record.levelname, logger=record.name)
        if message.startswith("event="):
            line["event"] = message.split(" ", 1)[0].removeprefix("event=")
        line["message"] = message
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure_logging(log_format: str = "text", log_level: str = "INFO") -> None:
    """Log to stderr in `log_format` (text or json), from `log_level` up.

    Our lines carry no thread, process or source position, so log records need not look them
    up (the knobs from the logging HOWTO's "Optimization" section): one line per request is
    worth keeping cheap.
    """
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging.logAsyncioTasks = False  # type: ignore[attr-defined]  # Python 3.12+; harmless before
    logging._srcfile = None  # no caller lookup (a walk up the stack) for %(pathname)s and the like
    handler = logging.StreamHandler(sys.stderr)
    with_time = not under_journald()
    if log_format == "json":
        handler.setFormatter(JsonFormatter(with_time=with_time))
    else:
        handler.setFormatter(TextFormatter(f"%(asctime)s {_TEXT}" if with_time else _TEXT))
    logging.basicConfig(level=log_level, handlers=[handler], force=True)
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.getLevelName(log_level)))
    log_hygiene.install()
