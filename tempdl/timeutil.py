"""Time helpers: one clock type that tests can replace, and durations said in both languages."""

from __future__ import annotations

import datetime
from collections.abc import Callable

Clock = Callable[[], datetime.datetime]


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def duration_text(seconds: int) -> tuple[str, str]:
    """(Chinese, English) wording of a duration, e.g. (\"10 分钟\", \"10 minutes\")."""
    seconds = max(0, int(seconds))
    if seconds >= 7200 and seconds % 3600 == 0:
        hours = seconds // 3600
        return f"{hours} 小时", f"{hours} hours"
    if seconds >= 60 and seconds % 60 == 0:
        minutes = seconds // 60
        return f"{minutes} 分钟", f"{minutes} minute{'s' if minutes != 1 else ''}"
    if seconds >= 60:
        minutes = seconds // 60
        return f"{minutes} 分 {seconds % 60} 秒", f"{minutes} min {seconds % 60} s"
    return f"{seconds} 秒", f"{seconds} second{'s' if seconds != 1 else ''}"
