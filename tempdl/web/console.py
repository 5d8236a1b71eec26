"""The operator's console beside the reports: files to issue, recent links, budget gauges, live downloads.

Kept apart from the handlers so the dashboard page and the action handlers read the same view.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from tempdl.audit.limit_counts import engine_traffic
from tempdl.audit.log import AuditLog
from tempdl.audit.records import IssuanceRecord
from tempdl.config.settings import LimitSettings, Settings
from tempdl.links.budget import BudgetUse, budget_use, local_day_bounds
from tempdl.links.catalog import Catalog, OfferedFile
from tempdl.links.issuing import Issuer
from tempdl.reports import chart as dashboard_view
from tempdl.reports.console import busiest_recipient, recent_issuances
from tempdl.reports.formats import human_bytes
from tempdl.web.streams import Streams, StreamView

RECENT_ISSUANCES = 20


@dataclass(frozen=True)
class Gauge:
    """How much of one budget is used: `limits.total_daily_bytes` and the like."""

    key: str
    label: str
    used: int
    cap: int

    @property
    def percent(self) -> float:
        return min(100.0, 100.0 * self.used / self.cap)


def gauges(limits: LimitSettings, uses: list[BudgetUse], top: tuple[str | None, int]) -> list[Gauge]:
    """One gauge per budget that is set (0: no cap, no gauge)."""
    keys = {"day": "limits.total_daily_bytes", "month": "limits.total_monthly_bytes"}
    labels = {"day": "今日流量额度 traffic allowance today", "month": "本月流量额度 traffic allowance this month"}
    found = [Gauge(keys[use.period], labels[use.period], use.used, use.allowance) for use in uses]
    if limits.recipient_daily_bytes:
        recipient, received = top
        label = f"今日最多的接收人 top recipient today ({dashboard_view.short_recipient(recipient or '-')})"
        found.append(Gauge("limits.recipient_daily_bytes", label, received, limits.recipient_daily_bytes))
    return found


@dataclass(frozen=True)
class ConsoleView:
    """What the dashboard shows besides the reports."""

    files: tuple[OfferedFile, ...]
    issuances: list[IssuanceRecord]
    gauges: list[Gauge]


class Console:
    """What the console's actions need from one set of settings: the catalogue and the issuer."""

    def __init__(self, catalog: Catalog, issuer: Issuer, audit: AuditLog, streams: Streams) -> None:
        self.catalog = catalog
        self.issuer = issuer
        self.audit = audit
        self.streams = streams

    def view(self, engine: Engine, settings: Settings, now: datetime.datetime) -> ConsoleView:
        """A blocking call, for the report thread."""
        day_start, _ = local_day_bounds(now, settings.zone)
        return ConsoleView(
            files=self.catalog.files(),
            issuances=recent_issuances(engine, RECENT_ISSUANCES),
            gauges=gauges(
                settings.limits,
                budget_use(engine_traffic(engine), settings.limits, settings.zone, now),
                busiest_recipient(engine, day_start, settings.zone, now=now),
            ),
        )


def live_json(views: list[StreamView]) -> dict[str, Any]:
    return {
        "downloads": [
            {
                "file_id": view.file_id,
                "recipient": dashboard_view.short_recipient(view.recipient or "-"),
                "bytes_sent": view.sent,
                "seconds": round(view.seconds, 1),
                "rate": int(view.rate),
                "bytes_text": human_bytes(view.sent),
                "rate_text": human_bytes(int(view.rate)) + "/s",
            }
            for view in views
        ]
    }
