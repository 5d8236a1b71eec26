"""`stats`: the download and bandwidth report, as a table, JSON or CSV."""

from __future__ import annotations

import argparse
import sys

from tempdl.audit.limit_counts import engine_traffic
from tempdl.audit.open import open_for_reports
from tempdl.config.settings import Settings
from tempdl.errors import CommandError
from tempdl.links.budget import BudgetUse, budget_use
from tempdl.reports import formats as report_format
from tempdl.reports.breakdowns import Totals
from tempdl.reports.formats import human_bytes
from tempdl.reports.period import Period
from tempdl.reports.stats import Report, build_report
from tempdl.timeutil import utc_now


def stats(args: argparse.Namespace, settings: Settings) -> int:
    """Print the report. It never migrates the audit database nor writes its rows, so it is safe
    next to a running server, against a replica or on a copy; no database yet is an empty report.
    The one write it may make is bringing the report rollups up to date (skipped where the
    database takes no write)."""
    try:
        period = Period(args.since, args.until, settings.zone)
    except ValueError:
        raise CommandError(f"--since {args.since} is after --until {args.until}") from None
    report, budget = Report(period, args.by, Totals(), []), []
    engine = open_for_reports(settings.database_url)
    if engine is not None:
        try:
            report = build_report(engine, period, args.by)
            budget = budget_use(engine_traffic(engine), settings.limits, settings.zone, utc_now())
        finally:
            engine.dispose()
    sys.stdout.write(report_format.FORMATS[args.format](report))
    if args.format == "table" and budget:
        sys.stdout.write("".join(budget_line(use, settings) for use in budget))
    return 0


def budget_line(use: BudgetUse, settings: Settings) -> str:
    """`Traffic allowance:   today 1.5 GiB of 2.0 GiB (75%), renewed 2026-12-01 00:00 Asia/Shanghai`."""
    name = "today" if use.period == "day" else "this month"
    renewed = use.ends_at.astimezone(settings.zone).strftime("%Y-%m-%d %H:%M")
    share = 100 * use.used // use.allowance
    return (
        f"Traffic allowance:   {name} {human_bytes(use.used)} of {human_bytes(use.allowance)} ({share}%"
        f"{', spent' if use.spent else ''}), renewed {renewed} {settings.timezone}\n"
    )
