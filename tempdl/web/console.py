"""The operator's console beside the reports: files to issue, recent links, budget gauges, live downloads.

Kept apart from the handlers so the dashboard page and the action handlers read the same view.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from tempdl.audit.log import AuditLog
from tempdl.config.settings import LimitSettings, Settings
from tempdl.links.catalog import Catalog, OfferedFile
from tempdl.links.issuing import Issuer
from tempdl.reports import chart as dashboard_view
from tempdl.reports.console import BudgetUse, RecentIssuance, budget_use, recent_issuances
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


def gauges(limits: LimitSettings, use: BudgetUse) -> list[Gauge]:
    """One gauge per budget that is set (0: no cap, no gauge).

    The total budgets are read with `getattr`: a config without those keys simply has no gauge.
    """
    recipient = dashboard_view.short_recipient(use.top_recipient or "-")
    candidates = [
        ("limits.total_daily_bytes", "今日总流量 today, all", use.today),
        ("limits.total_monthly_bytes", "本月总流量 this month, all", use.this_month),
        (
            "limits.recipient_daily_bytes",
            f"今日最多的接收人 top recipient today ({recipient})",
            use.top_recipient_today,
        ),
    ]
    found = []
    for key, label, used in candidates:
        cap = getattr(limits, key.removeprefix("limits."), 0)
        if cap:
            found.append(Gauge(key, label, used, cap))
    return found


@dataclass(frozen=True)
class ConsoleView:
    """What the dashboard shows besides the reports."""

    files: tuple[OfferedFile, ...]
    issuances: list[RecentIssuance]
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
        budgets = budget_use(engine, now, settings.zone)
        return ConsoleView(
            files=self.catalog.files(),
            issuances=recent_issuances(engine, RECENT_ISSUANCES),
            gauges=gauges(settings.limits, budgets),
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
