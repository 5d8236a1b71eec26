"""Time helpers: one clock type that tests can replace, and durations said in both languages."""

from __future__ import annotations

import datetime
import zoneinfo
from collections.abc import Callable

Clock = Callable[[], datetime.datetime]


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def local_midnight(day: datetime.date, zone: zoneinfo.ZoneInfo) -> datetime.datetime:
    """The UTC instant at which `day` starts in `zone` (a DST day has 23 or 25 hours)."""
    return datetime.datetime.combine(day, datetime.time(), zone).astimezone(datetime.UTC)


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
