"""The operator's traffic allowance: `limits.total_daily_bytes` and `limits.total_monthly_bytes`.

A VPS's monthly transfer is the budget; once it is spent, downloads answer 503 with Retry-After
at the start of the next period (a day or a calendar month in the report time zone), and WeChat
says when links come back instead of issuing one nobody could use. Downloads still running count
the bytes they asked for (`tempdl.audit.limit_counts.traffic_since`), so many starting together cannot
all slip under the allowance; their rows, once closed, count what really went out.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from tempdl.audit.log import AuditLog
from tempdl.audit.records import Attempt
from tempdl.config.settings import LimitSettings
from tempdl.errors import TrafficBudgetSpent
from tempdl.links.reservations import Hold, Reservations
from tempdl.timeutil import local_midnight

TOTAL = ("total",)
"""The reservations key of the server-wide allowance (recipients have their own keys)."""


def local_month_bounds(moment: datetime.datetime, zone: ZoneInfo) -> tuple[datetime.datetime, datetime.datetime]:
    """Start and end (UTC) of the operator's calendar month that contains `moment`."""
    local = moment.astimezone(zone).date()
    first = local.replace(day=1)
    following = (first + datetime.timedelta(days=32)).replace(day=1)
    return local_midnight(first, zone), local_midnight(following, zone)


def local_day_bounds(moment: datetime.datetime, zone: ZoneInfo) -> tuple[datetime.datetime, datetime.datetime]:
    """Start and end (UTC) of the operator's calendar day that contains `moment`."""
    local_day = moment.astimezone(zone).date()
    return local_midnight(local_day, zone), local_midnight(local_day + datetime.timedelta(days=1), zone)


@dataclass(frozen=True)
class BudgetUse:
    """One period's allowance and what of it is used (sent, plus reserved by running downloads)."""

    period: str  # "day" or "month"
    allowance: int
    used: int
    ends_at: datetime.datetime

    @property
    def spent(self) -> bool:
        return self.used >= self.allowance


Traffic = Callable[[datetime.datetime, datetime.datetime, Sequence[int]], tuple[int, int]]
"""Bytes used since a month's start and a day's (`AuditLog.traffic_since`, `engine_traffic`)."""


def budget_use(
    traffic: Traffic, limits: LimitSettings, zone: ZoneInfo, now: datetime.datetime, held_here: Sequence[int] = ()
) -> list[BudgetUse]:
    """Each configured period's use at `now`; blocking (the audit thread, a report thread, the CLI).

    `held_here`: running rows the caller counts itself (its reservations), left out here.
    """
    if not (limits.total_daily_bytes or limits.total_monthly_bytes):
        return []
    month_start, month_end = local_month_bounds(now, zone)
    day_start, day_end = local_day_bounds(now, zone)
    month_used, day_used = traffic(month_start, day_start, held_here)
    periods = [
        ("day", limits.total_daily_bytes, day_used, day_end),
        ("month", limits.total_monthly_bytes, month_used, month_end),
    ]
    return [BudgetUse(name, allowance, used, end) for name, allowance, used, end in periods if allowance]


class TrafficBudget:
    """The allowance as downloads and WeChat replies ask about it."""

    def __init__(self, limits: LimitSettings, zone: ZoneInfo, audit: AuditLog) -> None:
        self.limits = limits
        self.zone = zone
        self.audit = audit

    async def check(self, now: datetime.datetime) -> None:
        """Raise `TrafficBudgetSpent` naming when the last spent period ends; nothing if none is."""
        if self.limits.total_daily_bytes or self.limits.total_monthly_bytes:
            self._refuse_if_spent(await self._uses(now, ()), 0)

    async def reserve(
        self, now: datetime.datetime, reservations: Reservations, attempt: Attempt, length: int
    ) -> Hold | None:
        """Check the allowance, counting this process's running downloads at the length they asked
        for, and hold `length` bytes for `attempt` in the same step (None: no allowance is set).

        Nothing is awaited between the count and the hold, so downloads admitted together
        overshoot the allowance by the one file that crossed the line at most.
        """
        if not (self.limits.total_daily_bytes or self.limits.total_monthly_bytes):
            return None
        uses, held = await reservations.settled_count(TOTAL, lambda open_rows: self._uses(now, open_rows))
        self._refuse_if_spent(uses, held)
        return reservations.hold(TOTAL, attempt, length)

    async def _uses(self, now: datetime.datetime, held_here: Sequence[int]) -> list[BudgetUse]:
        return await self.audit.run(budget_use, self.audit.traffic_since, self.limits, self.zone, now, held_here)

    @staticmethod
    def _refuse_if_spent(uses: list[BudgetUse], held: int) -> None:
        spent = [use for use in uses if use.used + held >= use.allowance]
        if spent:
            latest = max(spent, key=lambda use: use.ends_at)
            raise TrafficBudgetSpent(latest.period, latest.ends_at)
